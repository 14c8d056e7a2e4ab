// The decode attention of ops_cpu.cpp's attention_group_cpu in AVX2 + FMA + F16C, for head_dim a multiple of 16 on a
// CPU without AVX-512 (most laptops and desktops): the plain loops there compile to scalar code. The same reads in
// the same order as the AVX-512 kernel (attention_cpu_avx512.cpp) with the same prefetch; the sums run in 8 lanes, so
// results differ from the other paths' in the last bits only. At Qwen3's shape (4 query heads per KV head, head_dim
// 128) the V pass keeps its sums in registers a 16-wide slice of head_dim at a time, 16 rows at a time (16 ymm
// registers do not hold the AVX-512 kernel's half of head_dim). The K pass scores 2 rows at a time against the query
// heads, each row widened once for all of them: 39-45 ns per K/V row on cached rows against 60 before
// (bench/results/cpu-attention-rows4.md).
#include <immintrin.h>

#include <algorithm>
#include <cmath>

#include "attention_cpu_simd.h"

namespace q3 {
namespace {

// ops_cpu.cpp's exp_approx, 8 lanes at a time: the same clamps, reduction and degree-6 polynomial.
inline __m256 exp_approx8(__m256 x) {
  const __m256 overflow = _mm256_cmp_ps(x, _mm256_set1_ps(88.72f), _CMP_GT_OQ);
  x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.0f)), _mm256_set1_ps(88.0f));
  const __m256 n = _mm256_floor_ps(_mm256_fmadd_ps(x, _mm256_set1_ps(1.44269504f), _mm256_set1_ps(0.5f)));
  const __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(1.428606765330187e-06f),
                                    _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693145751953125f), x));
  __m256 p = _mm256_set1_ps(1.0f / 720);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  const __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_blendv_ps(_mm256_mul_ps(p, _mm256_castsi256_ps(bits)), _mm256_set1_ps(INFINITY), overflow);
}

// 8 fp16 K/V values (kv_cache.h) as fp32: exact.
inline __m256 widen8(const uint16_t* h) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)h)); }

inline float sum8(__m256 v) {
  const __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 t = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(t, _mm_movehdup_ps(t)));
}

inline float max8(__m256 v) {
  const __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 t = _mm_max_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_max_ss(t, _mm_movehdup_ps(t)));
}

// exp(s - max) of n scores in place, their max and their sum in double: the softmax before its division. Whole
// groups of 8 in lanes, the rest one at a time.
ExpSums exp_shifted(float* s, int n) {
  const int n8 = n / 8 * 8;
  __m256 mx = _mm256_set1_ps(-INFINITY);
  for (int j = 0; j < n8; j += 8) mx = _mm256_max_ps(mx, _mm256_loadu_ps(s + j));
  float max_score = max8(mx);
  for (int j = n8; j < n; j++) max_score = std::max(max_score, s[j]);
  const __m256 m = _mm256_set1_ps(max_score);
  __m256d sum_lo = _mm256_setzero_pd(), sum_hi = _mm256_setzero_pd();
  for (int j = 0; j < n8; j += 8) {
    const __m256 e = exp_approx8(_mm256_sub_ps(_mm256_loadu_ps(s + j), m));
    _mm256_storeu_ps(s + j, e);
    sum_lo = _mm256_add_pd(sum_lo, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
    sum_hi = _mm256_add_pd(sum_hi, _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
  }
  double lanes[4];
  _mm256_storeu_pd(lanes, _mm256_add_pd(sum_lo, sum_hi));
  double sum = (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
  for (int j = n8; j < n; j++) {  // the tail through the same lanes' arithmetic, one value in lane 0
    const float e = _mm256_cvtss_f32(exp_approx8(_mm256_set1_ps(s[j] - max_score)));
    s[j] = e;
    sum += e;
  }
  return {max_score, sum};
}

// n values times x, in place.
void scale_in_place(float* s, int n, float x) {
  const int n8 = n / 8 * 8;
  const __m256 v = _mm256_set1_ps(x);
  for (int j = 0; j < n8; j += 8) _mm256_storeu_ps(s + j, _mm256_mul_ps(_mm256_loadu_ps(s + j), v));
  for (int j = n8; j < n; j++) s[j] *= x;
}

// Softmax of n scores in place: max, exp of the differences, their sum in double, each times 1 / sum.
void softmax(float* s, int n) { scale_in_place(s, n, (float)(1.0 / exp_shifted(s, n).sum)); }

// The V pass at Qwen3's shape (4 query heads per KV head, head_dim 128) with the sums in registers: 16 rows at a
// time, for each 16-wide slice of head_dim the 4 heads' 2 x 8 lanes (8 ymm) held across the rows, which the first
// slice reads from DRAM and the other 7 from L1. Rows 0..n-1; head g's weight of row j is scores[g * stride + j];
// out starts from zero, or from what it holds (accumulate).
template <class Row>
void v_pass_4x128(const float* scores, int stride, int n, const Row& row, float* out, bool accumulate) {
  if (!accumulate)
    for (int i = 0; i < 4 * 128; i += 8) _mm256_storeu_ps(out + i, _mm256_setzero_ps());
  for (int j0 = 0; j0 < n; j0 += 16) {
    const int j1 = std::min(n, j0 + 16);
    for (int c = 0; c < 128; c += 16) {
      __m256 acc[4][2];
      for (int g = 0; g < 4; g++)
        for (int h = 0; h < 2; h++) acc[g][h] = _mm256_loadu_ps(out + (size_t)g * 128 + c + 8 * h);
      for (int j = j0; j < j1; j++) {
        const uint16_t* v = row(true, j) + c;
        const __m256 v0 = widen8(v), v1 = widen8(v + 8);
        for (int g = 0; g < 4; g++) {
          const __m256 p = _mm256_set1_ps(scores[(size_t)g * stride + j]);
          acc[g][0] = _mm256_fmadd_ps(p, v0, acc[g][0]);
          acc[g][1] = _mm256_fmadd_ps(p, v1, acc[g][1]);
        }
      }
      for (int g = 0; g < 4; g++)
        for (int h = 0; h < 2; h++) _mm256_storeu_ps(out + (size_t)g * 128 + c + 8 * h, acc[g][h]);
    }
  }
}

// Lane i of the result: the sum of a[i]'s 8 lanes (3 rounds of horizontal adds and one cross-half add for the 8).
inline __m256 sums8(const __m256* a) {
  const __m256 u0 = _mm256_hadd_ps(_mm256_hadd_ps(a[0], a[1]), _mm256_hadd_ps(a[2], a[3]));
  const __m256 u1 = _mm256_hadd_ps(_mm256_hadd_ps(a[4], a[5]), _mm256_hadd_ps(a[6], a[7]));
  return _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20), _mm256_permute2f128_ps(u0, u1, 0x31));
}

// Scores of NQ (1-4) query heads against 2 consecutive K rows (head_dim D, a multiple of 16): each row widened once
// for all the heads, the 8 dot products' lanes summed together (sums8). 2 rows, not the AVX-512 kernel's 4: 16 ymm
// registers hold 8 sums, 2 rows and a query slice. s[g] gets head g's 2 scores (times scale), the first `rows`.
template <int NQ>
inline void scores_2rows(const float* q, int D, const uint16_t* k, float scale, int rows, float* const* s) {
  __m256 acc[8];
  for (auto& a : acc) a = _mm256_setzero_ps();
  for (int c = 0; c < D; c += 8) {
    const __m256 k0 = widen8(k + c), k1 = widen8(k + D + c);
    for (int g = 0; g < NQ; g++) {
      const __m256 qg = _mm256_loadu_ps(q + (size_t)g * D + c);
      acc[2 * g] = _mm256_fmadd_ps(qg, k0, acc[2 * g]);
      acc[2 * g + 1] = _mm256_fmadd_ps(qg, k1, acc[2 * g + 1]);
    }
  }
  alignas(32) float sums[8];
  _mm256_store_ps(sums, _mm256_mul_ps(sums8(acc), _mm256_set1_ps(scale)));
  for (int g = 0; g < NQ; g++)
    for (int r = 0; r < rows; r++) s[g][r] = sums[2 * g + r];
}

// The vector operations attention_group_rows (attention_cpu_simd.h) runs on: 8 lanes.
struct Ops {
  using Vec = __m256;
  static constexpr int kLanes = 8;
  static Vec load(const float* p) { return _mm256_loadu_ps(p); }
  static Vec widen(const uint16_t* h) { return widen8(h); }
  static Vec mul(Vec a, Vec b) { return _mm256_mul_ps(a, b); }
  static Vec fmadd(Vec a, Vec b, Vec c) { return _mm256_fmadd_ps(a, b, c); }
  static float sum(Vec v) { return sum8(v); }
  static constexpr int kRows = 2;  // K rows score_rows takes at once
  template <int NQ>
  static void score_rows(const float* q, int D, const uint16_t* k, float scale, int rows, float* const* s) {
    scores_2rows<NQ>(q, D, k, scale, rows, s);
  }
  static Vec set1(float x) { return _mm256_set1_ps(x); }
  static Vec zero() { return _mm256_setzero_ps(); }
  static void store(float* p, Vec v) { _mm256_storeu_ps(p, v); }
  static void softmax(float* s, int n) { q3::softmax(s, n); }
  static ExpSums exp_shifted(float* s, int n) { return q3::exp_shifted(s, n); }
  template <class Row>
  static void v_pass_4x128(const float* scores, int stride, int n, const Row& row, float* out, bool accumulate) {
    q3::v_pass_4x128(scores, stride, n, row, out, accumulate);
  }
};

}  // namespace

void attention_group_avx2(const float* q, int n_q, const KvPool& kv, int layer, int kv_head, const int32_t* block_table,
                          int pos, int head_dim, float scale, float* scores, float* out) {
  attention_group_rows<Ops>(q, n_q, kv, layer, kv_head, block_table, pos, head_dim, scale, scores, out);
}

void attention_blocks_avx2(const float* q, int n_heads, int group, const KvPool& kv, int layer,
                          const int32_t* block_table, int b0, int b1, int pos, int head_dim, float scale,
                          float* scores, float* out, float* head_max, double* head_sum) {
  attention_blocks<Ops>(q, n_heads, group, kv, layer, block_table, b0, b1, pos + 1, head_dim, scale, scores, out,
                        head_max, head_sum);
}

}  // namespace q3
