// openvino backend: the ONNX export on the CPU through OpenVINO (the pip wheel's C++ runtime), the fastest CPU
// runtime for this network. f32 by default: on CPUs with AVX-512 BF16, OpenVINO's default inference precision is
// bf16, which moves the logits by ~1e-2 relative; --precision=bf16 asks for it explicitly.
#include <algorithm>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

#include <openvino/openvino.hpp>

#include "backend.h"

namespace {

// Images per inference request when a batch is split: a few images keep a layer's activations in cache, where
// OpenVINO's own split (one request per stream) gives each request a large part of the batch
// (benchmarks/bench_infer.py measures the harness at batch 32).
constexpr int kImagesPerRequest = 4;

class OpenVinoBackend : public Backend {
 public:
  void Load(const std::string &model_path, const BackendOptions &options) override {
    try {
      std::shared_ptr<ov::Model> model = core_.read_model(model_path);
      const auto &ops = model->get_ops();
      quantized_ = std::any_of(ops.begin(), ops.end(), [](const std::shared_ptr<ov::Node> &op) {
        return std::string(op->get_type_name()) == "FakeQuantize";
      });
      // On CPUs with AMX, OpenVINO 2026.4 ran this network's int8 convolutions on its AMX path slower than the f32
      // model (measured with per-channel activation zero points; an int8 model does not compile under bf16), and
      // below AMX on AVX-512 VNNI faster. f32 never uses AMX. So, unless bf16 was asked for a float model, cap
      // oneDNN's instruction set below AMX: a no-op on CPUs without AMX, read when the first model compiles; a
      // value the user set wins (ONEDNN_MAX_CPU_ISA=ALL lets AMX back in).
      if (options.precision != "bf16" || quantized_) setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_BF16", 0);
      if (CpuHasAmx()) {
        const char *isa = std::getenv("ONEDNN_MAX_CPU_ISA");
        isa_ = std::string(", oneDNN ISA ") + (isa ? isa : "ALL");
      }
      const ov::PartialShape shape = model->input().get_partial_shape();
      for (const ov::Dimension &d : shape) input_shape_.push_back(d.is_static() ? d.get_length() : -1);
      const ov::element::Type precision = options.precision == "bf16" ? ov::element::bf16 : ov::element::f32;
      // Batch 1: one request on every core (latency). Larger batches: split into requests of about
      // kImagesPerRequest images each (at least OpenVINO's optimal number of requests), run on its throughput
      // streams, when the model can be reshaped to the smaller batch. Small requests keep a layer's activations in
      // cache; one request with the whole batch would use one stream only.
      int requests = 1;
      if (options.batch_size > 1) {
        const ov::CompiledModel probe = core_.compile_model(
            model, "CPU", ov::hint::performance_mode(ov::hint::PerformanceMode::THROUGHPUT),
            ov::hint::inference_precision(precision));
        const int optimal = static_cast<int>(probe.get_property(ov::optimal_number_of_infer_requests));
        requests = LargestDivisor(options.batch_size, std::max(optimal, options.batch_size / kImagesPerRequest));
        if (requests > 1 && !Reshape(model, options.batch_size / requests)) requests = 1;
      }
      // A dynamic-batch export runs at the harness's batch: a static shape compiles to faster kernels.
      if (requests == 1 && shape.rank().is_static() && shape.rank().get_length() > 0 && shape[0].is_dynamic()) {
        Reshape(model, options.batch_size);
      }
      const auto mode = requests > 1 ? ov::hint::PerformanceMode::THROUGHPUT : ov::hint::PerformanceMode::LATENCY;
      compiled_ = core_.compile_model(model, "CPU", ov::hint::performance_mode(mode),
                                      ov::hint::inference_precision(precision));
      requests_.clear();
      for (int i = 0; i < requests; ++i) requests_.push_back(compiled_.create_infer_request());
    } catch (const ov::Exception &e) {
      throw std::runtime_error("OpenVINO cannot load " + model_path + ": " + e.what());
    }
  }

  std::vector<int64_t> InputShape() const override { return input_shape_; }

  std::vector<float> Run(const float *batch, int n, int image_size) override {
    try {
      const int part = n / static_cast<int>(requests_.size());
      const size_t image_floats = static_cast<size_t>(3) * image_size * image_size;
      // One request runs in this thread: start_async would hand it to OpenVINO's executor thread and back.
      const bool async = requests_.size() > 1;
      for (size_t i = 0; i < requests_.size(); ++i) {
        // A tensor over the caller's buffer (no copy); the buffer outlives the request.
        ov::Tensor input(ov::element::f32, {static_cast<size_t>(part), 3, static_cast<size_t>(image_size),
                                            static_cast<size_t>(image_size)},
                         const_cast<float *>(batch) + i * part * image_floats);
        requests_[i].set_input_tensor(input);
        if (async) {
          requests_[i].start_async();
        } else {
          requests_[i].infer();
        }
      }
      std::vector<float> logits;
      for (ov::InferRequest &request : requests_) {
        if (async) request.wait();
        const ov::Tensor out = request.get_output_tensor();
        if (out.get_element_type() != ov::element::f32) throw std::runtime_error("model output is not float32");
        const float *data = out.data<const float>();
        logits.insert(logits.end(), data, data + out.get_size());
      }
      return logits;
    } catch (const ov::Exception &e) {
      throw std::runtime_error(std::string("OpenVINO inference failed: ") + e.what());
    }
  }

  std::string Describe() const override {
    const std::string build = ov::get_openvino_version().buildNumber;  // "2026.4.1-22982-<hash>-<branch>"
    return "OpenVINO " + build.substr(0, build.find('-')) + ", " +
           compiled_.get_property(ov::hint::inference_precision).get_type_name() + (quantized_ ? " + int8" : "") +
           ", " + Plural(compiled_.get_property(ov::num_streams).num, "stream") +
           (requests_.size() > 1 ? " x " + Plural(static_cast<int>(requests_.size()), "request") : "") + isa_;
  }

 private:
  // Whether the CPU has AMX tiles (CPUID leaf 7: EDX bit 24), where the instruction-set cap above matters.
  static bool CpuHasAmx() {
#if defined(__x86_64__) || defined(__i386__)
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    return __get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx) && (edx >> 24 & 1u);
#else
    return false;
#endif
  }

  static std::string Plural(int n, const std::string &noun) {
    return std::to_string(n) + " " + noun + (n == 1 ? "" : "s");
  }

  // The largest d <= wanted dividing n (so every stream gets an equal part of the batch).
  static int LargestDivisor(int n, int wanted) {
    for (int d = std::min(n, std::max(wanted, 1)); d > 1; --d) {
      if (n % d == 0) return d;
    }
    return 1;
  }

  // OpenVINO can usually re-derive every shape of a fixed-batch export for another batch.
  static bool Reshape(const std::shared_ptr<ov::Model> &model, int batch) {
    ov::PartialShape shape = model->input().get_partial_shape();
    if (shape.rank().is_dynamic() || shape.rank().get_length() != 4) return false;
    shape[0] = batch;
    try {
      model->reshape(shape);
      return true;
    } catch (const ov::Exception &) {
      return false;
    }
  }

  ov::Core core_;
  ov::CompiledModel compiled_;
  std::vector<ov::InferRequest> requests_;
  std::vector<int64_t> input_shape_;
  bool quantized_ = false;  // the model holds FakeQuantize (an INT8 file): int8 convolutions
  std::string isa_;  // on AMX CPUs, the oneDNN instruction-set cap in force (for the log line)
};

}  // namespace

std::unique_ptr<Backend> MakeOpenVinoBackend() { return std::make_unique<OpenVinoBackend>(); }
