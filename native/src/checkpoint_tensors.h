// Checks of checkpoint tensors against config.json shared by every backend's weight loader: dtype and shape of a
// named tensor, element access across fp16/bf16/fp32, and the three tensors of one AutoAWQ linear.
#pragma once
#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "safetensors.h"

namespace q3 {

// The tensor `name`, or an error naming its file when the dtype is not one of `dtypes` or the shape differs.
const TensorView& expect_tensor(const Checkpoint& ckpt, const std::string& name, const std::vector<int64_t>& shape,
                                std::initializer_list<DType> dtypes);

// Element i of an fp16, bf16 or fp32 tensor as float (unaligned-safe).
float tensor_element_f32(const TensorView& t, size_t i);

// qweight (K, N/8) I32, qzeros (K/G, N/8) I32 and scales (K/G, N) F16 of the linear `prefix`, after checking that
// K is a multiple of G and N of 8.
struct AwqTensors {
  const TensorView* qweight;
  const TensorView* qzeros;
  const TensorView* scales;
};
AwqTensors expect_awq_linear(const Checkpoint& ckpt, const std::string& prefix, int K, int N, int G);

}  // namespace q3
