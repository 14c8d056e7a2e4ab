// Experiment: the arithmetic peaks of this machine's cores, to tell a skinny matmul's compute limit from its memory
// limit. Loops with no memory traffic beyond L1, each run on 1 and on 2 threads in alternating rounds:
//   fma   AVX-512 FMA, 12 independent accumulators per thread (fp32 lanes per second)
//   amx   TDPBUSD, 16 x 64 int8 times 64 x 16, four independent C tiles per thread (tile instructions per second)
//   f16 M the inner loop of the exact fp16 matmul (fp16 weights widened with VCVTPH2PS, fp32 FMA against M activation
//         rows, RW weight rows per register block, all operands in L1): fp16 weight bytes per second, the most that
//         any kernel of this arithmetic can stream at M rows whatever the memory does
// If the 2 threads ran on one physical core (SMT siblings, or a shared tile unit), the 2-thread totals would stay near
// the 1-thread ones.
// Build: g++ -O2 -mavx512f -mamx-tile -mamx-int8 -std=c++17 -pthread native/dev/cpu/core_peaks.cpp -o /tmp/core_peaks
// Usage: /tmp/core_peaks [rounds] [path of a results file to write]
// GCC 12 reports its own _mm512_undefined_* placeholders as maybe-uninitialized once inlined: a false positive.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "results_md.h"

namespace {

using q3::dev::date_and_load_line;
using q3::dev::median;

constexpr long kFmaIters = 100'000'000, kAmxIters = 10'000'000;

float fma_loop() {
  __m512 a[12];
  for (int i = 0; i < 12; i++) a[i] = _mm512_set1_ps(1.0f + i * 1e-7f);
  const __m512 b = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
  for (long n = 0; n < kFmaIters; n++)
#pragma GCC unroll 12
    for (int i = 0; i < 12; i++) a[i] = _mm512_fmadd_ps(a[i], b, c);
  float s = 0;
  for (int i = 0; i < 12; i++) s += _mm512_reduce_add_ps(a[i]);
  return s;
}

struct alignas(64) TileConfig {
  uint8_t palette = 1, start_row = 0, reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

float amx_loop() {
  thread_local TileConfig cfg;  // not on the stack: the compiler does not see _tile_loadconfig read it
  cfg = TileConfig{};
  for (int t = 0; t < 8; t++) cfg.rows[t] = 16, cfg.colsb[t] = 64;
  _tile_loadconfig(&cfg);
  alignas(64) static thread_local uint8_t in[1024];
  alignas(64) static thread_local int32_t out[256];
  std::fill(in, in + sizeof in, 1);
  _tile_loadd(4, in, 64);
  _tile_loadd(5, in, 64);
  _tile_loadd(6, in, 64);
  _tile_loadd(7, in, 64);
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
  for (long n = 0; n < kAmxIters; n++) {
    _tile_dpbusd(0, 4, 6);
    _tile_dpbusd(1, 4, 7);
    _tile_dpbusd(2, 5, 6);
    _tile_dpbusd(3, 5, 7);
  }
  _tile_stored(0, out, 64);
  _tile_release();
  return (float)out[0];
}

// One pass of RW weight rows of kF16K fp16 values against M activation rows, repeated; returns a sum so that
// nothing is optimised away. Per 16 weights of a row: one VCVTPH2PS from L1 and M FMAs.
constexpr int kF16K = 256;
constexpr long kF16Passes = 4'000'000;

template <int M, int RW>
float f16_loop() {
  alignas(64) static thread_local uint16_t w[RW * kF16K];
  alignas(64) static thread_local float x[M * kF16K];
  for (int i = 0; i < RW * kF16K; i++) w[i] = 0x3c00 + (i & 7);  // 1.0 .. 1.0068
  for (int i = 0; i < M * kF16K; i++) x[i] = 1e-6f * (float)(i & 15);
  __m512 acc[RW][M];
  for (int r = 0; r < RW; r++)
    for (int m = 0; m < M; m++) acc[r][m] = _mm512_setzero_ps();
  for (long n = 0; n < kF16Passes; n++) {
    const uint16_t* wp = w;
    asm volatile("" : "+r"(wp));  // the compiler cannot assume the weights are the last pass's: reload them
    for (int c = 0; c < kF16K; c += 16) {
      __m512 wv[RW];
#pragma GCC unroll 8
      for (int r = 0; r < RW; r++)
        wv[r] = _mm512_cvtph_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(wp + r * kF16K + c)));
#pragma GCC unroll 8
      for (int m = 0; m < M; m++) {
        const __m512 xv = _mm512_load_ps(x + m * kF16K + c);
#pragma GCC unroll 8
        for (int r = 0; r < RW; r++) acc[r][m] = _mm512_fmadd_ps(wv[r], xv, acc[r][m]);
      }
    }
  }
  float s = 0;
  for (int r = 0; r < RW; r++)
    for (int m = 0; m < M; m++) s += _mm512_reduce_add_ps(acc[r][m]);
  return s;
}

// Seconds for `threads` threads each running `loop` once.
double timed(int threads, const std::function<float()>& loop) {
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<std::thread> pool;
  std::vector<float> sink(threads);
  for (int i = 0; i < threads; i++) pool.emplace_back([&, i] { sink[i] = loop(); });
  for (auto& t : pool) t.join();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// GB of fp16 weights per second streamed by `threads` threads running f16_loop<M, RW>.
template <int M, int RW>
double f16_rate(int threads) {
  return threads * kF16Passes * (double)RW * kF16K * 2 / timed(threads, f16_loop<M, RW>) / 1e9;
}

// The fp16 loop's cases: M activation rows, RW weight rows per register block (RW x M accumulators, at most 24).
struct F16Case {
  int m, rw;
  double (*rate)(int threads);
};
constexpr F16Case kF16Cases[] = {{1, 8, f16_rate<1, 8>}, {2, 8, f16_rate<2, 8>}, {4, 6, f16_rate<4, 6>},
                                 {6, 4, f16_rate<6, 4>}, {7, 3, f16_rate<7, 3>}, {8, 3, f16_rate<8, 3>}};
constexpr int kNumF16Cases = sizeof kF16Cases / sizeof kF16Cases[0];

// A table row's last three cells from the per-round rates on 1 and 2 threads: median (min-max) of each, and the ratio.
std::string spread_cells(const std::vector<double>& one, const std::vector<double>& two) {
  char cells[160];
  std::snprintf(cells, sizeof cells, " %.3g (%.3g-%.3g) | %.3g (%.3g-%.3g) | %.2f |\n", median(one),
                *std::min_element(one.begin(), one.end()), *std::max_element(one.begin(), one.end()), median(two),
                *std::min_element(two.begin(), two.end()), *std::max_element(two.begin(), two.end()),
                median(two) / median(one));
  return cells;
}

}  // namespace

int main(int argc, char** argv) {
  const int rounds = argc > 1 ? std::atoi(argv[1]) : 5;
  const bool amx = syscall(SYS_arch_prctl, 0x1023 /* ARCH_REQ_XCOMP_PERM */, 18 /* XTILEDATA */) == 0;
  // per round: [fma 1, fma 2, amx 1, amx 2] in G per second (fp32 FMA lanes; tile instructions)
  std::vector<std::vector<double>> rates(4);
  // per round and fp16 case: [2 * case + threads - 1] in GB of fp16 weights per second
  std::vector<std::vector<double>> f16(2 * kNumF16Cases);
  for (int r = 0; r < rounds; r++)
    for (int threads : {1, 2}) {
      rates[threads - 1].push_back(threads * kFmaIters * 12.0 * 16 / timed(threads, fma_loop) / 1e9);
      if (amx) rates[1 + threads].push_back(threads * kAmxIters * 4.0 / timed(threads, amx_loop) / 1e9);
      for (int i = 0; i < kNumF16Cases; i++) f16[2 * i + threads - 1].push_back(kF16Cases[i].rate(threads));
    }
  std::string md = "# Arithmetic peaks of this machine's cores (native/dev/cpu/core_peaks.cpp)\n\n";
  md += "- command: `/tmp/core_peaks " + std::to_string(rounds) + "` (build line in the source)\n";
  md += date_and_load_line();
  md += "- loops with no memory traffic beyond L1, 1 and 2 threads alternating, " + std::to_string(rounds) +
        " rounds; median (min-max) of the totals over all threads\n\n";
  md += "| loop | unit | 1 thread | 2 threads | 2 threads / 1 thread |\n|---|---|---:|---:|---:|\n";
  const char* names[2] = {"AVX-512 FMA", "AMX TDPBUSD (16x64 by 64x16 int8)"};
  const char* units[2] = {"G fp32 FMA lanes/s", "G tile instructions/s"};
  for (int k = 0; k < (amx ? 2 : 1); k++)
    md += "| " + std::string(names[k]) + " | " + units[k] + " |" + spread_cells(rates[2 * k], rates[2 * k + 1]);
  if (!amx) md += "\nAMX: not available (no permission or no tile unit)\n";
  md += "\nExact fp16 matmul inner loop (VCVTPH2PS + fp32 FMA, operands in L1): the compute ceiling of an fp16 weight "
        "stream at M activation rows, GB of fp16 weights per second\n\n";
  md += "| M | register block | 1 thread | 2 threads | 2 threads / 1 thread |\n|---:|---|---:|---:|---:|\n";
  for (int i = 0; i < kNumF16Cases; i++)
    md += "| " + std::to_string(kF16Cases[i].m) + " | RW = " + std::to_string(kF16Cases[i].rw) + " |" +
          spread_cells(f16[2 * i], f16[2 * i + 1]);
  std::fputs(md.c_str(), stdout);
  if (argc > 2)
    if (FILE* f = std::fopen(argv[2], "w")) std::fputs(md.c_str(), f), std::fclose(f);
  return 0;
}
