// AVX2 tile kernels for the int4 AWQ matmul (layout in awq_cpu_kernels.h): each 64-byte weight word is two 256-bit
// halves of 8 columns; int16 activations times unpacked nibbles via vpmaddwd, exact int32 accumulation per block.
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "awq_cpu_kernels.h"

namespace q3::awq_cpu {
namespace {

// Software prefetch distance along the tile stream (see awq_cpu_avx512.cpp for why).
constexpr int kPrefetchBytes = 6144;

inline __m256i pair(const int16_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm256_set1_epi32(v);
}

// One 32-byte half word (8 columns x 8 k) against one row; hi collects the 16x-scaled pairs.
inline void half_dot(const uint8_t* wp, const int16_t* xk, __m256i& lo, __m256i& hi) {
  const __m256i m_lo = _mm256_set1_epi32(0x000F000F), m_hi = _mm256_set1_epi32(0x00F000F0);
  const __m256i v = _mm256_loadu_si256((const __m256i*)wp);
  const __m256i u = _mm256_srli_epi32(v, 8);
  lo = _mm256_add_epi32(lo, _mm256_madd_epi16(_mm256_and_si256(v, m_lo), pair(xk + 0)));
  hi = _mm256_add_epi32(hi, _mm256_madd_epi16(_mm256_and_si256(v, m_hi), pair(xk + 2)));
  lo = _mm256_add_epi32(lo, _mm256_madd_epi16(_mm256_and_si256(u, m_lo), pair(xk + 4)));
  hi = _mm256_add_epi32(hi, _mm256_madd_epi16(_mm256_and_si256(u, m_hi), pair(xk + 6)));
}

// out += s * xscale * (acc - z * sum(x_int)) for the 8 columns of one half.
inline __m256 fold(__m256 out, __m256i lo, __m256i hi, const uint8_t* rec, int half, float xscale, int32_t xsum) {
  const __m256i acc = _mm256_add_epi32(lo, _mm256_srai_epi32(hi, 4));  // exact: hi is a multiple of 16
  const __m256 s = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)(rec + 16 * half)));
  int64_t z8;
  std::memcpy(&z8, rec + 32 + 8 * half, 8);
  const __m256i z = _mm256_cvtepu8_epi32(_mm_cvtsi64_si128(z8));
  const __m256i d = _mm256_sub_epi32(acc, _mm256_mullo_epi32(z, _mm256_set1_epi32(xsum)));
  return _mm256_fmadd_ps(_mm256_cvtepi32_ps(d), _mm256_mul_ps(s, _mm256_set1_ps(xscale)), out);
}

void store_lanes(float* dst, __m256 a, __m256 b, int lanes) {
  if (lanes >= kTile) {
    _mm256_storeu_ps(dst, a);
    _mm256_storeu_ps(dst + 8, b);
    return;
  }
  alignas(32) float tmp[kTile];
  _mm256_store_ps(tmp, a);
  _mm256_store_ps(tmp + 8, b);
  std::memcpy(dst, tmp, sizeof(float) * lanes);
}

// Decode (M = 1): both halves in one pass so the weights are streamed exactly once.
void tile_one_row(const PackedView& w, const QuantizedRows& x, int t, float* y) {
  const int B = x.block, nb = w.K / B, nv = B / 8;
  const uint8_t* wp = w.tile(t);
  const uint8_t* meta = w.meta(t);
  __m256 out0 = _mm256_setzero_ps(), out1 = _mm256_setzero_ps();
  for (int b = 0; b < nb; b++) {
    const int16_t* xk = x.q + (size_t)b * B;
    __m256i lo0 = _mm256_setzero_si256(), hi0 = lo0, lo1 = lo0, hi1 = lo0;
    for (int j = 0; j < nv; j++, wp += kWordBytes, xk += 8) {
      _mm_prefetch((const char*)wp + kPrefetchBytes, _MM_HINT_T0);
      half_dot(wp, xk, lo0, hi0);
      half_dot(wp + 32, xk, lo1, hi1);
    }
    const uint8_t* rec = meta + (size_t)(b * B / w.group_size) * kMetaBytes;
    out0 = fold(out0, lo0, hi0, rec, 0, x.scale[b], x.sum[b]);
    out1 = fold(out1, lo1, hi1, rec, 1, x.scale[b], x.sum[b]);
  }
  store_lanes(y + (size_t)t * kTile, out0, out1, std::min(kTile, w.N - t * kTile));
}

// Prefill (M > 1): one half of the tile at a time, each unpacked half word reused by R rows (16 ymm registers only
// allow 2R accumulators plus temporaries for R = 4).
template <int R>
void half_rows(const PackedView& w, const QuantizedRows& x, int t, int half, int m0, float (*out)[kTile]) {
  const int K = w.K, B = x.block, nb = K / B, nv = B / 8;
  const __m256i m_lo = _mm256_set1_epi32(0x000F000F), m_hi = _mm256_set1_epi32(0x00F000F0);
  const uint8_t* wp = w.tile(t) + 32 * half;
  const uint8_t* meta = w.meta(t);
  for (int b = 0; b < nb; b++) {
    __m256i lo[R], hi[R];
    for (int r = 0; r < R; r++) lo[r] = hi[r] = _mm256_setzero_si256();
    for (int j = 0; j < nv; j++, wp += kWordBytes) {
      const __m256i v = _mm256_loadu_si256((const __m256i*)wp);
      const __m256i u = _mm256_srli_epi32(v, 8);
      const __m256i e0 = _mm256_and_si256(v, m_lo), e1 = _mm256_and_si256(v, m_hi);
      const __m256i e2 = _mm256_and_si256(u, m_lo), e3 = _mm256_and_si256(u, m_hi);
      const size_t k = (size_t)b * B + (size_t)j * 8;
      for (int r = 0; r < R; r++) {
        const int16_t* xk = x.q + (size_t)(m0 + r) * K + k;
        lo[r] = _mm256_add_epi32(lo[r], _mm256_madd_epi16(e0, pair(xk + 0)));
        hi[r] = _mm256_add_epi32(hi[r], _mm256_madd_epi16(e1, pair(xk + 2)));
        lo[r] = _mm256_add_epi32(lo[r], _mm256_madd_epi16(e2, pair(xk + 4)));
        hi[r] = _mm256_add_epi32(hi[r], _mm256_madd_epi16(e3, pair(xk + 6)));
      }
    }
    const uint8_t* rec = meta + (size_t)(b * B / w.group_size) * kMetaBytes;
    for (int r = 0; r < R; r++) {
      const size_t i = (size_t)(m0 + r) * nb + b;
      float* o = out[r] + 8 * half;
      _mm256_storeu_ps(o, fold(_mm256_loadu_ps(o), lo[r], hi[r], rec, half, x.scale[i], x.sum[i]));
    }
  }
}

constexpr int kRows = 4;

template <int R>
void tile_rows(const PackedView& w, const QuantizedRows& x, int t, int m0, float* y) {
  float out[R][kTile] = {};
  half_rows<R>(w, x, t, 0, m0, out);
  half_rows<R>(w, x, t, 1, m0, out);
  const int lanes = std::min(kTile, w.N - t * kTile);
  for (int r = 0; r < R; r++)
    std::memcpy(y + (size_t)(m0 + r) * w.N + (size_t)t * kTile, out[r], sizeof(float) * lanes);
}

}  // namespace

void tiles_avx2(const PackedView& w, const QuantizedRows& x, int t0, int t1, float* y) {
  for (int t = t0; t < t1; t++) {
    if (x.M == 1) {
      tile_one_row(w, x, t, y);
      continue;
    }
    int m = 0;
    for (; m + kRows <= x.M; m += kRows) tile_rows<kRows>(w, x, t, m, y);
    switch (x.M - m) {
      case 1: tile_rows<1>(w, x, t, m, y); break;
      case 2: tile_rows<2>(w, x, t, m, y); break;
      case 3: tile_rows<3>(w, x, t, m, y); break;
      default: break;
    }
  }
}

}  // namespace q3::awq_cpu
