// AVX-512 VNNI kernel of the screened head's approximate pass: vpdpbusd of the activations as unsigned bytes
// (x̂ + 128) with the int8 rows, a block of rows of the head times RX rows of x, int32 sums exact (at most
// 65536·255·127 < 2^31), so this kernel and the scalar one give the same bits. The head's blocked layout
// (head_screen.h) makes each thread's reads one sequential stream.
// GCC 12 reports its own _mm512_undefined_* placeholders as maybe-uninitialized once inlined at -O3: a false positive.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

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

// Whole blocks of [n0, n1) (rows past the head's end excluded) as Streams stretches of equal length, a block of each
// at once, every stretch its own sequential stream with its prefetch; returns where the blocks it left (fewer than
// Streams) begin. Walking one stream per thread read only 0.62-0.65 of a plain read of the same bytes on a Zen 5 EPYC
// at M = 1, two 0.84-0.85 (native/dev/cpu/head_screen_streams.cpp, bench/results/cpu-zen5-head-streams.md; 3 or 4 no
// better there).
// M = 1 (Paired false): 8 accumulators per block, one per head row. M = 2 (Paired true): x row 0's 32-byte pieces
// in the low half of a register and x row 1's in the high half (xp: for each 64 bytes of k, bytes 0-31 then 32-63),
// against 32 weight bytes broadcast to both halves, so one accumulator holds both x rows' sums of a head row and 3
// streams fit the registers (24 accumulators): 0.78-0.82 of the read in the host's fast memory mode, where one
// stream of the M = 2 loop (block<8, 2>) read 0.57-0.65 and two paired 0.71-0.78 (bench/results/cpu-zen5-head-m2.md).
template <int Streams, bool Paired>
int stretches(const ScreenedHead& h, const uint8_t* x, const float* sx, float* a, int n0, int n1) {
  const int S = h.stride, len = (std::min(n1, h.rows) - n0) / B / Streams;
  for (int b = 0; b < len; b++) {
    const int8_t* q[Streams];
    __m512i acc[Streams][B];
#pragma GCC unroll 4
    for (int s = 0; s < Streams; s++) q[s] = h.q.data() + (size_t)(n0 + (s * len + b) * B) * S;
#pragma GCC unroll 4
    for (int s = 0; s < Streams; s++)
#pragma GCC unroll 8
      for (int i = 0; i < B; i++) acc[s][i] = _mm512_setzero_si512();
    for (int k = 0; k < S; k += 64) {
      if constexpr (Paired) {
        const __m512i xa = _mm512_load_si512((const void*)(x + 2 * k)),
                      xb = _mm512_load_si512((const void*)(x + 2 * k + 64));
#pragma GCC unroll 4
        for (int s = 0; s < Streams; s++)
#pragma GCC unroll 8
          for (int i = 0; i < B; i++) {
            const int8_t* w = q[s] + i * 64;
            _mm_prefetch((const char*)w + kPrefetchBytes, _MM_HINT_T0);
            const __m512i wa = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i*)w));
            const __m512i wb = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i*)(w + 32)));
            acc[s][i] = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(acc[s][i], xa, wa), xb, wb);
          }
      } else {
        const __m512i xv = _mm512_load_si512((const void*)(x + k));
#pragma GCC unroll 4
        for (int s = 0; s < Streams; s++)
#pragma GCC unroll 8
          for (int i = 0; i < B; i++) {
            _mm_prefetch((const char*)(q[s] + i * 64) + kPrefetchBytes, _MM_HINT_T0);
            acc[s][i] = _mm512_dpbusd_epi32(acc[s][i], xv, _mm512_loadu_si512((const void*)(q[s] + i * 64)));
          }
      }
#pragma GCC unroll 4
      for (int s = 0; s < Streams; s++) q[s] += B * 64;
    }
#pragma GCC unroll 4
    for (int s = 0; s < Streams; s++)
#pragma GCC unroll 8
      for (int i = 0; i < B; i++) {
        const int t = n0 + (s * len + b) * B + i;
        if constexpr (Paired) {
          const __m512i lo = _mm512_zextsi256_si512(_mm512_castsi512_si256(acc[s][i]));
          const __m512i hi = _mm512_zextsi256_si512(_mm512_extracti64x4_epi64(acc[s][i], 1));
          a[t] = (float)(_mm512_reduce_add_epi32(lo) - 128 * h.row_sum[t]) * (h.scale[t] * sx[0]);
          a[(size_t)h.rows + t] = (float)(_mm512_reduce_add_epi32(hi) - 128 * h.row_sum[t]) * (h.scale[t] * sx[1]);
        } else {
          a[t] = (float)(_mm512_reduce_add_epi32(acc[s][i]) - 128 * h.row_sum[t]) * (h.scale[t] * sx[0]);
        }
      }
  }
  return n0 + Streams * len * B;
}

// RW rows of the block at n from `first` times every row of x, 4 rows of x at a time while those rows sit in L1.
template <int RW>
void all_x(const ScreenedHead& h, const uint8_t* xq, const float* sx, int M, float* a, int n, int first) {
  row_passes<4>(M, [&](auto rows, int m) { block<RW, decltype(rows)::value>(h, xq, sx, a, n, first, m); });
}

}  // namespace

void rows_avx512(const ScreenedHead& h, const uint8_t* xq, const float* sx, int M, float* a, int n0, int n1) {
  if (M == 1) n0 = stretches<2, false>(h, xq, sx, a, n0, n1);
  if (M == 2) {  // x's two rows paired by 32-byte pieces (8 KiB for the 8B head, made per piece: L1-resident)
    thread_local std::vector<uint8_t> buf;
    buf.resize((size_t)2 * h.stride + 64);
    uint8_t* xp = buf.data() + (64 - (uintptr_t)buf.data() % 64) % 64;
    for (int k = 0; k < h.stride; k += 32) {
      std::memcpy(xp + 2 * k, xq + k, 32);
      std::memcpy(xp + 2 * k + 32, xq + h.stride + k, 32);
    }
    n0 = stretches<3, true>(h, xp, sx, a, n0, n1);
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
