// Inference backends behind one small interface, so main.cc is backend-agnostic.
#ifndef TINYNET_INFER_BACKEND_H_
#define TINYNET_INFER_BACKEND_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

// What a backend may need to know when it compiles the model.
struct BackendOptions {
  int device_id = 0;           // ascend
  int batch_size = 1;          // openvino: latency (1) or throughput streams (more)
  std::string precision = "f32";  // openvino: f32 | bf16
};

class Backend {
 public:
  virtual ~Backend() = default;
  // Loads and compiles the model; throws std::runtime_error on failure.
  virtual void Load(const std::string &model_path, const BackendOptions &options) = 0;
  // What runs the model, for the log line (runtime, precision, ...).
  virtual std::string Describe() const = 0;
  // Input shape (N, C, H, W) the model declares; empty when the backend cannot tell.
  virtual std::vector<int64_t> InputShape() const { return {}; }
  // Runs n images of float32 (3, image_size, image_size) laid out back to back; returns all logits (n * classes).
  virtual std::vector<float> Run(const float *batch, int n, int image_size) = 0;
};

// ONNX through OpenCV DNN (always built: the fallback when OpenVINO is not found).
std::unique_ptr<Backend> MakeOpenCvBackend();
#ifdef TINYNET_WITH_OPENVINO
// ONNX through OpenVINO's CPU plugin.
std::unique_ptr<Backend> MakeOpenVinoBackend();
#endif
#ifdef TINYNET_WITH_ASCEND
// MindIR through the MindSpore (Lite) C++ API on Ascend 310/310P.
std::unique_ptr<Backend> MakeAscendBackend();
#endif

#endif  // TINYNET_INFER_BACKEND_H_
