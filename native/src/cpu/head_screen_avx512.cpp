// AVX-512 VNNI kernel of the screened head's approximate pass: vpdpbusd of the activations as unsigned bytes
// (x̂ + 128) with the int8 rows, a block of rows of the head times RX rows of x, int32 sums exact (at most
// 65536·255·127 < 2^31), so this kernel and the scalar one give the same bits. The head's blocked layout
// (head_screen.h) makes each thread's reads one sequential stream.
// GCC 12 reports its own _mm512_undefined_* placeholders as maybe-uninitialized once inlined at -O3: a false positive.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

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

// RW rows of the block at n from `first` times every row of x, 4 rows of x at a time while those rows sit in L1.
template <int RW>
void all_x(const ScreenedHead& h, const uint8_t* xq, const float* sx, int M, float* a, int n, int first) {
  row_passes<4>(M, [&](auto rows, int m) { block<RW, decltype(rows)::value>(h, xq, sx, a, n, first, m); });
}

}  // namespace

void rows_avx512(const ScreenedHead& h, const uint8_t* xq, const float* sx, int M, float* a, int n0, int n1) {
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
