// Pointwise (1x1) convolutions and the classifier of folded inference graphs, one op each, the folded BatchNorm's
// bias (and the Swish after it) applied to each output block while it is still in cache:
//   PointwiseBias(x, w, b) -> y        y[n] = w @ x[n] + b               x (N, K, H, W), w (M, K, 1, 1), b (M,),
//   PointwiseBiasSwish(x, w, b) -> y   y[n] = swish(w @ x[n] + b)        y (N, M, H, W)
//   PointwiseGated(x, g, w, b) -> y    y[n] = (w * g[n]) @ x[n] + b      g (N, K): a squeeze-excite's gate
//   PointwiseGatedAdd(x, g, w, b, s) -> y   y[n] = (w * g[n]) @ x[n] + b + s[n]   s (N, M, H, W): the residual
//   Linear(x, w, b) -> y               y = x @ w^T + b                   x (N, K), w (M, K), b (M,), y (N, M)
// all float32. The gate scales the weight's columns per sample (M x K multiplies) instead of x (K x H x W, a pass
// over the block's widest tensor), and the residual is added in the bias pass. At TinyNet's sizes MindSpore 2.10's
// CPU Conv2D and MatMul spend most of their time around the arithmetic (layout reorders, a GEMV path at batch 1);
// the GEMMs here are oneDNN's sgemm — MindSpore's own libdnnl, which picks its JIT kernels for the CPU it runs on —
// on blocks of output rows x columns spread over the kernel pool (its sgemm runs single-threaded outside a oneDNN
// threadpool; see gemm.h).
#include <cmath>

#include "common.h"
#include "gemm.h"

namespace {

using namespace tinynet;

constexpr int64_t kColumns = 512;  // output columns per block: an M x 512 float block stays in L2 for the bias pass
constexpr int64_t kMinRows = 16;   // rows per block when a layer's columns give the pool too few blocks

// row[0:n] += bias (+ skip[0:n] if given), then Swish if `swish`.
inline void Epilogue(float *row, int64_t n, float bias, bool swish, const float *skip) {
  const Vec t = Splat(bias);
  int64_t j = 0;
  for (; j + kVec <= n; j += kVec) {
    Vec v = Load(row + j) + t;
    if (skip != nullptr) v += Load(skip + j);
    Store(row + j, swish ? v * Sigmoid(v) : v);
  }
  if (j < n) {
    Vec v = LoadPart(row + j, n - j) + t;
    if (skip != nullptr) v += LoadPart(skip + j, n - j);
    StorePart(row + j, swish ? v * Sigmoid(v) : v, n - j);
  }
}

// The four pointwise entries: params are x, [g,] w, b, [s,] y.
int Pointwise(const char *entry, bool swish, bool gated, bool skip, int nparam, void **params, int *ndims,
              int64_t **shapes, const char **dtypes) {
  const int iw = gated ? 2 : 1, ib = iw + 1, is = ib + 1, iy = skip ? is + 1 : is;
  bool ok = nparam == iy + 1 && ndims[0] == 4 && ndims[iw] == 4 && ndims[ib] == 1 && ndims[iy] == 4 &&
            (!gated || ndims[1] == 2) && (!skip || ndims[is] == 4);
  for (int i = 0; ok && i < nparam; ++i) ok = IsF32(dtypes[i]);
  const int64_t *xs = ok ? shapes[0] : nullptr, *ws = ok ? shapes[iw] : nullptr, *ys = ok ? shapes[iy] : nullptr;
  ok = ok && ws[1] == xs[1] && ws[2] == 1 && ws[3] == 1 && shapes[ib][0] == ws[0] && ys[0] == xs[0] &&
       ys[1] == ws[0] && ys[2] == xs[2] && ys[3] == xs[3] &&
       (!gated || (shapes[1][0] == xs[0] && shapes[1][1] == xs[1])) &&
       (!skip || std::equal(ys, ys + 4, shapes[is]));
  if (!ok) {
    return Fail(entry, gated ? "expects float32 x (N, K, H, W), g (N, K), w (M, K, 1, 1), b (M,), [s (N, M, H, W),] "
                               "and y (N, M, H, W)"
                             : "expects float32 x (N, K, H, W), w (M, K, 1, 1), b (M,), and y (N, M, H, W)");
  }
  const int64_t n = xs[0], k = xs[1], m = ws[0], hw = xs[2] * xs[3];
  const float *x = static_cast<const float *>(params[0]), *w = static_cast<const float *>(params[iw]);
  const float *g = gated ? static_cast<const float *>(params[1]) : nullptr;
  const float *b = static_cast<const float *>(params[ib]);
  const float *res = skip ? static_cast<const float *>(params[is]) : nullptr;
  float *y = static_cast<float *>(params[iy]);
  // Blocks of (sample, row block, column block); rows are split only when the columns leave the pool idle.
  const int64_t col_blocks = (hw + kColumns - 1) / kColumns;
  const int64_t wanted = 4 * NumThreads();
  const int64_t row_blocks =
      std::max<int64_t>(1, std::min((wanted + n * col_blocks - 1) / (n * col_blocks), m / kMinRows));
  const int64_t blocks = n * row_blocks * col_blocks;
  std::atomic<bool> gemm_ok{true};
  const bool ran = ParallelFor(blocks, n * m * k * hw, [&](int64_t begin, int64_t end) {
    // A row block of w * g[s], in a buffer each thread keeps (a fresh large one would be new pages every call).
    static thread_local std::vector<float> scaled;
    if (gated && scaled.size() < static_cast<size_t>(m * k / row_blocks + k)) scaled.resize(m * k / row_blocks + k);
    int64_t scaled_for = -1;  // the (sample, row block) it holds: consecutive blocks share it
    for (int64_t i = begin; i < end; ++i) {
      const int64_t s = i / (row_blocks * col_blocks), r = i / col_blocks % row_blocks, c = i % col_blocks;
      const int64_t r0 = m * r / row_blocks, r1 = m * (r + 1) / row_blocks;
      const int64_t c0 = hw * c / col_blocks, c1 = hw * (c + 1) / col_blocks;
      const float *a = w + r0 * k;
      if (gated) {
        if (scaled_for != i / col_blocks) {
          for (int64_t row = r0; row < r1; ++row)
            for (int64_t j = 0; j < k; ++j) scaled[(row - r0) * k + j] = w[row * k + j] * g[s * k + j];
          scaled_for = i / col_blocks;
        }
        a = scaled.data();
      }
      float *out = y + (s * m + r0) * hw + c0;
      if (!Gemm(false, r1 - r0, c1 - c0, k, a, k, x + s * k * hw + c0, hw, out, hw)) gemm_ok = false;
      for (int64_t row = r0; row < r1; ++row) {
        const float *add = skip ? res + (s * m + row) * hw + c0 : nullptr;
        Epilogue(out + (row - r0) * hw, c1 - c0, b[row], swish, add);
      }
    }
  });
  if (!ran) return Fail(entry, "a worker thread failed");
  return gemm_ok ? 0 : Fail(entry, "oneDNN's sgemm failed");
}

}  // namespace

extern "C" int PointwiseBias(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes, void *,
                             void *) {
  return Pointwise("PointwiseBias", false, false, false, nparam, params, ndims, shapes, dtypes);
}

extern "C" int PointwiseBiasSwish(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes,
                                  void *, void *) {
  return Pointwise("PointwiseBiasSwish", true, false, false, nparam, params, ndims, shapes, dtypes);
}

extern "C" int PointwiseGated(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes, void *,
                              void *) {
  return Pointwise("PointwiseGated", false, true, false, nparam, params, ndims, shapes, dtypes);
}

extern "C" int PointwiseGatedAdd(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes,
                                 void *, void *) {
  return Pointwise("PointwiseGatedAdd", false, true, true, nparam, params, ndims, shapes, dtypes);
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
