#include "flags.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <map>

const char kUsage[] =
    "usage: main --model_path=FILE --backend=cpu|openvino|opencv|ascend --input_type=bin|image --input_path=DIR\n"
    "            --image_size=S [--batch_size=1] [--precision=f32] [--device_id=0] [--output_dir=.]\n"
    "            [--save_input_dir=DIR] [--input_chunk_mb=64] [--repeat=1]\n"
    "            image inputs: --crop_pct=P --interpolation=bicubic|bilinear --mean=R,G,B --std=R,G,B\n"
    "  --model_path      ONNX model (cpu, openvino, opencv) or MindIR model (ascend)\n"
    "  --backend         cpu: OpenVINO when built with it, else OpenCV DNN; openvino; opencv: OpenCV DNN;\n"
    "                    ascend: MindSpore (Lite) on Ascend 310/310P\n"
    "  --precision       openvino's inference precision: f32 (exact), or bf16 (faster on AVX-512 BF16 / AMX\n"
    "                    CPUs, logits ~1e-2 off)\n"
    "  --input_type      bin: raw float32 (3,S,S) *.bin files; image: jpg/jpeg/png/bmp/webp/tif/tiff/ppm/pgm, recursive\n"
    "  --input_path      directory of inputs\n"
    "  --image_size      S, the model's input height and width\n"
    "  --batch_size      the model's fixed batch, or the batch to run a dynamic-batch model at; the last batch\n"
    "                    is padded by repeating its last input\n"
    "  --crop_pct        eval resize: shorter side to floor(S / crop_pct), then center crop S\n"
    "  --interpolation   the resize filter (Pillow's, antialiased)\n"
    "  --mean, --std     normalisation of x / 255 per RGB channel\n"
    "                    (image inputs; run_infer_310.sh takes all four from the model's sidecar, <model>.json)\n"
    "  --device_id       Ascend device (ascend backend)\n"
    "  --output_dir      writes result_Files/<stem>_0.bin and time_Result/test_perform_static.txt here\n"
    "  --save_input_dir  also write each preprocessed input as <stem>.bin here\n"
    "  --input_chunk_mb  inputs are read this many MB of batches at a time, then those batches run back to back\n"
    "                    (the timed loop is inference only); 0: read and run one batch at a time\n"
    "  --repeat          run each chunk's batches this many times back to back (a benchmark on a few inputs; the\n"
    "                    first run is warm-up, the logits of the last pass are written)\n";

namespace {

int ParseInt(const std::string &key, const std::string &text) {
  errno = 0;
  char *end = nullptr;
  const long v = std::strtol(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || errno == ERANGE || v < std::numeric_limits<int>::min() ||
      v > std::numeric_limits<int>::max()) {
    throw UsageError("--" + key + " needs an integer, got '" + text + "'");
  }
  return static_cast<int>(v);
}

double ParseDouble(const std::string &key, const std::string &text) {
  char *end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (text.empty() || *end != '\0' || !std::isfinite(v)) {
    throw UsageError("--" + key + " needs a number, got '" + text + "'");
  }
  return v;
}

// "0.5,0.25,0.5" → 3 floats (via double, as numpy casts Python floats to float32).
void ParseTriple(const std::string &key, const std::string &text, float *out) {
  size_t start = 0;
  for (int c = 0; c < 3; ++c) {
    const size_t comma = text.find(',', start);
    if ((c < 2) != (comma != std::string::npos)) {
      throw UsageError("--" + key + " needs 3 comma-separated numbers, got '" + text + "'");
    }
    out[c] = static_cast<float>(ParseDouble(key, text.substr(start, comma - start)));
    start = comma + 1;
  }
}

}  // namespace

Options ParseFlags(int argc, char **argv) {
  std::map<std::string, std::string> values;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      Options help;
      help.help = true;
      return help;
    }
    if (arg.rfind("--", 0) != 0 || arg.size() == 2) throw UsageError("unexpected argument '" + arg + "'");
    const size_t eq = arg.find('=');
    std::string key = arg.substr(2, eq == std::string::npos ? std::string::npos : eq - 2);
    if (eq != std::string::npos) {
      values[key] = arg.substr(eq + 1);
    } else if (i + 1 < argc && std::string(argv[i + 1]).rfind("--", 0) != 0) {
      values[key] = argv[++i];
    } else {
      throw UsageError("--" + key + " needs a value");
    }
  }

  Options opt;
  // Each flag binds to one field; unknown keys are errors rather than silently ignored.
  for (const auto &[key, value] : values) {
    if (key == "model_path") opt.model_path = value;
    else if (key == "backend") opt.backend = value;
    else if (key == "input_type") opt.input_type = value;
    else if (key == "input_path") opt.input_path = value;
    else if (key == "image_size") opt.image_size = ParseInt(key, value);
    else if (key == "batch_size") opt.batch_size = ParseInt(key, value);
    else if (key == "crop_pct") opt.preprocessing.crop_pct = ParseDouble(key, value);
    else if (key == "interpolation") opt.preprocessing.interpolation = value;
    else if (key == "mean") ParseTriple(key, value, opt.preprocessing.mean);
    else if (key == "std") ParseTriple(key, value, opt.preprocessing.stdev);
    else if (key == "device_id") opt.device_id = ParseInt(key, value);
    else if (key == "precision") opt.precision = value;
    else if (key == "output_dir") opt.output_dir = value;
    else if (key == "save_input_dir") opt.save_input_dir = value;
    else if (key == "input_chunk_mb") opt.input_chunk_mb = ParseInt(key, value);
    else if (key == "repeat") opt.repeat = ParseInt(key, value);
    else throw UsageError("unknown flag --" + key);
  }

  for (const char *required : {"model_path", "backend", "input_type", "input_path", "image_size"}) {
    if (values.count(required) == 0) throw UsageError(std::string("--") + required + " is required");
  }
  if (opt.backend != "cpu" && opt.backend != "openvino" && opt.backend != "opencv" && opt.backend != "ascend") {
    throw UsageError("--backend must be cpu, openvino, opencv or ascend");
  }
  if (opt.precision != "f32" && opt.precision != "bf16") throw UsageError("--precision must be f32 or bf16");
  if (opt.input_type != "bin" && opt.input_type != "image") throw UsageError("--input_type must be bin or image");
  if (opt.image_size <= 0) throw UsageError("--image_size must be positive");
  if (opt.batch_size <= 0) throw UsageError("--batch_size must be positive");
  if (opt.input_type == "image") {
    for (const char *required : {"crop_pct", "interpolation", "mean", "std"}) {
      if (values.count(required) == 0) throw UsageError(std::string("--") + required + " is required for image inputs");
    }
    const Preprocessing &pre = opt.preprocessing;
    if (pre.crop_pct <= 0 || pre.crop_pct > 1) throw UsageError("--crop_pct must be in (0, 1]");
    if (pre.interpolation != "bicubic" && pre.interpolation != "bilinear") {
      throw UsageError("--interpolation must be bicubic or bilinear");
    }
    for (float s : pre.stdev) {
      if (!(s > 0)) throw UsageError("--std values must be positive");
    }
  }
  if (opt.device_id < 0) throw UsageError("--device_id must not be negative");
  if (opt.input_chunk_mb < 0) throw UsageError("--input_chunk_mb must not be negative");
  if (opt.repeat <= 0) throw UsageError("--repeat must be positive");
  if (opt.output_dir.empty()) throw UsageError("--output_dir must not be empty");
  return opt;
}
