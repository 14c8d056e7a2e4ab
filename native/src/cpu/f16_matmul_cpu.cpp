// fp16-weight matmul on the CPU (lm_head, tied embedding): run-time ISA dispatch, thread split over rows of W, the
// scalar path and the double-precision reference. SIMD kernels are in f16_matmul_cpu_avx512.cpp / _avx2.cpp.
#include "f16_matmul_cpu.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "../half.h"
#include "isa_choice.h"
#include "phases_cpu.h"

namespace q3 {
namespace {

enum Isa { kScalar = 0, kAvx2 = 1, kAvx512 = 2 };
const char* const kIsaNames[] = {"scalar", "avx2", "avx512"};

bool cpu_has(Isa isa) {
  const bool avx2 =
      __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
  switch (isa) {
    case kScalar: return true;
    case kAvx2: return avx2;
    case kAvx512:
      return avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vl");
    default: return false;
  }
}

IsaChoice g_isa(kIsaNames, 3, [](int i) { return cpu_has((Isa)i); });

Isa current_isa() { return (Isa)g_isa.current(); }

}  // namespace

namespace f16_cpu {

// Converts each W row once, then reuses it for every row of x.
void rows_scalar(const uint16_t* w, int N, int K, const float* x, int M, float* y, int n0, int n1) {
  std::vector<float> wr(K);
  for (int n = n0; n < n1; n++) {
    const uint16_t* src = w + (size_t)n * K;
    for (int k = 0; k < K; k++) wr[k] = f16_to_f32(src[k]);
    for (int m = 0; m < M; m++) {
      const float* xm = x + (size_t)m * K;
      float a0 = 0, a1 = 0, a2 = 0, a3 = 0;
      int k = 0;
      for (; k + 4 <= K; k += 4) {
        a0 += wr[k] * xm[k];
        a1 += wr[k + 1] * xm[k + 1];
        a2 += wr[k + 2] * xm[k + 2];
        a3 += wr[k + 3] * xm[k + 3];
      }
      for (; k < K; k++) a0 += wr[k] * xm[k];
      y[(size_t)m * N + n] = (a0 + a1) + (a2 + a3);
    }
  }
}

}  // namespace f16_cpu

namespace {

using RowsKernel = void (*)(const uint16_t*, int, int, const float*, int, float*, int, int);

RowsKernel current_kernel() {
  switch (current_isa()) {
    case kAvx512: return f16_cpu::rows_avx512;
    case kAvx2: return f16_cpu::rows_avx2;
    default: return f16_cpu::rows_scalar;
  }
}

}  // namespace

void f16_matmul_cpu(const uint16_t* w, int N, int K, const float* x, int M, float* y, ThreadPool& pool) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) throw std::runtime_error("f16_matmul_cpu: K must be positive");
  if (!w || !x || !y) throw std::runtime_error("f16_matmul_cpu: null pointer");
  const RowsKernel kernel = current_kernel();
  // The kernels load x 64 bytes at a time. From a buffer that is not 64-byte aligned (a large std::vector starts 16
  // bytes into its page) every such load spans two cache lines, which halved the FMA rate at several rows
  // (native/dev/cpu/f16_rows.cpp): such an x is copied to an aligned buffer first (M x K floats, small next to W).
  thread_local std::vector<float> aligned;
  if ((uintptr_t)x % 64 != 0) {
    aligned.resize((size_t)M * K + 16);
    float* a = aligned.data() + (64 - (uintptr_t)aligned.data() % 64) % 64 / sizeof(float);
    std::memcpy(a, x, sizeof(float) * (size_t)M * K);
    x = a;
  }
  // Chunks of rows of W taken by the threads in turn (see awq_matmul_cpu); multiples of 8 rows, the decode kernel's
  // block.
  const int chunk = std::max(8, N / (8 * pool.size()) / 8 * 8), n_chunks = (N + chunk - 1) / chunk;
  phases::Region region;
  pool.parallel_dynamic(n_chunks, [&](int c) {
    phases::Chunk timed;
    kernel(w, N, K, x, M, y, c * chunk, std::min(N, (c + 1) * chunk));
  });
}

void f16_matmul_rows_cpu(const uint16_t* w, int N, int K, const float* x, const int32_t* rows, int n_rows, float* y) {
  const RowsKernel kernel = current_kernel();
  for (int i = 0; i < n_rows; i++) kernel(w, N, K, x, 1, y, rows[i], rows[i] + 1);
}

void f16_matmul_ref(const uint16_t* w, int N, int K, const float* x, int M, float* y) {
  for (int n = 0; n < N; n++) {
    for (int m = 0; m < M; m++) {
      double acc = 0;
      for (int k = 0; k < K; k++) acc += (double)f16_to_f32(w[(size_t)n * K + k]) * (double)x[(size_t)m * K + k];
      y[(size_t)m * N + n] = (float)acc;
    }
  }
}

const char* f16_matmul_cpu_isa() { return g_isa.name(); }

bool f16_matmul_cpu_force_isa(const char* name) { return g_isa.force(name); }

}  // namespace q3
