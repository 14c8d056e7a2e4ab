// Qwen3 forward pass on the GPU, read top to bottom: embed → per layer [rmsnorm (+ residual) → qkv → q/k-norm +
// RoPE + KV write → GQA attention (flash-decoding for decode rows, causal flash attention for prefill chunks) →
// o_proj → residual + rmsnorm → gate|up → SwiGLU → down] → final residual + norm on the rows needing logits →
// lm_head.
#include "forward_cuda.h"

#include <algorithm>
#include <cmath>

namespace q3 {
namespace {

// y (M, N) = x (M, K) . W: the bandwidth-bound GEMV for a few rows, the tensor-core GEMM (split-K when the
// workspace allows) above.
void matmul(const cuda::AwqWeight& w, const __half* x, int M, __half* y, CudaRunState& s, int gemv_max, int num_sms,
            cudaStream_t stream) {
  if (M <= gemv_max) return cuda::awq_gemv(w, x, M, y, stream);
  int split = cuda::awq_gemm_split_k(M, w.N, w.K, num_sms);
  if (cuda::awq_gemm_workspace_floats(M, w.N, split) > s.gemm_ws.size()) split = 1;
  cuda::awq_gemm(w, x, M, y, s.gemm_ws.get(), split, stream);
}

}  // namespace

void forward_cuda(const Qwen3Config& c, const Qwen3WeightsCuda& w, const KvCacheCuda& kv, CudaRunState& s,
                  const CudaPass& p, int num_sms, cudaStream_t stream) {
  const int H = c.hidden_size, I = c.intermediate_size, D = c.head_dim, NH = c.n_heads, NKV = c.n_kv_heads;
  const int q_dim = NH * D, T = p.T;
  const float eps = (float)c.rms_norm_eps, scale = 1.0f / std::sqrt((float)D);
  const int gemv_max = std::min(p.gemv_max, 16);

  // embed: resid (T, hidden) = embed[ids]
  cuda::embedding(w.embed.get(), p.ids, T, H, s.resid.get(), stream);

  for (int l = 0; l < c.n_layers; l++) {
    const LayerWeightsCuda& L = w.layers[l];

    // rmsnorm; from layer 1 on, the previous layer's MLP output joins the residual in the same kernel
    if (l == 0) cuda::rmsnorm(s.resid.get(), L.input_norm.get(), T, H, eps, s.xn.get(), stream);
    else cuda::add_rmsnorm(s.resid.get(), s.mlp.get(), L.input_norm.get(), T, H, eps, s.xn.get(), stream);

    // qkv (q | k | v fused along N)
    matmul(L.qkv.view, s.xn.get(), T, s.qkv.get(), s, gemv_max, num_sms, stream);

    // per-head q/k RMSNorm, RoPE (YaRN table), K and V written to each token's cache slot
    cuda::qk_norm_rope_cache(s.qkv.get(), T, NH, NKV, p.pos, p.slots, w.inv_freq.get(), w.attention_factor,
                             L.q_norm.get(), L.k_norm.get(), eps, s.q.get(), kv.k(l), kv.v(l), stream);

    // GQA attention over the paged cache: decode rows by flash-decoding, prefill chunks causally over their cached
    // blocks plus the chunk itself (already in the cache)
    if (p.B > 0)
      cuda::decode_attention(s.q.get(), kv.k(l), kv.v(l), p.block_tables, p.max_blocks, p.ctx_lens, p.B, NH, NKV,
                             p.decode_max_ctx, scale, p.decode_splits, s.attn_ws.get(), s.att.get(), stream);
    if (p.P > 0)
      cuda::prefill_attention(s.q.get() + (size_t)p.B * q_dim, p.cu_q, p.ctx_lens + p.B,
                              p.block_tables + (size_t)p.B * p.max_blocks, p.max_blocks, p.P, p.max_q, NH, NKV, scale,
                              kv.k(l), kv.v(l), s.att.get() + (size_t)p.B * q_dim, stream);

    // o_proj → residual → rmsnorm
    matmul(L.o.view, s.att.get(), T, s.proj.get(), s, gemv_max, num_sms, stream);
    cuda::add_rmsnorm(s.resid.get(), s.proj.get(), L.post_norm.get(), T, H, eps, s.xn.get(), stream);

    // gate|up → SwiGLU → down (joins the residual at the next layer's norm)
    matmul(L.gate_up.view, s.xn.get(), T, s.gate_up.get(), s, gemv_max, num_sms, stream);
    cuda::swiglu(s.gate_up.get(), T, I, s.act.get(), stream);
    matmul(L.down.view, s.act.get(), T, s.mlp.get(), s, gemv_max, num_sms, stream);
  }
  if (p.R == 0) return;

  // final residual + norm, only for the rows whose logits are needed (gathered with the embedding kernel)
  cuda::embedding(s.resid.get(), p.logit_rows, p.R, H, s.last_res.get(), stream);
  cuda::embedding(s.mlp.get(), p.logit_rows, p.R, H, s.last_mlp.get(), stream);
  cuda::add_rmsnorm(s.last_res.get(), s.last_mlp.get(), w.final_norm.get(), p.R, H, eps, s.last.get(), stream);

  // lm_head (fp16 weights) → fp32 logits (R, vocab)
  cuda::lm_head(w.lm_head_ptr, s.last.get(), p.R, c.vocab_size, H, s.logits.get(), stream);
}

}  // namespace q3
