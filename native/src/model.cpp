// Loads the checkpoint layout (checkpoint_layout.h) into the CPU backend's weights, checking every tensor's dtype and
// shape against config.json.
#include "model.h"

#include <cstring>
#include <stdexcept>

#include "checkpoint_layout.h"
#include "checkpoint_tensors.h"
#include "cpu/huge_pages.h"
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
                           std::vector<uint16_t, HugePageAllocator<uint16_t>>& owned) {
  const TensorView& t = expect_tensor(ckpt, name, {rows, cols}, {DType::F16, DType::BF16, DType::F32});
  if (!streamed && t.dtype == DType::F16 && ((uintptr_t)t.data & 1) == 0) return (const uint16_t*)t.data;
  const size_t n = (size_t)rows * cols;
  owned.resize(n);
  if (t.dtype == DType::F16) std::memcpy(owned.data(), t.data, n * sizeof(uint16_t));
  else for (size_t i = 0; i < n; i++) owned[i] = f32_to_f16(tensor_element_f32(t, i));
  return owned.data();
}

// The published linears of `fused`, repacked into one CPU weight.
AwqMatrixCpu load_awq(const Checkpoint& ckpt, const FusedLinearLayout& fused, int G) {
  std::vector<AwqSource> sources;
  for (const AwqLinearLayout& a : fused.parts) {
    const AwqTensors t = expect_awq_linear(ckpt, a.prefix, a.K, a.N, G);
    sources.push_back(
        {(const int32_t*)t.qweight->data, (const int32_t*)t.qzeros->data, (const uint16_t*)t.scales->data, a.N});
  }
  return awq_pack_cpu(fused.K(), G, sources);
}

}  // namespace

void load_weights_cpu(const Checkpoint& ckpt, const Qwen3Config& cfg, Qwen3Weights& w, const ProgressFn& progress) {
  const int H = cfg.hidden_size, D = cfg.head_dim, G = cfg.group_size;

  w.embed = load_table(ckpt, kEmbedTokensName, cfg.vocab_size, H, cfg.tie_word_embeddings, w.owned_embed);
  if (cfg.tie_word_embeddings) {
    w.lm_head = w.embed;
  } else {
    w.lm_head = load_table(ckpt, kLmHeadName, cfg.vocab_size, H, true, w.owned_lm_head);
  }
  w.final_norm = load_vector(ckpt, kFinalNormName, H);
  w.bytes_per_token = (int64_t)cfg.vocab_size * H * 2 + (int64_t)H * 2;

  w.layers.resize(cfg.n_layers);
  for (int l = 0; l < cfg.n_layers; l++) {
    if (progress) progress("repacking layers", (double)l / cfg.n_layers);
    const LayerLayout t = layer_layout(cfg, l);
    LayerWeights& L = w.layers[l];
    L.input_norm = load_vector(ckpt, t.input_norm, H);
    L.post_norm = load_vector(ckpt, t.post_norm, H);
    L.q_norm = load_vector(ckpt, t.q_norm, D);
    L.k_norm = load_vector(ckpt, t.k_norm, D);
    L.qkv = load_awq(ckpt, t.qkv, G);
    L.o = load_awq(ckpt, t.o, G);
    L.gate_up = load_awq(ckpt, t.gate_up, G);
    L.down = load_awq(ckpt, t.down, G);
    w.bytes_per_token += (int64_t)(L.qkv.bytes_read() + L.o.bytes_read() + L.gate_up.bytes_read() + L.down.bytes_read()) +
                         (int64_t)(2 * H + 2 * D) * 2;
  }
  if (progress) progress("repacking layers", 1.0);
}

}  // namespace q3
