// AVX-512 VNNI kernel of the screened head's approximate pass: vpdpbusd of the activations as unsigned bytes
// (x̂ + 128) with the int8 rows, a block of rows of the head times RX rows of x, int32 sums exact (at most
// 65536·255·127 < 2^31), so this kernel and the scalar one give the same bits. The head's blocked layout
// (head_screen.h) makes each thread's reads one sequential stream.
// GCC 12 reports its own _mm512_undefined_* placeholders as maybe-uninitialized once inlined at -O3: a false positive.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

#include <algorithm>

#include "head_screen.h"
#include "row_passes.h"

namespace q3::head_screen {
namespace {

constexpr int B = kScreenBlockRows;
// Software prefetch distance along the stream (bytes).
constexpr int kPrefetchBytes = 1024;

// Rows n + first .. n + first + RW - 1 (inside the block of B rows at n) times x rows m .. m + RX - 1.
template <int RW, int RX>
void block(const ScreenedHead& h, const uint8_t* xq, const float* sx, float* a, int n, int first, int m) {
  const int S = h.stride;
  const int8_t* q = h.q.data() + (size_t)n * S + (size_t)first * 64;
  __m512i acc[RW][RX];
#pragma GCC unroll 8
  for (int i = 0; i < RW; i++)
#pragma GCC unroll 8
    for (int r = 0; r < RX; r++) acc[i][r] = _mm512_setzero_si512();
  for (int k = 0; k < S; k += 64, q += B * 64) {
    __m512i wv[RW];
#pragma GCC unroll 8
    for (int i = 0; i < RW; i++) {
      _mm_prefetch((const char*)(q + i * 64) + kPrefetchBytes, _MM_HINT_T0);
      wv[i] = _mm512_loadu_si512((const void*)(q + i * 64));  // aligned in the huge-page copy, not in small tables
    }
#pragma GCC unroll 8
    for (int r = 0; r < RX; r++) {
      const __m512i xv = _mm512_load_si512((const void*)(xq + (size_t)(m + r) * S + k));
#pragma GCC unroll 8
      for (int i = 0; i < RW; i++) acc[i][r] = _mm512_dpbusd_epi32(acc[i][r], xv, wv[i]);
    }
  }
#pragma GCC unroll 8
  for (int i = 0; i < RW; i++) {
    const int t = n + first + i;
    if (t >= h.rows) break;  // padding rows of the last block
#pragma GCC unroll 8
    for (int r = 0; r < RX; r++) {
      const int32_t dot = _mm512_reduce_add_epi32(acc[i][r]) - 128 * h.row_sum[t];
      a[(size_t)(m + r) * h.rows + t] = (float)dot * (h.scale[t] * sx[m + r]);
    }
  }
}

// M = 1: the blocks at n[0] and n[1] (all B rows of each, both inside the head) together: two streams, each with its
// prefetch. One stream per thread read only 0.62-0.65 of a plain read of the same bytes on a Zen 5 EPYC, two 0.84-0.85
// (1.30-1.36x; native/dev/cpu/head_screen_streams.cpp, bench/results/cpu-zen5-head-streams.md); 3 or 4 no better.
void two_blocks(const ScreenedHead& h, const uint8_t* xq, const float* sx, float* a, const int n[2]) {
  const int S = h.stride;
  const int8_t* q[2] = {h.q.data() + (size_t)n[0] * S, h.q.data() + (size_t)n[1] * S};
  __m512i acc[2][B];
#pragma GCC unroll 8
  for (int i = 0; i < B; i++) acc[0][i] = acc[1][i] = _mm512_setzero_si512();
  for (int k = 0; k < S; k += 64, q[0] += B * 64, q[1] += B * 64) {
    const __m512i xv = _mm512_load_si512((const void*)(xq + k));
#pragma GCC unroll 2
    for (int s = 0; s < 2; s++)
#pragma GCC unroll 8
      for (int i = 0; i < B; i++) {
        _mm_prefetch((const char*)(q[s] + i * 64) + kPrefetchBytes, _MM_HINT_T0);
        acc[s][i] = _mm512_dpbusd_epi32(acc[s][i], xv, _mm512_loadu_si512((const void*)(q[s] + i * 64)));
      }
  }
#pragma GCC unroll 2
  for (int s = 0; s < 2; s++)
#pragma GCC unroll 8
    for (int i = 0; i < B; i++) {
      const int t = n[s] + i;
      const int32_t dot = _mm512_reduce_add_epi32(acc[s][i]) - 128 * h.row_sum[t];
      a[t] = (float)dot * (h.scale[t] * sx[0]);
    }
}

// RW rows of the block at n from `first` times every row of x, 4 rows of x at a time while those rows sit in L1.
template <int RW>
void all_x(const ScreenedHead& h, const uint8_t* xq, const float* sx, int M, float* a, int n, int first) {
  row_passes<4>(M, [&](auto rows, int m) { block<RW, decltype(rows)::value>(h, xq, sx, a, n, first, m); });
}

}  // namespace

void rows_avx512(const ScreenedHead& h, const uint8_t* xq, const float* sx, int M, float* a, int n0, int n1) {
  if (M == 1) {  // the first half's blocks beside the second half's, whole blocks inside the head; the rest alone
    const int half = (std::min(n1, h.rows) - n0) / B / 2;
    for (int b = 0; b < half; b++) {
      const int n[2] = {n0 + b * B, n0 + (half + b) * B};
      two_blocks(h, xq, sx, a, n);
    }
    n0 += 2 * half * B;
  }
  for (int n = n0; n < n1; n += B) {
    if (M <= 2) {  // the whole block: 8 or 16 accumulators
      all_x<8>(h, xq, sx, M, a, n, 0);
    } else {       // two halves of 4 rows: at most 16 accumulators
      all_x<4>(h, xq, sx, M, a, n, 0);
      all_x<4>(h, xq, sx, M, a, n, 4);
    }
  }
}

}  // namespace q3::head_screen

namespace q3::head_screen {
namespace {

// 16 tokens from t (a multiple of 16) of a bitset.
inline __mmask16 bits16(const uint32_t* words, int t) { return (__mmask16)(words[t >> 5] >> (t & 31)); }

// Tokens t .. t + 15 that are allowed and inside the vocabulary.
inline __mmask16 allowed16(const Selection& s, int t) {
  const int left = s.h->rows - t;
  const __mmask16 inside = left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1);
  return s.allowed ? (__mmask16)(bits16(s.allowed, t) & inside) : inside;
}

// a_t and B_t of tokens t .. t + 15 (lanes outside `k` are 0). The explicit-rounding forms are not fused into an
// FMA by the compiler, so each product and sum rounds as the scalar pass's do.
inline void load16(const Selection& s, int t, __mmask16 k, __m512& a, __m512& b) {
  constexpr int kRound = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
  a = _mm512_maskz_loadu_ps(k, s.logits + t);
  const __m512 bx = _mm512_mul_round_ps(_mm512_set1_ps(s.nx), _mm512_maskz_loadu_ps(k, s.h->x_coef.data() + t), kRound);
  const __m512 bd = _mm512_mul_round_ps(_mm512_set1_ps(s.ndx), _mm512_maskz_loadu_ps(k, s.h->dx_coef.data() + t), kRound);
  b = _mm512_add_round_ps(bx, bd, kRound);
}

}  // namespace

// Once best is full only a lower bound above its top can enter, and that top never falls: a block of 16 whose lower
// bounds are all at or below it (almost every block) offers nothing.
void lower_bounds_avx512(const Selection& s, TopK& best) {
  constexpr int kRound = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
  alignas(64) float lo[16];
  for (int t = 0; t < s.h->rows; t += 16) {
    __mmask16 k = allowed16(s, t) & (__mmask16)~bits16(s.always, t);
    if (!k) continue;
    __m512 a, b;
    load16(s, t, k, a, b);
    const __m512 l = _mm512_sub_round_ps(a, b, kRound);
    if (best.full()) k &= _mm512_cmp_ps_mask(l, _mm512_set1_ps(best.top()), _CMP_GT_OQ);
    if (!k) continue;
    _mm512_store_ps(lo, l);
    for (unsigned m = k; m; m &= m - 1) best.offer(lo[__builtin_ctz(m)]);
  }
}

bool candidates_avx512(const Selection& s, float floor, int max, std::vector<int32_t>& out) {
  constexpr int kRound = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
  for (int t = 0; t < s.h->rows; t += 16) {
    const __mmask16 k = allowed16(s, t);
    if (!k) continue;
    __m512 a, b;
    load16(s, t, k, a, b);
    const __mmask16 in = k & (bits16(s.always, t) |
                              _mm512_cmp_ps_mask(_mm512_add_round_ps(a, b, kRound), _mm512_set1_ps(floor), _CMP_GE_OQ));
    for (unsigned m = in; m; m &= m - 1) {
      if ((int)out.size() >= max) return false;
      out.push_back(t + __builtin_ctz(m));
    }
  }
  return true;
}

}  // namespace q3::head_screen
