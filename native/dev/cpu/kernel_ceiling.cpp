// Experiment: what one core's vector pipes allow the M = 1 int4 decode kernel, with no memory in the way. Two parts:
//   1. instruction mixes on registers only, per 64-byte weight word as the merged kernel (awq_cpu_avx512.cpp) issues
//      them: its 4 vpdpbusd with 2 vgf2p8affineqb (the library on GFNI CPUs), with 2 vpandd, with one of each, with a
//      shift and 2 vpandd (no GFNI); the dot products alone; the operand ops alone;
//   2. the library's kernels (tiles_avx512vnni_amd, _no_gfni) and the probe's read loop over one matrix that stays in
//      L2 (K = 12288, 8 tiles: 804 KB), 20000 calls, GB/s of packed weights.
// On Zen 4 a 512-bit vgf2p8affineqb takes the same pipes as vpdpbusd, while vpandd and shifts go elsewhere; a decode
// core in the fast memory mode must stream ~30 GB/s (docs/cpu-memory-modes.md). Results: bench/results/cpu-zen4-kernel-ceiling.md;
// on the Zen 5 host of session 33, with twice the throughput, cpu-zen5-kernel-ceiling.md.
// Build: g++ -O3 -march=native -I native/src -I native/include -I native/dev/cpu native/dev/cpu/kernel_ceiling.cpp native/build/libq3core.a -lpthread -o /tmp/kernel_ceiling
// Usage: /tmp/kernel_ceiling [results file to write]
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <random>
#include <string>
#include <vector>

#include "awq_inputs.h"

namespace {

using Clock = std::chrono::steady_clock;

#define DP(a) "vpdpbusd %%zmm20, %%zmm21, %%zmm" #a "\n"
#define GF(d) "vgf2p8affineqb $0, %%zmm22, %%zmm23, %%zmm" #d "\n"
#define AN(d) "vpandd %%zmm22, %%zmm23, %%zmm" #d "\n"
#define SH(d) "vpsllw $4, %%zmm23, %%zmm" #d "\n"
#define CLOBBERS "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13"

// Each mix covers two words (8 independent dot-product chains); GB/s = words per second x 64 bytes.
template <class F>
double mix_gbs(F f) {
  constexpr long kIters = 50000000;
  double best = 0;
  for (int k = 0; k < 3; k++) {
    const auto t0 = Clock::now();
    for (long i = 0; i < kIters; i++) f();
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    best = std::max(best, kIters * 2 * 64.0 / s / 1e9);
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace q3;
  std::string md = "# One core's ceiling for the M = 1 int4 decode kernel (native/dev/cpu/kernel_ceiling.cpp)\n\n";
  char line[256];
  time_t now = time(nullptr);
  strftime(line, sizeof line, "%Y-%m-%d %H:%M UTC", gmtime(&now));
  md += std::string("- date: ") + line + "; one thread; best of 3 (mixes) / median of 5 (kernels)\n\n";
  md += "Instruction mixes on registers, per 64-byte word (GB/s = words/s x 64):\n\n| mix per word | GB/s |\n|---|---:|\n";
  struct Mix { const char* name; double gbs; };
  const Mix mixes[] = {
      {"4 vpdpbusd + 2 vgf2p8affineqb (the library, GFNI)", mix_gbs([] { asm volatile(DP(0) DP(1) DP(2) DP(3) DP(4) DP(5) DP(6) DP(7) GF(8) GF(9) GF(10) GF(11) ::: CLOBBERS); })},
      {"4 vpdpbusd + 1 vgf2p8affineqb + 1 vpandd", mix_gbs([] { asm volatile(DP(0) DP(1) DP(2) DP(3) DP(4) DP(5) DP(6) DP(7) GF(8) AN(9) GF(10) AN(11) ::: CLOBBERS); })},
      {"4 vpdpbusd + shift + 2 vpandd (the library without GFNI)", mix_gbs([] { asm volatile(DP(0) DP(1) DP(2) DP(3) DP(4) DP(5) DP(6) DP(7) SH(8) AN(9) AN(10) SH(12) AN(13) AN(11) ::: CLOBBERS); })},
      {"4 vpdpbusd + 2 vpandd", mix_gbs([] { asm volatile(DP(0) DP(1) DP(2) DP(3) DP(4) DP(5) DP(6) DP(7) AN(8) AN(9) AN(10) AN(11) ::: CLOBBERS); })},
      {"4 vpdpbusd", mix_gbs([] { asm volatile(DP(0) DP(1) DP(2) DP(3) DP(4) DP(5) DP(6) DP(7) ::: CLOBBERS); })},
      {"2 vgf2p8affineqb", mix_gbs([] { asm volatile(GF(8) GF(9) GF(10) GF(11) ::: CLOBBERS); })},
      {"2 vpandd", mix_gbs([] { asm volatile(AN(8) AN(9) AN(10) AN(11) ::: CLOBBERS); })},
  };
  for (const Mix& m : mixes) snprintf(line, sizeof line, "| %s | %.1f |\n", m.name, m.gbs), md += line;

  std::mt19937 rng(1);
  const int K = 12288, N = 128;
  AwqMatrixCpu m = dev::random_packed(K, N, rng);
  const awq_cpu::PackedView w = dev::view_of(m);
  dev::RandomRows x(1, K, rng);
  std::vector<float> y(N + 64);
  using Fn = void (*)(const awq_cpu::PackedView&, const awq_cpu::QuantizedRows&, int, int, float*);
  struct Kernel { const char* name; Fn f; } kernels[] = {
      {"tiles_avx512vnni_amd (GFNI)", awq_cpu::tiles_avx512vnni_amd},
      {"tiles_avx512vnni_amd_no_gfni", awq_cpu::tiles_avx512vnni_amd_no_gfni},
      {"the probe's read loop", dev::read_tiles}};
  snprintf(line, sizeof line, "\nThe library's kernels over one L2-resident matrix (K = %d, N = %d: %.0f KB), GB/s of packed weights:\n\n", K, N,
           (double)w.n_tiles * w.tile_bytes / 1024);
  md += line;
  md += "| kernel | GB/s (median of 5) |\n|---|---:|\n";
  for (const Kernel& k : kernels) {
    std::vector<double> r;
    for (int round = 0; round < 5; round++) {
      const int reps = 20000;
      const auto t0 = Clock::now();
      for (int i = 0; i < reps; i++) k.f(w, x.x, 0, w.n_tiles, y.data());
      r.push_back((double)w.n_tiles * w.tile_bytes * reps / std::chrono::duration<double>(Clock::now() - t0).count() / 1e9);
    }
    std::sort(r.begin(), r.end());
    snprintf(line, sizeof line, "| %s | %.1f |\n", k.name, r[2]);
    md += line;
  }
  fputs(md.c_str(), stdout);
  if (argc > 1) {
    FILE* f = fopen(argv[1], "w");
    if (!f) return perror(argv[1]), 1;
    fputs(md.c_str(), f);
    fclose(f);
  }
}
