// The input shape an ONNX file declares. OpenCV DNN does not expose it, and running a fixed-batch graph with
// another batch can crash inside OpenCV (SIGFPE) instead of raising, so the cpu backend checks it up front.
#ifndef TINYNET_INFER_ONNX_SHAPE_H_
#define TINYNET_INFER_ONNX_SHAPE_H_

#include <cstdint>
#include <string>
#include <vector>

// Dims of the first graph input that is not an initializer; -1 for symbolic dims; empty without shape info.
std::vector<int64_t> OnnxInputShape(const std::string &path);

#endif  // TINYNET_INFER_ONNX_SHAPE_H_
