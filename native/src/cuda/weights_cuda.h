// Qwen3 weights on the device for the CUDA backend: AWQ linears repacked into the kernels' tile layout (q|k|v and
// gate|up fused along N), fp16 embedding / lm_head tables and fp16 norm weights, plus the RoPE table.
#pragma once
#include <cuda_fp16.h>

#include <vector>

#include "../config.h"
#include "../load_progress.h"
#include "../rope.h"
#include "../safetensors.h"
#include "device_buffer.h"
#include "qwen3_cuda.h"

namespace q3 {

struct AwqDevice {
  DeviceArray<uint4> qw;   // (N/4, K/8) 16-byte tiles, see qwen3_cuda.h
  DeviceArray<uint4> sz;   // (N/4, K/128) 16-byte tiles: half2(scale, 1024 + zero)
  cuda::AwqWeight view{};  // the same pointers with K, N for the launchers
};

struct LayerWeightsCuda {
  DeviceArray<__half> input_norm;  // (hidden)
  DeviceArray<__half> post_norm;   // (hidden)
  DeviceArray<__half> q_norm;      // (head_dim)
  DeviceArray<__half> k_norm;      // (head_dim)
  AwqDevice qkv;                   // (hidden -> (n_heads + 2*n_kv_heads)*head_dim)
  AwqDevice o;                     // (n_heads*head_dim -> hidden)
  AwqDevice gate_up;               // (hidden -> 2*intermediate)
  AwqDevice down;                  // (intermediate -> hidden)
};

struct Qwen3WeightsCuda {
  DeviceArray<__half> embed;       // (vocab, hidden)
  DeviceArray<__half> lm_head;     // (vocab, hidden); empty when tied (lm_head_ptr == embed)
  const __half* lm_head_ptr = nullptr;
  DeviceArray<__half> final_norm;  // (hidden)
  DeviceArray<float> inv_freq;     // (head_dim/2) RoPE inverse frequencies, YaRN folded in
  float attention_factor = 1.0f;   // multiplies cos and sin (YaRN mscale)
  std::vector<LayerWeightsCuda> layers;  // (n_layers)
  int64_t bytes_per_token = 0;     // weight bytes one decode step streams
};

// Uploads and repacks on `stream` (device 0 current); throws std::runtime_error naming the file and tensor when the
// checkpoint does not match the config, DeviceError when a device call fails.
void load_weights_cuda(const Checkpoint& ckpt, const Qwen3Config& cfg, const RopeTable& rope, Qwen3WeightsCuda& w,
                       const ProgressFn& progress, cudaStream_t stream);

}  // namespace q3
