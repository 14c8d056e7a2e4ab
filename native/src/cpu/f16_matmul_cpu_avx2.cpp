// AVX2 kernel for the fp16-weight matmul: vcvtph2ps + FMA over a block of W rows times a block of x rows; the K tail
// (K % 8) is finished in scalar code. Header inline functions are avoided here: an out-of-line copy compiled with
// AVX2 could be the one the linker keeps for the portable code too.
#include <immintrin.h>

#include "f16_matmul_cpu.h"

namespace q3::f16_cpu {
namespace {

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

template <int RW, int RX>
void block(const uint16_t* w, int N, int K, const float* x, float* y, int n, int m) {
  __m256 acc[RW][RX];
  for (int i = 0; i < RW; i++)
    for (int r = 0; r < RX; r++) acc[i][r] = _mm256_setzero_ps();
  int k = 0;
  for (; k + 8 <= K; k += 8) {
    __m256 xv[RX];
    for (int r = 0; r < RX; r++) xv[r] = _mm256_loadu_ps(x + (size_t)(m + r) * K + k);
    for (int i = 0; i < RW; i++) {
      const __m256 wv = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)(w + (size_t)(n + i) * K + k)));
      for (int r = 0; r < RX; r++) acc[i][r] = _mm256_fmadd_ps(wv, xv[r], acc[i][r]);
    }
  }
  for (int i = 0; i < RW; i++) {
    for (int r = 0; r < RX; r++) {
      float s = hsum(acc[i][r]);
      for (int kk = k; kk < K; kk++) s += _cvtsh_ss(w[(size_t)(n + i) * K + kk]) * x[(size_t)(m + r) * K + kk];
      y[(size_t)(m + r) * N + n + i] = s;
    }
  }
}

template <int RW>
void rows_block(const uint16_t* w, int N, int K, const float* x, int M, float* y, int n) {
  int m = 0;
  for (; m + 2 <= M; m += 2) block<RW, 2>(w, N, K, x, y, n, m);
  if (m < M) block<RW, 1>(w, N, K, x, y, n, m);
}

}  // namespace

void rows_avx2(const uint16_t* w, int N, int K, const float* x, int M, float* y, int n0, int n1) {
  int n = n0;
  if (M == 1) {
    for (; n + 8 <= n1; n += 8) block<8, 1>(w, N, K, x, y, n, 0);
  } else {
    for (; n + 4 <= n1; n += 4) rows_block<4>(w, N, K, x, M, y, n);
  }
  for (; n < n1; n++) rows_block<1>(w, N, K, x, M, y, n);
}

}  // namespace q3::f16_cpu
