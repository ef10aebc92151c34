#include "inputs.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <stdexcept>
#include <system_error>

#include "preprocess.h"

namespace fs = std::filesystem;

namespace {

bool IsImageFile(const fs::path &path) {
  std::string ext = path.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char ch) { return std::tolower(ch); });
  static const char *const kExts[] = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm"};
  return std::find(std::begin(kExts), std::end(kExts), ext) != std::end(kExts);
}

void ReadBin(const std::string &path, int image_size, float *out) {
  const uintmax_t expected = static_cast<uintmax_t>(3) * image_size * image_size * sizeof(float);
  const uintmax_t actual = fs::file_size(path);
  if (actual != expected) {
    const std::string s = std::to_string(image_size);
    throw std::runtime_error(std::to_string(actual) + " bytes, not the " + std::to_string(expected) +
                             " of a float32 (3," + s + "," + s + ") tensor: write the inputs again with preprocess.py "
                             "for this model");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in.read(reinterpret_cast<char *>(out), static_cast<std::streamsize>(expected))) {
    throw std::runtime_error("read failed");
  }
}

bool IsBinFile(const fs::path &path) { return path.extension() == ".bin"; }

// The files `wanted` names in dir (recurse: and below it) as the Python scan (tinynet_ms.data.scan_split, pathlib's
// rglob) finds them: dir's own entries are followed through symlinks (class folders may be links), deeper links to
// folders are not (one back up would loop forever); a folder that cannot be listed or a wanted name that is no
// readable file (a broken or looping link) is skipped with one line on stderr, as Python logs it.
void FindFiles(const fs::path &dir, bool (*wanted)(const fs::path &), bool recurse, bool follow_links,
               std::vector<fs::path> *paths) {
  std::error_code ec;
  fs::directory_iterator it(dir, ec);
  for (; !ec && it != fs::directory_iterator(); it.increment(ec)) {
    const fs::path &path = it->path();
    std::error_code link_ec, status_ec;
    const bool is_link = it->is_symlink(link_ec);
    const fs::file_status target = fs::status(path, status_ec);  // through links; an error leaves type none
    if (fs::is_directory(target)) {
      if (recurse && (follow_links || !is_link)) FindFiles(path, wanted, true, false, paths);
    } else if (wanted(path)) {
      if (fs::is_regular_file(target)) {
        paths->push_back(path);
      } else {
        std::cerr << "skipping " << path.string() << ": not a readable file (a broken link?)\n";
      }
    }
  }
  if (ec) std::cerr << "skipping " << dir.string() << ": cannot list it (" << ec.message() << ")\n";
}

}  // namespace

std::vector<InputFile> ListInputs(const std::string &dir, const std::string &input_type) {
  if (!fs::is_directory(dir)) throw std::runtime_error("input_path is not a directory: " + dir);
  std::vector<fs::path> paths;
  const bool bin = input_type == "bin";
  FindFiles(dir, bin ? IsBinFile : IsImageFile, !bin, true, &paths);
  // Byte-wise order of the full path, as Python's sorted() on str paths.
  std::sort(paths.begin(), paths.end(), [](const fs::path &a, const fs::path &b) { return a.string() < b.string(); });
  if (paths.empty()) {
    throw std::runtime_error("no " + std::string(input_type == "bin" ? "*.bin files" : "images") + " in " + dir);
  }

  std::vector<InputFile> files;
  std::map<std::string, std::string> seen;  // stem -> path
  for (const auto &path : paths) {
    InputFile file{path.string(), path.stem().string()};
    const auto [it, inserted] = seen.emplace(file.stem, file.path);
    if (!inserted) {
      throw std::runtime_error("inputs " + it->second + " and " + file.path + " have the same output name '" +
                               file.stem + "'");
    }
    files.push_back(std::move(file));
  }
  return files;
}

void LoadInput(const InputFile &file, const std::string &input_type, int image_size, const Preprocessing &pre,
               float *out) {
  try {
    if (input_type == "bin") {
      ReadBin(file.path, image_size, out);
    } else {
      EvalTransform(DecodeRgb(file.path), image_size, pre, out);
    }
    // A NaN/inf input gives NaN logits, whose argmax (class 0) would be scored as a prediction.
    const size_t count = static_cast<size_t>(3) * image_size * image_size;
    const auto bad = std::count_if(out, out + count, [](float v) { return !std::isfinite(v); });
    if (bad > 0) {
      throw std::runtime_error(std::to_string(bad) + " of " + std::to_string(count) +
                               " values are NaN or inf: write the inputs again with preprocess.py");
    }
  } catch (const std::exception &e) {
    throw std::runtime_error(file.path + ": " + e.what());
  }
}

void WriteFloats(const std::string &path, const float *data, size_t count) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char *>(data), static_cast<std::streamsize>(count * sizeof(float)));
  if (!out) throw std::runtime_error("cannot write " + path);
}
