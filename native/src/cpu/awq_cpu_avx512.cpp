// AVX-512 tile kernels for the int4 AWQ matmul (layout in awq_cpu_kernels.h): int16 activations times unpacked
// nibbles, accumulated exactly in int32 by vpdpwssd (AVX512-VNNI) or vpmaddwd + vpaddd (AVX512BW).
// GCC 12 reports its own _mm512_undefined_* placeholders as maybe-uninitialized once inlined at -O3: a false positive.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

#include <cstring>

#include "awq_cpu_kernels.h"

namespace q3::awq_cpu {
namespace {

// Software prefetch distance along the tile stream. One stream per thread is too little for the hardware
// prefetcher to keep DRAM busy while the core is also unpacking; measured on Sapphire Rapids, prefetching 4-8 KiB
// ahead raised single-thread GEMV from ~8 to ~13 GB/s. Prefetches past the end of the matrix are harmless.
constexpr int kPrefetchBytes = 6144;

template <bool VNNI>
inline __m512i dot_pairs(__m512i acc, __m512i w, __m512i x) {
  if constexpr (VNNI) {
    return _mm512_dpwssd_epi32(acc, w, x);
  } else {
    return _mm512_add_epi32(acc, _mm512_madd_epi16(w, x));
  }
}

// Activation pair (x[k], x[k+1]) in every 32-bit lane.
inline __m512i pair(const int16_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm512_set1_epi32(v);
}

// v >> 8 in every 32-bit lane, as a byte shuffle: vpshufb issues on port 5, leaving port 0 (which vector shifts
// share with vpdpwssd) to the dot products.
inline __m512i shift8(__m512i v) {
  const __m512i ctrl = _mm512_set4_epi32((int)0x800F0E0D, 0x800B0A09, 0x80070605, 0x80030201);
  return _mm512_shuffle_epi8(v, ctrl);
}

// One 64-byte weight word (16 columns x 8 k) against one row: lo gets the plain pairs, hi the 16x-scaled ones.
template <bool VNNI>
inline void word_dot(const uint8_t* wp, const int16_t* xk, __m512i& lo, __m512i& hi) {
  const __m512i m_lo = _mm512_set1_epi32(0x000F000F), m_hi = _mm512_set1_epi32(0x00F000F0);
  const __m512i v = _mm512_loadu_si512(wp);
  const __m512i u = shift8(v);
  lo = dot_pairs<VNNI>(lo, _mm512_and_si512(v, m_lo), pair(xk + 0));
  hi = dot_pairs<VNNI>(hi, _mm512_and_si512(v, m_hi), pair(xk + 2));
  lo = dot_pairs<VNNI>(lo, _mm512_and_si512(u, m_lo), pair(xk + 4));
  hi = dot_pairs<VNNI>(hi, _mm512_and_si512(u, m_hi), pair(xk + 6));
}

// y += s * xscale * (acc - z * sum(x_int)): zero point and both scales applied once per block.
inline __m512 fold(__m512 out, __m512i acc, const uint8_t* rec, float xscale, int32_t xsum) {
  const __m512 s = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i*)rec));
  const __m512i z = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i*)(rec + 32)));
  const __m512i d = _mm512_sub_epi32(acc, _mm512_mullo_epi32(z, _mm512_set1_epi32(xsum)));
  return _mm512_fmadd_ps(_mm512_cvtepi32_ps(d), _mm512_mul_ps(s, _mm512_set1_ps(xscale)), out);
}

inline __mmask16 lane_mask(const PackedView& w, int t) {
  const int lanes = w.N - t * kTile;
  return lanes >= kTile ? (__mmask16)0xFFFF : (__mmask16)((1u << lanes) - 1);
}

// Decode (M = 1) over T adjacent tiles at once, unrolled U words deep along k. Memory-bound, so the goals are few
// instructions per weight word and enough independent vpdpwssd chains (T x U) that latency never stalls the stream:
// each activation broadcast feeds T weight words, and the T tile streams plus a software prefetch keep DRAM busy.
template <bool VNNI, int T, int U>
void tiles_one_row(const PackedView& w, const QuantizedRows& x, int t, float* y) {
  const int B = x.block, nb = w.K / B, nv = B / 8;
  const uint8_t* wp[T];
  __m512 out[T];
  for (int i = 0; i < T; i++) wp[i] = w.tile(t + i), out[i] = _mm512_setzero_ps();
  for (int b = 0; b < nb; b++) {
    const int16_t* xk = x.q + (size_t)b * B;
    __m512i lo[T][U], hi[T][U];
    for (int i = 0; i < T; i++)
      for (int u = 0; u < U; u++) lo[i][u] = hi[i][u] = _mm512_setzero_si512();
    int j = 0;
    for (; j + U <= nv; j += U, xk += 8 * U) {
      for (int i = 0; i < T; i++)
        for (int u = 0; u < U; u++) _mm_prefetch((const char*)wp[i] + kPrefetchBytes + u * 64, _MM_HINT_T0);
      for (int u = 0; u < U; u++)
        for (int i = 0; i < T; i++) word_dot<VNNI>(wp[i] + u * kWordBytes, xk + 8 * u, lo[i][u], hi[i][u]);
      for (int i = 0; i < T; i++) wp[i] += U * kWordBytes;
    }
    for (; j < nv; j++, xk += 8) {
      for (int i = 0; i < T; i++) {
        word_dot<VNNI>(wp[i], xk, lo[i][0], hi[i][0]);
        wp[i] += kWordBytes;
      }
    }
    const size_t g = (size_t)(b * B / w.group_size) * kMetaBytes;
    for (int i = 0; i < T; i++) {
      __m512i l = lo[i][0], h = hi[i][0];
      for (int u = 1; u < U; u++) l = _mm512_add_epi32(l, lo[i][u]), h = _mm512_add_epi32(h, hi[i][u]);
      const __m512i acc = _mm512_add_epi32(l, _mm512_srai_epi32(h, 4));  // exact: h is a multiple of 16
      out[i] = fold(out[i], acc, w.meta(t + i) + g, x.scale[b], x.sum[b]);
    }
  }
  for (int i = 0; i < T; i++) _mm512_mask_storeu_ps(y + (size_t)(t + i) * kTile, lane_mask(w, t + i), out[i]);
}

// Prefill (M > 1): each weight word is loaded and unpacked once and used for R rows.
template <bool VNNI, int R>
void tile_rows(const PackedView& w, const QuantizedRows& x, int t, int m0, float* y) {
  const int K = w.K, B = x.block, nb = K / B, nv = B / 8;
  const __m512i m_lo = _mm512_set1_epi32(0x000F000F), m_hi = _mm512_set1_epi32(0x00F000F0);
  const uint8_t* wp = w.tile(t);
  const uint8_t* meta = w.meta(t);
  __m512 out[R];
  for (int r = 0; r < R; r++) out[r] = _mm512_setzero_ps();
  for (int b = 0; b < nb; b++) {
    __m512i lo[R], hi[R];
    for (int r = 0; r < R; r++) lo[r] = hi[r] = _mm512_setzero_si512();
    for (int j = 0; j < nv; j++, wp += kWordBytes) {
      _mm_prefetch((const char*)wp + kPrefetchBytes, _MM_HINT_T0);
      const __m512i v = _mm512_loadu_si512(wp);
      const __m512i u = shift8(v);
      const __m512i e0 = _mm512_and_si512(v, m_lo), e1 = _mm512_and_si512(v, m_hi);
      const __m512i e2 = _mm512_and_si512(u, m_lo), e3 = _mm512_and_si512(u, m_hi);
      const size_t k = (size_t)b * B + (size_t)j * 8;
      for (int r = 0; r < R; r++) {
        const int16_t* xk = x.q + (size_t)(m0 + r) * K + k;
        lo[r] = dot_pairs<VNNI>(lo[r], e0, pair(xk + 0));
        hi[r] = dot_pairs<VNNI>(hi[r], e1, pair(xk + 2));
        lo[r] = dot_pairs<VNNI>(lo[r], e2, pair(xk + 4));
        hi[r] = dot_pairs<VNNI>(hi[r], e3, pair(xk + 6));
      }
    }
    const uint8_t* rec = meta + (size_t)(b * B / w.group_size) * kMetaBytes;
    for (int r = 0; r < R; r++) {
      const size_t i = (size_t)(m0 + r) * nb + b;
      out[r] = fold(out[r], _mm512_add_epi32(lo[r], _mm512_srai_epi32(hi[r], 4)), rec, x.scale[i], x.sum[i]);
    }
  }
  const __mmask16 mask = lane_mask(w, t);
  for (int r = 0; r < R; r++) _mm512_mask_storeu_ps(y + (size_t)(m0 + r) * w.N + (size_t)t * kTile, mask, out[r]);
}

constexpr int kRows = 6;  // rows per pass: 2 x 6 accumulators + 6 outputs + unpacked words fit the 32 registers

template <bool VNNI>
void tiles(const PackedView& w, const QuantizedRows& x, int t0, int t1, float* y) {
  for (int t = t0; t < t1; t++) {
    if (x.M == 1) {
      // Pairs of tiles measured ~15% faster than single tiles (in L2 and from DRAM); 4 tiles gained nothing more.
      if (t + 2 <= t1) {
        tiles_one_row<VNNI, 2, 2>(w, x, t, y);
        t++;
      } else {
        tiles_one_row<VNNI, 1, 4>(w, x, t, y);
      }
      continue;
    }
    // The tile (K/8 x 64 bytes) stays in L2 while every row block passes over it.
    int m = 0;
    for (; m + kRows <= x.M; m += kRows) tile_rows<VNNI, kRows>(w, x, t, m, y);
    switch (x.M - m) {
      case 1: tile_rows<VNNI, 1>(w, x, t, m, y); break;
      case 2: tile_rows<VNNI, 2>(w, x, t, m, y); break;
      case 3: tile_rows<VNNI, 3>(w, x, t, m, y); break;
      case 4: tile_rows<VNNI, 4>(w, x, t, m, y); break;
      case 5: tile_rows<VNNI, 5>(w, x, t, m, y); break;
      default: break;
    }
  }
}

}  // namespace

void tiles_avx512vnni(const PackedView& w, const QuantizedRows& x, int t0, int t1, float* y) {
  tiles<true>(w, x, t0, t1, y);
}

void tiles_avx512bw(const PackedView& w, const QuantizedRows& x, int t0, int t1, float* y) {
  tiles<false>(w, x, t0, t1, y);
}

}  // namespace q3::awq_cpu
