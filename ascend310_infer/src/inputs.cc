#include "inputs.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <map>
#include <stdexcept>

#include "preprocess.h"

namespace fs = std::filesystem;

namespace {

bool IsImageFile(const fs::path &path) {
  std::string ext = path.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char ch) { return std::tolower(ch); });
  static const char *const kExts[] = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm"};
  return std::find(std::begin(kExts), std::end(kExts), ext) != std::end(kExts);
}

void ReadBin(const std::string &path, size_t count, float *out) {
  const uintmax_t expected = count * sizeof(float);
  const uintmax_t actual = fs::file_size(path);
  if (actual != expected) {
    throw std::runtime_error("expected " + std::to_string(expected) + " bytes (float32 3xSxS), got " +
                             std::to_string(actual));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in.read(reinterpret_cast<char *>(out), static_cast<std::streamsize>(expected))) {
    throw std::runtime_error("read failed");
  }
}

}  // namespace

std::vector<InputFile> ListInputs(const std::string &dir, const std::string &input_type) {
  if (!fs::is_directory(dir)) throw std::runtime_error("input_path is not a directory: " + dir);
  std::vector<fs::path> paths;
  if (input_type == "bin") {
    for (const auto &entry : fs::directory_iterator(dir)) {
      if (entry.is_regular_file() && entry.path().extension() == ".bin") paths.push_back(entry.path());
    }
  } else {
    for (const auto &entry : fs::recursive_directory_iterator(dir, fs::directory_options::follow_directory_symlink)) {
      if (entry.is_regular_file() && IsImageFile(entry.path())) paths.push_back(entry.path());
    }
  }
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
      ReadBin(file.path, static_cast<size_t>(3) * image_size * image_size, out);
    } else {
      EvalTransform(DecodeRgb(file.path), image_size, pre, out);
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
