// Maps HF tensor names to the engine's weights and checks every tensor's dtype and shape against config.json.
#include "model.h"

#include <cstring>
#include <stdexcept>

#include "checkpoint_tensors.h"
#include "cpu/bandwidth_cpu.h"
#include "half.h"

namespace q3 {
namespace {

// Norm weights may be stored in fp16, bf16 or fp32.
std::vector<float> load_vector(const Checkpoint& ckpt, const std::string& name, int64_t n) {
  const TensorView& t = expect_tensor(ckpt, name, {n}, {DType::F16, DType::BF16, DType::F32});
  std::vector<float> v(n);
  for (int64_t i = 0; i < n; i++) v[i] = tensor_element_f32(t, i);
  return v;
}

// (vocab, hidden) table used as fp16 by the kernels. The embedding (one row read per token) stays in the mapped
// file when it is fp16; a table streamed whole every step (lm_head) is copied into huge-page memory, since the
// mapping's 4 KiB pages stall the hardware prefetcher at every page boundary.
const uint16_t* load_table(const Checkpoint& ckpt, const std::string& name, int64_t rows, int64_t cols, bool streamed,
                           std::vector<uint16_t>& owned) {
  const TensorView& t = expect_tensor(ckpt, name, {rows, cols}, {DType::F16, DType::BF16, DType::F32});
  if (!streamed && t.dtype == DType::F16 && ((uintptr_t)t.data & 1) == 0) return (const uint16_t*)t.data;
  const size_t n = (size_t)rows * cols;
  owned.reserve(n);
  advise_huge_pages(owned.data(), n * sizeof(uint16_t));
  owned.resize(n);
  if (t.dtype == DType::F16) std::memcpy(owned.data(), t.data, n * sizeof(uint16_t));
  else for (size_t i = 0; i < n; i++) owned[i] = f32_to_f16(tensor_element_f32(t, i));
  return owned.data();
}

AwqSource awq_source(const Checkpoint& ckpt, const std::string& prefix, int K, int N, int G) {
  const AwqTensors t = expect_awq_linear(ckpt, prefix, K, N, G);
  return {(const int32_t*)t.qweight->data, (const int32_t*)t.qzeros->data, (const uint16_t*)t.scales->data, N};
}

}  // namespace

void load_weights_cpu(const Checkpoint& ckpt, const Qwen3Config& cfg, Qwen3Weights& w, const ProgressFn& progress) {
  const int H = cfg.hidden_size, I = cfg.intermediate_size, D = cfg.head_dim, G = cfg.group_size;
  const int q_dim = cfg.n_heads * D, kv_dim = cfg.n_kv_heads * D;

  w.embed = load_table(ckpt, "model.embed_tokens.weight", cfg.vocab_size, H, cfg.tie_word_embeddings, w.owned_embed);
  if (cfg.tie_word_embeddings) {
    w.lm_head = w.embed;
  } else {
    w.lm_head = load_table(ckpt, "lm_head.weight", cfg.vocab_size, H, true, w.owned_lm_head);
  }
  w.final_norm = load_vector(ckpt, "model.norm.weight", H);
  w.bytes_per_token = (int64_t)cfg.vocab_size * H * 2 + (int64_t)H * 2;

  w.layers.resize(cfg.n_layers);
  for (int l = 0; l < cfg.n_layers; l++) {
    if (progress) progress("repacking layers", (double)l / cfg.n_layers);
    const std::string p = "model.layers." + std::to_string(l) + ".";
    LayerWeights& L = w.layers[l];
    L.input_norm = load_vector(ckpt, p + "input_layernorm.weight", H);
    L.post_norm = load_vector(ckpt, p + "post_attention_layernorm.weight", H);
    L.q_norm = load_vector(ckpt, p + "self_attn.q_norm.weight", D);
    L.k_norm = load_vector(ckpt, p + "self_attn.k_norm.weight", D);
    L.qkv = awq_pack_cpu(H, G, {awq_source(ckpt, p + "self_attn.q_proj", H, q_dim, G),
                                awq_source(ckpt, p + "self_attn.k_proj", H, kv_dim, G),
                                awq_source(ckpt, p + "self_attn.v_proj", H, kv_dim, G)});
    L.o = awq_pack_cpu(q_dim, G, {awq_source(ckpt, p + "self_attn.o_proj", q_dim, H, G)});
    L.gate_up = awq_pack_cpu(H, G, {awq_source(ckpt, p + "mlp.gate_proj", H, I, G),
                                    awq_source(ckpt, p + "mlp.up_proj", H, I, G)});
    L.down = awq_pack_cpu(I, G, {awq_source(ckpt, p + "mlp.down_proj", I, H, G)});
    w.bytes_per_token += (int64_t)(L.qkv.bytes_read() + L.o.bytes_read() + L.gate_up.bytes_read() + L.down.bytes_read()) +
                         (int64_t)(2 * H + 2 * D) * 2;
  }
  if (progress) progress("repacking layers", 1.0);
}

}  // namespace q3
