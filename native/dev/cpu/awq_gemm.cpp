// Experiment: compute cost of the int4 AWQ kernels per ISA path and row count, on a matrix that stays in L2, one
// thread, best of many calls (robust on a busy machine: the best call is one that ran undisturbed).
// Build: g++ -O2 -I native/src -I native/include native/dev/cpu/awq_gemm.cpp native/build/libq3core.a -lpthread -o /tmp/awq_gemm
// Usage: /tmp/awq_gemm [K] [N] [reps]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "cpu/awq_cpu.h"
#include "half.h"
#include "threadpool.h"

using namespace q3;

int main(int argc, char** argv) {
  const int K = argc > 1 ? atoi(argv[1]) : 4096, N = argc > 2 ? atoi(argv[2]) : 256, reps = argc > 3 ? atoi(argv[3]) : 200;
  std::mt19937 rng(1);
  std::vector<int32_t> qw((size_t)K * N / 8), qz((size_t)K / 128 * N / 8);
  std::vector<uint16_t> sc((size_t)K / 128 * N);
  for (auto& v : qw) v = (int32_t)rng();
  for (auto& v : qz) v = (int32_t)rng();
  for (auto& v : sc) v = f32_to_f16(0.01f);
  AwqMatrixCpu w = awq_pack_cpu(K, 128, {AwqSource{qw.data(), qz.data(), sc.data(), N}});
  ThreadPool pool(1);
  std::normal_distribution<float> d(0.f, 1.f);
  std::vector<float> x((size_t)64 * K), y((size_t)64 * N);
  for (auto& v : x) v = d(rng);
  const double bytes = (double)w.bytes_read();
  std::printf("K=%d N=%d: %.0f KB, 1 thread, best of %d\n", K, N, bytes / 1e3, reps);
  std::printf("%-12s", "M");
  const int Ms[] = {1, 2, 4, 8, 16, 32, 64};
  for (int M : Ms) std::printf(" %9d", M);
  std::printf("   (GB/s of weights; for M>1 also rows*GB/s = work rate)\n");
  for (const char* isa : {"avx2", "avx512bw", "avx512-vnni", "amx"}) {
    if (!awq_cpu_force_isa(isa)) continue;
    std::printf("%-12s", isa);
    for (int M : Ms) {
      double best = 1e9;
      for (int r = 0; r < reps; r++) {
        auto t0 = std::chrono::steady_clock::now();
        awq_matmul_cpu(w, x.data(), M, y.data(), pool);
        best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      }
      std::printf(" %9.1f", bytes / best / 1e9);
    }
    std::printf("\n");
  }
  return 0;
}
