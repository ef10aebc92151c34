// Which files are inputs, and how each becomes a float32 (3, S, S) tensor.
#ifndef TINYNET_INFER_INPUTS_H_
#define TINYNET_INFER_INPUTS_H_

#include <string>
#include <vector>

#include "preprocess.h"

struct InputFile {
  std::string path;
  std::string stem;  // output name: file name without extension
};

// bin: *.bin directly in dir, sorted by name. image: image files anywhere under dir, sorted by full path (links to
// folders followed in dir itself only, as the Python scan). Unlistable folders and broken links: skipped, logged.
// Throws when the set is empty or two files share a stem.
std::vector<InputFile> ListInputs(const std::string &dir, const std::string &input_type);

// Fills out (3 * S * S floats) from a raw float32 .bin or a decoded + eval-transformed image; throws, naming the
// file, on a .bin of another size or any NaN/inf value.
void LoadInput(const InputFile &file, const std::string &input_type, int image_size, const Preprocessing &pre,
               float *out);

void WriteFloats(const std::string &path, const float *data, size_t count);

#endif  // TINYNET_INFER_INPUTS_H_
