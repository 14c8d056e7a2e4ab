// Error messages name the file and the tensor, and say what config.json expected.
#include "checkpoint_tensors.h"

#include <cstring>
#include <stdexcept>

#include "half.h"

namespace q3 {

static std::string shape_str(const std::vector<int64_t>& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); i++) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

const TensorView& expect_tensor(const Checkpoint& ckpt, const std::string& name, const std::vector<int64_t>& shape,
                                std::initializer_list<DType> dtypes) {
  const TensorView& t = ckpt.get(name);
  bool dtype_ok = false;
  std::string allowed;
  for (DType d : dtypes) {
    dtype_ok |= t.dtype == d;
    allowed += (allowed.empty() ? "" : "/") + std::string(dtype_name(d));
  }
  if (!dtype_ok)
    throw std::runtime_error(t.file + ": tensor '" + name + "' has dtype " + dtype_name(t.dtype) + ", expected " + allowed);
  if (t.shape != shape)
    throw std::runtime_error(t.file + ": tensor '" + name + "' has shape " + t.shape_str() + ", expected " +
                             shape_str(shape) + " from config.json");
  return t;
}

float tensor_element_f32(const TensorView& t, size_t i) {
  if (t.dtype == DType::F32) {
    float f;
    std::memcpy(&f, t.data + 4 * i, 4);
    return f;
  }
  uint16_t h;
  std::memcpy(&h, t.data + 2 * i, 2);
  return t.dtype == DType::F16 ? f16_to_f32(h) : bf16_to_f32(h);
}

AwqTensors expect_awq_linear(const Checkpoint& ckpt, const std::string& prefix, int K, int N, int G) {
  if (K % G != 0)
    throw std::runtime_error(ckpt.source_name() + ": '" + prefix + "' in_features " + std::to_string(K) +
                             " is not a multiple of group_size " + std::to_string(G));
  if (N % 8 != 0)
    throw std::runtime_error(ckpt.source_name() + ": '" + prefix + "' out_features " + std::to_string(N) +
                             " is not a multiple of 8");
  return {&expect_tensor(ckpt, prefix + ".qweight", {K, N / 8}, {DType::I32}),
          &expect_tensor(ckpt, prefix + ".qzeros", {K / G, N / 8}, {DType::I32}),
          &expect_tensor(ckpt, prefix + ".scales", {K / G, N}, {DType::F16})};
}

}  // namespace q3
