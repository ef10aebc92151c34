// Training-mode BatchNorm over NCHW, optionally followed by Swish, for MindSpore CPU as ops.Custom(func_type="aot")
// kernels, float32.
//
// Entry points (MindSpore's aot signature: params = inputs then outputs); x, y, dy, dx (N, C, H, W); gamma,
// beta, mean, var, dgamma, dbeta (C,); eps (1,):
//   BatchNormTrain(x, gamma, beta, eps)                  -> y, mean, var    y = gamma * xhat + beta
//   BatchNormSwishTrain(x, gamma, beta, eps)             -> y, mean, var    y = swish(gamma * xhat + beta)
//   BatchNormTrainGrad(dy, x, gamma, beta, mean, var, eps)      -> dx, dgamma, dbeta
//   BatchNormSwishTrainGrad(dy, x, gamma, beta, mean, var, eps) -> dx, dgamma, dbeta
// with xhat = (x - mean) / sqrt(var + eps), mean and var (biased) the batch statistics per channel.
//
// MindSpore 2.10's CPU BatchNorm and its gradient take a third of a TinyNet train step, and the Swish after
// most of them two more passes each way. Here the forward is one pass for the statistics (shifted sums, so no
// cancellation when |mean| >> std) and one that writes y; the gradient one pass that reduces dgamma, dbeta and
// keeps the gradient before the BN in dx, and one that finishes dx. Per-channel sums run in one thread each
// and are added in double, so results do not depend on the thread count.
#include <cmath>
#include <initializer_list>

#include "common.h"

namespace {

using namespace tinynet;

struct Dims {
  int64_t n = 0, c = 0, hw = 0;
  int64_t count() const { return n * hw; }  // elements per channel
};

// Checks the tensor shapes: the NCHW ones (indices in `full`) alike, the per-channel ones (C,), eps (1,).
bool GetDims(int nparam, int expected, int *ndims, int64_t **shapes, const char **dtypes,
             std::initializer_list<int> full, std::initializer_list<int> channel, int eps, Dims *d) {
  if (nparam != expected) return false;
  for (int i = 0; i < nparam; ++i)
    if (!IsF32(dtypes[i])) return false;
  const int first = *full.begin();
  if (ndims[first] != 4) return false;
  for (int i : full)
    if (ndims[i] != 4 || std::memcmp(shapes[i], shapes[first], 4 * sizeof(int64_t)) != 0) return false;
  d->n = shapes[first][0];
  d->c = shapes[first][1];
  d->hw = shapes[first][2] * shapes[first][3];
  for (int i : channel)
    if (ndims[i] != 1 || shapes[i][0] != d->c) return false;
  return ndims[eps] == 1 && shapes[eps][0] == 1 && d->count() > 0;
}

inline float HorizontalSum(Vec v) {
  float s = 0;
  for (int64_t j = 0; j < kVec; ++j) s += v[j];
  return s;
}

// Per channel: mean and biased variance, from sums of x - K with K the channel's first element.
void Statistics(const float *x, const Dims &d, float *mean, float *var, bool *ok) {
  *ok = ParallelFor(d.c, d.c * d.count(), [&](int64_t begin, int64_t end) {
    for (int64_t c = begin; c < end; ++c) {
      const float k = x[c * d.hw];
      const Vec vk = Splat(k);
      double s = 0, ss = 0;
      for (int64_t n = 0; n < d.n; ++n) {
        const float *p = x + (n * d.c + c) * d.hw;
        Vec vs = Splat(0.f), vss = Splat(0.f);
        int64_t i = 0;
        for (; i + kVec <= d.hw; i += kVec) {
          const Vec v = Load(p + i) - vk;
          vs += v;
          vss += v * v;
        }
        double ps = HorizontalSum(vs), pss = HorizontalSum(vss);
        for (; i < d.hw; ++i) {
          const double v = static_cast<double>(p[i]) - k;
          ps += v;
          pss += v * v;
        }
        s += ps;
        ss += pss;
      }
      const double m = static_cast<double>(d.count());
      mean[c] = static_cast<float>(k + s / m);
      var[c] = static_cast<float>(std::max(0.0, (ss - s * s / m) / m));
    }
  });
}

template <bool kSwish>
int Forward(const char *entry, int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes) {
  Dims d;
  if (!GetDims(nparam, 7, ndims, shapes, dtypes, {0, 4}, {1, 2, 5, 6}, 3, &d))
    return Fail(entry, "expects float32 x (N, C, H, W), gamma, beta (C,), eps (1,); y like x, mean, var (C,)");
  const float *x = static_cast<const float *>(params[0]), *gamma = static_cast<const float *>(params[1]),
              *beta = static_cast<const float *>(params[2]);
  const float eps = *static_cast<const float *>(params[3]);
  float *y = static_cast<float *>(params[4]), *mean = static_cast<float *>(params[5]),
        *var = static_cast<float *>(params[6]);
  bool ok = false;
  Statistics(x, d, mean, var, &ok);
  if (!ok) return Fail(entry, "a worker thread failed");
  std::vector<float> scale(d.c), shift(d.c);
  for (int64_t c = 0; c < d.c; ++c) {
    scale[c] = gamma[c] / std::sqrt(var[c] + eps);
    shift[c] = beta[c] - mean[c] * scale[c];
  }
  const int64_t planes = d.n * d.c;
  ok = ParallelFor(planes, planes * d.hw * (kSwish ? 8 : 1), [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      const float *src = x + p * d.hw;
      float *dst = y + p * d.hw;
      const Vec vs = Splat(scale[p % d.c]), vt = Splat(shift[p % d.c]);
      for (int64_t i = 0; i < d.hw; i += kVec) {
        const int64_t m = std::min(kVec, d.hw - i);
        const Vec u = LoadPart(src + i, m) * vs + vt;
        StorePart(dst + i, kSwish ? u * Sigmoid(u) : u, m);
      }
    }
  });
  return ok ? 0 : Fail(entry, "a worker thread failed");
}

template <bool kSwish>
int Backward(const char *entry, int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes) {
  Dims d;
  if (!GetDims(nparam, 10, ndims, shapes, dtypes, {0, 1, 7}, {2, 3, 4, 5, 8, 9}, 6, &d))
    return Fail(entry, "expects float32 dy, x (N, C, H, W), gamma, beta, mean, var (C,), eps (1,); dx like x, "
                       "dgamma, dbeta (C,)");
  const float *dy = static_cast<const float *>(params[0]), *x = static_cast<const float *>(params[1]),
              *gamma = static_cast<const float *>(params[2]), *beta = static_cast<const float *>(params[3]),
              *mean = static_cast<const float *>(params[4]), *var = static_cast<const float *>(params[5]);
  const float eps = *static_cast<const float *>(params[6]);
  float *dx = static_cast<float *>(params[7]), *dgamma = static_cast<float *>(params[8]),
        *dbeta = static_cast<float *>(params[9]);
  std::vector<float> invstd(d.c);
  for (int64_t c = 0; c < d.c; ++c) invstd[c] = 1.0f / std::sqrt(var[c] + eps);
  // Pass 1, per channel: g = dL/d(BN output) (through the Swish), kept in dx; sums of g and g * xhat.
  bool ok = ParallelFor(d.c, d.c * d.count() * (kSwish ? 8 : 1), [&](int64_t begin, int64_t end) {
    for (int64_t c = begin; c < end; ++c) {
      const Vec vm = Splat(mean[c]), vi = Splat(invstd[c]), vg = Splat(gamma[c]), vb = Splat(beta[c]);
      double sg = 0, sgx = 0;
      for (int64_t n = 0; n < d.n; ++n) {
        const int64_t off = (n * d.c + c) * d.hw;
        Vec ag = Splat(0.f), agx = Splat(0.f);  // zero-padded tails add nothing: g is 0 there
        for (int64_t i = 0; i < d.hw; i += kVec) {
          const int64_t m = std::min(kVec, d.hw - i);
          const Vec xhat = (LoadPart(x + off + i, m) - vm) * vi;
          Vec g = LoadPart(dy + off + i, m);
          if (kSwish) {
            const Vec u = xhat * vg + vb, e = Exp(-u), s = 1.0f / (1.0f + e);
            g = g * s * (1.0f + u * (e * s));  // swish'(u) = s (1 + u (1 - s)), 1 - s as e * s
          }
          StorePart(dx + off + i, g, m);
          ag += g;
          agx += g * xhat;
        }
        sg += HorizontalSum(ag);
        sgx += HorizontalSum(agx);
      }
      dbeta[c] = static_cast<float>(sg);
      dgamma[c] = static_cast<float>(sgx);
    }
  });
  if (!ok) return Fail(entry, "a worker thread failed");
  // Pass 2, per plane: dx = gamma * invstd * (g - mean(g) - xhat * mean(g * xhat)).
  const int64_t planes = d.n * d.c;
  const float inv_count = 1.0f / static_cast<float>(d.count());
  ok = ParallelFor(planes, planes * d.hw, [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      const int64_t c = p % d.c;
      const Vec vm = Splat(mean[c]), vi = Splat(invstd[c]), vk = Splat(gamma[c] * invstd[c]),
                vmg = Splat(dbeta[c] * inv_count), vmgx = Splat(dgamma[c] * inv_count);
      const float *src = x + p * d.hw;
      float *g = dx + p * d.hw;
      for (int64_t i = 0; i < d.hw; i += kVec) {
        const int64_t m = std::min(kVec, d.hw - i);
        const Vec xhat = (LoadPart(src + i, m) - vm) * vi;
        StorePart(g + i, vk * (LoadPart(g + i, m) - vmg - xhat * vmgx), m);
      }
    }
  });
  return ok ? 0 : Fail(entry, "a worker thread failed");
}

}  // namespace

#define TINYNET_BN_ENTRY(name, impl)                                                                       \
  extern "C" int name(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes, void *, \
                      void *) {                                                                            \
    return impl(#name, nparam, params, ndims, shapes, dtypes);                                             \
  }

TINYNET_BN_ENTRY(BatchNormTrain, Forward<false>)
TINYNET_BN_ENTRY(BatchNormSwishTrain, Forward<true>)
TINYNET_BN_ENTRY(BatchNormTrainGrad, Backward<false>)
TINYNET_BN_ENTRY(BatchNormSwishTrainGrad, Backward<true>)
