// The Hugging Face Qwen3 AWQ checkpoint layout, defined once (docs/model.md#checkpoint-tensors): the name and shape
// of every tensor, derived from config.json, and how the engine fuses the published linears (q|k|v and gate|up,
// concatenated along N). The CPU and CUDA weight loaders, the demo checkpoint writer and the GPU check all use it.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "config.h"
#include "safetensors.h"

namespace q3 {

constexpr const char* kEmbedTokensName = "model.embed_tokens.weight";  // (vocab, hidden)
constexpr const char* kFinalNormName = "model.norm.weight";            // (hidden)
constexpr const char* kLmHeadName = "lm_head.weight";                  // (vocab, hidden); absent when tied

// One published AutoAWQ linear with K inputs and N outputs: `prefix`.qweight (K, N/8) I32, .qzeros (K/G, N/8) I32
// and .scales (K/G, N) F16 (docs/model.md#awq-format).
struct AwqLinearLayout {
  std::string prefix;  // "model.layers.3.self_attn.q_proj"
  int K, N;
};

// Published linears the engine runs as one weight: the parts share K and are concatenated along N in this order.
struct FusedLinearLayout {
  std::vector<AwqLinearLayout> parts;
  int K() const { return parts.front().K; }
  int N() const;
};

struct LayerLayout {
  std::string input_norm, post_norm;  // (hidden)
  std::string q_norm, k_norm;         // (head_dim)
  FusedLinearLayout qkv;              // q_proj | k_proj | v_proj: hidden -> (n_heads + 2*n_kv_heads)*head_dim
  FusedLinearLayout o;                // o_proj: n_heads*head_dim -> hidden
  FusedLinearLayout gate_up;          // gate_proj | up_proj: hidden -> 2*intermediate
  FusedLinearLayout down;             // down_proj: intermediate -> hidden
};

LayerLayout layer_layout(const Qwen3Config& cfg, int layer);

// One tensor of the checkpoint as AutoAWQ publishes it (loaders also accept bf16 or fp32 tables and norms).
struct TensorLayout {
  enum class Role { kEmbedding, kNorm, kQWeight, kQZeros, kScales, kLmHead };
  Role role;
  std::string name;
  std::vector<int64_t> shape;
  DType dtype;
  int in_features = 0;  // AWQ tensors: K of their linear
};

// Every tensor of a checkpoint in the order the writers emit them: the embedding; per layer the four norms, then
// q, k, v, o, gate, up and down (qweight, qzeros, scales each); the final norm; lm_head unless tied.
std::vector<TensorLayout> checkpoint_layout(const Qwen3Config& cfg);

}  // namespace q3
