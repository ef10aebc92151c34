// opencv backend: the ONNX export through OpenCV DNN, the CPU fallback when the harness is built without OpenVINO.
#include <stdexcept>

#include <opencv2/core.hpp>
#include <opencv2/dnn.hpp>

#include "backend.h"
#include "onnx_shape.h"

namespace {

class OpenCvBackend : public Backend {
 public:
  void Load(const std::string &model_path, const BackendOptions & /*options*/) override {
    try {
      net_ = cv::dnn::readNetFromONNX(model_path);
      net_.setPreferableBackend(cv::dnn::DNN_BACKEND_OPENCV);
      net_.setPreferableTarget(cv::dnn::DNN_TARGET_CPU);
    } catch (const cv::Exception &e) {
      throw std::runtime_error("OpenCV DNN cannot load " + model_path + ": " + e.err);
    }
    input_shape_ = OnnxInputShape(model_path);
  }

  std::vector<int64_t> InputShape() const override { return input_shape_; }

  std::string Describe() const override { return "OpenCV DNN " CV_VERSION; }

  std::vector<float> Run(const float *batch, int n, int image_size) override {
    try {
      // OpenCV DNN fixes a dynamic-batch graph's shapes at its first input and faults on a larger batch later
      // (SIGFPE seen with 4.x): such a model runs one image per forward().
      if (input_shape_.empty() || input_shape_[0] > 0) return Forward(batch, n, image_size);
      std::vector<float> all;
      const size_t image_floats = static_cast<size_t>(3) * image_size * image_size;
      for (int i = 0; i < n; ++i) {
        const std::vector<float> one = Forward(batch + i * image_floats, 1, image_size);
        all.insert(all.end(), one.begin(), one.end());
      }
      return all;
    } catch (const cv::Exception &e) {
      throw std::runtime_error("OpenCV DNN inference failed: " + e.err + " (in " + e.func + ")");
    }
  }

 private:
  std::vector<float> Forward(const float *batch, int n, int image_size) {
    const int shape[] = {n, 3, image_size, image_size};
    // A header over the caller's buffer (no copy); the buffer outlives forward().
    net_.setInput(cv::Mat(4, shape, CV_32F, const_cast<float *>(batch)));
    const cv::Mat out = net_.forward();
    if (out.type() != CV_32F || !out.isContinuous()) throw std::runtime_error("model output is not float32");
    const float *data = out.ptr<float>();
    return std::vector<float>(data, data + out.total());
  }

  cv::dnn::Net net_;
  std::vector<int64_t> input_shape_;
};

}  // namespace

std::unique_ptr<Backend> MakeOpenCvBackend() { return std::make_unique<OpenCvBackend>(); }
