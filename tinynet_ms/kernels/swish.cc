// Swish / SiLU, y = x * sigmoid(x), for MindSpore CPU as ops.Custom(func_type="aot") kernels, float32, any shape.
//
// Entry points (MindSpore's aot signature: params = inputs then outputs):
//   SwishForward(x)     -> y
//   SwishGrad(dy, x)    -> dx = dy * s * (1 + x * (1 - s)),  s = sigmoid(x)
//   SwishBias(x, t)     -> y = swish(x + t[c])  for NCHW x, (C,) t: a folded inference BatchNorm + Swish
//
// One pass over memory each, where MindSpore's expansion runs Sigmoid + Mul forward and Sigmoid, Mul, Add,
// Mul backward as separate ops (Exp and Sigmoid are in common.h).
#include "common.h"

namespace {

using namespace tinynet;

// f(i, block) over [0, n) in whole vectors; the last partial vector goes through a zero-padded copy.
template <class F>
bool ForEachVector(int64_t n, int64_t cost, const F &f) {
  constexpr int64_t kChunk = 1024 * kVec;
  return ParallelFor((n + kChunk - 1) / kChunk, n * cost, [&](int64_t begin, int64_t end) {
    const int64_t stop = std::min(n, end * kChunk);
    int64_t i = begin * kChunk;
    for (; i + kVec <= stop; i += kVec) f(i, kVec);
    if (i < stop) f(i, stop - i);
  });
}

constexpr int64_t kCost = 8;  // rough flops per element relative to a multiply-add, for the threading threshold

int64_t Elements(int ndim, const int64_t *shape) {
  int64_t n = 1;
  for (int i = 0; i < ndim; ++i) n *= shape[i];
  return n;
}

bool SameShape(int nparam, int *ndims, int64_t **shapes) {
  for (int i = 1; i < nparam; ++i)
    if (ndims[i] != ndims[0] || std::memcmp(shapes[i], shapes[0], ndims[0] * sizeof(int64_t)) != 0) return false;
  return true;
}

int Check(const char *entry, int expected, int nparam, int *ndims, int64_t **shapes, const char **dtypes) {
  if (nparam != expected) return Fail(entry, "wrong number of inputs and outputs");
  for (int i = 0; i < nparam; ++i)
    if (!IsF32(dtypes[i])) return Fail(entry, "only float32 is supported (cast float16 inputs first)");
  if (!SameShape(nparam, ndims, shapes)) return Fail(entry, "every tensor must have the same shape");
  return 0;
}

}  // namespace

extern "C" int SwishForward(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes, void *,
                            void *) {
  if (int rc = Check("SwishForward", 2, nparam, ndims, shapes, dtypes)) return rc;
  const float *x = static_cast<const float *>(params[0]);
  float *y = static_cast<float *>(params[1]);
  const bool ok = ForEachVector(Elements(ndims[0], shapes[0]), kCost, [&](int64_t i, int64_t m) {
    const Vec v = LoadPart(x + i, m);
    StorePart(y + i, v * Sigmoid(v), m);
  });
  return ok ? 0 : Fail("SwishForward", "a worker thread failed");
}

extern "C" int SwishGrad(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes, void *,
                         void *) {
  if (int rc = Check("SwishGrad", 3, nparam, ndims, shapes, dtypes)) return rc;
  const float *dy = static_cast<const float *>(params[0]), *x = static_cast<const float *>(params[1]);
  float *dx = static_cast<float *>(params[2]);
  const bool ok = ForEachVector(Elements(ndims[0], shapes[0]), kCost, [&](int64_t i, int64_t m) {
    const Vec v = LoadPart(x + i, m), e = Exp(-v), s = 1.0f / (1.0f + e);
    StorePart(dx + i, LoadPart(dy + i, m) * s * (1.0f + v * (e * s)), m);  // 1 - s as e * s: no cancellation
  });
  return ok ? 0 : Fail("SwishGrad", "a worker thread failed");
}

// Inference BatchNorm folded into the conv before it, then Swish: y = swish(x + t[c]), one pass. x, y (N, C, H, W),
// t (C,).
extern "C" int SwishBias(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes, void *,
                         void *) {
  bool ok = nparam == 3 && ndims[0] == 4 && ndims[1] == 1 && ndims[2] == 4;
  for (int i = 0; ok && i < nparam; ++i) ok = IsF32(dtypes[i]);
  ok = ok && shapes[1][0] == shapes[0][1] && std::memcmp(shapes[0], shapes[2], 4 * sizeof(int64_t)) == 0;
  if (!ok) return Fail("SwishBias", "expects float32 x (N, C, H, W), t (C,), and y shaped like x");
  const int64_t channels = shapes[0][1], planes = shapes[0][0] * channels, hw = shapes[0][2] * shapes[0][3];
  const float *x = static_cast<const float *>(params[0]), *t = static_cast<const float *>(params[1]);
  float *y = static_cast<float *>(params[2]);
  ok = ParallelFor(planes, planes * hw * kCost, [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      const float *src = x + p * hw;
      float *dst = y + p * hw;
      const Vec shift = Splat(t[p % channels]);
      for (int64_t i = 0; i < hw; i += kVec) {
        const int64_t m = std::min(kVec, hw - i);
        const Vec v = LoadPart(src + i, m) + shift;
        StorePart(dst + i, v * Sigmoid(v), m);
      }
    }
  });
  return ok ? 0 : Fail("SwishBias", "a worker thread failed");
}
