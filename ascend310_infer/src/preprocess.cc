#include "preprocess.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

namespace {

// Pillow keeps resampling weights in fixed point with this many fraction bits (8-bit images).
constexpr int kPrecisionBits = 32 - 8 - 2;

// Pillow's bicubic kernel (a = -0.5); the operation order matches Pillow so the doubles round identically.
double BicubicFilter(double x) {
  constexpr double a = -0.5;
  if (x < 0.0) x = -x;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}

// Pillow's bilinear (triangle) kernel.
double BilinearFilter(double x) {
  if (x < 0.0) x = -x;
  if (x < 1.0) return 1.0 - x;
  return 0.0;
}

struct Filter {
  double (*fn)(double);
  double support;
};

Filter FilterFor(const std::string &interpolation) {
  if (interpolation == "bicubic") return {BicubicFilter, 2.0};
  if (interpolation == "bilinear") return {BilinearFilter, 1.0};
  throw std::runtime_error("unknown interpolation '" + interpolation + "' (bicubic or bilinear)");
}

// Per output position along one axis: the first source index, how many sources, and their fixed-point weights.
struct AxisWeights {
  int ksize = 0;
  std::vector<int> first;
  std::vector<int> count;
  std::vector<int32_t> weights;  // out_size rows of ksize
};

AxisWeights ComputeWeights(int in_size, int out_size, const Filter &filter) {
  const double scale = static_cast<double>(in_size) / out_size;
  const double filterscale = std::max(scale, 1.0);  // widen the kernel when shrinking: antialiasing
  const double support = filter.support * filterscale;
  const double inv_filterscale = 1.0 / filterscale;  // Pillow multiplies by the reciprocal
  AxisWeights w;
  w.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  w.first.resize(out_size);
  w.count.resize(out_size);
  w.weights.assign(static_cast<size_t>(out_size) * w.ksize, 0);
  std::vector<double> k(w.ksize);
  for (int i = 0; i < out_size; ++i) {
    const double center = (i + 0.5) * scale;
    const int xmin = std::max(0, static_cast<int>(center - support + 0.5));
    const int xmax = std::min(in_size, static_cast<int>(center + support + 0.5)) - xmin;
    double sum = 0.0;
    for (int x = 0; x < xmax; ++x) {
      k[x] = filter.fn((x + xmin - center + 0.5) * inv_filterscale);
      sum += k[x];
    }
    int32_t *dst = &w.weights[static_cast<size_t>(i) * w.ksize];
    for (int x = 0; x < xmax; ++x) {
      const double v = (sum != 0.0 ? k[x] / sum : k[x]) * (1 << kPrecisionBits);
      dst[x] = static_cast<int32_t>(v < 0 ? v - 0.5 : v + 0.5);  // round half away from zero
    }
    w.first[i] = xmin;
    w.count[i] = xmax;
  }
  return w;
}

uint8_t Clip8(int32_t acc) {
  // Arithmetic shift, like Pillow's lookup table indexed by acc >> PRECISION_BITS.
  return static_cast<uint8_t>(std::clamp(acc >> kPrecisionBits, 0, 255));
}

// Horizontal pass over source rows [row_begin, row_end) only: the rows the vertical pass reads.
RgbImage ResampleRows(const RgbImage &in, const AxisWeights &w, int out_width, int row_begin, int row_end) {
  RgbImage out{out_width, row_end - row_begin, {}};
  out.pixels.resize(static_cast<size_t>(out.width) * out.height * 3);
  for (int y = 0; y < out.height; ++y) {
    const uint8_t *src = &in.pixels[static_cast<size_t>(y + row_begin) * in.width * 3];
    uint8_t *dst = &out.pixels[static_cast<size_t>(y) * out_width * 3];
    for (int x = 0; x < out_width; ++x) {
      const int32_t *k = &w.weights[static_cast<size_t>(x) * w.ksize];
      for (int c = 0; c < 3; ++c) {
        int32_t acc = 1 << (kPrecisionBits - 1);
        for (int i = 0; i < w.count[x]; ++i) acc += src[(w.first[x] + i) * 3 + c] * k[i];
        dst[x * 3 + c] = Clip8(acc);
      }
    }
  }
  return out;
}

// Vertical pass; in's row 0 is source row `row_offset` (the horizontal pass dropped the rows above).
RgbImage ResampleColumns(const RgbImage &in, const AxisWeights &w, int out_height, int row_offset) {
  RgbImage out{in.width, out_height, {}};
  out.pixels.resize(static_cast<size_t>(out.width) * out_height * 3);
  const size_t stride = static_cast<size_t>(in.width) * 3;
  for (int y = 0; y < out_height; ++y) {
    const int32_t *k = &w.weights[static_cast<size_t>(y) * w.ksize];
    const uint8_t *src = &in.pixels[(w.first[y] - row_offset) * stride];
    uint8_t *dst = &out.pixels[y * stride];
    for (size_t x = 0; x < stride; ++x) {
      int32_t acc = 1 << (kPrecisionBits - 1);
      for (int i = 0; i < w.count[y]; ++i) acc += src[i * stride + x] * k[i];
      dst[x] = Clip8(acc);
    }
  }
  return out;
}

}  // namespace

RgbImage DecodeRgb(const std::string &path) {
  cv::Mat bgr = cv::imread(path, cv::IMREAD_COLOR | cv::IMREAD_ANYDEPTH | cv::IMREAD_IGNORE_ORIENTATION);
  if (!bgr.empty() && bgr.depth() == CV_16U) {
    // 16-bit samples → 8 bits by x >> 8, as Pillow decodes 16-bit RGB and images.py scales 16-bit gray
    // (OpenCV's own conversion rounds x / 256 instead, one step off).
    cv::Mat eight(bgr.size(), CV_MAKETYPE(CV_8U, bgr.channels()));
    for (int y = 0; y < bgr.rows; ++y) {
      const uint16_t *src = bgr.ptr<uint16_t>(y);
      uint8_t *dst = eight.ptr<uint8_t>(y);
      for (int x = 0; x < bgr.cols * bgr.channels(); ++x) dst[x] = static_cast<uint8_t>(src[x] >> 8);
    }
    bgr = eight;
  } else if (!bgr.empty() && bgr.depth() != CV_8U) {
    bgr.convertTo(bgr, CV_8U);  // float/32-bit formats: saturate, as PIL's convert
  }
  if (bgr.empty() || bgr.type() != CV_8UC3) throw std::runtime_error("cannot decode image");
  RgbImage img{bgr.cols, bgr.rows, {}};
  img.pixels.resize(static_cast<size_t>(img.width) * img.height * 3);
  for (int y = 0; y < img.height; ++y) {
    const uint8_t *src = bgr.ptr<uint8_t>(y);
    uint8_t *dst = &img.pixels[static_cast<size_t>(y) * img.width * 3];
    for (int x = 0; x < img.width * 3; x += 3) {
      dst[x] = src[x + 2];
      dst[x + 1] = src[x + 1];
      dst[x + 2] = src[x];
    }
  }
  return img;
}

RgbImage ResizePillow(const RgbImage &in, int out_width, int out_height, const std::string &interpolation) {
  const Filter filter = FilterFor(interpolation);
  // As Pillow: vertical weights first, to know which source rows the horizontal pass must produce.
  const AxisWeights vertical = ComputeWeights(in.height, out_height, filter);
  const int row_begin = vertical.first.front();
  const int row_end = vertical.first.back() + vertical.count.back();
  RgbImage tmp;
  const RgbImage *cur = &in;
  int row_offset = 0;
  if (out_width != in.width) {
    tmp = ResampleRows(in, ComputeWeights(in.width, out_width, filter), out_width, row_begin, row_end);
    cur = &tmp;
    row_offset = row_begin;
  }
  if (out_height != in.height) return ResampleColumns(*cur, vertical, out_height, row_offset);
  return *cur;
}

void EvalTransform(const RgbImage &img, int image_size, const Preprocessing &pre, float *out) {
  // Integer arithmetic as in images.py: floor(S / crop_pct), then int(short * long / short_in) in double.
  const int64_t short_side = static_cast<int64_t>(std::floor(image_size / pre.crop_pct));
  const int64_t w = img.width, h = img.height;
  const int64_t rw = w <= h ? short_side : static_cast<int64_t>(static_cast<double>(short_side * w) / h);
  const int64_t rh = w <= h ? static_cast<int64_t>(static_cast<double>(short_side * h) / w) : short_side;
  if (rw < 1 || rh < 1) throw std::runtime_error("image too small or too elongated to resize");
  const RgbImage resized =
      (rw == w && rh == h) ? img : ResizePillow(img, static_cast<int>(rw), static_cast<int>(rh), pre.interpolation);

  // Python's round() is half-to-even, as nearbyint in the default rounding mode.
  const int top = static_cast<int>(std::nearbyint((resized.height - image_size) / 2.0));
  const int left = static_cast<int>(std::nearbyint((resized.width - image_size) / 2.0));
  const size_t plane = static_cast<size_t>(image_size) * image_size;
  for (int y = 0; y < image_size; ++y) {
    for (int x = 0; x < image_size; ++x) {
      const int sy = top + y, sx = left + x;
      // PIL's crop pads outside the image with black (unreachable while crop_pct <= 1).
      const bool inside = sy >= 0 && sy < resized.height && sx >= 0 && sx < resized.width;
      const uint8_t *px = inside ? &resized.pixels[(static_cast<size_t>(sy) * resized.width + sx) * 3] : nullptr;
      for (int c = 0; c < 3; ++c) {
        // float32 at every step, as timm's ToTensor + Normalize and tinynet_ms.data.images.normalize
        const float v = static_cast<float>(inside ? px[c] : 0) / 255.0f;
        out[c * plane + static_cast<size_t>(y) * image_size + x] =
            (v - pre.mean[c]) / pre.stdev[c];
      }
    }
  }
}
