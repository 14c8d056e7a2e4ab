// fp16-weight matmul on the CPU for the unquantised lm_head and the tied embedding: y (M, N) = x (M, K) . W^T with
// W a row-major (N, K) fp16 matrix, fp32 activations and fp32 accumulation. SIMD (F16C + FMA) chosen at run time.
#pragma once
#include <cstdint>

#include "../threadpool.h"

namespace q3 {

// y (M, N) is overwritten. Rows of W are split into pool.size() contiguous ranges, one per thread.
void f16_matmul_cpu(const uint16_t* w, int N, int K, const float* x, int M, float* y, ThreadPool& pool);

// y[rows[i]] for one row of x and the listed rows of W only (the screened head's exact rows): the kernel and
// summation order of f16_matmul_cpu, whose values do not depend on how rows are grouped, so each has the same bits
// as there. Runs on the calling thread.
void f16_matmul_rows_cpu(const uint16_t* w, int N, int K, const float* x, const int32_t* rows, int n_rows, float* y);

// Plain-loop reference in double precision.
void f16_matmul_ref(const uint16_t* w, int N, int K, const float* x, int M, float* y);

// Name of the path in use ("avx512", "avx2", "scalar").
const char* f16_matmul_cpu_isa();
// Force a path (tests and benchmarks): "auto" or one of the names above. Returns false if the CPU lacks it.
bool f16_matmul_cpu_force_isa(const char* name);

namespace f16_cpu {
// Per-ISA kernels: rows [n0, n1) of y for every row of x.
void rows_scalar(const uint16_t* w, int N, int K, const float* x, int M, float* y, int n0, int n1);
void rows_avx2(const uint16_t* w, int N, int K, const float* x, int M, float* y, int n0, int n1);
void rows_avx512(const uint16_t* w, int N, int K, const float* x, int M, float* y, int n0, int n1);
}  // namespace f16_cpu

}  // namespace q3
