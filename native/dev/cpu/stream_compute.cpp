// Experiment: does this machine overlap a weight stream from DRAM with the vector work done on the streamed data? The
// skinny matmuls (int4 and fp16 at M = 2..8) do several cycles of work per 64-byte line of weights; whether 90% of the
// read probe is reachable depends on whether that work hides under the memory time (a stream with c cycles of work per
// line runs at min(read rate, work rate)) or adds to it (1 / (1 / read rate + 1 / work rate)).
// A synthetic kernel, two threads: per 64-byte line one 64-byte load and F FMAs that use it (8 accumulators, so the
// FMAs run at the ports' peak, F / 2 cycles per line), read as 1 or 4 interleaved streams per thread (256 bytes of
// each per turn, as the read probe's loops), with or without a software prefetch into L2:
//   work    each thread re-reads its own 256 KiB, which stays in L2: the work rate, GB/s on 2 threads
//   stream  each thread streams its contiguous half of a 512 MiB huge-page buffer, best of 2 passes
// Per round, beside them, the read probe (bandwidth_cpu.h, ReadProbe::measure, 1 pass over its own 512 MiB): ratios
// are to the same round's probe. Variants alternate within each round; medians over rounds.
// Findings (bench/results/cpu-stream-compute.md, shared machine): with 4 streams per thread and the L2 prefetch, the
// work hides under the memory time almost entirely (stream / probe close to min(1, work / probe)): 0.90-0.96 of the
// probe up to ~3 ns of work per line per core; with 1 stream and no prefetch the two add, or worse.
// Build: g++ -O3 -march=native -I native/src -I native/include native/dev/cpu/stream_compute.cpp native/build/libq3core.a -lpthread -o /tmp/stream_compute
// Usage: /tmp/stream_compute [rounds] [path of a results file to write]
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <vector>

#include "cpu/bandwidth_cpu.h"
#include "cpu/huge_pages.h"
#include "results_md.h"
#include "threadpool.h"

using namespace q3;
using dev::fmt;
using dev::median;

namespace {

constexpr size_t kL2Bytes = 256 << 10, kDramBytes = size_t{512} << 20;
constexpr int kL2Passes = 64;

// S interleaved streams over [p, p + bytes) (each 256 bytes per turn, as the read probe's loops), F FMAs on each
// loaded 64-byte line, and (PF > 0) a prefetch into L2 PF bytes ahead of each line. Returns a sum so nothing is
// optimised away.
template <int F, int S, int PF>
float stream(const uint8_t* p, size_t bytes) {
  __m512 acc[8];
  for (auto& a : acc) a = _mm512_setzero_ps();
  const __m512 k = _mm512_set1_ps(0.5f);
  const size_t part = bytes / S;
  for (size_t o = 0; o < part; o += 256)
#pragma GCC unroll 4
    for (int s = 0; s < S; s++)
#pragma GCC unroll 4
      for (int l = 0; l < 4; l++) {
        const uint8_t* q = p + s * part + o + 64 * l;
        if constexpr (PF > 0) _mm_prefetch((const char*)q + PF, _MM_HINT_T1);
        const __m512 v = _mm512_load_ps((const float*)q);
        if constexpr (F == 0) {
          acc[l] = _mm512_add_ps(acc[l], v);
        } else {
#pragma GCC unroll 32
          for (int f = 0; f < F; f++) acc[f % 8] = _mm512_fmadd_ps(v, k, acc[f % 8]);
        }
      }
  float s = 0;
  for (auto& a : acc) s += _mm512_reduce_add_ps(a);
  return s;
}

struct Variant {
  int f;
  const char* reads;
  float (*fn)(const uint8_t*, size_t);
};
#define Q3_VARIANTS(F)                                                                                    \
  Variant{F, "1 stream", stream<F, 1, 0>}, Variant{F, "1 stream, L2 prefetch 4 KiB", stream<F, 1, 4096>}, \
      Variant{F, "4 streams", stream<F, 4, 0>}, Variant{F, "4 streams, L2 prefetch 2 KiB", stream<F, 4, 2048>}
const Variant kVariants[] = {Q3_VARIANTS(0),  Q3_VARIANTS(4),  Q3_VARIANTS(8),  Q3_VARIANTS(12),
                             Q3_VARIANTS(16), Q3_VARIANTS(24), Q3_VARIANTS(32)};
constexpr int kNumVariants = sizeof kVariants / sizeof kVariants[0];

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }
float g_sink = 0;

}  // namespace

int main(int argc, char** argv) {
  const int rounds = argc > 1 ? std::atoi(argv[1]) : 5;
  ThreadPool pool(2);
  const int T = pool.size();
  ReadProbe probe(pool, kDramBytes);
  // The stream's buffer on huge pages, each thread's half first touched by that thread; each thread's L2 buffer.
  uint8_t* dram = (uint8_t*)std::aligned_alloc(2 << 20, kDramBytes);
  advise_huge_pages(dram, kDramBytes);
  std::vector<uint8_t*> l2(T);
  pool.parallel_for(T, [&](int t) {
    std::memset(dram + t * (kDramBytes / T), 0, kDramBytes / T);
    l2[t] = (uint8_t*)std::aligned_alloc(64, kL2Bytes);
    std::memset(l2[t], 0, kL2Bytes);
  });

  std::vector<double> probe_gbs;
  std::vector<std::vector<double>> work(kNumVariants), ratio(kNumVariants), gbs(kNumVariants);
  for (int r = 0; r < rounds; r++) {
    const double R = probe.measure(1).best_gbs;
    probe_gbs.push_back(R);
    for (int i = 0; i < kNumVariants; i++) {
      const Variant& v = kVariants[i];
      std::vector<float> sink(T);
      double t0 = now();
      pool.parallel_for(T, [&](int t) {
        for (int p = 0; p < kL2Passes; p++) sink[t] += v.fn(l2[t], kL2Bytes);
      });
      work[i].push_back((double)T * kL2Passes * kL2Bytes / (now() - t0) / 1e9);
      double g = 0;
      for (int pass = 0; pass < 2; pass++) {
        t0 = now();
        pool.parallel_for(T, [&](int t) { sink[t] += v.fn(dram + t * (kDramBytes / T), kDramBytes / T); });
        g = std::max(g, kDramBytes / (now() - t0) / 1e9);
      }
      gbs[i].push_back(g);
      ratio[i].push_back(g / R);
      for (float s : sink) g_sink += s;
    }
  }

  const double R = median(probe_gbs);
  std::string md = "# A DRAM stream beside the vector work done on it (native/dev/cpu/stream_compute.cpp)\n\n";
  md += "- command: `/tmp/stream_compute " + std::to_string(rounds) + "` (build line in the source)\n";
  md += dev::date_and_load_line();
  md += "- 2 threads; read probe (best segment of one pass) median " + fmt("%.1f", R) + " GB/s, " +
        fmt("%.1f", *std::min_element(probe_gbs.begin(), probe_gbs.end())) + "-" +
        fmt("%.1f", *std::max_element(probe_gbs.begin(), probe_gbs.end())) + " over " + std::to_string(rounds) +
        " rounds\n\n";
  md += "Per 64-byte line: F FMAs on the loaded vector. work = the same loop on L2-resident data (2 threads), as a "
        "share of the probe and as ns per line per core; stream = the loop over DRAM; if overlap: min(probe, work); "
        "if they add: 1 / (1 / probe + 1 / work). All as medians of same-round ratios to the probe.\n\n";
  md += "| F | reads | work ns per line per core | work / probe | stream GB/s | stream / probe | if overlap | "
        "if they add |\n|---:|---|---:|---:|---:|---:|---:|---:|\n";
  for (int i = 0; i < kNumVariants; i++) {
    std::vector<double> w_share, over, add;
    for (int r = 0; r < rounds; r++) {
      const double w = work[i][r] / probe_gbs[r];
      w_share.push_back(w);
      over.push_back(std::min(1.0, w));
      add.push_back(1 / (1 + 1 / w));
    }
    md += "| " + std::to_string(kVariants[i].f) + " | " + kVariants[i].reads + " | " +
          fmt("%.2f", 64.0 * T / median(work[i])) + " | " + fmt("%.2f", median(w_share)) + " | " +
          fmt("%.1f", median(gbs[i])) + " | " + fmt("%.2f", median(ratio[i])) + " | " + fmt("%.2f", median(over)) +
          " | " + fmt("%.2f", median(add)) + " |\n";
  }
  std::fputs(md.c_str(), stdout);
  std::fprintf(stderr, "sink %g\n", (double)g_sink);
  if (argc > 2)
    if (FILE* f = std::fopen(argv[2], "w")) std::fputs(md.c_str(), f), std::fclose(f);
  return 0;
}
