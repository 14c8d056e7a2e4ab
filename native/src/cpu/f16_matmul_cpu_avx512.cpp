// AVX-512 kernel for the fp16-weight matmul: vcvtph2ps + FMA, a block of RW rows of W times a block of RX rows of x,
// so each converted weight vector is used RX times and each x vector RW times.
// GCC 12 reports its own _mm512_undefined_* placeholders as maybe-uninitialized once inlined at -O3: a false positive.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

#include "f16_matmul_cpu.h"
#include "row_passes.h"

namespace q3::f16_cpu {
namespace {

// Software prefetch distance along each row of W. The lm_head is read as 4-8 row streams per thread, 32 bytes of each
// per step; with only the hardware prefetcher a row's next lines arrive late. At M = 1, in native/dev/cpu/head_prefetch.cpp
// (2 threads, loaded shared machine) 512 bytes ahead was 5-9% faster than none, 1 KiB 4%, 2 KiB 0, 4 KiB 8-12% slower;
// at M = 2 (native/dev/cpu/f16_skinny.cpp, "pf") 10-17% faster, at M = 4 and 8 within the noise (-2 to +2%).
constexpr int kPrefetchBytes = 512;

// acc += W rows n .. n+RW-1 times x rows m .. m+RX-1 at k .. k+15 (mask: the K tail; zeros contribute nothing).
// The loops over the block are unrolled so the RW x RX accumulators stay in registers: left to itself, GCC kept them
// on the stack and stored every one after each FMA (2-3x slower at M = 2..4, native/dev/cpu/f16_rows.cpp).
template <int RW, int RX>
__attribute__((always_inline)) inline void step(const uint16_t* w, int K, const float* x, int n, int m, int k,
                                                __mmask16 mask, __m512 (&acc)[RW][RX]) {
  // Decode streams W: each of the RW rows is also prefetched kPrefetchBytes ahead, once per 64-byte line. Near a
  // row's end that point lies in the next row, which this block is reading already; there the prefetch moves on to the
  // same row of the next block (RW rows further), which this thread most likely reads next, so a block's rows do not
  // start cold: 1.04-1.19x at M = 1, 4, 8 and 0.96-1.06x at M = 2 on the shared machine
  // (native/dev/cpu/head_prefetch_l2.cpp, bench/results/cpu-head-prefetch-next.md).
  if ((k & 31) == 0) {
    const size_t next = 2 * k + kPrefetchBytes >= 2 * K ? (size_t)(RW - 1) * K : 0;
#pragma GCC unroll 8
    for (int i = 0; i < RW; i++)
      _mm_prefetch((const char*)(w + (size_t)(n + i) * K + k + next) + kPrefetchBytes, _MM_HINT_T0);
  }
  __m512 wv[RW];
#pragma GCC unroll 8
  for (int i = 0; i < RW; i++) wv[i] = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask, w + (size_t)(n + i) * K + k));
#pragma GCC unroll 8
  for (int r = 0; r < RX; r++) {
    const __m512 xv = _mm512_maskz_loadu_ps(mask, x + (size_t)(m + r) * K + k);
#pragma GCC unroll 8
    for (int i = 0; i < RW; i++) acc[i][r] = _mm512_fmadd_ps(wv[i], xv, acc[i][r]);
  }
}

template <int RW, int RX>
void block(const uint16_t* w, int N, int K, const float* x, float* y, int n, int m) {
  __m512 acc[RW][RX];
#pragma GCC unroll 8
  for (int i = 0; i < RW; i++)
#pragma GCC unroll 8
    for (int r = 0; r < RX; r++) acc[i][r] = _mm512_setzero_ps();
  int k = 0;
  for (; k + 16 <= K; k += 16) step<RW, RX>(w, K, x, n, m, k, (__mmask16)0xFFFF, acc);
  if (k < K) step<RW, RX>(w, K, x, n, m, k, (__mmask16)((1u << (K - k)) - 1), acc);
#pragma GCC unroll 8
  for (int i = 0; i < RW; i++)
#pragma GCC unroll 8
    for (int r = 0; r < RX; r++) y[(size_t)(m + r) * N + n + i] = _mm512_reduce_add_ps(acc[i][r]);
}

// Rows [n0, n1) of W times RX rows of x from m, RW rows of W at a time. RW = 8 at one or two rows of x, 4 at three to
// eight: in native/dev/cpu/f16_skinny.cpp (one thread, W in L2) that was the fastest, 1.2-1.3x the 6 rows at M = 2
// and the two passes of 4 rows at M = 5..8 (each weight converted twice) it replaces; odd blocks (3, 5, 7 rows) were
// 10-25% slower than 4 even where their accumulators fit the registers better (at M = 8, 4 x 8 do not all fit).
template <int RX>
void rows_x(const uint16_t* w, int N, int K, const float* x, float* y, int n0, int n1, int m) {
  constexpr int RW = RX <= 2 ? 8 : 4;
  int n = n0;
  for (; n + RW <= n1; n += RW) block<RW, RX>(w, N, K, x, y, n, m);
  for (; n < n1; n++) block<1, RX>(w, N, K, x, y, n, m);
}

// W rows n .. n+RW-1 times every row of x, in groups of up to 4 rows while those W rows sit in L1.
template <int RW>
void all_rows(const uint16_t* w, int N, int K, const float* x, int M, float* y, int n) {
  row_passes<4>(M, [&](auto rows, int m) { block<RW, decltype(rows)::value>(w, N, K, x, y, n, m); });
}

}  // namespace

void rows_avx512(const uint16_t* w, int N, int K, const float* x, int M, float* y, int n0, int n1) {
  // Up to 8 rows of x (decode batches): one pass over this range of W, each weight converted once for every row.
  switch (M) {
    case 1: return rows_x<1>(w, N, K, x, y, n0, n1, 0);
    case 2: return rows_x<2>(w, N, K, x, y, n0, n1, 0);
    case 3: return rows_x<3>(w, N, K, x, y, n0, n1, 0);
    case 4: return rows_x<4>(w, N, K, x, y, n0, n1, 0);
    case 5: return rows_x<5>(w, N, K, x, y, n0, n1, 0);
    case 6: return rows_x<6>(w, N, K, x, y, n0, n1, 0);
    case 7: return rows_x<7>(w, N, K, x, y, n0, n1, 0);
    case 8: return rows_x<8>(w, N, K, x, y, n0, n1, 0);
    default: break;
  }
  int n = n0;
  for (; n + 4 <= n1; n += 4) all_rows<4>(w, N, K, x, M, y, n);
  for (; n < n1; n++) all_rows<1>(w, N, K, x, M, y, n);
}

}  // namespace q3::f16_cpu
