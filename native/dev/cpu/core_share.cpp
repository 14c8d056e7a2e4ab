// Experiment: does the M = 1 decode kernel's share of a plain read follow how much work the cores can do at the time?
// On the Zen 5 host (a 2-vCPU KVM guest) the library's compute-bound kernels run from L2 at rates that move by a third
// within a minute (int4 M = 4 on one thread: 18-26 GB/s in runs five seconds apart), while a read from DRAM does
// little work per byte. If the host sometimes runs other work on the physical cores under the vCPUs, the kernel, which
// needs ~10 instructions per weight word, would lose stream rate in those periods and a read would not.
// Per round, all on the same threads:
//   1. capacity: each thread runs the library's M = 1 kernel (tiles_avx512vnni_amd) over its own matrix that stays in
//      L2 (K = 4096, 8 tiles: 256 KiB), for kCapCalls calls; GB/s per thread, the round's capacity is the slower
//      thread's (a decode step waits for its slower thread);
//   2. the same kernel over copies of the 8B gate_proj shape (4096 -> 12288) from DRAM, split as decode_prefetch.cpp
//      splits it, and a read of the same bytes (dev::read_tiles), in alternating order;
//   3. capacity again; the round's capacity is the mean of the two.
// The rounds are then put in bins by capacity and by the read's rate (the memory's mode), and per bin the median of
// kernel ÷ read of the same round is given.
// Build: g++ -O3 -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni -mfma -mf16c -mavx2 -I native/src \
//   -I native/include -I native/dev/cpu native/dev/cpu/core_share.cpp native/build/libq3core.a -lpthread \
//   -o /tmp/core_share
// Usage: /tmp/core_share [rounds, default 400] [threads, default 2] [results file]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "awq_inputs.h"
#include "cpu/awq_cpu.h"
#include "cpu/awq_cpu_kernels.h"
#include "cpu/bandwidth_cpu.h"
#include "results_md.h"
#include "threadpool.h"

using namespace q3;
using namespace q3::awq_cpu;

namespace {

constexpr int kCapCalls = 40;

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

using Kernel = void (*)(const PackedView&, const QuantizedRows&, int, int, float*);

// GB/s of `fn` over `copies` (n of them from `first`, rotating), tiles split into chunks of pairs as
// decode_prefetch.cpp does (8 chunks per thread, taken dynamically).
double dram_pass(ThreadPool& pool, Kernel fn, const std::vector<AwqMatrixCpu>& copies, size_t first, size_t n,
                 const QuantizedRows& x, float* y) {
  double bytes = 0, sec = 0;
  for (size_t k = 0; k < n; k++) {
    const AwqMatrixCpu& c = copies[(first + k) % copies.size()];
    const PackedView w = dev::view_of(c);
    const int pairs = (w.n_tiles + 1) / 2, chunk = std::max(1, pairs / (8 * pool.size())),
              n_chunks = (pairs + chunk - 1) / chunk;
    const double t0 = now();
    pool.parallel_dynamic(n_chunks, [&](int ci) {
      fn(w, x, 2 * ci * chunk, std::min(w.n_tiles, 2 * (ci + 1) * chunk), y);
    });
    sec += now() - t0;
    bytes += (double)c.bytes_read();
  }
  return bytes / sec / 1e9;
}

}  // namespace

int main(int argc, char** argv) {
  const int rounds = argc > 1 ? atoi(argv[1]) : 400;
  const int threads = argc > 2 ? atoi(argv[2]) : 2;
  if (!awq_cpu_force_isa("avx512-vnni")) return std::printf("no AVX512-VNNI\n"), 1;
  std::mt19937 rng(5);
  const std::vector<AwqMatrixCpu> copies = dev::rotated_copies(dev::random_packed(4096, 12288, rng), 512u << 20);
  std::vector<AwqMatrixCpu> small;
  for (int i = 0; i < threads; i++) small.push_back(dev::random_packed(4096, 128, rng));
  const dev::RandomRows rows(1, 4096, rng);
  std::vector<float> y(12288 * 2), ys((size_t)threads * 128 * 2);
  ThreadPool pool(threads);

  auto capacity = [&]() {
    std::vector<double> g(threads);
    pool.parallel_for(threads, [&](int i) {
      const PackedView w = dev::view_of(small[i]);
      tiles_avx512vnni_amd(w, rows.x, 0, w.n_tiles, ys.data() + (size_t)i * 256);  // warm
      const double t0 = now();
      for (int k = 0; k < kCapCalls; k++) tiles_avx512vnni_amd(w, rows.x, 0, w.n_tiles, ys.data() + (size_t)i * 256);
      g[i] = (double)small[i].bytes_read() * kCapCalls / (now() - t0) / 1e9;
    });
    return *std::min_element(g.begin(), g.end());
  };

  struct Round {
    double cap, kernel, read;
  };
  std::vector<Round> rs;
  size_t at = 0;
  const size_t per = 4;  // copies per pass: ~100 MB
  for (int r = 0; r < rounds; r++) {
    const double c0 = capacity();
    double k, rd;
    if (r % 2) {
      k = dram_pass(pool, tiles_avx512vnni_amd, copies, at, per, rows.x, y.data());
      rd = dram_pass(pool, dev::read_tiles, copies, at + per, per, rows.x, y.data());
    } else {
      rd = dram_pass(pool, dev::read_tiles, copies, at, per, rows.x, y.data());
      k = dram_pass(pool, tiles_avx512vnni_amd, copies, at + per, per, rows.x, y.data());
    }
    at += 2 * per;
    const double c1 = capacity();
    rs.push_back({(c0 + c1) / 2, k, rd});
  }

  // Bins: by the read's rate (the memory's mode; 45 GB/s split on two threads, 30 on one) and, within each, by
  // capacity in quartiles of that mode's rounds.
  const double split = threads >= 2 ? 45 : 30;
  std::string table =
      "| memory mode (read of the same bytes) | capacity quartile | rounds | capacity (GB/s, L2 kernel per thread) | "
      "read (GB/s) | kernel (GB/s) | kernel ÷ read (median) |\n|---|---|---:|---:|---:|---:|---:|\n";
  for (int fast = 0; fast < 2; fast++) {
    std::vector<Round> m;
    for (const Round& r : rs)
      if ((r.read >= split) == (bool)fast) m.push_back(r);
    if (m.empty()) continue;
    std::sort(m.begin(), m.end(), [](const Round& a, const Round& b) { return a.cap < b.cap; });
    for (int q = 0; q < 5; q++) {
      const size_t b = q < 4 ? m.size() * q / 4 : 0, e = q < 4 ? m.size() * (q + 1) / 4 : m.size();
      if (b >= e) continue;
      std::vector<double> cap, rd, k, ratio;
      for (size_t i = b; i < e; i++)
        cap.push_back(m[i].cap), rd.push_back(m[i].read), k.push_back(m[i].kernel),
            ratio.push_back(m[i].kernel / m[i].read);
      const std::string quartile = q < 4 ? std::to_string(q + 1) + " of 4" : "all";
      table += std::string("| ") + (fast ? "fast" : "slow") + " | " + quartile + " | " + std::to_string(e - b) +
               " | " + dev::fmt("%.1f", dev::median(cap)) + " (" + dev::fmt("%.1f", cap.front()) + "-" +
               dev::fmt("%.1f", cap.back()) + ") | " +
               dev::fmt("%.1f", dev::median(rd)) + " | " + dev::fmt("%.1f", dev::median(k)) + " | " +
               dev::fmt("%.3f", dev::median(ratio)) + " |\n";
    }
  }
  const std::string md = "# The decode kernel's share of a read against the cores' capacity "
                         "(native/dev/cpu/core_share.cpp)\n\n- command: `/tmp/core_share " +
                         std::to_string(rounds) + " " + std::to_string(threads) +
                         (argc > 3 ? std::string(" ") + argv[3] : std::string()) + "` (build line in the source)\n" +
                         "- cpu: " + cpu_model_name() + ", " + std::to_string(threads) +
                         (threads == 1 ? " thread" : " threads") + "\n" + dev::date_and_load_line() + "\n" + table;
  std::fputs(md.c_str(), stdout);
  if (argc > 3)
    if (FILE* f = std::fopen(argv[3], "w")) std::fputs(md.c_str(), f), std::fclose(f);
  return 0;
}
