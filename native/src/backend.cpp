// Backend choices that do not depend on the build: which models the CUDA kernels can run, and the stand-ins for a
// build without CUDA (the real ones live in cuda/backend_cuda.cpp).
#include "backend.h"

namespace q3 {

// The CUDA kernels are written for Qwen3's head size, AWQ group, GQA group and KV block
// (native/kernels/cuda/qwen3_cuda.h).
std::string cuda_unsupported_reason(const Qwen3Config& c, int kv_block_size) {
  auto need = [](const char* what, int got, int want) {
    return std::string("the CUDA kernels need ") + what + " " + std::to_string(want) + ", this model has " +
           std::to_string(got);
  };
  if (c.head_dim != 128) return need("head_dim", c.head_dim, 128);
  if (c.group_size != 128) return need("AWQ group_size", c.group_size, 128);
  if (c.n_kv_heads <= 0 || c.n_heads != 4 * c.n_kv_heads)
    return "the CUDA kernels need num_attention_heads = 4 x num_key_value_heads, this model has " +
           std::to_string(c.n_heads) + " and " + std::to_string(c.n_kv_heads);
  if (c.hidden_size % 128 != 0 || c.intermediate_size % 128 != 0)
    return "the CUDA kernels need hidden_size and intermediate_size to be multiples of 128";
  if (kv_block_size != 16) return need("a KV block size of", kv_block_size, 16);
  return "";
}

#ifndef Q3_HAVE_CUDA
int cuda_device_count(std::string* why) {
  if (why) *why = "this build has no CUDA backend";
  return 0;
}

std::unique_ptr<Backend> make_cuda_backend(const Checkpoint&, const Qwen3Config&, const RopeTable&,
                                           const CudaOptions&, const ProgressFn&) {
  throw DeviceError("this build has no CUDA backend");
}
#endif

}  // namespace q3
