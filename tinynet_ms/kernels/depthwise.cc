// Depthwise 2-D convolution for MindSpore CPU as ops.Custom(func_type="aot") kernels.
//
// NCHW float32, weight (C, 1, K, K), K in {3, 5}, stride S in {1, 2}, dilation 1, no bias, and timm's symmetric
// padding P = ((S - 1) + (K - 1)) / 2. The stride is part of the entry point's name (DwConvForwardS1, ...);
// K comes from the weight shape, P from the formula above, and the output extent is checked against it.
//
// Entry points (MindSpore's aot signature: params = inputs then outputs):
//   DwConvForwardS{1,2}(x, w)         -> y   (N, C, Ho, Wo)
//   DwConvBiasSwishS{1,2}(x, w, t)    -> y   swish(conv + t[c]), t (C,): inference, BatchNorm folded
//   DwConvBiasSwishMeanS{1,2}(x, w, t) -> (y, m)  the same y and m (N, C) its planes' means: the squeeze of the
//                                            squeeze-excite that follows, in the same pass
//   DwConvGradInputS{1,2}(dy, w, x)   -> dx  (N, C, H, W)   x only supplies the shape; its data is not read
//   DwConvGradWeightS{1,2}(dy, x, w)  -> dw  (C, 1, K, K)   w only supplies the shape; its data is not read
//   StemConvBiasSwishS{1,2}(x, w, t)  -> y   (N, O, Ho, Wo) = swish(full conv + t[o]), w (O, C, K, K), C <= 4:
//                                            the stem (3 -> 32, k3 s2) in inference, BatchNorm folded: the same
//                                            phase planes, one per input channel, their C*K*K tap rows times the
//                                            weight as a GEMM (MindSpore's own Conv2D over 3 channels misses its
//                                            fast path)
//
// Layout trick: each (n, c) image is copied, zero-padded, into S*S "phase planes" (row parity x column parity
// for S = 2), each Hq x Wq with Hq = Ho + (K-1)/S and Wq = Wo + (K-1)/S. In those planes every tap (ky, kx)
// becomes a constant offset (ky/S)*Wq + kx/S into plane (ky%S, kx%S), so a whole output image is a 1-D sum of
// K*K shifted, scaled copies over the flat index i = oy*Wq + ox (columns ox >= Wo are junk and cropped), so
// borders need no special cases and small images are not split into short rows. The inner loops are written
// with GCC's portable vector extension (8 floats: one AVX register with -mavx2 -mfma, two SSE registers
// otherwise; no intrinsics, no -march=native) with several independent accumulators.
// The gradient w.r.t. the input is the same sum run backwards (a gather from the zero-padded output gradient
// into the phase planes, then un-padding), and the weight gradient is K*K dot products of the output gradient
// with the shifted input planes. Work is split across threads by image (forward, grad-input) or by channel
// (grad-weight, so each thread owns its weights and sums deterministically).
#include "common.h"
#include "gemm.h"

#include <algorithm>
#include <cstring>
#include <vector>

namespace {

using namespace tinynet;

constexpr int64_t kSlack = 64;  // floats after each plane: whole-block loops run up to kBlock - 1 past the end

// dst[0, n) = src[0, n) (no overlap) with whole-vector moves, the last one overlapping the previous: the rows of
// small images are shorter than a memcpy call's overhead.
inline void CopyRow(float *dst, const float *src, int64_t n) {
  if (n >= kVec) {
    for (int64_t i = 0; i + kVec < n; i += kVec) Store(dst + i, Load(src + i));
    Store(dst + n - kVec, Load(src + n - kVec));
  } else if (n >= 4) {
    *reinterpret_cast<Vec4U *>(dst) = *reinterpret_cast<const Vec4U *>(src);
    *reinterpret_cast<Vec4U *>(dst + n - 4) = *reinterpret_cast<const Vec4U *>(src + n - 4);
  } else {
    if (n > 0) dst[0] = src[0];
    if (n > 1) dst[1] = src[1];
    if (n > 2) dst[2] = src[2];
  }
}

// even[j] = src[2j] for j < ne, odd[j] = src[2j + 1] for j < no (ne <= (n + 1) / 2, no <= n / 2).
void Deinterleave(const float *src, int64_t n, float *even, int64_t ne, float *odd, int64_t no) {
  int64_t j = 0;
  for (; j + kVec <= std::min(ne, no) && 2 * j + 2 * kVec <= n; j += kVec) {
    const Vec a = Load(src + 2 * j), b = Load(src + 2 * j + kVec);
    Store(even + j, __builtin_shuffle(a, b, IVec{0, 2, 4, 6, 8, 10, 12, 14}));
    Store(odd + j, __builtin_shuffle(a, b, IVec{1, 3, 5, 7, 9, 11, 13, 15}));
  }
  for (int64_t i = j; i < ne; ++i) even[i] = src[2 * i];
  for (int64_t i = j; i < no; ++i) odd[i] = src[2 * i + 1];
}

// dst[2j] = even[j], dst[2j + 1] = odd[j] for 2j, 2j + 1 < n.
void Interleave(const float *even, const float *odd, int64_t n, float *dst) {
  int64_t j = 0;
  for (; 2 * j + 2 * kVec <= n; j += kVec) {
    const Vec e = Load(even + j), o = Load(odd + j);
    Store(dst + 2 * j, __builtin_shuffle(e, o, IVec{0, 8, 1, 9, 2, 10, 3, 11}));
    Store(dst + 2 * j + kVec, __builtin_shuffle(e, o, IVec{4, 12, 5, 13, 6, 14, 7, 15}));
  }
  for (int64_t i = 2 * j; i < n; ++i) dst[i] = (i % 2 == 0) ? even[i / 2] : odd[i / 2];
}

struct Geom {
  int64_t n, c, h, w, ho, wo;
  int k, s, p;
  int64_t hq, wq, plane, stride;  // phase plane rows, cols, hq*wq, distance between phase planes (with slack)
};

bool MakeGeom(int64_t n, int64_t c, int64_t h, int64_t w, int64_t ho, int64_t wo, int k, int s, Geom *g) {
  g->n = n, g->c = c, g->h = h, g->w = w, g->ho = ho, g->wo = wo, g->k = k, g->s = s;
  g->p = ((s - 1) + (k - 1)) / 2;
  if ((h + 2 * g->p - k) / s + 1 != ho || (w + 2 * g->p - k) / s + 1 != wo) return false;
  g->hq = ho + (k - 1) / s;
  g->wq = wo + (k - 1) / s;
  g->plane = g->hq * g->wq;
  g->stride = g->plane + kSlack;
  return true;
}

// Copies image x (h x w) into the zero-padded phase planes. Only data positions are written; the padding
// positions are the same for every image of a call, so the caller zeroes the buffer once.
void PackInput(const Geom &g, const float *x, float *planes) {
  const int64_t s = g.s, p = g.p;
  for (int64_t iy = 0; iy < g.h; ++iy) {
    const int64_t py = iy + p, qy = py / s;
    if (qy >= g.hq) break;
    const float *row = x + iy * g.w;
    if (s == 1) {
      CopyRow(planes + qy * g.wq + p, row, std::min(g.w, g.wq - p));
      continue;
    }
    // Even input columns go to column phase p % 2 from column p / 2, odd ones to phase (p + 1) % 2 from
    // column (p + 1) / 2.
    float *base = planes + (py % 2) * 2 * g.stride + qy * g.wq;
    const int64_t qe = p / 2, qo = (p + 1) / 2;
    Deinterleave(row, g.w, base + (p % 2) * g.stride + qe, std::min((g.w + 1) / 2, g.wq - qe),
                 base + ((p + 1) % 2) * g.stride + qo, std::min(g.w / 2, g.wq - qo));
  }
}

constexpr int64_t kBlock = 4 * kVec;  // TapSum computes whole blocks: callers leave kBlock - 1 floats of slack
static_assert(kSlack >= kBlock, "plane slack must cover a whole TapSum block");

// out[i] = sum_t wt[t] * src[t][i] for i in [0, RoundUp(len, kBlock)): out and every src must stay valid up to
// kBlock - 1 elements past len. 8 (then 4) independent accumulators keep both FMA pipes busy.
template <int NT>
void TapSum(float *out, int64_t len, const float *const *src, const float *wt) {
  Vec w[NT];
  for (int t = 0; t < NT; ++t) w[t] = Splat(wt[t]);
  const int64_t end = (len + kBlock - 1) / kBlock * kBlock;
  int64_t i = 0;
  for (; i + 2 * kBlock <= end; i += 2 * kBlock) {
    Vec a0 = {}, a1 = {}, a2 = {}, a3 = {}, a4 = {}, a5 = {}, a6 = {}, a7 = {};
    for (int t = 0; t < NT; ++t) {
      const float *sp = src[t] + i;
      a0 += w[t] * Load(sp);
      a1 += w[t] * Load(sp + kVec);
      a2 += w[t] * Load(sp + 2 * kVec);
      a3 += w[t] * Load(sp + 3 * kVec);
      a4 += w[t] * Load(sp + 4 * kVec);
      a5 += w[t] * Load(sp + 5 * kVec);
      a6 += w[t] * Load(sp + 6 * kVec);
      a7 += w[t] * Load(sp + 7 * kVec);
    }
    Store(out + i, a0);
    Store(out + i + kVec, a1);
    Store(out + i + 2 * kVec, a2);
    Store(out + i + 3 * kVec, a3);
    Store(out + i + 4 * kVec, a4);
    Store(out + i + 5 * kVec, a5);
    Store(out + i + 6 * kVec, a6);
    Store(out + i + 7 * kVec, a7);
  }
  if (i < end) {
    Vec a0 = {}, a1 = {}, a2 = {}, a3 = {};
    for (int t = 0; t < NT; ++t) {
      const float *sp = src[t] + i;
      a0 += w[t] * Load(sp);
      a1 += w[t] * Load(sp + kVec);
      a2 += w[t] * Load(sp + 2 * kVec);
      a3 += w[t] * Load(sp + 3 * kVec);
    }
    Store(out + i, a0);
    Store(out + i + kVec, a1);
    Store(out + i + 2 * kVec, a2);
    Store(out + i + 3 * kVec, a3);
  }
}

void TapSumAny(float *out, int64_t len, const float *const *src, const float *wt, int nt) {
  switch (nt) {
    case 1: return TapSum<1>(out, len, src, wt);
    case 2: return TapSum<2>(out, len, src, wt);
    case 4: return TapSum<4>(out, len, src, wt);
    case 6: return TapSum<6>(out, len, src, wt);
    case 9: return TapSum<9>(out, len, src, wt);
    case 25: return TapSum<25>(out, len, src, wt);
    case 27: return TapSum<27>(out, len, src, wt);  // the stem: 3 channels x 3 x 3
    default:  // not reached for K in {3, 5}, S in {1, 2}
      for (int64_t i = 0; i < len; ++i) {
        float acc = 0.f;
        for (int t = 0; t < nt; ++t) acc += wt[t] * src[t][i];
        out[i] = acc;
      }
  }
}

// dot[t] += sum_i a[i] * src[t][i] over i in [0, RoundUp(len, 8)) for NT taps in one pass over a (a must be zero
// past len, and readable, like src, up to 7 elements past it).
template <int NT>
void TapDots(const float *a, int64_t len, const float *const *src, double *dot) {
  Vec acc[NT] = {};
  for (int64_t i = 0; i < len; i += kVec) {
    const Vec av = Load(a + i);
    for (int t = 0; t < NT; ++t) acc[t] += av * Load(src[t] + i);
  }
  for (int t = 0; t < NT; ++t) {
    float sum = 0.f;
    for (int64_t j = 0; j < kVec; ++j) sum += acc[t][j];
    dot[t] += sum;
  }
}

// Pointer to tap (ky, kx) of the phase planes.
inline const float *TapSrc(const Geom &g, const float *planes, int ky, int kx) {
  return planes + ((ky % g.s) * g.s + kx % g.s) * g.stride + (ky / g.s) * g.wq + kx / g.s;
}

// out (ho x wo) = swish(tmp + shift), tmp being ho rows of wq (readable a whole vector past each row); with
// `mean`, *mean = the mean of out (squeeze-excite's pooling, while the values are in registers).
void StoreBiasSwish(const Geom &g, const float *tmp, float shift, float *out, float *mean) {
  const Vec t = Splat(shift);
  Vec acc = Splat(0.f);
  IVec lane;
  for (int j = 0; j < kVec; ++j) lane[j] = j;
  for (int64_t oy = 0; oy < g.ho; ++oy)
    for (int64_t ox = 0; ox < g.wo; ox += kVec) {
      const Vec v = Load(tmp + oy * g.wq + ox) + t;
      const Vec r = v * Sigmoid(v);
      const int64_t m = std::min(kVec, g.wo - ox);
      StorePart(out + oy * g.wo + ox, r, m);
      if (mean != nullptr) acc += lane < static_cast<int>(m) ? r : Splat(0.f);  // the stored lanes only
    }
  if (mean == nullptr) return;
  double sum = 0;
  for (int64_t j = 0; j < kVec; ++j) sum += acc[j];
  *mean = static_cast<float>(sum / static_cast<double>(g.ho * g.wo));
}

// With `bias` (C,), y = swish(conv + bias[c]) in the same pass: a folded inference BatchNorm and its Swish; with
// `means` (N, C) too, each output plane's mean.
bool Forward(const Geom &g, const float *x, const float *wgt, float *y, const float *bias = nullptr,
             float *means = nullptr) {
  const int k = g.k, nt = k * k;
  const int64_t images = g.n * g.c, len = (g.ho - 1) * g.wq + g.wo;
  return ParallelFor(images, images * g.ho * g.wo * nt, [&](int64_t begin, int64_t end) {
    std::vector<float> planes(g.s * g.s * g.stride, 0.f), tmp(g.ho * g.wq + kBlock);
    const float *src[25];
    for (int ky = 0; ky < k; ++ky)
      for (int kx = 0; kx < k; ++kx) src[ky * k + kx] = TapSrc(g, planes.data(), ky, kx);
    for (int64_t img = begin; img < end; ++img) {
      PackInput(g, x + img * g.h * g.w, planes.data());
      TapSumAny(tmp.data(), len, src, wgt + (img % g.c) * nt, nt);
      float *out = y + img * g.ho * g.wo;
      if (bias == nullptr) {
        for (int64_t oy = 0; oy < g.ho; ++oy) CopyRow(out + oy * g.wo, tmp.data() + oy * g.wq, g.wo);
        continue;
      }
      StoreBiasSwish(g, tmp.data(), bias[img % g.c], out, means == nullptr ? nullptr : means + img);
    }
  });
}

constexpr int64_t kStemColumns = 512;  // output positions per work item: its tap matrix and result stay in L2

// The stem: y (N, O, Ho, Wo) = swish(sum over C input channels of their K x K taps + bias[o]) as GEMMs. A work item
// is a run of one image's output positions (flat index i = oy * wq + ox over the phase planes; columns ox >= wo are
// junk and cropped): the C*K*K tap rows of the run are copied into a (C*K*K) x run matrix, which the (O, C*K*K)
// weight multiplies (gemm.h); the bias + Swish pass writes the result. g describes one input channel's planes
// (g.c = C); each item packs the image it needs unless its previous item had the same one.
bool StemForward(const Geom &g, int64_t out_ch, const float *x, const float *wgt, const float *bias, float *y) {
  const int k = g.k, nt = static_cast<int>(g.c) * k * k;
  const int64_t len = (g.ho - 1) * g.wq + g.wo, runs = (len + kStemColumns - 1) / kStemColumns;
  const int64_t per_channel = g.s * g.s * g.stride;
  std::atomic<bool> gemm_ok{true};
  const bool ran = ParallelFor(g.n * runs, g.n * out_ch * g.ho * g.wo * nt, [&](int64_t begin, int64_t end) {
    std::vector<float> planes(g.c * per_channel, 0.f), taps(nt * kStemColumns), out(out_ch * kStemColumns);
    std::vector<const float *> src(nt);
    for (int64_t ci = 0; ci < g.c; ++ci)
      for (int ky = 0; ky < k; ++ky)
        for (int kx = 0; kx < k; ++kx)
          src[(ci * k + ky) * k + kx] = TapSrc(g, planes.data() + ci * per_channel, ky, kx);
    int64_t packed = -1;
    for (int64_t item = begin; item < end; ++item) {
      const int64_t n = item / runs, r = item % runs;
      const int64_t i0 = len * r / runs, i1 = len * (r + 1) / runs, m = i1 - i0;
      if (n != packed) {
        for (int64_t ci = 0; ci < g.c; ++ci)
          PackInput(g, x + (n * g.c + ci) * g.h * g.w, planes.data() + ci * per_channel);
        packed = n;
      }
      for (int t = 0; t < nt; ++t) std::memcpy(taps.data() + t * m, src[t] + i0, m * sizeof(float));
      if (!Gemm(false, out_ch, m, nt, wgt, nt, taps.data(), m, out.data(), m)) gemm_ok = false;
      for (int64_t o = 0; o < out_ch; ++o) {
        const Vec t = Splat(bias[o]);
        const float *row = out.data() + o * m;
        float *dst = y + (n * out_ch + o) * g.ho * g.wo;
        for (int64_t oy = i0 / g.wq; oy * g.wq < i1; ++oy) {
          const int64_t a = std::max(i0, oy * g.wq), b = std::min(i1, oy * g.wq + g.wo);
          for (int64_t i = a; i < b; i += kVec) {
            const int64_t count = std::min(kVec, b - i);
            const Vec v = LoadPart(row + (i - i0), count) + t;
            StorePart(dst + oy * g.wo + (i - oy * g.wq), v * Sigmoid(v), count);
          }
        }
      }
    }
  });
  return ran && gemm_ok;
}

// Output gradient of one image, laid out as ho rows of wq (junk columns zero) after `front` zeros so that taps
// can read up to (K-1)/S rows and columns before it. The zero positions never change within a call.
struct GradOutBuffer {
  int64_t front;
  std::vector<float> data;
  GradOutBuffer(const Geom &g) : front(((g.k - 1) / g.s) * (g.wq + 1)), data(front + g.plane + kSlack, 0.f) {}
  float *base() { return data.data() + front; }
  void Load(const Geom &g, const float *dy) {
    float *b = base();
    for (int64_t oy = 0; oy < g.ho; ++oy) CopyRow(b + oy * g.wq, dy + oy * g.wo, g.wo);
  }
};

bool GradInput(const Geom &g, const float *dy, const float *wgt, float *dx) {
  const int k = g.k, s = g.s, p = g.p, nt = k * k;
  const int64_t images = g.n * g.c;
  return ParallelFor(images, images * g.ho * g.wo * nt, [&](int64_t begin, int64_t end) {
    GradOutBuffer gout(g);
    std::vector<float> planes(s * s * g.stride);
    // Phase plane (a, b) gathers the taps with ky % S == a, kx % S == b, reading dy shifted back by the tap.
    const float *src[4][25];
    int ntap[4] = {0, 0, 0, 0}, tap_index[4][25];
    for (int ky = 0; ky < k; ++ky)
      for (int kx = 0; kx < k; ++kx) {
        const int ph = (ky % s) * s + kx % s;
        src[ph][ntap[ph]] = gout.base() - (ky / s) * g.wq - kx / s;
        tap_index[ph][ntap[ph]++] = ky * k + kx;
      }
    // Flat range of phase-plane positions that hold input pixels (s == 1: skip the padding rows).
    const int64_t first = s == 1 ? p * g.wq + p : 0;
    const int64_t last = s == 1 ? std::min(g.plane, (p + g.h - 1) * g.wq + p + g.w) : g.plane;
    for (int64_t img = begin; img < end; ++img) {
      const float *w = wgt + (img % g.c) * nt;
      gout.Load(g, dy + img * g.ho * g.wo);
      for (int ph = 0; ph < s * s; ++ph) {
        float wt[25];
        const float *sp[25];
        for (int t = 0; t < ntap[ph]; ++t) wt[t] = w[tap_index[ph][t]], sp[t] = src[ph][t] + first;
        TapSumAny(planes.data() + ph * g.stride + first, last - first, sp, wt, ntap[ph]);
      }
      float *out = dx + img * g.h * g.w;
      for (int64_t iy = 0; iy < g.h; ++iy) {
        const int64_t py = iy + p, qy = py / s;
        float *row = out + iy * g.w;
        if (qy >= g.hq) {  // rows the convolution never reached
          std::memset(row, 0, sizeof(float) * g.w);
          continue;
        }
        if (s == 1) {
          const int64_t count = std::min(g.w, g.wq - p);
          CopyRow(row, planes.data() + qy * g.wq + p, count);
          for (int64_t ix = count; ix < g.w; ++ix) row[ix] = 0.f;
          continue;
        }
        const float *base = planes.data() + (py % 2) * 2 * g.stride + qy * g.wq;
        const int64_t qe = p / 2, qo = (p + 1) / 2;  // as in PackInput
        if (qe + (g.w + 1) / 2 <= g.wq && qo + g.w / 2 <= g.wq) {
          Interleave(base + (p % 2) * g.stride + qe, base + ((p + 1) % 2) * g.stride + qo, g.w, row);
        } else {  // input columns past the last window (not with timm's padding): zero gradient
          for (int64_t ix = 0; ix < g.w; ++ix) {
            const int64_t q = (ix % 2 == 0 ? qe : qo) + ix / 2;
            row[ix] = q < g.wq ? base[((ix + p) % 2) * g.stride + q] : 0.f;
          }
        }
      }
    }
  });
}

bool GradWeight(const Geom &g, const float *dy, const float *x, float *dw) {
  const int k = g.k, nt = k * k;
  const int64_t len = (g.ho - 1) * g.wq + g.wo;
  return ParallelFor(g.c, g.n * g.c * g.ho * g.wo * nt, [&](int64_t begin, int64_t end) {
    std::vector<float> planes(g.s * g.s * g.stride, 0.f);
    GradOutBuffer gout(g);
    const float *src[25];
    for (int ky = 0; ky < k; ++ky)
      for (int kx = 0; kx < k; ++kx) src[ky * k + kx] = TapSrc(g, planes.data(), ky, kx);
    for (int64_t ch = begin; ch < end; ++ch) {
      double dot[25] = {};
      for (int64_t n = 0; n < g.n; ++n) {
        const int64_t img = n * g.c + ch;
        PackInput(g, x + img * g.h * g.w, planes.data());
        gout.Load(g, dy + img * g.ho * g.wo);
        if (k == 3) {
          TapDots<9>(gout.base(), len, src, dot);
        } else {  // 25 accumulators would spill: two passes of 10 taps (2 kernel rows) and one of 5
          TapDots<10>(gout.base(), len, src, dot);
          TapDots<10>(gout.base(), len, src + 10, dot + 10);
          TapDots<5>(gout.base(), len, src + 20, dot + 20);
        }
      }
      for (int t = 0; t < nt; ++t) dw[ch * nt + t] = static_cast<float>(dot[t]);
    }
  });
}

// ---- argument checking shared by the entry points --------------------------------------------------------

// Checks that all `nparam` tensors are 4-D float32 and that tensor `wi` is a (C, 1, K, K) weight, K in {3, 5},
// with C the channels of tensor 0.
int CheckArgs(const char *entry, int nparam, int *ndims, int64_t **shapes, const char **dtypes, int wi) {
  for (int i = 0; i < nparam; ++i) {
    if (ndims[i] != 4) return Fail(entry, "every tensor must be 4-D (NCHW, weight C x 1 x K x K)");
    if (!IsF32(dtypes[i])) return Fail(entry, "only float32 is supported (cast float16 inputs first)");
  }
  const int64_t *ws = shapes[wi];
  if (ws[0] != shapes[0][1] || ws[1] != 1 || ws[2] != ws[3] || (ws[2] != 3 && ws[2] != 5))
    return Fail(entry, "weight must be (C, 1, K, K) with K 3 or 5 and C the input channels");
  return 0;
}

// kBiasSwish: DwConvBiasSwish's (x, w, t) -> y, the bias + Swish applied in the forward's output pass; kMean:
// DwConvBiasSwishMean's (x, w, t) -> (y, m), m (N, C) the planes' means of y.
template <int S, bool kBiasSwish = false, bool kMean = false>
int ForwardEntry(const char *entry, int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes) {
  const int y = kBiasSwish ? 3 : 2;  // the output follows the inputs
  if (nparam != y + 1 + kMean) return Fail(entry, kMean ? "expects 3 inputs (x, w, t) and 2 outputs (y, m)"
                                                  : kBiasSwish ? "expects 3 inputs (x, w, t) and 1 output"
                                                               : "expects 2 inputs (x, w) and 1 output");
  if (kBiasSwish && (ndims[2] != 1 || shapes[2][0] != shapes[0][1] || !IsF32(dtypes[2])))
    return Fail(entry, "t must be float32 (C,) with C the input channels");
  if (kMean && (ndims[y + 1] != 2 || shapes[y + 1][0] != shapes[0][0] || shapes[y + 1][1] != shapes[0][1] ||
                !IsF32(dtypes[y + 1])))
    return Fail(entry, "m must be float32 (N, C), x's first two dimensions");
  int nd[3] = {ndims[0], ndims[1], ndims[y]};  // x, w, y: the 4-D tensors
  int64_t *sh[3] = {shapes[0], shapes[1], shapes[y]};
  const char *dt[3] = {dtypes[0], dtypes[1], dtypes[y]};
  if (int rc = CheckArgs(entry, 3, nd, sh, dt, 1)) return rc;
  const int64_t *xs = shapes[0], *ys = shapes[y];
  Geom g;
  if (ys[0] != xs[0] || ys[1] != xs[1] ||
      !MakeGeom(xs[0], xs[1], xs[2], xs[3], ys[2], ys[3], static_cast<int>(shapes[1][2]), S, &g))
    return Fail(entry, "output shape does not match input, kernel, stride and padding");
  const float *bias = kBiasSwish ? static_cast<const float *>(params[2]) : nullptr;
  float *means = kMean ? static_cast<float *>(params[y + 1]) : nullptr;
  if (!Forward(g, static_cast<const float *>(params[0]), static_cast<const float *>(params[1]),
               static_cast<float *>(params[y]), bias, means))
    return Fail(entry, "out of memory for the kernel's scratch buffers");
  return 0;
}

template <int S>
int BiasSwishEntry(const char *entry, int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes) {
  return ForwardEntry<S, true>(entry, nparam, params, ndims, shapes, dtypes);
}

template <int S>
int BiasSwishMeanEntry(const char *entry, int nparam, void **params, int *ndims, int64_t **shapes,
                       const char **dtypes) {
  return ForwardEntry<S, true, true>(entry, nparam, params, ndims, shapes, dtypes);
}

// StemConvBiasSwish's (x, w, t) -> y: w (O, C, K, K) with C <= kMaxStemChannels, K in {3, 5}.
constexpr int64_t kMaxStemChannels = 4;

template <int S>
int StemEntry(const char *entry, int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes) {
  if (nparam != 4) return Fail(entry, "expects 3 inputs (x, w, t) and 1 output");
  for (int i : {0, 1, 3}) {
    if (ndims[i] != 4) return Fail(entry, "x, w and y must be 4-D (NCHW, weight O x C x K x K)");
  }
  for (int i = 0; i < 4; ++i) {
    if (!IsF32(dtypes[i])) return Fail(entry, "only float32 is supported (cast float16 inputs first)");
  }
  const int64_t *xs = shapes[0], *ws = shapes[1], *ys = shapes[3];
  if (ws[1] != xs[1] || xs[1] > kMaxStemChannels || ws[2] != ws[3] || (ws[2] != 3 && ws[2] != 5))
    return Fail(entry, "weight must be (O, C, K, K) with K 3 or 5, C the input channels, at most 4");
  if (ndims[2] != 1 || shapes[2][0] != ws[0]) return Fail(entry, "t must be (O,) with O the output channels");
  Geom g;
  if (ys[0] != xs[0] || ys[1] != ws[0] ||
      !MakeGeom(xs[0], xs[1], xs[2], xs[3], ys[2], ys[3], static_cast<int>(ws[2]), S, &g))
    return Fail(entry, "output shape does not match input, kernel, stride and padding");
  if (!StemForward(g, ws[0], static_cast<const float *>(params[0]), static_cast<const float *>(params[1]),
                   static_cast<const float *>(params[2]), static_cast<float *>(params[3])))
    return Fail(entry, "out of memory for the kernel's scratch buffers");
  return 0;
}

template <int S>
int GradInputEntry(const char *entry, int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes) {
  if (nparam != 4) return Fail(entry, "expects 3 inputs (dy, w, x) and 1 output");
  if (int rc = CheckArgs(entry, nparam, ndims, shapes, dtypes, 1)) return rc;
  const int64_t *ys = shapes[0], *xs = shapes[3];
  Geom g;
  if (ys[0] != xs[0] || ys[1] != xs[1] || std::memcmp(shapes[2], shapes[3], 4 * sizeof(int64_t)) != 0 ||
      !MakeGeom(xs[0], xs[1], xs[2], xs[3], ys[2], ys[3], static_cast<int>(shapes[1][2]), S, &g))
    return Fail(entry, "gradient shape does not match input, kernel, stride and padding");
  if (!GradInput(g, static_cast<const float *>(params[0]), static_cast<const float *>(params[1]), static_cast<float *>(params[3])))
    return Fail(entry, "out of memory for the kernel's scratch buffers");
  return 0;
}

template <int S>
int GradWeightEntry(const char *entry, int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes) {
  if (nparam != 4) return Fail(entry, "expects 3 inputs (dy, x, w) and 1 output");
  if (int rc = CheckArgs(entry, nparam, ndims, shapes, dtypes, 2)) return rc;
  const int64_t *ys = shapes[0], *xs = shapes[1];
  Geom g;
  if (ys[0] != xs[0] || ys[1] != xs[1] || std::memcmp(shapes[2], shapes[3], 4 * sizeof(int64_t)) != 0 ||
      !MakeGeom(xs[0], xs[1], xs[2], xs[3], ys[2], ys[3], static_cast<int>(shapes[2][2]), S, &g))
    return Fail(entry, "gradient shape does not match input, kernel, stride and padding");
  if (!GradWeight(g, static_cast<const float *>(params[0]), static_cast<const float *>(params[1]), static_cast<float *>(params[3])))
    return Fail(entry, "out of memory for the kernel's scratch buffers");
  return 0;
}

}  // namespace

#define TINYNET_DW_ENTRY(NAME, IMPL, S)                                                                      \
  extern "C" int NAME(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes, void *, \
                      void *) {                                                                              \
    return IMPL<S>(#NAME, nparam, params, ndims, shapes, dtypes);                                            \
  }

TINYNET_DW_ENTRY(DwConvForwardS1, ForwardEntry, 1)
TINYNET_DW_ENTRY(DwConvForwardS2, ForwardEntry, 2)
TINYNET_DW_ENTRY(DwConvBiasSwishS1, BiasSwishEntry, 1)
TINYNET_DW_ENTRY(DwConvBiasSwishS2, BiasSwishEntry, 2)
TINYNET_DW_ENTRY(DwConvBiasSwishMeanS1, BiasSwishMeanEntry, 1)
TINYNET_DW_ENTRY(DwConvBiasSwishMeanS2, BiasSwishMeanEntry, 2)
TINYNET_DW_ENTRY(StemConvBiasSwishS1, StemEntry, 1)
TINYNET_DW_ENTRY(StemConvBiasSwishS2, StemEntry, 2)
TINYNET_DW_ENTRY(DwConvGradInputS1, GradInputEntry, 1)
TINYNET_DW_ENTRY(DwConvGradInputS2, GradInputEntry, 2)
TINYNET_DW_ENTRY(DwConvGradWeightS1, GradWeightEntry, 1)
TINYNET_DW_ENTRY(DwConvGradWeightS2, GradWeightEntry, 2)
