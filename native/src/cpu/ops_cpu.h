// Plain-loop CPU operators of the Qwen3 forward pass (everything but the matmuls, which live in awq_cpu.h and
// f16_matmul_cpu.h). These are also the references the CUDA kernels are tested against.
#pragma once
#include <cstdint>

#include "../kv_cache.h"
#include "../rope.h"

namespace q3 {

// out = w * x / sqrt(mean(x^2) + eps); statistics in fp32 as in HF Qwen3RMSNorm.
void rmsnorm_cpu(const float* x, const float* w, int n, float eps, float* out);

// NeoX-style rotation of one head vector in place: element j pairs with j + head_dim/2, angle pos * inv_freq[j],
// cos and sin scaled by the table's attention factor.
void rope_cpu(float* vec, int head_dim, int pos, const RopeTable& rope);
// The same in two steps, so one position's cos/sin (head_dim/2 each) serve every head of every layer.
void rope_cos_sin_cpu(int pos, const RopeTable& rope, int head_dim, float* cos, float* sin);
void rope_rotate_cpu(float* vec, int head_dim, const float* cos, const float* sin);

// out[i] = silu(gate[i]) * up[i] for i < n.
void silu_mul_cpu(const float* gate, const float* up, int n, float* out);

// n fp32 values -> fp16 (a K or V row into the cache), the bits of f32_to_f16 (half.h): rounded to nearest even.
void narrow_f16(const float* x, int n, uint16_t* out);

// fp16 embedding row -> fp32.
void embed_row_cpu(const uint16_t* table, int hidden, int token, float* out);

// K/V rows (256 bytes each in fp16 at head_dim 128) the attention's K pass prefetches ahead, in both its paths.
constexpr int kAttentionAhead = 8;

// Causal attention of the n_q query heads that share KV head kv_head (GQA) over positions 0..pos of one sequence,
// reading K/V (fp16, kv_cache.h) through its block table, each K and V row once for all of them, widened to fp32.
// q: (n_q, head_dim); out: (n_q, head_dim); scores: scratch of at least n_q * (pos+1) floats.
void attention_group_cpu(const float* q, int n_q, const KvPool& kv, int layer, int kv_head, const int32_t* block_table,
                         int pos, int head_dim, float scale, float* scores, float* out);
// The same in AVX-512 (attention_cpu_avx512.cpp), for head_dim a multiple of 16 on a CPU with AVX-512 F/BW/VL/DQ,
// and in AVX2 + FMA + F16C (attention_cpu_avx2.cpp) on one without: attention_group_cpu hands over to the widest the
// CPU has. Their sums run in 16 or 8 lanes, so they differ from the plain loops in the last bits.
// attention_cpu_isa() names the path attention_group_cpu takes ("avx512", "avx2" or "plain"; at a head_dim that is
// not a multiple of 16, plain whatever it says); attention_cpu_force_isa forces one ("auto" or a name) for tests and
// benchmarks, false where the CPU lacks it.
void attention_group_avx512(const float* q, int n_q, const KvPool& kv, int layer, int kv_head,
                            const int32_t* block_table, int pos, int head_dim, float scale, float* scores, float* out);
void attention_group_avx2(const float* q, int n_q, const KvPool& kv, int layer, int kv_head,
                          const int32_t* block_table, int pos, int head_dim, float scale, float* scores, float* out);
const char* attention_cpu_isa();
bool attention_cpu_force_isa(const char* name);

// A decode token's attention split by position, for long sequences: all n_heads query heads of one token (group per
// KV head, q as (n_heads, head_dim)) over blocks [b0, b1) of its positions 0..pos, every KV head's rows of a block read
// together. With head_max and head_sum null (b0 = 0 and b1 past the last block), out is the attention itself,
// (n_heads, head_dim). Otherwise out holds each head's sum of exp(s_j - max) * v_j over the part's positions and
// head_max / head_sum (n_heads each) that max and the sum of exp(s_j - max): attention_merge_cpu combines the parts.
// scores: scratch of at least n_heads * (b1 - b0) * block_size floats. The sums run in the SIMD paths' lanes, so
// the results differ from attention_group_cpu's in the last bits. Only where attention_blocks_available: a SIMD path
// runs (attention_cpu_isa() is not "plain"), head_dim is a multiple of 16 and block_size one of 4.
bool attention_blocks_available(int head_dim, int block_size);
void attention_blocks_cpu(const float* q, int n_heads, int group, const KvPool& kv, int layer,
                          const int32_t* block_table, int b0, int b1, int pos, int head_dim, float scale, float* scores,
                          float* out, float* head_max, double* head_sum);
// The attention from `parts` partial results of attention_blocks_cpu: parts_out (parts, n_heads, head_dim), parts_max
// and parts_sum (parts, n_heads); out (n_heads, head_dim).
void attention_merge_cpu(int parts, int n_heads, int head_dim, const float* parts_out, const float* parts_max,
                         const double* parts_sum, float* out);
void attention_blocks_avx512(const float* q, int n_heads, int group, const KvPool& kv, int layer,
                             const int32_t* block_table, int b0, int b1, int pos, int head_dim, float scale,
                             float* scores, float* out, float* head_max, double* head_sum);
void attention_blocks_avx2(const float* q, int n_heads, int group, const KvPool& kv, int layer,
                           const int32_t* block_table, int b0, int b1, int pos, int head_dim, float scale,
                           float* scores, float* out, float* head_max, double* head_sum);

}  // namespace q3
