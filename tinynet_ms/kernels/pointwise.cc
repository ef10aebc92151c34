// Pointwise (1x1) convolutions and the classifier of folded inference graphs, one op each, the folded BatchNorm's
// bias (and the Swish after it) applied to each output block while it is still in cache:
//   PointwiseBias(x, w, b) -> y        y[n] = w @ x[n] + b               x (N, K, H, W), w (M, K, 1, 1), b (M,),
//   PointwiseBiasSwish(x, w, b) -> y   y[n] = swish(w @ x[n] + b)        y (N, M, H, W)
//   Linear(x, w, b) -> y               y = x @ w^T + b                   x (N, K), w (M, K), b (M,), y (N, M)
// all float32. At TinyNet's sizes MindSpore 2.10's CPU Conv2D and MatMul spend most of their time around the
// arithmetic (layout reorders, a GEMV path at batch 1); the GEMMs here are oneDNN's sgemm — MindSpore's own
// libdnnl, which picks its JIT kernels for the CPU it runs on — on blocks of output rows x columns spread over the
// kernel pool (its sgemm runs single-threaded outside a oneDNN threadpool; see gemm.h).
#include <cmath>

#include "common.h"
#include "gemm.h"

namespace {

using namespace tinynet;

constexpr int64_t kColumns = 512;  // output columns per block: an M x 512 float block stays in L2 for the bias pass
constexpr int64_t kMinRows = 16;   // rows per block when a layer's columns give the pool too few blocks

// row[0:n] += bias, then Swish if `swish`.
inline void Epilogue(float *row, int64_t n, float bias, bool swish) {
  const Vec t = Splat(bias);
  int64_t j = 0;
  for (; j + kVec <= n; j += kVec) {
    const Vec v = Load(row + j) + t;
    Store(row + j, swish ? v * Sigmoid(v) : v);
  }
  if (j < n) {
    const Vec v = LoadPart(row + j, n - j) + t;
    StorePart(row + j, swish ? v * Sigmoid(v) : v, n - j);
  }
}

int Pointwise(const char *entry, bool swish, int nparam, void **params, int *ndims, int64_t **shapes,
              const char **dtypes) {
  bool ok = nparam == 4 && ndims[0] == 4 && ndims[1] == 4 && ndims[2] == 1 && ndims[3] == 4;
  for (int i = 0; ok && i < nparam; ++i) ok = IsF32(dtypes[i]);
  const int64_t *xs = ok ? shapes[0] : nullptr, *ws = ok ? shapes[1] : nullptr, *ys = ok ? shapes[3] : nullptr;
  ok = ok && ws[1] == xs[1] && ws[2] == 1 && ws[3] == 1 && shapes[2][0] == ws[0] && ys[0] == xs[0] &&
       ys[1] == ws[0] && ys[2] == xs[2] && ys[3] == xs[3];
  if (!ok) return Fail(entry, "expects float32 x (N, K, H, W), w (M, K, 1, 1), b (M,), and y (N, M, H, W)");
  const int64_t n = xs[0], k = xs[1], m = ws[0], hw = xs[2] * xs[3];
  const float *x = static_cast<const float *>(params[0]), *w = static_cast<const float *>(params[1]);
  const float *b = static_cast<const float *>(params[2]);
  float *y = static_cast<float *>(params[3]);
  // Blocks of (sample, row block, column block); rows are split only when the columns leave the pool idle.
  const int64_t col_blocks = (hw + kColumns - 1) / kColumns;
  const int64_t wanted = 4 * NumThreads();
  const int64_t row_blocks =
      std::max<int64_t>(1, std::min((wanted + n * col_blocks - 1) / (n * col_blocks), m / kMinRows));
  const int64_t blocks = n * row_blocks * col_blocks;
  std::atomic<bool> gemm_ok{true};
  const bool ran = ParallelFor(blocks, n * m * k * hw, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const int64_t s = i / (row_blocks * col_blocks), r = i / col_blocks % row_blocks, c = i % col_blocks;
      const int64_t r0 = m * r / row_blocks, r1 = m * (r + 1) / row_blocks;
      const int64_t c0 = hw * c / col_blocks, c1 = hw * (c + 1) / col_blocks;
      float *out = y + (s * m + r0) * hw + c0;
      if (!Gemm(false, r1 - r0, c1 - c0, k, w + r0 * k, k, x + s * k * hw + c0, hw, out, hw)) gemm_ok = false;
      for (int64_t row = r0; row < r1; ++row) Epilogue(out + (row - r0) * hw, c1 - c0, b[row], swish);
    }
  });
  if (!ran) return Fail(entry, "a worker thread failed");
  return gemm_ok ? 0 : Fail(entry, "oneDNN's sgemm failed");
}

}  // namespace

extern "C" int PointwiseBias(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes, void *,
                             void *) {
  return Pointwise("PointwiseBias", false, nparam, params, ndims, shapes, dtypes);
}

extern "C" int PointwiseBiasSwish(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes,
                                  void *, void *) {
  return Pointwise("PointwiseBiasSwish", true, nparam, params, ndims, shapes, dtypes);
}

extern "C" int Linear(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes, void *,
                      void *) {
  bool ok = nparam == 4 && ndims[0] == 2 && ndims[1] == 2 && ndims[2] == 1 && ndims[3] == 2;
  for (int i = 0; ok && i < nparam; ++i) ok = IsF32(dtypes[i]);
  ok = ok && shapes[1][1] == shapes[0][1] && shapes[2][0] == shapes[1][0] && shapes[3][0] == shapes[0][0] &&
       shapes[3][1] == shapes[1][0];
  if (!ok) return Fail("Linear", "expects float32 x (N, K), w (M, K), b (M,), and y (N, M)");
  const int64_t n = shapes[0][0], k = shapes[0][1], m = shapes[1][0];
  const float *x = static_cast<const float *>(params[0]), *w = static_cast<const float *>(params[1]);
  const float *b = static_cast<const float *>(params[2]);
  float *y = static_cast<float *>(params[3]);
  // Blocks of output columns (rows of w): at batch 1 this is a GEMV bound by reading w once.
  const int64_t blocks = std::max<int64_t>(1, std::min<int64_t>(4 * NumThreads(), m / kMinRows));
  std::atomic<bool> gemm_ok{true};
  const bool ran = ParallelFor(blocks, n * m * k, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const int64_t c0 = m * i / blocks, c1 = m * (i + 1) / blocks;
      if (!Gemm(true, n, c1 - c0, k, x, k, w + c0 * k, k, y + c0, m)) gemm_ok = false;
      for (int64_t r = 0; r < n; ++r)
        for (int64_t c = c0; c < c1; ++c) y[r * m + c] += b[c];
    }
  });
  if (!ran) return Fail("Linear", "a worker thread failed");
  return gemm_ok ? 0 : Fail("Linear", "oneDNN's sgemm failed");
}
