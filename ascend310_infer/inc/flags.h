// Command line of out/main: --key=value or --key value, no third-party flag library.
#ifndef TINYNET_INFER_FLAGS_H_
#define TINYNET_INFER_FLAGS_H_

#include <stdexcept>
#include <string>

#include "preprocess.h"

struct Options {
  std::string model_path;
  std::string backend;     // cpu (the best CPU runtime built in) | openvino | opencv | ascend
  std::string precision = "f32";  // openvino: f32 | bf16
  std::string input_type;  // bin | image
  std::string input_path;
  int image_size = 0;
  int batch_size = 1;
  Preprocessing preprocessing;  // image inputs: --crop_pct, --interpolation, --mean, --std (all required)
  int device_id = 0;
  std::string output_dir = ".";
  std::string save_input_dir;  // empty: do not dump preprocessed inputs
  int input_chunk_mb = 64;     // inputs read ahead, then run back to back; 0: one batch at a time
  int repeat = 1;              // each batch runs this many times (timed every time but the first run)
  bool help = false;
};

// Bad command line: main prints the message and the usage, and exits 2.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

extern const char kUsage[];

Options ParseFlags(int argc, char **argv);

#endif  // TINYNET_INFER_FLAGS_H_
