// Experiment: the fp16 lm_head at M = 1 (151936 x 4096, 1.24 GB, 2 threads) from DRAM: the library's kernel
// (f16_matmul_cpu: 8 rows at a time, 32 bytes of each per step, hardware prefetch only) against the same loop with a
// software prefetch of each row D bytes ahead (the int4 kernel's kind of prefetch), and the same reads with no
// arithmetic. Alternating rounds; per version and round the mean over its calls and the best call; % of the same
// round's probe (best segment) and, paired, ÷ the library's kernel in the same round.
// Build: g++ -O3 -march=native -I native/src -I native/include native/dev/cpu/head_prefetch.cpp native/build/libq3core.a -lpthread -o /tmp/head_prefetch
// Usage: /tmp/head_prefetch [rounds] [calls per version and round]
#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "cpu/bandwidth_cpu.h"
#include "cpu/f16_matmul_cpu.h"
#include "cpu/huge_pages.h"
#include "half.h"
#include "threadpool.h"

using namespace q3;

namespace {

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

// Rows [n0, n1) (a multiple of 8 rows): 8 rows at a time, 16 k per step as the library's block<8, 1>, plus (D > 0)
// a prefetch of each row D bytes ahead every other step (once per 64-byte line). READ: loads only.
template <int D, bool READ>
void rows8(const uint16_t* w, int K, const float* x, float* y, int n0, int n1) {
  constexpr int RW = 8;
  for (int n = n0; n < n1; n += RW) {
    __m512 acc[RW];
    __m512i racc = _mm512_setzero_si512();
    for (int i = 0; i < RW; i++) acc[i] = _mm512_setzero_ps();
    const uint16_t* base = w + (size_t)n * K;
    for (int k = 0; k < K; k += 16) {
      const __m512 xv = _mm512_load_ps(x + k);
#pragma GCC unroll 8
      for (int i = 0; i < RW; i++) {
        const uint16_t* p = base + (size_t)i * K + k;
        if (D > 0 && (k & 31) == 0) _mm_prefetch((const char*)p + D, _MM_HINT_T0);
        const __m256i h = _mm256_loadu_si256((const __m256i*)p);
        if constexpr (READ) {
          racc = _mm512_xor_si512(racc, _mm512_castsi256_si512(h));
        } else {
          acc[i] = _mm512_fmadd_ps(_mm512_cvtph_ps(h), xv, acc[i]);
        }
      }
    }
    if constexpr (READ) {
      _mm512_storeu_si512(y + n, racc);
    } else {
      for (int i = 0; i < RW; i++) y[n + i] = _mm512_reduce_add_ps(acc[i]);
    }
  }
}

using Rows = void (*)(const uint16_t*, int, const float*, float*, int, int);

void run(const uint16_t* w, int N, int K, const float* x, float* y, Rows k, ThreadPool& pool) {
  const int chunk = std::max(8, N / (8 * pool.size()) / 8 * 8), n_chunks = (N + chunk - 1) / chunk;
  pool.parallel_dynamic(n_chunks, [&](int c) { k(w, K, x, y, c * chunk, std::min(N, (c + 1) * chunk)); });
}

}  // namespace

int main(int argc, char** argv) {
  const int rounds = argc > 1 ? atoi(argv[1]) : 8, calls = argc > 2 ? atoi(argv[2]) : 4;
  const int N = 151936, K = 4096;
  ThreadPool pool(2);
  const size_t bytes = (size_t)N * K * 2;
  uint16_t* w = (uint16_t*)std::aligned_alloc(2u << 20, (bytes + (2u << 20) - 1) / (2u << 20) * (2u << 20));
  advise_huge_pages(w, bytes);
  std::mt19937 rng(5);
  std::normal_distribution<float> nd(0.f, 0.02f);
  for (size_t i = 0; i < (size_t)N * K; i += 4096) {  // fill a row at a time, random rows repeat (values do not matter)
    const uint16_t v = f32_to_f16(nd(rng));
    std::fill(w + i, w + i + 4096, v);
  }
  float* x = (float*)std::aligned_alloc(64, K * sizeof(float));
  for (int k = 0; k < K; k++) x[k] = nd(rng);
  std::vector<float> y(N + 64);

  struct Version {
    std::string name;
    Rows k;  // null: the library's f16_matmul_cpu
  };
  const std::vector<Version> versions = {
      {"library f16_matmul_cpu (512 B row prefetch)", nullptr},
      {"same loop, no prefetch (before)", rows8<0, false>},
      {"row prefetch 512 B ahead", rows8<512, false>},
      {"row prefetch 1 KiB ahead", rows8<1024, false>},
      {"row prefetch 2 KiB ahead", rows8<2048, false>},
      {"row prefetch 4 KiB ahead", rows8<4096, false>},
      {"loads only, no prefetch", rows8<0, true>},
      {"loads only, prefetch 1 KiB", rows8<1024, true>},
  };
  const int nv = (int)versions.size();
  std::vector<std::vector<double>> mean(nv), best(nv), pct(nv), paired(nv);
  for (int r = 0; r < rounds; r++) {
    const double probe = measure_read_bandwidth_cpu(pool, 1u << 30).best_gbs;
    std::vector<double> rm(nv), rb(nv);
    for (int vi = 0; vi < nv; vi++) {
      const int v = (vi + r) % nv;
      double total = 0, fastest = 1e9;
      for (int c = 0; c < calls; c++) {
        const double t0 = now();
        if (versions[v].k) {
          run(w, N, K, x, y.data(), versions[v].k, pool);
        } else {
          f16_matmul_cpu(w, N, K, x, 1, y.data(), pool);
        }
        const double dt = now() - t0;
        total += dt, fastest = std::min(fastest, dt);
      }
      rm[v] = bytes * calls / total / 1e9, rb[v] = bytes / fastest / 1e9;
    }
    std::printf("round %d probe %.1f:", r, probe);
    for (int v = 0; v < nv; v++) {
      mean[v].push_back(rm[v]), best[v].push_back(rb[v]), pct[v].push_back(rm[v] / probe), paired[v].push_back(rm[v] / rm[0]);
      std::printf(" %.1f/%.1f", rm[v], rb[v]);
    }
    std::printf("\n");
    std::fflush(stdout);
  }
  auto med = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  std::printf("\n%-34s %8s %8s %8s %10s\n", "version (median over rounds)", "mean", "best", "mean %", "mean ÷ lib");
  for (int v = 0; v < nv; v++)
    std::printf("%-34s %8.1f %8.1f %7.1f%% %10.3f\n", versions[v].name.c_str(), med(mean[v]), med(best[v]),
                100 * med(pct[v]), med(paired[v]));
  return 0;
}
