// timm's eval transform (tinynet_ms/data/images.py::eval_transform) reproduced bit-exactly in C++.
#ifndef TINYNET_INFER_PREPROCESS_H_
#define TINYNET_INFER_PREPROCESS_H_

#include <cstdint>
#include <string>
#include <vector>

// The model's eval preprocessing. No defaults here: the values come from the model's record (tinynet_ms/models/
// variants.py) through export's sidecar and run_infer_310.sh, so they are written in one place.
struct Preprocessing {
  double crop_pct = 0;        // resize the shorter side to floor(S / crop_pct), then center-crop S
  std::string interpolation;  // bicubic | bilinear: Pillow's filters, antialiased when shrinking
  float mean[3] = {0, 0, 0};  // of x / 255, per RGB channel
  float stdev[3] = {0, 0, 0};
};

struct RgbImage {
  int width = 0;
  int height = 0;
  std::vector<uint8_t> pixels;  // HWC, RGB
};

// Decodes like PIL + .convert('RGB'): EXIF orientation is ignored, alpha dropped, gray replicated.
RgbImage DecodeRgb(const std::string &path);

// Pillow's Image.resize(size, Image.BICUBIC or Image.BILINEAR) on an RGB image (antialiased, 22-bit fixed point).
RgbImage ResizePillow(const RgbImage &in, int out_width, int out_height, const std::string &interpolation);

// Shorter side → floor(S / crop_pct), center crop S×S, /255, (x - mean) / std; writes CHW float32.
void EvalTransform(const RgbImage &img, int image_size, const Preprocessing &pre, float *out);

#endif  // TINYNET_INFER_PREPROCESS_H_
