// Host API of the CUDA kernels (library q3cuda): one launcher per op, fp16 activations, fp32 accumulation.
// Launchers are asynchronous on `stream`, check every CUDA call and launch, and throw q3::cuda::CudaError
// (device failures) or std::invalid_argument (bad shapes) with file:line; they never exit().
// Fixed by the model: head_dim 128, KV block 16 tokens, AWQ group 128, GQA group = n_heads / n_kv_heads = 4.
#pragma once
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace q3::cuda {

// ---- AWQ int4 weights (awq_gemv.cuh / awq_gemm.cuh) ----
// Repacked layout (one copy serves the GEMV and the tensor-core GEMM):
//   qw (N/4, K/8) x 16 B: four 32-bit words, word j = column 4*n4+j, 8 consecutive k: nibble i holds k = 8*k8+2i,
//      nibble i+4 holds k = 8*k8+2i+1 (so one mask yields an fp16 pair of neighbouring k).
//   sz (N/4, K/128) x 16 B: word j = half2(scale, 1024 + zero) of column 4*n4+j in that group.
struct AwqWeight {
  const uint4* qw;  // (N/4, K/8) 16-byte tiles
  const uint4* sz;  // (N/4, K/128) 16-byte tiles
  int K, N;         // in_features, out_features
};
size_t awq_qw_bytes(int K, int N);
size_t awq_sz_bytes(int K, int N);
// Host repack from the published AutoAWQ layout (qweight (K, N/8) int32, qzeros (K/128, N/8), scales (K/128, N) fp16
// bits). qw_out / sz_out are host buffers of awq_qw_bytes / awq_sz_bytes. Several linears sharing K are fused by
// repacking each into consecutive column ranges: call with column_offset = sum of previous N, total_N the fused N.
void awq_repack_host(const int32_t* qweight, const int32_t* qzeros, const uint16_t* scales, int K, int N,
                     int column_offset, int total_N, uint32_t* qw_out, uint32_t* sz_out);
// Same on the device (inputs are device copies of the published tensors).
void awq_repack_device(const int32_t* qweight, const int32_t* qzeros, const __half* scales, int K, int N,
                       int column_offset, int total_N, uint4* qw_out, uint4* sz_out, cudaStream_t stream);

// y (M, N) = x (M, K) . W, M = 1..16, CUDA cores, memory-bound path for decode.
void awq_gemv(const AwqWeight& w, const __half* x, int M, __half* y, cudaStream_t stream);
// y (M, N) = x (M, K) . W, any M >= 1, tensor cores (mma.sync m16n8k16), split-K for skinny shapes.
// split_k = 0 picks one from the SM count; the fp32 workspace must hold awq_gemm_workspace_floats(M, N, split_k).
int awq_gemm_split_k(int M, int N, int K, int num_sms);
size_t awq_gemm_workspace_floats(int M, int N, int split_k);
void awq_gemm(const AwqWeight& w, const __half* x, int M, __half* y, float* workspace, int split_k,
              cudaStream_t stream);

// ---- norms, embedding, activation ----
// y (M, D) = rmsnorm(x) * w, statistics in fp32.
void rmsnorm(const __half* x, const __half* w, int M, int D, float eps, __half* y, cudaStream_t stream);
// residual (M, D) += x; y = rmsnorm(residual) * w (the pre-norm layer's "add, then norm" in one pass).
void add_rmsnorm(__half* residual, const __half* x, const __half* w, int M, int D, float eps, __half* y,
                 cudaStream_t stream);
// out (M, D) = table[ids[m]]
void embedding(const __half* table, const int32_t* ids, int M, int D, __half* out, cudaStream_t stream);
// out (M, I) = silu(gate_up[:, :I]) * gate_up[:, I:]   (gate_up (M, 2I) from the fused gate|up matmul)
void swiglu(const __half* gate_up, int M, int I, __half* out, cudaStream_t stream);

// ---- q/k norm + RoPE + paged KV write (rope.cuh) ----
// qkv (T, (H + 2*KV) * 128): per token [q heads | k heads | v heads]. positions (T), slot_mapping (T): cache slot
// = block * 16 + offset. inv_freq (64) fp32 from the host (YaRN folded in), attn_factor multiplies cos and sin.
// Writes q_out (T, H, 128) and k_cache / v_cache (num_blocks, KV, 16, 128).
void qk_norm_rope_cache(const __half* qkv, int T, int H, int KV, const int32_t* positions,
                        const int32_t* slot_mapping, const float* inv_freq, float attn_factor, const __half* q_norm_w,
                        const __half* k_norm_w, float eps, __half* q_out, __half* k_cache, __half* v_cache,
                        cudaStream_t stream);

// ---- attention over the paged cache (attention.cuh) ----
// Decode: one new token per sequence, already written to the cache; ctx_lens (B) counts it.
// q (B, H, 128) -> out (B, H, 128). block_tables (B, max_blocks_per_seq). max_ctx bounds every ctx_len and fixes
// the grid (so a CUDA graph captured for max_ctx stays valid while sequences grow).
int decode_attention_splits(int B, int KV, int max_ctx, int num_sms);
size_t decode_attention_workspace_floats(int B, int H, int splits);
void decode_attention(const __half* q, const __half* k_cache, const __half* v_cache, const int32_t* block_tables,
                      int max_blocks_per_seq, const int32_t* ctx_lens, int B, int H, int KV, int max_ctx,
                      float scale, int splits, float* workspace, __half* out, cudaStream_t stream);
// Prefill chunk, causal: sequence s owns q rows cu_q[s]..cu_q[s+1]-1, which are its last (cu_q[s+1]-cu_q[s])
// positions of ctx_lens[s] (the chunk's K/V are in the cache already, earlier chunks' too).
// q (total, H, 128) -> out (total, H, 128). max_q = largest chunk length.
void prefill_attention(const __half* q, const int32_t* cu_q, const int32_t* ctx_lens, const int32_t* block_tables,
                       int max_blocks_per_seq, int S, int max_q, int H, int KV, float scale,
                       const __half* k_cache, const __half* v_cache, __half* out, cudaStream_t stream);

// ---- lm_head (fp16 weights) ----
// logits (M, V) fp32 = x (M, K) . W^T, W (V, K) row-major as in the checkpoint; any M (chunks of 16).
void lm_head(const __half* W, const __half* x, int M, int V, int K, float* logits, cudaStream_t stream);

// ---- sampling (sampling.cuh) ----
// One block per logits row, in the CPU sampler's order (native/src/sampler.cpp): the chosen token's logprob and the
// top-n come from the raw logits (with a bitmask: of the allowed tokens, unless a forced token lies outside it);
// penalties and the bitmask make a work copy of the row; then greedy argmax, or temperature -> top-k -> top-p
// (renormalised within top-k) -> min-p -> one draw from a Philox4x32-10 stream keyed by the request's seed at counter
// `offset` (the sequence's draw index), so a seeded request replays. A forced token ignores the bitmask.
constexpr int kMaxLogprobs = 20;  // = Q3_MAX_LOGPROBS of the C ABI

struct SampleRow {
  float temperature;         // <= 0: greedy argmax (lowest id on ties)
  int32_t top_k;             // 0: off (callers map <= 0 and >= vocab to 0)
  float top_p;               // 1: off (callers map <= 0 and >= 1 to 1)
  float min_p;               // 0: off
  float repetition_penalty;  // 1: off. HF/vLLM: positive logits divided, negative multiplied (prompt + output)
  float presence_penalty;    // OpenAI: subtracted once from every token of the output so far
  float frequency_penalty;   // OpenAI: subtracted once per occurrence in the output so far
  int32_t forced;            // >= 0: emit this token instead of sampling (logprobs are still reported)
  int32_t n_logprobs;        // top alternatives of the raw logits to report, 0..kMaxLogprobs
  int32_t active;            // 0: a padding row of a captured graph: nothing is read or written
  uint64_t seed;             // Philox key
  uint64_t offset;           // Philox counter: the sequence's draw index
  int32_t* history;          // (vocab) per token 2 * (times in the output) + (seen before: prompt); null: no
                             // penalties. sample() adds 2 at the emitted token.
  const uint32_t* allowed;   // (ceil(vocab / 32)) bit i % 32 of word i / 32 set = token i allowed (xgrammar's
                             // layout); null: every token allowed
};
struct SampleResult {
  int32_t token;
  float logprob;             // log-softmax at `token` of the raw logits (of the allowed ones under a bitmask)
};
struct SampleTop {           // the row's n_logprobs best logprobs (allowed tokens only under a bitmask), best first
  int32_t n;                 // entries written (n_logprobs unless fewer tokens have a nonzero probability)
  int32_t tokens[kMaxLogprobs];
  float logprobs[kMaxLogprobs];
};
// work (R, V) = the rows' logits after penalties and the bitmask (disallowed: -inf), only for rows with a history
// or a bitmask; other rows of work are left alone (sample() reads their logits directly).
void sample_prepare(const float* logits, float* work, int R, int V, const SampleRow* rows, cudaStream_t stream);
// One token per active row from logits (R, V) fp32 (and work for rows sample_prepare wrote); results (R), tops (R).
// rows, results and tops are device memory.
void sample(const float* logits, const float* work, int R, int V, const SampleRow* rows, SampleResult* results,
            SampleTop* tops, cudaStream_t stream);
// dst[pairs[2i]] = pairs[2i + 1] for i < n: seeds a sequence's penalty history (prompt and earlier output).
void scatter_set(int32_t* dst, const int32_t* pairs, int n, cudaStream_t stream);

int device_sm_count();

}  // namespace q3::cuda
