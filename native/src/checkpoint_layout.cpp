// Tensor names follow transformers' Qwen3 module tree (model.layers.{i}.self_attn.q_proj, …); AWQ shapes follow
// AutoAWQ's WQLinear_GEMM (docs/model.md#checkpoint-tensors).
#include "checkpoint_layout.h"

namespace q3 {

int FusedLinearLayout::N() const {
  int n = 0;
  for (const AwqLinearLayout& p : parts) n += p.N;
  return n;
}

LayerLayout layer_layout(const Qwen3Config& cfg, int layer) {
  const int H = cfg.hidden_size, I = cfg.intermediate_size;
  const int q_dim = cfg.n_heads * cfg.head_dim, kv_dim = cfg.n_kv_heads * cfg.head_dim;
  const std::string p = "model.layers." + std::to_string(layer) + ".";
  LayerLayout l;
  l.input_norm = p + "input_layernorm.weight";
  l.post_norm = p + "post_attention_layernorm.weight";
  l.q_norm = p + "self_attn.q_norm.weight";
  l.k_norm = p + "self_attn.k_norm.weight";
  l.qkv = {{{p + "self_attn.q_proj", H, q_dim}, {p + "self_attn.k_proj", H, kv_dim},
            {p + "self_attn.v_proj", H, kv_dim}}};
  l.o = {{{p + "self_attn.o_proj", q_dim, H}}};
  l.gate_up = {{{p + "mlp.gate_proj", H, I}, {p + "mlp.up_proj", H, I}}};
  l.down = {{{p + "mlp.down_proj", I, H}}};
  return l;
}

std::vector<TensorLayout> checkpoint_layout(const Qwen3Config& cfg) {
  using Role = TensorLayout::Role;
  const int64_t H = cfg.hidden_size, V = cfg.vocab_size, D = cfg.head_dim, G = cfg.group_size;
  std::vector<TensorLayout> ts;
  ts.push_back({Role::kEmbedding, kEmbedTokensName, {V, H}, DType::F16});
  for (int l = 0; l < cfg.n_layers; l++) {
    const LayerLayout L = layer_layout(cfg, l);
    for (const std::string* norm : {&L.input_norm, &L.post_norm})
      ts.push_back({Role::kNorm, *norm, {H}, DType::F16});
    for (const std::string* norm : {&L.q_norm, &L.k_norm})
      ts.push_back({Role::kNorm, *norm, {D}, DType::F16});
    for (const FusedLinearLayout* fused : {&L.qkv, &L.o, &L.gate_up, &L.down})
      for (const AwqLinearLayout& a : fused->parts) {
        ts.push_back({Role::kQWeight, a.prefix + ".qweight", {a.K, a.N / 8}, DType::I32, a.K});
        ts.push_back({Role::kQZeros, a.prefix + ".qzeros", {a.K / G, a.N / 8}, DType::I32, a.K});
        ts.push_back({Role::kScales, a.prefix + ".scales", {a.K / G, a.N}, DType::F16, a.K});
      }
  }
  ts.push_back({Role::kNorm, kFinalNormName, {H}, DType::F16});
  if (!cfg.tie_word_embeddings) ts.push_back({Role::kLmHead, kLmHeadName, {V, H}, DType::F16});
  return ts;
}

}  // namespace q3
