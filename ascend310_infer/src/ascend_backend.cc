// ascend backend: MindIR on Ascend 310/310P through the MindSpore C++ API. Two API flavours:
//  - MindSpore Lite 2.x (default): Model::Build(path, kMindIR, ctx) with AscendDeviceInfo.
//  - MindSpore 1.x Ascend inference package (TINYNET_MS_GRAPH_API): Serialization::Load into a Graph,
//    Model::Build(GraphCell) with Ascend310DeviceInfo (a distinct class before 1.6, an alias after).
#include <cstring>
#include <stdexcept>
#include <vector>

#include "include/api/context.h"
#include "include/api/model.h"
#include "include/api/status.h"
#include "include/api/types.h"
#ifdef TINYNET_MS_GRAPH_API
#include "include/api/cell.h"
#include "include/api/graph.h"
#include "include/api/serialization.h"
#endif

#include "backend.h"

namespace {

void Check(const mindspore::Status &status, const std::string &what) {
  if (!status.IsOk()) throw std::runtime_error("MindSpore " + what + " failed: " + status.ToString());
}

class AscendBackend : public Backend {
 public:
  void Load(const std::string &model_path, const BackendOptions &options) override {
    const int device_id = options.device_id;
    auto context = std::make_shared<mindspore::Context>();
#ifdef TINYNET_MS_GRAPH_API
    auto device = std::make_shared<mindspore::Ascend310DeviceInfo>();
#else
    auto device = std::make_shared<mindspore::AscendDeviceInfo>();
#endif
    device->SetDeviceID(static_cast<uint32_t>(device_id));
    context->MutableDeviceInfo().push_back(device);
#ifdef TINYNET_MS_GRAPH_API
    mindspore::Graph graph;
    Check(mindspore::Serialization::Load(model_path, mindspore::ModelType::kMindIR, &graph), "loading " + model_path);
    Check(model_.Build(mindspore::GraphCell(graph), context), "building " + model_path);
#else
    Check(model_.Build(model_path, mindspore::ModelType::kMindIR, context), "building " + model_path);
#endif
    inputs_ = model_.GetInputs();
    if (inputs_.size() != 1) {
      throw std::runtime_error("expected a model with 1 input, got " + std::to_string(inputs_.size()));
    }
    std::vector<int64_t> shape = inputs_[0].Shape();
    if (!shape.empty() && shape[0] < 0) {  // a dynamic-batch export: run it at the harness's batch
      shape[0] = options.batch_size;
      Check(model_.Resize(inputs_, {shape}), "resizing the input to batch " + std::to_string(options.batch_size));
      inputs_ = model_.GetInputs();
    }
    if (inputs_[0].DataType() != mindspore::DataType::kNumberTypeFloat32) {
      throw std::runtime_error("model input is not float32");
    }
  }

  std::vector<int64_t> InputShape() const override { return inputs_.at(0).Shape(); }

#ifdef TINYNET_MS_GRAPH_API
  std::string Describe() const override { return "MindSpore GraphCell on Ascend"; }
#else
  std::string Describe() const override { return "MindSpore Lite on Ascend"; }
#endif

  std::vector<float> Run(const float *batch, int n, int image_size) override {
    const size_t bytes = static_cast<size_t>(n) * 3 * image_size * image_size * sizeof(float);
    mindspore::MSTensor &input = inputs_[0];
    if (input.DataSize() != bytes) {
      throw std::runtime_error("model input holds " + std::to_string(input.DataSize()) + " bytes, the batch has " +
                               std::to_string(bytes));
    }
#ifdef TINYNET_MS_GRAPH_API
    // 1.x: a host tensor built from the model's input description, as the 1.x Ascend 310 samples do.
    const std::vector<mindspore::MSTensor> feed = {
        mindspore::MSTensor(input.Name(), input.DataType(), input.Shape(), batch, bytes)};
#else
    // Lite: GetInputs() tensors own host buffers that Predict reads.
    std::memcpy(input.MutableData(), batch, bytes);
    const std::vector<mindspore::MSTensor> &feed = inputs_;
#endif
    std::vector<mindspore::MSTensor> outputs;
    Check(model_.Predict(feed, &outputs), "Predict");
    if (outputs.empty()) throw std::runtime_error("MindSpore Predict returned no outputs");
    const mindspore::MSTensor &out = outputs[0];
    if (out.DataType() != mindspore::DataType::kNumberTypeFloat32) {
      throw std::runtime_error("model output is not float32");
    }
    const auto data = out.Data();  // host copy of the device result
    if (data == nullptr) throw std::runtime_error("MindSpore output has no data");
    const float *begin = static_cast<const float *>(data.get());
    return std::vector<float>(begin, begin + out.DataSize() / sizeof(float));
  }

 private:
  mindspore::Model model_;
  std::vector<mindspore::MSTensor> inputs_;
};

}  // namespace

std::unique_ptr<Backend> MakeAscendBackend() { return std::make_unique<AscendBackend>(); }
