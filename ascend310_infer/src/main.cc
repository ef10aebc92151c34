// Batch inference harness in the model-zoo ascend310_infer layout: inputs → backend → result_Files/*.bin + timing.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "backend.h"
#include "flags.h"
#include "inputs.h"

namespace fs = std::filesystem;

namespace {

const char kAscendMissing[] =
    "ascend backend not built: set MSLITE_HOME to a MindSpore Lite (Ascend) package or MINDSPORE_PATH to a "
    "MindSpore Ascend inference package and rebuild with build.sh (see ascend310_infer/README.md)";
const char kOpenVinoMissing[] =
    "openvino backend not built: pip install openvino (or set OpenVINO_DIR) and rebuild with build.sh";

// cpu is the fastest CPU runtime built in: OpenVINO, else OpenCV DNN. nullptr + message: not built.
std::unique_ptr<Backend> MakeBackend(const std::string &name, std::string *missing) {
#ifdef TINYNET_WITH_OPENVINO
  if (name == "cpu" || name == "openvino") return MakeOpenVinoBackend();
#else
  if (name == "cpu") return MakeOpenCvBackend();
  if (name == "openvino") *missing = kOpenVinoMissing;
#endif
  if (name == "opencv") return MakeOpenCvBackend();
#ifdef TINYNET_WITH_ASCEND
  if (name == "ascend") return MakeAscendBackend();
#else
  if (name == "ascend") *missing = kAscendMissing;
#endif
  return nullptr;
}

// The model's declared input shape must agree with the flags, or every batch would fail (or be misread).
void CheckInputShape(const std::vector<int64_t> &shape, const Options &opt) {
  if (shape.empty()) return;
  const std::vector<int64_t> want = {opt.batch_size, 3, opt.image_size, opt.image_size};
  bool ok = shape.size() == want.size();
  for (size_t i = 0; ok && i < shape.size(); ++i) ok = shape[i] < 0 || shape[i] == want[i];  // < 0: dynamic
  if (ok) return;
  std::string got;
  for (int64_t d : shape) got += (got.empty() ? "" : ",") + std::to_string(d);
  throw std::runtime_error("model input shape is (" + got + ") but flags give (" + std::to_string(opt.batch_size) +
                           ",3," + std::to_string(opt.image_size) + "," + std::to_string(opt.image_size) +
                           "): check --batch_size and --image_size");
}

int Run(const Options &opt) {
  std::string missing;
  std::unique_ptr<Backend> backend = MakeBackend(opt.backend, &missing);
  if (!backend) {
    std::cerr << "error: " << missing << "\n";
    return 2;
  }
  if (!fs::is_regular_file(opt.model_path)) throw std::runtime_error("model file not found: " + opt.model_path);
  const std::vector<InputFile> files = ListInputs(opt.input_path, opt.input_type);

  const fs::path result_dir = fs::path(opt.output_dir) / "result_Files";
  const fs::path time_dir = fs::path(opt.output_dir) / "time_Result";
  fs::create_directories(result_dir);
  fs::create_directories(time_dir);
  if (!opt.save_input_dir.empty()) fs::create_directories(opt.save_input_dir);

  BackendOptions backend_options;
  backend_options.device_id = opt.device_id;
  backend_options.batch_size = opt.batch_size;
  backend_options.precision = opt.precision;
  backend->Load(opt.model_path, backend_options);
  CheckInputShape(backend->InputShape(), opt);

  const size_t image_floats = static_cast<size_t>(3) * opt.image_size * opt.image_size;
  const size_t n = static_cast<size_t>(opt.batch_size);
  const size_t batch_floats = n * image_floats;
  const size_t num_batches = (files.size() + n - 1) / n;
  // Inputs are read a chunk of batches at a time, then the chunk runs back to back: the timed loop is inference
  // only, as a serving loop or a benchmark runs it, instead of inference interleaved with file reads (during
  // which a runtime's worker threads go to sleep and the next inference pays for waking them).
  const size_t chunk_bytes = static_cast<size_t>(opt.input_chunk_mb) << 20;
  const size_t chunk = std::clamp<size_t>(chunk_bytes / (batch_floats * sizeof(float)), 1, num_batches);
  std::vector<float> inputs(chunk * batch_floats);
  std::vector<std::vector<float>> outputs(chunk);
  double timed_ms = 0;
  std::vector<double> batch_ms;  // each timed batch, for the median
  size_t timed_batches = 0, timed_images = 0, num_classes = 0;

  for (size_t first_batch = 0; first_batch < num_batches; first_batch += chunk) {
    const size_t batches = std::min(chunk, num_batches - first_batch);
    for (size_t c = 0; c < batches; ++c) {
      const size_t first = (first_batch + c) * n;
      const size_t real = std::min(n, files.size() - first);
      float *batch = &inputs[c * batch_floats];
      for (size_t i = 0; i < real; ++i) {
        float *slot = &batch[i * image_floats];
        LoadInput(files[first + i], opt.input_type, opt.image_size, opt.preprocessing, slot);
        if (!opt.save_input_dir.empty()) {
          WriteFloats((fs::path(opt.save_input_dir) / (files[first + i].stem + ".bin")).string(), slot, image_floats);
        }
      }
      // Fixed-batch models: pad the last batch with copies of its last input; their outputs are dropped.
      for (size_t i = real; i < n; ++i) {
        std::copy_n(&batch[(real - 1) * image_floats], image_floats, &batch[i * image_floats]);
      }
    }
    // --repeat: the chunk's batches run back to back that many times (a benchmark on a few inputs); the outputs
    // of the last pass are written.
    for (int pass = 0; pass < opt.repeat; ++pass) {
      for (size_t c = 0; c < batches; ++c) {
        const size_t b = first_batch + c;
        const auto start = std::chrono::steady_clock::now();
        outputs[c] = backend->Run(&inputs[c * batch_floats], opt.batch_size, opt.image_size);
        const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
        // the very first run is warm-up when there are others to time
        if (pass > 0 || b > 0 || num_batches * opt.repeat == 1) {
          timed_ms += ms;
          batch_ms.push_back(ms);
          ++timed_batches;
          timed_images += std::min(n, files.size() - b * n);
        }
      }
    }
    for (size_t c = 0; c < batches; ++c) {
      const size_t first = (first_batch + c) * n;
      const size_t real = std::min(n, files.size() - first);
      const std::vector<float> &logits = outputs[c];
      if (logits.empty() || logits.size() % n != 0) {
        throw std::runtime_error("model returned " + std::to_string(logits.size()) + " values for a batch of " +
                                 std::to_string(n));
      }
      if (num_classes == 0) num_classes = logits.size() / n;
      if (logits.size() / n != num_classes) throw std::runtime_error("model output size changed between batches");
      for (size_t i = 0; i < real; ++i) {
        const float *row = &logits[i * num_classes];
        // The input was checked finite: NaN/inf here is the model's (its argmax, class 0, is no prediction).
        if (!std::all_of(row, row + num_classes, [](float v) { return std::isfinite(v); })) {
          throw std::runtime_error(files[first + i].path + ": the model gave NaN/inf logits for this finite input: "
                                   "check the model file (export it again)");
        }
        WriteFloats((result_dir / (files[first + i].stem + "_0.bin")).string(), row, num_classes);
      }
    }
  }

  const double avg_ms = timed_ms / timed_batches;
  const double throughput = timed_ms > 0 ? timed_images * 1000.0 / timed_ms : 0.0;
  const fs::path perf_path = time_dir / "test_perform_static.txt";
  std::ofstream perf(perf_path);
  char line[256];
  std::snprintf(line, sizeof(line), "NN inference cost average time: %.4f ms of infer_count %zu\n", avg_ms,
                timed_batches);
  perf << line;
  // The median as well: on shared machines a few descheduled batches move the mean, not the median.
  std::nth_element(batch_ms.begin(), batch_ms.begin() + batch_ms.size() / 2, batch_ms.end());
  std::snprintf(line, sizeof(line), "NN inference cost median time: %.4f ms\n", batch_ms[batch_ms.size() / 2]);
  perf << line;
  std::snprintf(line, sizeof(line), "throughput: %.2f images/s\n", throughput);
  perf << line << "batch_size: " << n << "\nimages: " << files.size() << "\nbackend: " << opt.backend << " ("
       << backend->Describe() << ")\n";
  if (!perf) throw std::runtime_error("cannot write " + perf_path.string());

  std::printf("%zu images (%zu classes) in %zu batches of %zu on %s (%s): %.4f ms/batch, %.2f images/s -> %s\n",
              files.size(), num_classes, num_batches, n, opt.backend.c_str(), backend->Describe().c_str(), avg_ms,
              throughput, result_dir.string().c_str());
  return 0;
}

// Keeps error reports to one line (OpenCV and MindSpore messages can span several).
std::string OneLine(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  for (char &ch : text) {
    if (ch == '\n' || ch == '\r') ch = ' ';
  }
  return text;
}

}  // namespace

int main(int argc, char **argv) {
  Options opt;
  try {
    opt = ParseFlags(argc, argv);
  } catch (const UsageError &e) {
    std::cerr << "error: " << e.what() << "\n" << kUsage;
    return 2;
  }
  if (opt.help) {
    std::cout << kUsage;
    return 0;
  }
  try {
    return Run(opt);
  } catch (const std::exception &e) {
    std::cerr << "error: " << OneLine(e.what()) << "\n";
    return 1;
  }
}
