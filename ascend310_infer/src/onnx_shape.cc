#include "onnx_shape.h"

#include <fstream>
#include <iterator>
#include <set>
#include <stdexcept>
#include <string_view>

namespace {

// Just enough of the protobuf wire format to walk ONNX messages (no protobuf dependency).
class WireReader {
 public:
  explicit WireReader(std::string_view msg) : p_(msg.data()), end_(msg.data() + msg.size()) {}
  bool Done() const { return p_ >= end_; }

  uint64_t Varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64 && p_ < end_; shift += 7) {
      const auto byte = static_cast<uint8_t>(*p_++);
      v |= static_cast<uint64_t>(byte & 0x7f) << shift;
      if ((byte & 0x80) == 0) return v;
    }
    throw std::runtime_error("malformed ONNX file");
  }

  std::string_view Bytes() {
    const uint64_t n = Varint();
    if (n > static_cast<uint64_t>(end_ - p_)) throw std::runtime_error("malformed ONNX file");
    const std::string_view s(p_, n);
    p_ += n;
    return s;
  }

  void Skip(int wire_type) {
    switch (wire_type) {
      case 0: Varint(); return;
      case 1: Advance(8); return;
      case 2: Bytes(); return;
      case 5: Advance(4); return;
      default: throw std::runtime_error("malformed ONNX file");
    }
  }

 private:
  void Advance(size_t n) {
    if (n > static_cast<size_t>(end_ - p_)) throw std::runtime_error("malformed ONNX file");
    p_ += n;
  }
  const char *p_;
  const char *end_;
};

// Calls on_field(field, wire_type, reader) for each field of msg; it returns false to have the payload skipped.
template <typename Fn>
void ForEachField(std::string_view msg, Fn on_field) {
  WireReader r(msg);
  while (!r.Done()) {
    const uint64_t key = r.Varint();
    const auto field = static_cast<uint32_t>(key >> 3);
    const int wire_type = static_cast<int>(key & 7);
    if (!on_field(field, wire_type, r)) r.Skip(wire_type);
  }
}

// The length-delimited field `number` of msg (last one wins, as protobuf merges); empty if absent.
std::string_view SubMessage(std::string_view msg, uint32_t number) {
  std::string_view out;
  ForEachField(msg, [&](uint32_t field, int wire, WireReader &r) {
    if (field != number || wire != 2) return false;
    out = r.Bytes();
    return true;
  });
  return out;
}

}  // namespace

std::vector<int64_t> OnnxInputShape(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  const std::string model((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::string_view graph = SubMessage(model, 7);  // ModelProto.graph

  // GraphProto.input (11) may also list initializers (5, named by TensorProto.name 8) in old IR versions.
  std::vector<std::string_view> inputs;
  std::set<std::string_view> initializers;
  ForEachField(graph, [&](uint32_t field, int wire, WireReader &r) {
    if (wire != 2 || (field != 11 && field != 5)) return false;
    const std::string_view value = r.Bytes();
    if (field == 11) inputs.push_back(value);
    else initializers.insert(SubMessage(value, 8));
    return true;
  });

  for (const std::string_view input : inputs) {
    if (initializers.count(SubMessage(input, 1)) != 0) continue;  // ValueInfoProto.name
    // ValueInfoProto.type → TypeProto.tensor_type → Tensor.shape → TensorShapeProto.dim*
    const std::string_view shape = SubMessage(SubMessage(SubMessage(input, 2), 1), 2);
    std::vector<int64_t> dims;
    ForEachField(shape, [&](uint32_t field, int wire, WireReader &r) {
      if (field != 1 || wire != 2) return false;
      int64_t dim = -1;  // dim_param (symbolic) or unset
      ForEachField(r.Bytes(), [&](uint32_t f, int w, WireReader &d) {
        if (f != 1 || w != 0) return false;
        dim = static_cast<int64_t>(d.Varint());  // Dimension.dim_value
        return true;
      });
      dims.push_back(dim);
      return true;
    });
    return dims;
  }
  return {};
}
