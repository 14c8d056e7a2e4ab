// What the fp16 lm_head experiments (f16_skinny.cpp, f16_amx.cpp) share: a random (N, K) fp16 W on huge pages and
// M random rows of x, 64-byte aligned, as f16_matmul_cpu's kernels take them.
#pragma once
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <random>

#include "cpu/huge_pages.h"

namespace q3::dev {

inline double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Random fp16 values of either sign in [2^-7, 2^-6), as bench_gemv_cpu fills its lm_head. Free with std::free.
inline uint16_t* random_f16_matrix(int N, int K) {
  const size_t n = (size_t)N * K, huge = 2u << 20, bytes = n * 2;
  uint16_t* w = (uint16_t*)std::aligned_alloc(huge, (bytes + huge - 1) / huge * huge);
  advise_huge_pages(w, bytes);
  uint32_t s = 12345;
  for (size_t i = 0; i < n; i++) {  // xorshift: fast enough for 600M values
    s ^= s << 13, s ^= s >> 17, s ^= s << 5;
    w[i] = (uint16_t)((s & 0x83ff) | 0x2000);
  }
  return w;
}

// M x K values from N(0, 1). Free with std::free.
inline float* random_rows(int M, int K) {
  std::mt19937 rng(5);
  std::normal_distribution<float> d(0.f, 1.f);
  float* x = (float*)std::aligned_alloc(64, ((size_t)M * K * 4 + 63) / 64 * 64);
  for (int i = 0; i < M * K; i++) x[i] = d(rng);
  return x;
}

}  // namespace q3::dev
