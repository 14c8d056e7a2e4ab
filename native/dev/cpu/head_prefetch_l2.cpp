// Experiment: the fp16 lm_head at M = 1..8 rows (151936 x 4096, 1.24 GB, 2 threads) from DRAM, with the software
// prefetch of each W row sent to L2 (PREFETCHT1) further ahead instead of to L1 512 B ahead (the library's kernel).
// native/dev/cpu/stream_compute.cpp found that a DRAM stream with several cycles of FMA work per line runs much
// nearer "compute hidden under memory" with a 4 KiB prefetch into L2 than with a 1 KiB one into L1 or none.
// Versions: the library's f16_matmul_cpu, and copies of its decode loop (RW = 8 W rows per block at M <= 2, 4 at
// M = 3..8, 16 k per step, one prefetch per row and 64-byte line) with the prefetch D bytes ahead into L1 (T0) or L2
// (T1), into the next row past a row's end ("before": the library until the "next block" version went into it) or
// into the same row of the next block. Each version is first checked against the library's output (same arithmetic:
// same bits). Alternating rounds; per version and round the mean rate over its calls; % of the same round's probe
// (best segment) and, paired, ÷ "before" in the same round (median and range over rounds).
// Findings (bench/results/cpu-head-prefetch-next.md, shared machine): into L2 (1-8 KiB ahead) was slower than 512 B
// into L1 at every M; going on into the next block's rows was 1.05-1.10x "before" at M = 1..8, and is the library now.
// Build: g++ -O3 -march=native -I native/src -I native/include native/dev/cpu/head_prefetch_l2.cpp native/build/libq3core.a -lpthread -o /tmp/head_prefetch_l2
// Usage: /tmp/head_prefetch_l2 M[,M...] [rounds] [calls per version and round] [path of a results file to write]
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "cpu/bandwidth_cpu.h"
#include "cpu/f16_matmul_cpu.h"
#include "head_inputs.h"
#include "results_md.h"
#include "threadpool.h"

using namespace q3;

namespace {

// W rows n .. n+RW-1 times x rows 0..RX-1 over all of K (K a multiple of 16), each row prefetched D bytes ahead once
// per 64-byte line, into L1 (H = 0) or L2 (H = 1). NEXT: a prefetch that runs past the end of its row goes on into the
// same row of the next block (RW rows further), which this thread most likely reads next, instead of into the next
// row, which is being read already.
// D2 > 0: a second prefetch of each row D2 bytes ahead into L2 (with the same NEXT rule).
template <int RW, int RX, int D, int H, bool NEXT = false, int D2 = 0>
void block(const uint16_t* w, int N, int K, const float* x, float* y, int n) {
  __m512 acc[RW][RX];
#pragma GCC unroll 8
  for (int i = 0; i < RW; i++)
#pragma GCC unroll 8
    for (int r = 0; r < RX; r++) acc[i][r] = _mm512_setzero_ps();
  for (int k = 0; k < K; k += 16) {
    if ((k & 31) == 0)
#pragma GCC unroll 8
      for (int i = 0; i < RW; i++) {
        const char* p = (const char*)(w + (size_t)(n + i) * K + k) + D;
        if (NEXT && 2 * k + D >= 2 * K) p += (size_t)2 * (RW - 1) * K;
        _mm_prefetch(p, H ? _MM_HINT_T1 : _MM_HINT_T0);
        if constexpr (D2 > 0) {
          const char* p2 = (const char*)(w + (size_t)(n + i) * K + k) + D2;
          if (NEXT && 2 * k + D2 >= 2 * K) p2 += (size_t)2 * (RW - 1) * K;
          _mm_prefetch(p2, _MM_HINT_T1);
        }
      }
    __m512 wv[RW];
#pragma GCC unroll 8
    for (int i = 0; i < RW; i++)
      wv[i] = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i*)(w + (size_t)(n + i) * K + k)));
#pragma GCC unroll 8
    for (int r = 0; r < RX; r++) {
      const __m512 xv = _mm512_load_ps(x + (size_t)r * K + k);
#pragma GCC unroll 8
      for (int i = 0; i < RW; i++) acc[i][r] = _mm512_fmadd_ps(wv[i], xv, acc[i][r]);
    }
  }
#pragma GCC unroll 8
  for (int i = 0; i < RW; i++)
#pragma GCC unroll 8
    for (int r = 0; r < RX; r++) y[(size_t)r * N + n + i] = _mm512_reduce_add_ps(acc[i][r]);
}

template <int RX, int D, int H, bool NEXT = false, int D2 = 0>
void rows(const uint16_t* w, int N, int K, const float* x, float* y, int n0, int n1) {
  constexpr int RW = RX <= 2 ? 8 : 4;
  int n = n0;
  for (; n + RW <= n1; n += RW) block<RW, RX, D, H, NEXT, D2>(w, N, K, x, y, n);
  for (; n < n1; n++) block<1, RX, D, H>(w, N, K, x, y, n);
}

using Rows = void (*)(const uint16_t*, int, int, const float*, float*, int, int);

// As f16_matmul_cpu splits W: chunks of rows (multiples of 8) taken by the threads in turn.
void run(const uint16_t* w, int N, int K, const float* x, float* y, Rows k, ThreadPool& pool) {
  const int chunk = std::max(8, N / (8 * pool.size()) / 8 * 8), n_chunks = (N + chunk - 1) / chunk;
  pool.parallel_dynamic(n_chunks, [&](int c) { k(w, N, K, x, y, c * chunk, std::min(N, (c + 1) * chunk)); });
}

struct Version {
  std::string name;
  Rows k;  // null: the library's f16_matmul_cpu
};

template <int M>
std::vector<Version> versions() {
  return {{"library", nullptr},
          {"before: 512 B to L1, next row", rows<M, 512, 0>},
          {"2 KiB to L2, next row", rows<M, 2048, 1>},
          {"512 B to L1, next block", rows<M, 512, 0, true>},
          {"1 KiB to L1, next block", rows<M, 1024, 0, true>},
          {"2 KiB to L2, next block", rows<M, 2048, 1, true>},
          {"512 B to L1 + 2 KiB to L2, next block", rows<M, 512, 0, true, 2048>},
          {"512 B to L1 + 4 KiB to L2, next block", rows<M, 512, 0, true, 4096>}};
}

std::vector<Version> versions_for(int M) {
  switch (M) {
    case 1: return versions<1>();
    case 2: return versions<2>();
    case 3: return versions<3>();
    case 4: return versions<4>();
    case 5: return versions<5>();
    case 6: return versions<6>();
    case 7: return versions<7>();
    default: return versions<8>();
  }
}

// One M: versions checked, then timed in alternating rounds; the results table's rows.
std::string measure(int M, int rounds, int calls, const uint16_t* w, int N, int K, ThreadPool& pool) {
  const size_t bytes = (size_t)N * K * 2;
  float* x = dev::random_rows(M, K);
  std::vector<float> y((size_t)M * N), ref((size_t)M * N);
  const std::vector<Version> vs = versions_for(M);
  const int nv = (int)vs.size();
  f16_matmul_cpu(w, N, K, x, M, ref.data(), pool);
  for (int v = 1; v < nv; v++) {
    run(w, N, K, x, y.data(), vs[v].k, pool);
    if (std::memcmp(y.data(), ref.data(), y.size() * sizeof(float)) != 0) {
      std::fprintf(stderr, "M = %d, %s: output differs from the library's\n", M, vs[v].name.c_str());
      std::exit(1);
    }
  }
  std::vector<std::vector<double>> rate(nv), pct(nv), paired(nv);
  std::vector<double> probes;
  for (int r = 0; r < rounds; r++) {
    const double probe = measure_read_bandwidth_cpu(pool, 1u << 30).best_gbs;
    probes.push_back(probe);
    std::vector<double> rm(nv);
    for (int vi = 0; vi < nv; vi++) {
      const int v = (vi + r) % nv;
      const double t0 = dev::now_s();
      for (int c = 0; c < calls; c++) {
        if (vs[v].k) {
          run(w, N, K, x, y.data(), vs[v].k, pool);
        } else {
          f16_matmul_cpu(w, N, K, x, M, y.data(), pool);
        }
      }
      rm[v] = bytes * calls / (dev::now_s() - t0) / 1e9;
    }
    std::printf("M %d round %d probe %.1f:", M, r, probe);
    for (int v = 0; v < nv; v++) {
      rate[v].push_back(rm[v]), pct[v].push_back(rm[v] / probe), paired[v].push_back(rm[v] / rm[1]);
      std::printf(" %.1f", rm[v]);
    }
    std::printf("\n");
    std::fflush(stdout);
  }
  std::free(x);
  std::string rows;
  char line[256];
  for (int v = 0; v < nv; v++) {
    std::snprintf(line, sizeof line, "| %d | %s | %.1f | %.1f%% | %.3f (%.3f-%.3f) |\n", M, vs[v].name.c_str(),
                  dev::median(rate[v]), 100 * dev::median(pct[v]), dev::median(paired[v]),
                  *std::min_element(paired[v].begin(), paired[v].end()),
                  *std::max_element(paired[v].begin(), paired[v].end()));
    rows += line;
  }
  std::snprintf(line, sizeof line, "| %d | (read probe, best segment) | %.1f | | |\n", M, dev::median(probes));
  return rows + line;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<int> ms;
  for (const char* p = argc > 1 ? argv[1] : "4"; *p;) {
    ms.push_back(std::clamp((int)std::strtol(p, const_cast<char**>(&p), 10), 1, 8));
    if (*p == ',') p++;
  }
  const int rounds = argc > 2 ? atoi(argv[2]) : 5, calls = argc > 3 ? atoi(argv[3]) : 3;
  const int N = 151936, K = 4096;
  ThreadPool pool(2);
  uint16_t* w = dev::random_f16_matrix(N, K);
  std::string table = "| M | version | GB/s | % of probe | ÷ before (same round) |\n|---:|---|---:|---:|---:|\n";
  for (int M : ms) table += measure(M, rounds, calls, w, N, K, pool);
  std::free(w);
  const std::string head = "# fp16 lm_head from DRAM: where each W row's software prefetch goes "
                           "(native/dev/cpu/head_prefetch_l2.cpp)\n\n- command: `/tmp/head_prefetch_l2 " +
                           std::string(argc > 1 ? argv[1] : "4") + " " + std::to_string(rounds) + " " +
                           std::to_string(calls) + "` (build line in the source)\n" + dev::date_and_load_line() +
                           "- 151936 x 4096 fp16, 2 threads; medians over " + std::to_string(rounds) +
                           " alternating rounds of " + std::to_string(calls) + " calls per version\n\n";
  const std::string md = head + table;
  std::fputs(md.c_str(), stdout);
  if (argc > 4)
    if (FILE* f = std::fopen(argv[4], "w")) std::fputs(md.c_str(), f), std::fclose(f);
  return 0;
}
