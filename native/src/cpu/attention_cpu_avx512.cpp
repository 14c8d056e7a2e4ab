// The decode attention of ops_cpu.cpp's attention_group_cpu in AVX-512, for head_dim a multiple of 16 (Qwen3's 128).
// The plain loops there compile to scalar code (their order-bound sums do not vectorise). Same reads, same order of
// rows (the K pass asks for them a block ahead, attention_cpu_simd.h); the sums run in 16-lane registers, so results
// differ from the plain loops' in the last bits only. On a 2-core Zen 4 a decode step's attention took 0.86x the plain
// loops' time at 112 and at 4096 positions (bench/results/cpu-attention-avx512.md); with the V pass's sums in registers
// at Qwen3's shape (v_pass_4x128), 0.55-0.59x of that at 1023 positions and 0.79-0.87x at 4095
// (cpu-attention-vreg.md). At long contexts the K/V reads' pattern (pieces per block and head, far apart) is what holds
// it back (cpu-attention-pattern.md). The rows are fp16 (kv_cache.h), widened 16 at a time by vcvtph2ps; against fp32
// rows a step's attention took 0.71-0.77x the time at 1023 and 4095 positions (cpu-kv-fp16.md). The K pass walks the
// block table a block at a time and scores 4 rows against the query heads at once (k_pass_blocks): each row is widened
// once instead of once per head, and the 16 dot products' lanes are summed together; one KV head's attention on cached
// rows took 26-29 ns per row against 41-45 (bench/results/cpu-attention-rows4.md).
// GCC 12 reports its own _mm512_undefined_* placeholders (inside the reduce intrinsics) as maybe-uninitialized.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

#include <algorithm>
#include <cmath>

#include "attention_cpu_simd.h"

namespace q3 {
namespace {

// ops_cpu.cpp's exp_approx, 16 lanes at a time: the same clamps, reduction and degree-6 polynomial.
inline __m512 exp_approx16(__m512 x) {
  const __mmask16 overflow = _mm512_cmp_ps_mask(x, _mm512_set1_ps(88.72f), _CMP_GT_OQ);
  x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-87.0f)), _mm512_set1_ps(88.0f));
  const __m512 n = _mm512_roundscale_ps(_mm512_fmadd_ps(x, _mm512_set1_ps(1.44269504f), _mm512_set1_ps(0.5f)),
                                        _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
  const __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.428606765330187e-06f),
                                    _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), x));
  __m512 p = _mm512_set1_ps(1.0f / 720);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  const __m512i bits = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
  return _mm512_mask_blend_ps(overflow, _mm512_mul_ps(p, _mm512_castsi512_ps(bits)), _mm512_set1_ps(INFINITY));
}

// 16 fp16 K/V values (kv_cache.h) as fp32: exact, one instruction.
inline __m512 widen16(const uint16_t* h) { return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i*)h)); }

inline __mmask16 tail_mask(int left) { return left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1); }

// exp(s - max) of n scores in place, their max and their sum in double: the softmax before its division.
ExpSums exp_shifted(float* s, int n) {
  __m512 mx = _mm512_set1_ps(-INFINITY);
  for (int j = 0; j < n; j += 16)
    mx = _mm512_max_ps(mx, _mm512_mask_loadu_ps(_mm512_set1_ps(-INFINITY), tail_mask(n - j), s + j));
  const float top = _mm512_reduce_max_ps(mx);
  const __m512 max_score = _mm512_set1_ps(top);
  __m512d sum_lo = _mm512_setzero_pd(), sum_hi = _mm512_setzero_pd();
  for (int j = 0; j < n; j += 16) {
    const __mmask16 m = tail_mask(n - j);
    const __m512 e = _mm512_maskz_mov_ps(m, exp_approx16(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, s + j), max_score)));
    _mm512_mask_storeu_ps(s + j, m, e);
    sum_lo = _mm512_add_pd(sum_lo, _mm512_cvtps_pd(_mm512_castps512_ps256(e)));
    sum_hi = _mm512_add_pd(sum_hi, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(e), 1))));
  }
  return {top, _mm512_reduce_add_pd(_mm512_add_pd(sum_lo, sum_hi))};
}

// n values times x, in place.
void scale_in_place(float* s, int n, float x) {
  const __m512 v = _mm512_set1_ps(x);
  for (int j = 0; j < n; j += 16) {
    const __mmask16 m = tail_mask(n - j);
    _mm512_mask_storeu_ps(s + j, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, s + j), v));
  }
}

// Softmax of n scores in place: max, exp of the differences, their sum in double, each times 1 / sum.
void softmax(float* s, int n) { scale_in_place(s, n, (float)(1.0 / exp_shifted(s, n).sum)); }

// The V pass at Qwen3's shape (4 query heads per KV head, head_dim 128) with the sums in registers: a block of 16
// rows at a time, for each half of head_dim the 4 heads' 4 x 16 lanes held across the 16 rows (the rows' second
// halves are read from L1), then stored to out, which the next block's loads take back. The general loop keeps them in
// memory, where each row's add waits for the last one's store. Rows 0..n-1; head g's weight of row j is
// scores[g * stride + j]; out starts from zero, or from what it holds (accumulate).
template <class Row>
void v_pass_4x128(const float* scores, int stride, int n, const Row& row, float* out, bool accumulate) {
  for (int j0 = 0; j0 < n; j0 += 16) {
    const int j1 = std::min(n, j0 + 16);
    const bool from_out = accumulate || j0 > 0;
    for (int h = 0; h < 2; h++) {
      __m512 acc[4][4];
      for (int g = 0; g < 4; g++)
        for (int c = 0; c < 4; c++)
          acc[g][c] = from_out ? _mm512_loadu_ps(out + (size_t)g * 128 + 64 * h + 16 * c) : _mm512_setzero_ps();
      for (int j = j0; j < j1; j++) {
        const uint16_t* v = row(true, j) + 64 * h;
        const __m512 v0 = widen16(v), v1 = widen16(v + 16), v2 = widen16(v + 32), v3 = widen16(v + 48);
        for (int g = 0; g < 4; g++) {
          const __m512 p = _mm512_set1_ps(scores[(size_t)g * stride + j]);
          acc[g][0] = _mm512_fmadd_ps(p, v0, acc[g][0]);
          acc[g][1] = _mm512_fmadd_ps(p, v1, acc[g][1]);
          acc[g][2] = _mm512_fmadd_ps(p, v2, acc[g][2]);
          acc[g][3] = _mm512_fmadd_ps(p, v3, acc[g][3]);
        }
      }
      for (int g = 0; g < 4; g++)
        for (int c = 0; c < 4; c++) _mm512_storeu_ps(out + (size_t)g * 128 + 64 * h + 16 * c, acc[g][c]);
    }
  }
  if (n == 0 && !accumulate)
    for (int i = 0; i < 4 * 128; i += 16) _mm512_storeu_ps(out + i, _mm512_setzero_ps());
}

// Lane i of the result: the sum of a[i]'s 16 lanes. 15 adds and 30 shuffles for the 16 sums, where one
// _mm512_reduce_add_ps per vector takes 4 adds and 4 shuffles (and its steps wait on each other).
inline __m512 sums16(const __m512* a) {
  __m512 t[8], u[4], w[2];
  for (int i = 0; i < 8; i++)  // per 128-bit lane: (a0 + a2, b0 + b2, a1 + a3, b1 + b3) of a = a[2i], b = a[2i+1]
    t[i] = _mm512_add_ps(_mm512_unpacklo_ps(a[2 * i], a[2 * i + 1]), _mm512_unpackhi_ps(a[2 * i], a[2 * i + 1]));
  for (int i = 0; i < 4; i++) {  // per 128-bit lane: one partial sum each of 4 sources
    const __m512d x = _mm512_castps_pd(t[2 * i]), y = _mm512_castps_pd(t[2 * i + 1]);
    u[i] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(x, y)), _mm512_castpd_ps(_mm512_unpackhi_pd(x, y)));
  }
  for (int i = 0; i < 2; i++)  // 128-bit lanes (0 + 1, 2 + 3) of u[2i], then of u[2i+1]
    w[i] = _mm512_add_ps(_mm512_shuffle_f32x4(u[2 * i], u[2 * i + 1], 0x88),
                         _mm512_shuffle_f32x4(u[2 * i], u[2 * i + 1], 0xDD));
  return _mm512_add_ps(_mm512_shuffle_f32x4(w[0], w[1], 0x88), _mm512_shuffle_f32x4(w[0], w[1], 0xDD));
}

// Scores of NQ (1-4) query heads against 4 consecutive K rows (head_dim D, a multiple of 16): each row widened once
// for all the heads, the 16 dot products' lanes summed together (sums16). s[g] gets head g's 4 scores (times scale),
// the first `rows` of them.
template <int NQ>
inline void scores_4rows(const float* q, int D, const uint16_t* k, __m512 scale, int rows, float* const* s) {
  __m512 acc[16];
  for (auto& a : acc) a = _mm512_setzero_ps();
  int c = 0;
  // D >= 16 (a multiple of 16). As a loop that might not run, GCC 12 zeroed a copy of acc on the stack on every call
  // and summed from there; as one that runs at least once, acc stays in registers.
  do {
    const __m512 k0 = widen16(k + c), k1 = widen16(k + D + c), k2 = widen16(k + 2 * D + c),
                 k3 = widen16(k + 3 * D + c);
    for (int g = 0; g < NQ; g++) {
      const __m512 qg = _mm512_loadu_ps(q + (size_t)g * D + c);
      acc[4 * g] = _mm512_fmadd_ps(qg, k0, acc[4 * g]);
      acc[4 * g + 1] = _mm512_fmadd_ps(qg, k1, acc[4 * g + 1]);
      acc[4 * g + 2] = _mm512_fmadd_ps(qg, k2, acc[4 * g + 2]);
      acc[4 * g + 3] = _mm512_fmadd_ps(qg, k3, acc[4 * g + 3]);
    }
    c += 16;
  } while (c < D);
  alignas(64) float sums[16];
  _mm512_store_ps(sums, _mm512_mul_ps(sums16(acc), scale));
  const __mmask8 m = (__mmask8)((1u << rows) - 1);
  for (int g = 0; g < NQ; g++) _mm_mask_storeu_ps(s[g], m, _mm_load_ps(sums + 4 * g));
}

// The vector operations attention_group_rows (attention_cpu_simd.h) runs on: 16 lanes.
struct Ops {
  using Vec = __m512;
  static constexpr int kLanes = 16;
  static Vec load(const float* p) { return _mm512_loadu_ps(p); }
  static Vec widen(const uint16_t* h) { return widen16(h); }
  static Vec mul(Vec a, Vec b) { return _mm512_mul_ps(a, b); }
  static Vec fmadd(Vec a, Vec b, Vec c) { return _mm512_fmadd_ps(a, b, c); }
  static float sum(Vec v) { return _mm512_reduce_add_ps(v); }
  static constexpr int kRows = 4;  // K rows score_rows takes at once
  template <int NQ>
  static void score_rows(const float* q, int D, const uint16_t* k, float scale, int rows, float* const* s) {
    scores_4rows<NQ>(q, D, k, _mm512_set1_ps(scale), rows, s);
  }
  static Vec set1(float x) { return _mm512_set1_ps(x); }
  static Vec zero() { return _mm512_setzero_ps(); }
  static void store(float* p, Vec v) { _mm512_storeu_ps(p, v); }
  static void softmax(float* s, int n) { q3::softmax(s, n); }
  static ExpSums exp_shifted(float* s, int n) { return q3::exp_shifted(s, n); }
  template <class Row>
  static void v_pass_4x128(const float* scores, int stride, int n, const Row& row, float* out, bool accumulate) {
    q3::v_pass_4x128(scores, stride, n, row, out, accumulate);
  }
};

}  // namespace

void attention_group_avx512(const float* q, int n_q, const KvPool& kv, int layer, int kv_head,
                            const int32_t* block_table, int pos, int head_dim, float scale, float* scores, float* out) {
  attention_group_rows<Ops>(q, n_q, kv, layer, kv_head, block_table, pos, head_dim, scale, scores, out);
}

void attention_blocks_avx512(const float* q, int n_heads, int group, const KvPool& kv, int layer,
                          const int32_t* block_table, int b0, int b1, int pos, int head_dim, float scale,
                          float* scores, float* out, float* head_max, double* head_sum) {
  attention_blocks<Ops>(q, n_heads, group, kv, layer, block_table, b0, b1, pos + 1, head_dim, scale, scores, out,
                        head_max, head_sum);
}

}  // namespace q3
