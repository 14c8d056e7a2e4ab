// AVX2 tile kernels for the int4 AWQ matmul (layout in awq_cpu_kernels.h): each 64-byte weight word is two 256-bit
// halves of 8 columns; unsigned weight bytes times the two signed activation bytes via vpmaddubsw + vpmaddwd, exact
// int32 accumulation per block.
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "awq_cpu_kernels.h"

namespace q3::awq_cpu {
namespace {

// Software prefetch distance along the tile stream (see awq_cpu_avx512.cpp for why).
constexpr int kPrefetchBytes = 6144;

// Four activation bytes (k .. k+3) in every 32-bit lane.
inline __m256i quad(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm256_set1_epi32(v);
}

// acc += four unsigned weight bytes . four signed activation bytes per lane (int16 pairs: at most 2 * 15 * 128, so
// vpmaddubsw never saturates on these nibble weights).
inline __m256i dot4(__m256i acc, __m256i w, __m256i x) {
  return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(w, x), _mm256_set1_epi16(1)));
}

// One 32-byte half word (8 columns x 8 k) unpacked to the byte quadruples (q0..q3) and (q4..q7).
inline void unpack(const uint8_t* wp, __m256i& w0, __m256i& w1) {
  const __m256i mask = _mm256_set1_epi32(0x0F0F0F0F);
  const __m256i v = _mm256_loadu_si256((const __m256i*)wp);
  w0 = _mm256_and_si256(v, mask);
  w1 = _mm256_and_si256(_mm256_srli_epi32(v, 4), mask);
}

// One half word against one row: lo / hi collect the products with the low / high activation bytes.
inline void half_dot(const uint8_t* wp, const int8_t* xl, const int8_t* xh, __m256i& lo, __m256i& hi) {
  __m256i w0, w1;
  unpack(wp, w0, w1);
  lo = dot4(dot4(lo, w0, quad(xl)), w1, quad(xl + 4));
  hi = dot4(dot4(hi, w0, quad(xh)), w1, quad(xh + 4));
}

// out += s * xscale * (acc - z * sum(x_int)) for the 8 columns of one half.
inline __m256 fold(__m256 out, __m256i lo, __m256i hi, const uint8_t* rec, int half, float xscale, int32_t xsum) {
  const __m256i acc = _mm256_add_epi32(_mm256_slli_epi32(hi, 8), lo);  // q = 256 hi + lo
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
    const int8_t* xl = x.lo + (size_t)b * B;
    const int8_t* xh = x.hi + (size_t)b * B;
    __m256i lo0 = _mm256_setzero_si256(), hi0 = lo0, lo1 = lo0, hi1 = lo0;
    for (int j = 0; j < nv; j++, wp += kWordBytes, xl += 8, xh += 8) {
      _mm_prefetch((const char*)wp + kPrefetchBytes, _MM_HINT_T0);
      half_dot(wp, xl, xh, lo0, hi0);
      half_dot(wp + 32, xl, xh, lo1, hi1);
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
  const uint8_t* wp = w.tile(t) + 32 * half;
  const uint8_t* meta = w.meta(t);
  for (int b = 0; b < nb; b++) {
    __m256i lo[R], hi[R];
    for (int r = 0; r < R; r++) lo[r] = hi[r] = _mm256_setzero_si256();
    for (int j = 0; j < nv; j++, wp += kWordBytes) {
      __m256i w0, w1;
      unpack(wp, w0, w1);
      const size_t k = (size_t)b * B + (size_t)j * 8;
      for (int r = 0; r < R; r++) {
        const size_t at = (size_t)(m0 + r) * K + k;
        lo[r] = dot4(dot4(lo[r], w0, quad(x.lo + at)), w1, quad(x.lo + at + 4));
        hi[r] = dot4(dot4(hi[r], w0, quad(x.hi + at)), w1, quad(x.hi + at + 4));
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
