// One rectangle of a JPEG, decoded at a reduced DCT scale: a training crop needs only its own pixels, and only at
// about the network's resolution. libjpeg-turbo scales in the inverse DCT (m/8; the caller picks m = 1, 2, 4 or 8),
// skips the rows above the crop without their inverse DCT (jpeg_skip_scanlines), runs its inverse DCT and colour
// conversion only on the crop's columns (jpeg_crop_scanline) and stops after the crop's last row.
//
// The crop is then resized as Pillow resizes (tinynet_resize_bicubic), without the Python image in between.
//
// Built by tinynet_ms/data/jpeg.py with g++ against the system's libjpeg(-turbo) (jpeglib.h).
#include <algorithm>
#include <cmath>
#include <csetjmp>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <vector>

#include <jpeglib.h>

namespace {

enum Status { kOk = 0, kError = 1, kCorrupt = 2, kUnsupported = 3, kBadRegion = 4 };

struct ErrorManager {
  jpeg_error_mgr base;
  jmp_buf jump;
};

void on_error(j_common_ptr cinfo) { longjmp(reinterpret_cast<ErrorManager*>(cinfo->err)->jump, 1); }

void silent(j_common_ptr) {}  // warnings are counted (num_warnings), not printed: the caller decides

}  // namespace

// The size of a JPEG the region decoder reads (kOk), from its header alone (Pillow parses the markers in Python, a
// fifth of a small crop's time). kUnsupported: CMYK/YCCK; kError: no JPEG header libjpeg reads.
extern "C" int tinynet_jpeg_size(const uint8_t* data, size_t size, int* width, int* height) {
  jpeg_decompress_struct cinfo;
  ErrorManager err;
  cinfo.err = jpeg_std_error(&err.base);
  err.base.error_exit = on_error;
  err.base.output_message = silent;
  jpeg_create_decompress(&cinfo);
  if (setjmp(err.jump)) {
    jpeg_destroy_decompress(&cinfo);
    return kError;
  }
  jpeg_mem_src(&cinfo, data, static_cast<unsigned long>(size));
  jpeg_read_header(&cinfo, TRUE);
  const bool cmyk = cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK;
  *width = static_cast<int>(cinfo.image_width);
  *height = static_cast<int>(cinfo.image_height);
  jpeg_destroy_decompress(&cinfo);
  return cmyk ? kUnsupported : kOk;
}

// Decodes rows [y0, y1) and columns [x0, x1) of the image scaled by scale_num/8 into out (RGB, (y1 - y0) rows of
// (x1 - x0) * 3 bytes). Returns a Status: anything but kOk leaves out undefined, and the caller decodes otherwise
// (CMYK/YCCK files, corrupt data: libjpeg would fill a truncated file with grey where PIL raises).
extern "C" int tinynet_jpeg_decode_region(const uint8_t* data, size_t size, int scale_num, int x0, int y0, int x1,
                                          int y1, uint8_t* out) {
  if (scale_num < 1 || scale_num > 8 || x0 < 0 || y0 < 0 || x1 <= x0 || y1 <= y0) return kBadRegion;
  jpeg_decompress_struct cinfo;
  ErrorManager err;
  cinfo.err = jpeg_std_error(&err.base);
  err.base.error_exit = on_error;
  err.base.output_message = silent;
  jpeg_create_decompress(&cinfo);
  // No object with a destructor lives between here and a longjmp: libjpeg's pool owns the row buffer.
  if (setjmp(err.jump)) {
    jpeg_destroy_decompress(&cinfo);
    return kError;
  }
  jpeg_mem_src(&cinfo, data, static_cast<unsigned long>(size));
  jpeg_read_header(&cinfo, TRUE);
  if (cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK) {
    jpeg_destroy_decompress(&cinfo);
    return kUnsupported;
  }
  cinfo.out_color_space = JCS_RGB;
  cinfo.scale_num = static_cast<unsigned int>(scale_num);
  cinfo.scale_denom = 8;
  jpeg_start_decompress(&cinfo);
  if (cinfo.output_components != 3 || static_cast<JDIMENSION>(x1) > cinfo.output_width ||
      static_cast<JDIMENSION>(y1) > cinfo.output_height) {
    jpeg_destroy_decompress(&cinfo);
    return kBadRegion;
  }
  JDIMENSION left = static_cast<JDIMENSION>(x0), width = static_cast<JDIMENSION>(x1 - x0);
  jpeg_crop_scanline(&cinfo, &left, &width);  // widened to whole iMCUs: left <= x0, left + width >= x1
  JSAMPARRAY row = (*cinfo.mem->alloc_sarray)(reinterpret_cast<j_common_ptr>(&cinfo), JPOOL_IMAGE, width * 3, 1);
  if (y0 > 0) jpeg_skip_scanlines(&cinfo, static_cast<JDIMENSION>(y0));
  const size_t out_row = static_cast<size_t>(x1 - x0) * 3;
  const size_t offset = static_cast<size_t>(x0 - static_cast<int>(left)) * 3;
  for (int y = y0; y < y1; ++y) {
    if (jpeg_read_scanlines(&cinfo, row, 1) != 1) {
      jpeg_destroy_decompress(&cinfo);
      return kCorrupt;
    }
    std::memcpy(out + static_cast<size_t>(y - y0) * out_row, row[0] + offset, out_row);
  }
  const long warnings = err.base.num_warnings;
  jpeg_abort_decompress(&cinfo);  // the rows below the crop are never decoded
  jpeg_destroy_decompress(&cinfo);
  return warnings ? kCorrupt : kOk;
}

namespace {

// Pillow's bicubic kernel (a = -0.5) and its per-output-pixel taps: support 2 x the scale when shrinking, weights
// normalised to sum 1, then 22-bit fixed point rounded half away from zero (Pillow's 8-bit resampling).
constexpr int kBits = 22;

double cubic(double x) {
  const double a = -0.5;
  x = x < 0 ? -x : x;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
  if (x < 2.0) return (((x - 5.0) * x + 8.0) * x - 4.0) * a;
  return 0.0;
}

struct Taps {
  int ksize = 0;
  std::vector<int> start, count;
  std::vector<int32_t> weight;  // ksize per output pixel
};

Taps make_taps(double in0, double in1, int in_size, int out_size) {
  Taps t;
  const double scale = (in1 - in0) / out_size;
  const double filterscale = scale < 1.0 ? 1.0 : scale;
  const double support = 2.0 * filterscale;
  t.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  t.start.resize(out_size);
  t.count.resize(out_size);
  t.weight.assign(static_cast<size_t>(out_size) * t.ksize, 0);
  std::vector<double> w(t.ksize);
  for (int xx = 0; xx < out_size; ++xx) {
    const double center = in0 + (xx + 0.5) * scale;
    int lo = static_cast<int>(center - support + 0.5), hi = static_cast<int>(center + support + 0.5);
    lo = lo < 0 ? 0 : lo;
    hi = hi > in_size ? in_size : hi;
    double sum = 0.0;
    const double ss = 1.0 / filterscale;  // multiplied, not divided: Pillow's rounding
    for (int x = 0; x < hi - lo; ++x) sum += (w[x] = cubic((x + lo - center + 0.5) * ss));
    for (int x = 0; x < hi - lo; ++x) {
      const double v = (sum != 0.0 ? w[x] / sum : w[x]) * (1 << kBits);
      t.weight[static_cast<size_t>(xx) * t.ksize + x] = static_cast<int32_t>(v < 0 ? v - 0.5 : v + 0.5);
    }
    t.start[xx] = lo;
    t.count[xx] = hi - lo;
  }
  return t;
}

inline uint8_t clip8(int32_t v) {
  v >>= kBits;
  return static_cast<uint8_t>(v < 0 ? 0 : (v > 255 ? 255 : v));
}

}  // namespace

// Pillow's Image.resize((out_w, out_h), BICUBIC, box=(x0, y0, x1, y1)) of an RGB image (rows of src_w * 3 bytes):
// Pillow's kernel, taps and fixed-point arithmetic on 3 channels (Pillow carries 4). The vertical pass runs first,
// along whole rows (vectorised), then the horizontal one on the out_h rows; each pass rounds and clips to 8 bits, so
// where Pillow runs them the other way round a pixel may differ where the first pass clipped an overshoot.
extern "C" int tinynet_resize_bicubic(const uint8_t* src, int src_w, int src_h, double x0, double y0, double x1,
                                      double y1, int out_w, int out_h, uint8_t* out) {
  if (out_w < 1 || out_h < 1 || x0 < 0 || y0 < 0 || x1 > src_w || y1 > src_h || x1 <= x0 || y1 <= y0) return 1;
  const Taps h = make_taps(x0, x1, src_w, out_w), v = make_taps(y0, y1, src_h, out_h);
  const int first = h.start[0], last = h.start[out_w - 1] + h.count[out_w - 1];  // the columns the taps read
  const size_t row = static_cast<size_t>(last - first) * 3;
  std::vector<uint8_t> mid(row * out_h);
  std::vector<int32_t> acc(row);
  for (int yy = 0; yy < out_h; ++yy) {
    std::fill(acc.begin(), acc.end(), 1 << (kBits - 1));
    const int32_t* k = &v.weight[static_cast<size_t>(yy) * v.ksize];
    for (int j = 0; j < v.count[yy]; ++j) {
      const uint8_t* in = src + (static_cast<size_t>(v.start[yy] + j) * src_w + first) * 3;
      const int32_t kj = k[j];
      for (size_t i = 0; i < row; ++i) acc[i] += in[i] * kj;
    }
    uint8_t* m = &mid[static_cast<size_t>(yy) * row];
    for (size_t i = 0; i < row; ++i) m[i] = clip8(acc[i]);
  }
  for (int yy = 0; yy < out_h; ++yy) {
    const uint8_t* m = &mid[static_cast<size_t>(yy) * row];
    uint8_t* o = out + static_cast<size_t>(yy) * out_w * 3;
    for (int xx = 0; xx < out_w; ++xx) {
      const int32_t* k = &h.weight[static_cast<size_t>(xx) * h.ksize];
      const uint8_t* p = m + static_cast<size_t>(h.start[xx] - first) * 3;
      int32_t r = 1 << (kBits - 1), g = r, b = r;
      for (int j = 0; j < h.count[xx]; ++j, p += 3) {
        r += p[0] * k[j];
        g += p[1] * k[j];
        b += p[2] * k[j];
      }
      o[xx * 3] = clip8(r);
      o[xx * 3 + 1] = clip8(g);
      o[xx * 3 + 2] = clip8(b);
    }
  }
  return 0;
}
