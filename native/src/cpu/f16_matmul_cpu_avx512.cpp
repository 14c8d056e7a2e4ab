// AVX-512 kernel for the fp16-weight matmul: vcvtph2ps + FMA, a block of W rows times a block of x rows so each
// converted weight vector is used RX times and each x vector RW times.
// GCC 12 reports its own _mm512_undefined_* placeholders as maybe-uninitialized once inlined at -O3: a false positive.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

#include "f16_matmul_cpu.h"

namespace q3::f16_cpu {
namespace {

template <int RW, int RX>
void block(const uint16_t* w, int N, int K, const float* x, float* y, int n, int m) {
  __m512 acc[RW][RX];
  for (int i = 0; i < RW; i++)
    for (int r = 0; r < RX; r++) acc[i][r] = _mm512_setzero_ps();
  for (int k = 0; k < K; k += 16) {
    // The K tail is a masked load: zeros contribute nothing.
    const __mmask16 mask = K - k >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (K - k)) - 1);
    __m512 xv[RX];
    for (int r = 0; r < RX; r++) xv[r] = _mm512_maskz_loadu_ps(mask, x + (size_t)(m + r) * K + k);
    for (int i = 0; i < RW; i++) {
      const __m512 wv = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask, w + (size_t)(n + i) * K + k));
      for (int r = 0; r < RX; r++) acc[i][r] = _mm512_fmadd_ps(wv, xv[r], acc[i][r]);
    }
  }
  for (int i = 0; i < RW; i++)
    for (int r = 0; r < RX; r++) y[(size_t)(m + r) * N + n + i] = _mm512_reduce_add_ps(acc[i][r]);
}

template <int RW>
void rows_block(const uint16_t* w, int N, int K, const float* x, int M, float* y, int n) {
  int m = 0;
  for (; m + 4 <= M; m += 4) block<RW, 4>(w, N, K, x, y, n, m);
  switch (M - m) {
    case 1: block<RW, 1>(w, N, K, x, y, n, m); break;
    case 2: block<RW, 2>(w, N, K, x, y, n, m); break;
    case 3: block<RW, 3>(w, N, K, x, y, n, m); break;
    default: break;
  }
}

}  // namespace

void rows_avx512(const uint16_t* w, int N, int K, const float* x, int M, float* y, int n0, int n1) {
  int n = n0;
  if (M == 1) {
    // Decode: memory-bound; 8 rows give 8 independent FMA chains per x vector.
    for (; n + 8 <= n1; n += 8) block<8, 1>(w, N, K, x, y, n, 0);
  } else {
    // The 4 W rows (4 x K x 2 bytes) stay in L1/L2 while every row block of x passes over them.
    for (; n + 4 <= n1; n += 4) rows_block<4>(w, N, K, x, M, y, n);
  }
  for (; n < n1; n++) rows_block<1>(w, N, K, x, M, y, n);
}

}  // namespace q3::f16_cpu
