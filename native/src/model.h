// Qwen3 weights for the CPU backend: loaded from a mapped checkpoint, validated against config.json, with the
// AWQ linears repacked (q|k|v and gate|up fused along N) and small tensors converted to fp32.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "config.h"
#include "cpu/awq_cpu.h"
#include "cpu/head_screen.h"
#include "load_progress.h"
#include "safetensors.h"

namespace q3 {

struct LayerWeights {
  std::vector<float> input_norm;  // (hidden)
  std::vector<float> post_norm;   // (hidden)
  std::vector<float> q_norm;      // (head_dim)
  std::vector<float> k_norm;      // (head_dim)
  AwqMatrixCpu qkv;               // (hidden -> (n_heads + 2*n_kv_heads)*head_dim)
  AwqMatrixCpu o;                 // (n_heads*head_dim -> hidden)
  AwqMatrixCpu gate_up;           // (hidden -> 2*intermediate)
  AwqMatrixCpu down;              // (intermediate -> hidden)
};

struct Qwen3Weights {
  const uint16_t* embed = nullptr;    // (vocab, hidden) fp16, mapped or owned_embed
  const uint16_t* lm_head = nullptr;  // (vocab, hidden) fp16; == embed when tied
  // fp16 copies on huge pages: lm_head always (streamed every step), embed only when the file's is not fp16
  std::vector<uint16_t, HugePageAllocator<uint16_t>> owned_embed, owned_lm_head;
  ScreenedHead screened;              // int8 copy of lm_head with error norms; empty unless the backend screens
  std::vector<float> final_norm;      // (hidden)
  std::vector<LayerWeights> layers;   // (n_layers)
  int64_t bytes_per_token = 0;        // weight bytes one decode step streams
};

// Throws std::runtime_error naming the file and tensor on any mismatch with the config.
void load_weights_cpu(const Checkpoint& ckpt, const Qwen3Config& cfg, Qwen3Weights& w, const ProgressFn& progress);

}  // namespace q3
