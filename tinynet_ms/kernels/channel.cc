// Per-channel scaling (squeeze-excite's x * gate) for MindSpore CPU as ops.Custom(func_type="aot") kernels, float32.
//
// Entry points (MindSpore's aot signature: params = inputs then outputs):
//   ChannelScale(x, g)  -> y    y[n, c, :, :] = x[n, c, :, :] * g[n, c]     x (N, C, H, W), g (N, C, 1, 1)
//                                (also the gradient w.r.t. x: ChannelScale(dy, g))
//   ChannelDot(dy, x)   -> dg   dg[n, c] = sum_hw dy[n, c, :, :] * x[n, c, :, :]   (the gradient w.r.t. g)
//   ChannelAffine(x, s, t) -> y  y[n, c, :, :] = x[n, c, :, :] * s[c] + t[c]     s, t (C,): inference BatchNorm
//   SqueezeExciteGate(m, w1, b1, w2, b2) -> g   an inference squeeze-excite's gate from its pooled input m (N, C)
//                                (DwConvBiasSwishMean's): g = sigmoid(w2 swish(w1 m + b1) + b2), g (N, C); w1 (R, C, 1,
//                                1), b1 (R,), w2 (C, R, 1, 1), b2 (C,). The gate scales the next 1x1 conv's weights
//                                (PointwiseGated*), so x * g is never written.
//
// MindSpore runs the broadcasting Mul's gradient w.r.t. g as a full-size Mul plus a ReduceSum; ChannelDot is one
// pass. SqueezeExciteGate with its neighbours replaces the 8 ops of an inference SE (pool, two 1x1 convs, their bias
// adds, Swish, sigmoid, scale), whose framework overhead dominates at batch 1. MindSpore 2.10's CPU BatchNorm in
// inference mode takes ~40% of TinyNet's forward; as an affine map it is one pass. Work is split by (n, c) plane,
// each summed in double by one thread, so results are deterministic.
#include <cmath>

#include "common.h"

namespace {

using namespace tinynet;

// True if x and y are (N, C, H, W) and g is (N, C, 1, 1), all float32.
bool Shapes(int *ndims, int64_t **shapes, const char **dtypes, int x, int g, int y) {
  if (ndims[x] != 4 || ndims[g] != 4 || ndims[y] != 4) return false;
  if (!IsF32(dtypes[x]) || !IsF32(dtypes[g]) || !IsF32(dtypes[y])) return false;
  const int64_t *xs = shapes[x], *gs = shapes[g], *ys = shapes[y];
  return gs[0] == xs[0] && gs[1] == xs[1] && gs[2] == 1 && gs[3] == 1 && ys[0] == xs[0] && ys[1] == xs[1] &&
         ys[2] == xs[2] && ys[3] == xs[3];
}

// y[p, :] = x[p, :] * g[p] for each of `planes` planes of hw floats. False if a worker thread failed.
bool ScalePlanes(const float *x, const float *g, float *y, int64_t planes, int64_t hw) {
  return ParallelFor(planes, planes * hw, [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      const float *src = x + p * hw;
      float *dst = y + p * hw;
      const Vec scale = Splat(g[p]);
      int64_t i = 0;
      for (; i + kVec <= hw; i += kVec) Store(dst + i, Load(src + i) * scale);
      for (; i < hw; ++i) dst[i] = src[i] * g[p];
    }
  });
}

}  // namespace

extern "C" int ChannelScale(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes, void *,
                            void *) {
  if (nparam != 3 || !Shapes(ndims, shapes, dtypes, 0, 1, 2))
    return Fail("ChannelScale", "expects float32 x (N, C, H, W) and g (N, C, 1, 1), and y shaped like x");
  const int64_t planes = shapes[0][0] * shapes[0][1], hw = shapes[0][2] * shapes[0][3];
  const float *x = static_cast<const float *>(params[0]), *g = static_cast<const float *>(params[1]);
  float *y = static_cast<float *>(params[2]);
  return ScalePlanes(x, g, y, planes, hw) ? 0 : Fail("ChannelScale", "a worker thread failed");
}

extern "C" int ChannelDot(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes, void *,
                          void *) {
  if (nparam != 3 || !Shapes(ndims, shapes, dtypes, 0, 2, 1))
    return Fail("ChannelDot", "expects float32 dy and x (N, C, H, W), and dg (N, C, 1, 1)");
  const int64_t planes = shapes[0][0] * shapes[0][1], hw = shapes[0][2] * shapes[0][3];
  const float *dy = static_cast<const float *>(params[0]), *x = static_cast<const float *>(params[1]);
  float *dg = static_cast<float *>(params[2]);
  const bool ok = ParallelFor(planes, planes * hw, [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      const float *a = dy + p * hw, *b = x + p * hw;
      Vec acc0 = Splat(0.f), acc1 = Splat(0.f);  // two chains hide the FMA latency; folded into double per plane
      int64_t i = 0;
      for (; i + 2 * kVec <= hw; i += 2 * kVec) {
        acc0 += Load(a + i) * Load(b + i);
        acc1 += Load(a + i + kVec) * Load(b + i + kVec);
      }
      for (; i + kVec <= hw; i += kVec) acc0 += Load(a + i) * Load(b + i);
      const Vec acc = acc0 + acc1;
      double sum = 0;
      for (int64_t j = 0; j < kVec; ++j) sum += acc[j];
      for (; i < hw; ++i) sum += static_cast<double>(a[i]) * b[i];
      dg[p] = static_cast<float>(sum);
    }
  });
  return ok ? 0 : Fail("ChannelDot", "a worker thread failed");
}

extern "C" int ChannelAffine(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes, void *,
                             void *) {
  bool ok = nparam == 4 && ndims[0] == 4 && ndims[1] == 1 && ndims[2] == 1 && ndims[3] == 4;
  for (int i = 0; ok && i < nparam; ++i) ok = IsF32(dtypes[i]);
  ok = ok && shapes[1][0] == shapes[0][1] && shapes[2][0] == shapes[0][1] &&
       std::memcmp(shapes[0], shapes[3], 4 * sizeof(int64_t)) == 0;
  if (!ok) return Fail("ChannelAffine", "expects float32 x (N, C, H, W), s and t (C,), and y shaped like x");
  const int64_t channels = shapes[0][1], planes = shapes[0][0] * channels, hw = shapes[0][2] * shapes[0][3];
  const float *x = static_cast<const float *>(params[0]), *s = static_cast<const float *>(params[1]),
              *t = static_cast<const float *>(params[2]);
  float *y = static_cast<float *>(params[3]);
  ok = ParallelFor(planes, planes * hw, [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      const float *src = x + p * hw;
      float *dst = y + p * hw;
      const float sc = s[p % channels], sh = t[p % channels];
      const Vec vs = Splat(sc), vt = Splat(sh);
      int64_t i = 0;
      for (; i + kVec <= hw; i += kVec) Store(dst + i, Load(src + i) * vs + vt);
      for (; i < hw; ++i) dst[i] = src[i] * sc + sh;
    }
  });
  return ok ? 0 : Fail("ChannelAffine", "a worker thread failed");
}

extern "C" int SqueezeExciteGate(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes,
                                 void *, void *) {
  bool ok = nparam == 6 && ndims[0] == 2 && ndims[1] == 4 && ndims[2] == 1 && ndims[3] == 4 && ndims[4] == 1 &&
            ndims[5] == 2;
  for (int i = 0; ok && i < nparam; ++i) ok = IsF32(dtypes[i]);
  const int64_t n = ok ? shapes[0][0] : 0, c = ok ? shapes[0][1] : 0, r = ok ? shapes[1][0] : 0;
  ok = ok && shapes[1][1] == c && shapes[1][2] == 1 && shapes[1][3] == 1 && shapes[2][0] == r &&
       shapes[3][0] == c && shapes[3][1] == r && shapes[3][2] == 1 && shapes[3][3] == 1 && shapes[4][0] == c &&
       shapes[5][0] == n && shapes[5][1] == c;
  if (!ok)
    return Fail("SqueezeExciteGate", "expects float32 m (N, C), w1 (R, C, 1, 1), b1 (R,), w2 (C, R, 1, 1), "
                                     "b2 (C,), and g (N, C)");
  const float *m = static_cast<const float *>(params[0]), *w1 = static_cast<const float *>(params[1]),
              *b1 = static_cast<const float *>(params[2]), *w2 = static_cast<const float *>(params[3]),
              *b2 = static_cast<const float *>(params[4]);
  float *gate = static_cast<float *>(params[5]);
  ok = ParallelFor(n, n * 2 * r * c, [&](int64_t begin, int64_t end) {  // the two tiny FCs, per sample
    std::vector<float> hidden(r);
    for (int64_t s = begin; s < end; ++s) {
      const float *mean = m + s * c;
      for (int64_t k = 0; k < r; ++k) {
        float v = b1[k];
        for (int64_t j = 0; j < c; ++j) v += w1[k * c + j] * mean[j];
        hidden[k] = v / (1.0f + std::exp(-v));
      }
      float *g = gate + s * c;
      for (int64_t j = 0; j < c; ++j) {
        float v = b2[j];
        for (int64_t k = 0; k < r; ++k) v += w2[j * r + k] * hidden[k];
        g[j] = 1.0f / (1.0f + std::exp(-v));
      }
    }
  });
  return ok ? 0 : Fail("SqueezeExciteGate", "a worker thread failed");
}
