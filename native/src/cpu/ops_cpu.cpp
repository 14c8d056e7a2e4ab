// The operators between the matmuls, as plain loops the compiler vectorises: sums run in kLanes independent
// accumulators (a single running sum is a dependency chain the compiler may not split without -ffast-math), and on
// x86-64 Linux each function is compiled for AVX-512, AVX2 and the baseline, picked at load time (target_clones).
#include "ops_cpu.h"

#include <algorithm>
#include <cmath>
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif
#include <cstring>
#include <stdexcept>
#include <vector>

#include "../half.h"
#include "isa_choice.h"

#if defined(__x86_64__) && defined(__linux__) && defined(__GNUC__)
#define Q3_VECTOR_CLONES __attribute__((target_clones("avx512f", "arch=haswell", "default")))
#else
#define Q3_VECTOR_CLONES
#endif

namespace q3 {
namespace {

constexpr int kLanes = 16;

#if defined(__x86_64__) && defined(__GNUC__)
// n fp16 values as fp32 with the F16C conversion, 8 at a time (every x86 CPU since 2012-2013 has it; the plain loops'
// clones do not assume it).
__attribute__((target("f16c,avx"))) void widen_f16c(const uint16_t* h, int n, float* out) {
  int d = 0;
  for (; d + 8 <= n; d += 8) _mm256_storeu_ps(out + d, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)(h + d))));
  for (; d < n; d++) out[d] = f16_to_f32(h[d]);
}

// n fp32 values as fp16 with the F16C conversion, 8 at a time, rounded to nearest even as f32_to_f16 does; eight
// with a NaN among them go through f32_to_f16, which keeps no payload bits where vcvtps2ph keeps some.
__attribute__((target("f16c,avx"))) void narrow_f16c(const float* x, int n, uint16_t* out) {
  int d = 0;
  for (; d + 8 <= n; d += 8) {
    const __m256 v = _mm256_loadu_ps(x + d);
    if (_mm256_movemask_ps(_mm256_cmp_ps(v, v, _CMP_UNORD_Q)) == 0) {
      _mm_storeu_si128((__m128i*)(out + d), _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT));
    } else {
      for (int i = d; i < d + 8; i++) out[i] = f32_to_f16(x[i]);
    }
  }
  for (; d < n; d++) out[d] = f32_to_f16(x[d]);
}
#endif

// n fp16 values as fp32 (the K/V rows for the plain attention loops, an embedding row): f16_to_f32 one at a time
// where F16C is missing.
void widen_f16(const uint16_t* h, int n, float* out) {
#if defined(__x86_64__) && defined(__GNUC__)
  static const bool has_f16c = __builtin_cpu_supports("f16c");
  if (has_f16c) return widen_f16c(h, n, out);
#endif
  for (int d = 0; d < n; d++) out[d] = f16_to_f32(h[d]);
}

// exp(x) within 2 ulp for -87 <= x <= 88: x = n ln2 + r with |r| <= ln2/2, e^r by its degree-6 Taylor polynomial
// (truncation error < 1.2e-7 relative), times 2^n built in the exponent bits. Below -87 it gives e^-87 (~1e-38, as
// good as zero next to 1), above 88 e^88, and +infinity past float's range (88.72) as std::exp does. Plain
// arithmetic, so a loop of it vectorises (std::exp does not without -ffast-math).
inline float exp_approx(float x) {
  const bool overflow = x > 88.72f;
  x = x < -87.0f ? -87.0f : x > 88.0f ? 88.0f : x;  // selects, not std::fmin/fmax (calls, for NaN semantics)
  const float n = std::floor(x * 1.44269504f + 0.5f);
  const float r = (x - n * 0.693145751953125f) - n * 1.428606765330187e-06f;  // ln2 split so n * hi is exact
  float p = 1.0f / 720;
  p = p * r + 1.0f / 120;
  p = p * r + 1.0f / 24;
  p = p * r + 1.0f / 6;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const int32_t bits = ((int32_t)n + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, 4);
  return overflow ? INFINITY : p * scale;
}

}  // namespace

Q3_VECTOR_CLONES
void rmsnorm_cpu(const float* x, const float* w, int n, float eps, float* out) {
  double acc[kLanes] = {};
  int i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int l = 0; l < kLanes; l++) acc[l] += (double)x[i + l] * x[i + l];
  double ss = 0;
  for (; i < n; i++) ss += (double)x[i] * x[i];
  for (int l = 0; l < kLanes; l++) ss += acc[l];
  float r = (float)(1.0 / std::sqrt(ss / n + eps));
  for (i = 0; i < n; i++) out[i] = w[i] * (x[i] * r);
}

void rope_cos_sin_cpu(int pos, const RopeTable& rope, int head_dim, float* cos, float* sin) {
  for (int j = 0; j < head_dim / 2; j++) {
    double angle = (double)pos * rope.inv_freq[j];
    cos[j] = (float)std::cos(angle) * rope.attention_factor;
    sin[j] = (float)std::sin(angle) * rope.attention_factor;
  }
}

void rope_rotate_cpu(float* vec, int head_dim, const float* cos, const float* sin) {
  const int half = head_dim / 2;
  for (int j = 0; j < half; j++) {
    float a = vec[j], b = vec[j + half];
    vec[j] = a * cos[j] - b * sin[j];
    vec[j + half] = b * cos[j] + a * sin[j];
  }
}

void rope_cpu(float* vec, int head_dim, int pos, const RopeTable& rope) {
  std::vector<float> c(head_dim / 2), s(head_dim / 2);
  rope_cos_sin_cpu(pos, rope, head_dim, c.data(), s.data());
  rope_rotate_cpu(vec, head_dim, c.data(), s.data());
}

Q3_VECTOR_CLONES
void silu_mul_cpu(const float* gate, const float* up, int n, float* out) {
  for (int i = 0; i < n; i++) out[i] = gate[i] / (1.0f + exp_approx(-gate[i])) * up[i];
}

void narrow_f16(const float* x, int n, uint16_t* out) {
#if defined(__x86_64__) && defined(__GNUC__)
  static const bool has_f16c = __builtin_cpu_supports("f16c");
  if (has_f16c) return narrow_f16c(x, n, out);
#endif
  for (int d = 0; d < n; d++) out[d] = f32_to_f16(x[d]);
}

void embed_row_cpu(const uint16_t* table, int hidden, int token, float* out) {
  widen_f16(table + (size_t)token * hidden, hidden, out);
}

namespace {

// The plain loops below compile to scalar code (their sums are order-bound), so where AVX-512 runs, attention takes
// the explicit kernel (attention_cpu_avx512.cpp): 0.86x the time of a decode step's attention at 112 and at 4096
// positions (bench/results/cpu-attention-avx512.md), less since (cpu-attention-vreg.md); where only AVX2 + FMA +
// F16C run, its 8-lane version (attention_cpu_avx2.cpp, cpu-attention-avx2.md).
enum AttentionIsa { kPlain = 0, kAvx2 = 1, kAvx512 = 2 };
const char* const kAttentionIsaNames[] = {"plain", "avx2", "avx512"};

bool attention_cpu_has(int isa) {
#if defined(__x86_64__) && defined(__GNUC__)
  if (isa == kAvx2) return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
  return isa == kPlain || (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"));
#else
  return isa == kPlain;
#endif
}

IsaChoice g_attention_isa(kAttentionIsaNames, 3, attention_cpu_has);

}  // namespace

const char* attention_cpu_isa() { return g_attention_isa.name(); }
bool attention_cpu_force_isa(const char* name) { return g_attention_isa.force(name); }

Q3_VECTOR_CLONES
void attention_group_cpu(const float* q, int n_q, const KvPool& kv, int layer, int kv_head, const int32_t* block_table,
                         int pos, int head_dim, float scale, float* scores, float* out) {
  const int isa = head_dim % 16 == 0 ? g_attention_isa.current() : kPlain;
  if (isa == kAvx512)
    return attention_group_avx512(q, n_q, kv, layer, kv_head, block_table, pos, head_dim, scale, scores, out);
  if (isa == kAvx2)
    return attention_group_avx2(q, n_q, kv, layer, kv_head, block_table, pos, head_dim, scale, scores, out);
  const int bs = kv.block_size(), n = pos + 1;
  // K or V row j of this head: (head_dim) fp16 values.
  auto row = [&](bool v, int j) {
    const int32_t b = block_table[j / bs];
    return (v ? kv.v(b, layer) : kv.k(b, layer)) + ((size_t)kv_head * bs + j % bs) * head_dim;
  };
  // Each row widened to fp32 once, then used by every query head.
  thread_local std::vector<float> wide;
  wide.resize(head_dim);
  auto widen = [&](const uint16_t* h) {
    widen_f16(h, head_dim, wide.data());
    return (const float*)wide.data();
  };
  // In a decode step the rows come from DRAM (the weights streamed since evicted them), a block's 16 rows at a time:
  // the K pass asks for the K row kAttentionAhead rows on (into L1) and the V row as far on (into L2, read after the
  // softmax), which keeps more lines in flight than the hardware prefetcher does across the block jumps.
  // native/dev/cpu/attention_cold.cpp: 8 rows on takes 0.75-0.79 of the time (4: 0.84, 16: 0.83, 32: 0.85).
  const int row_bytes = head_dim * (int)sizeof(uint16_t);
  for (int j = -kAttentionAhead; j < n; j++) {  // each K row read once for the n_q query heads
    if (j + kAttentionAhead < n) {
      const char* kp = (const char*)row(false, j + kAttentionAhead);
      const char* vp = (const char*)row(true, j + kAttentionAhead);
      for (int o = 0; o < row_bytes; o += 64) __builtin_prefetch(kp + o, 0, 3), __builtin_prefetch(vp + o, 0, 2);
    }
    if (j < 0) continue;
    const float* k = widen(row(false, j));
    for (int g = 0; g < n_q; g++) {
      const float* qg = q + (size_t)g * head_dim;
      float acc[kLanes] = {};
      int d = 0;
      for (; d + kLanes <= head_dim; d += kLanes)
        for (int l = 0; l < kLanes; l++) acc[l] += qg[d + l] * k[d + l];
      float dot = 0;
      for (; d < head_dim; d++) dot += qg[d] * k[d];
      for (int l = 0; l < kLanes; l++) dot += acc[l];
      scores[(size_t)g * n + j] = dot * scale;
    }
  }
  for (int g = 0; g < n_q; g++) {  // softmax of each head's scores, folded into them
    float* sg = scores + (size_t)g * n;
    float max_score = -INFINITY;
    for (int j = 0; j < n; j++) max_score = sg[j] > max_score ? sg[j] : max_score;
    double sum = 0;
    for (int j = 0; j < n; j++) {
      sg[j] = exp_approx(sg[j] - max_score);
      sum += sg[j];
    }
    const float inv = (float)(1.0 / sum);
    for (int j = 0; j < n; j++) sg[j] *= inv;
  }
  for (int i = 0; i < n_q * head_dim; i++) out[i] = 0;
  for (int j = 0; j < n; j++) {  // each V row read once too
    const float* v = widen(row(true, j));
    for (int g = 0; g < n_q; g++) {
      const float p = scores[(size_t)g * n + j];
      float* o = out + (size_t)g * head_dim;
      for (int d = 0; d < head_dim; d++) o[d] += p * v[d];
    }
  }
}

bool attention_blocks_available(int head_dim, int block_size) {
  // the AVX-512 path scores 4 K rows at a time, the AVX2 path 2: a block of a multiple of 4 suits both
  return head_dim % 16 == 0 && block_size % 4 == 0 && g_attention_isa.current() != kPlain;
}

void attention_blocks_cpu(const float* q, int n_heads, int group, const KvPool& kv, int layer,
                          const int32_t* block_table, int b0, int b1, int pos, int head_dim, float scale, float* scores,
                          float* out, float* head_max, double* head_sum) {
  if (!attention_blocks_available(head_dim, kv.block_size()))
    throw std::logic_error("attention_blocks_cpu: no SIMD path for this head_dim and block size");
  if (g_attention_isa.current() == kAvx512)
    return attention_blocks_avx512(q, n_heads, group, kv, layer, block_table, b0, b1, pos, head_dim, scale, scores,
                                   out, head_max, head_sum);
  attention_blocks_avx2(q, n_heads, group, kv, layer, block_table, b0, b1, pos, head_dim, scale, scores, out,
                        head_max, head_sum);
}

// Per head: the parts' sums rescaled to the largest max (exp(max_p - max) each, in double) and divided by the
// rescaled total of their exp sums.
void attention_merge_cpu(int parts, int n_heads, int head_dim, const float* parts_out, const float* parts_max,
                         const double* parts_sum, float* out) {
  thread_local std::vector<float> weight;
  weight.resize(parts);
  for (int g = 0; g < n_heads; g++) {
    float top = -INFINITY;
    for (int p = 0; p < parts; p++) top = std::max(top, parts_max[(size_t)p * n_heads + g]);
    double total = 0;
    for (int p = 0; p < parts; p++) {
      const double w = std::exp((double)parts_max[(size_t)p * n_heads + g] - top);
      weight[p] = (float)w;
      total += w * parts_sum[(size_t)p * n_heads + g];
    }
    const float inv = (float)(1.0 / total);
    float* o = out + (size_t)g * head_dim;
    for (int i = 0; i < head_dim; i++) o[i] = 0;
    for (int p = 0; p < parts; p++) {
      const float w = weight[p] * inv;
      const float* src = parts_out + ((size_t)p * n_heads + g) * head_dim;
      for (int i = 0; i < head_dim; i++) o[i] += w * src[i];
    }
  }
}

}  // namespace q3
