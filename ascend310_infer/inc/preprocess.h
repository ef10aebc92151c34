// timm's eval transform (tinynet_ms/data/images.py::eval_transform) reproduced bit-exactly in C++.
#ifndef TINYNET_INFER_PREPROCESS_H_
#define TINYNET_INFER_PREPROCESS_H_

#include <cstdint>
#include <string>
#include <vector>

struct RgbImage {
  int width = 0;
  int height = 0;
  std::vector<uint8_t> pixels;  // HWC, RGB
};

// Decodes like PIL + .convert('RGB'): EXIF orientation is ignored, alpha dropped, gray replicated.
RgbImage DecodeRgb(const std::string &path);

// Pillow's Image.resize(size, Image.BICUBIC) on an RGB image (antialiased, 22-bit fixed point).
RgbImage ResizeBicubicPillow(const RgbImage &in, int out_width, int out_height);

// Shorter side → floor(S / crop_pct) (bicubic), center crop S×S, /255, ImageNet mean/std; writes CHW float32.
void EvalTransform(const RgbImage &img, int image_size, double crop_pct, float *out);

#endif  // TINYNET_INFER_PREPROCESS_H_
