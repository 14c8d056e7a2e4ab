// int4 AWQ matrix multiply on the CPU: y (M, N) = x (M, K) . W (K, N), with W stored as AutoAWQ "gemm" int4
// (see awq_format.h) and repacked once at load time into a SIMD-friendly layout. Dequantisation is fused into the
// dot products: no dequantized copy of W ever exists. SIMD is chosen at run time (AVX-512 VNNI / AVX-512BW / AVX2 /
// scalar).
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "../threadpool.h"
#include "huge_pages.h"

namespace q3 {

// One AutoAWQ linear as published (pointers into the mapped checkpoint).
struct AwqSource {
  const int32_t* qweight;  // (K, N/8)
  const int32_t* qzeros;   // (K/G, N/8)
  const uint16_t* scales;  // (K/G, N) fp16 bits
  int N;                   // out_features
};

// Repacked weights of one or more linears sharing K, concatenated along N (q|k|v, gate|up).
struct AwqMatrixCpu {
  int K = 0, N = 0, group_size = 0;
  std::vector<uint8_t, HugePageAllocator<uint8_t>> storage;  // layout private to awq_cpu.cpp, on huge pages
  size_t bytes_read() const { return storage.size(); }  // bytes one full matmul streams from memory
};

// Throws std::runtime_error on shapes the kernel cannot take (K % group_size, group_size % 8, N % 8).
AwqMatrixCpu awq_pack_cpu(int K, int group_size, const std::vector<AwqSource>& parts);

// y (M, N) = x (M, K) . W; y is overwritten. Uses every thread of the pool.
void awq_matmul_cpu(const AwqMatrixCpu& w, const float* x, int M, float* y, ThreadPool& pool);

// Plain-loop reference on the published layout, in double precision: y (M, N) = x (M, K) . W.
void awq_matmul_ref(const AwqSource& src, int K, int group_size, const float* x, int M, float* y);

// Name of the instruction set the dispatcher picked ("avx512-vnni", "avx512bw", "avx2", "scalar").
const char* awq_cpu_isa();
// Force a path (for tests and benchmarks): "auto" or one of the names above. Returns false if the CPU lacks it.
bool awq_cpu_force_isa(const char* name);

}  // namespace q3
