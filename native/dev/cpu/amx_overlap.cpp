// Experiment: do AMX tile instructions and AVX-512 work overlap on this core, and does the core run slower while
// tiles are busy? One thread, every operand in L1, no data dependence between the tile side and the vector side.
//   tile side, per unit (4 tile instructions):
//     dp1 / dp4   4 TDPBUSD into 1 / 4 C tiles (A and B tiles resident): one dependent chain, four
//     bf4         4 TDPBF16PS into 4 C tiles
//     ld+dp4      2 TILELOADD of B tiles from L1, then dp4 (the int4 kernel's weight tiles)
//     ld+dp4+st   ld+dp4 and a TILESTORED of one C tile to L1 (the int4 kernel's tile sums before their fold)
//     ld          the 2 TILELOADDs alone; st: the TILESTORED alone
//   vector side, per step:
//     fma   8 independent FMAs on registers
//     cvt   the fp16 head's inner loop at M = 4: 2 VCVTPH2PS from L1, 4 fp32 loads, 8 FMAs
//     nib   the int4 expansion: a 64-byte load, AND, shift + AND, two 64-byte stores to L1
//     fold  the tile-sum fold: 2 x (64-byte load of int32 sums, VCVTDQ2PS, FMA)
//     st    two 64-byte stores to L1
//     chain 16 dependent IMULs (48 core cycles at any clock: the clock probe)
//     p5 / p0 / p05   4 VPERMD (port 5 only) / VPSRLW (port 0 only) / VPADDD (either) on registers
//     fma N%          FMAs at N% of the two FMA ports' peak (dependent chains, latency-bound)
// Each pair is timed as A (tile side alone), B (vector side alone) and C (both: a tile instruction, then the vector
// steps that balance it, repeated), so C ~ max(A, B) if the two overlap and ~ A + B if they do not.
// overlap = (A + B - C) / min(A, B): 1 when the shorter side hides entirely, 0 when the times add.
// The clock: 16 dependent IMULs per chain step alone give the core clock; beside a tile side that takes less time
// than the chain, the clock while tiles are busy (if C stays at the chain's time, the tiles cost no clock).
// Timings: the fastest of 3 runs of ~0.5 ms (some pairs also 50 ms) per round, rounds alternate the variants, median
// over rounds.
// Findings (bench/results/cpu-amx-overlap.md, shared machine): light vector work (integer ops on one port, loads,
// FMAs at up to half the peak, the int4 expansion and fold) overlaps tile instructions partly (C = 1.1-1.35x max);
// FMA-heavy work (full-rate FMAs, the fp16 head's VCVTPH2PS + FMA loop) does not overlap at all (C = A + B or more);
// TILESTORED adds to port-5 work and vector stores exactly. No clock licence: TDPBUSD takes 21 cycles (17.5 with 8-row
// tiles) at ~2.97 GHz in short and long runs, and a dependent IMUL chain keeps its clock beside tiles.
// Build: g++ -O2 -march=native -std=c++17 native/dev/cpu/amx_overlap.cpp -o /tmp/amx_overlap
// Usage: /tmp/amx_overlap [rounds] [path of a results file to write]
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <string>
#include <vector>

#include "results_md.h"

using q3::dev::fmt;
using q3::dev::median;

namespace {

struct alignas(64) TileConfig {
  uint8_t palette = 1, start_row = 0, reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

// Operands, all in L1: tile inputs (B tiles reloaded from tin), tile stores (tout), vector inputs and outputs apart.
struct alignas(64) Buffers {
  uint8_t tin[2048];
  uint8_t tout[2048];
  uint16_t half[2048];
  float act[1024];
  int32_t sums[512];
  uint8_t packed[2048];
  uint8_t vout[4096 + 1024];  // +1 KiB: the vector stores sit 1 KiB off the tile buffers' 4 KiB alignment
};
Buffers buf;

// All 8 tiles 64 bytes wide: C tiles 0-3 and A tiles 4-5 of `rows` rows (the int4 kernel's 2M), B tiles 6-7 of 16.
void tiles_start(int rows = 16) {
  static TileConfig cfg;
  for (int t = 0; t < 8; t++) cfg.rows[t] = (uint8_t)(t < 6 ? rows : 16), cfg.colsb[t] = 64;
  _tile_loadconfig(&cfg);
  _tile_loadd(4, buf.tin, 64);
  _tile_loadd(5, buf.tin + 1024, 64);
  _tile_loadd(6, buf.tin, 64);
  _tile_loadd(7, buf.tin + 1024, 64);
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
}

// Tile instruction Q of 4 into 4 C tiles: C0 = A4 B6, C1 = A4 B7, C2 = A5 B6, C3 = A5 B7 (the intrinsics take tile
// numbers as literals).
#define TILE_PRODUCT_Q(op)           \
  if constexpr (Q == 0) op(0, 4, 6); \
  if constexpr (Q == 1) op(1, 4, 7); \
  if constexpr (Q == 2) op(2, 5, 6); \
  if constexpr (Q == 3) op(3, 5, 7);

// ---- tile side: sub<Q>() is tile instruction Q (0..3) of a unit, and what goes with it ----
struct TNone {
  static constexpr double cycles = 0;
  static constexpr const char* name = "none";
  template <int Q>
  void sub() {}
};
struct TDp1 {
  static constexpr double cycles = 21;
  static constexpr const char* name = "dp1";
  template <int Q>
  void sub() {
    _tile_dpbusd(0, 4, 6);
  }
};
// The other tile sides, from their parts: kLoad the 2 B tiles (tile instructions 0 and 1), kDp / kBf 4 TDPBUSD /
// TDPBF16PS into 4 C tiles, kStore one C tile (after instruction 3).
enum TileParts : int { kLoad = 1, kDp = 2, kBf = 4, kStore = 8 };
template <int P>
struct TUnit {
  static constexpr double cycles = (P & (kDp | kBf)) ? 21 : 4.5;  // per tile instruction, or per sub-step
  static constexpr const char* name = P == kDp                      ? "dp4"
                                      : P == kBf                    ? "bf4"
                                      : P == (kLoad | kDp)          ? "ld+dp4"
                                      : P == (kLoad | kDp | kStore) ? "ld+dp4+st"
                                      : P == kLoad                  ? "ld"
                                                                    : "st";
  template <int Q>
  void sub() {
    if constexpr ((P & kLoad) && Q == 0) _tile_loadd(6, buf.tin, 64);
    if constexpr ((P & kLoad) && Q == 1) _tile_loadd(7, buf.tin + 1024, 64);
    if constexpr (P & kDp) {
      TILE_PRODUCT_Q(_tile_dpbusd)
    }
    if constexpr (P & kBf) {
      TILE_PRODUCT_Q(_tile_dpbf16ps)
    }
    if constexpr ((P & kStore) && Q == 3) _tile_stored(3, buf.tout, 64);
  }
};
using TDp4 = TUnit<kDp>;
using TBf4 = TUnit<kBf>;
using TLdDp4 = TUnit<kLoad | kDp>;
using TLdDp4St = TUnit<kLoad | kDp | kStore>;
using TLd = TUnit<kLoad>;
using TSt = TUnit<kStore>;

// The sum of a vector side's accumulators: what it returns so that nothing is optimised away.
template <int N>
float sum_of(const __m512 (&v)[N]) {
  float s = 0;
  for (const auto& x : v) s += _mm512_reduce_add_ps(x);
  return s;
}

// ---- vector side: step() is one step; state in registers (the loop keeps the object local) ----
struct VNone {
  static constexpr double cycles = 1;
  static constexpr const char* name = "none";
  void step() {}
  float sink() { return 0; }
};
struct VCvt {
  static constexpr double cycles = 7;
  static constexpr const char* name = "cvt";
  __m512 acc[2][4];
  unsigned k = 0;
  VCvt() {
    for (auto& r : acc)
      for (auto& v : r) v = _mm512_setzero_ps();
  }
  void step() {
    const unsigned c = k & 1023;  // 16 fp16 of each of 2 W rows 1024 apart; 16 fp32 of each of 4 rows of x 256 apart
    k += 16;
    __m512 w[2];
    for (int i = 0; i < 2; i++)
      w[i] = _mm512_cvtph_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(buf.half + i * 1024 + c)));
#pragma GCC unroll 4
    for (int m = 0; m < 4; m++) {
      const __m512 x = _mm512_load_ps(buf.act + m * 256 + (c & 255));
      for (int i = 0; i < 2; i++) acc[i][m] = _mm512_fmadd_ps(w[i], x, acc[i][m]);
    }
  }
  float sink() { return sum_of(acc[0]) + sum_of(acc[1]); }
};
struct VNib {
  static constexpr double cycles = 2.6;
  static constexpr const char* name = "nib";
  unsigned k = 0;
  void step() {
    const unsigned c = k & 2047;
    k += 64;
    const __m512i lo4 = _mm512_set1_epi8(0x0f);
    const __m512i p = _mm512_load_si512(buf.packed + c);
    _mm512_store_si512(buf.vout + 1024 + 2 * (c & 1023), _mm512_and_si512(p, lo4));
    _mm512_store_si512(buf.vout + 1024 + 2 * (c & 1023) + 64, _mm512_and_si512(_mm512_srli_epi16(p, 4), lo4));
  }
  float sink() { return buf.vout[1024]; }
};
struct VFold {
  static constexpr double cycles = 6;
  static constexpr const char* name = "fold";
  __m512 acc[4];
  unsigned k = 0;
  VFold() {
    for (auto& v : acc) v = _mm512_setzero_ps();
  }
  void step() {
    const unsigned c = k & 511;
    k += 32;
    const __m512 s = _mm512_set1_ps(0.5f);
#pragma GCC unroll 2
    for (int i = 0; i < 2; i++) {
      const __m512 v = _mm512_cvtepi32_ps(_mm512_load_si512(buf.sums + c + 16 * i));
      acc[(c / 32 + i) & 3] = _mm512_fmadd_ps(v, s, acc[(c / 32 + i) & 3]);
    }
  }
  float sink() { return sum_of(acc); }
};
struct VSt {
  static constexpr double cycles = 2;
  static constexpr const char* name = "st";
  unsigned k = 0;
  __m512i v = _mm512_set1_epi32(7);
  void step() {
    const unsigned c = k & 4095;
    k += 128;
    _mm512_store_si512(buf.vout + 1024 + c, v);
    _mm512_store_si512(buf.vout + 1024 + c + 64, v);
  }
  float sink() { return buf.vout[1024]; }
};
// One execution port each (Golden Cove tables): VPERMD zmm on port 5 only, VPSRLW zmm by an immediate on port 0 only,
// VPADDD zmm on either; 4 independent registers per step, values irrelevant (integer ops, no FP assists).
#define Q3_ON_FOUR_REGS(op, first)                                                                     \
  asm volatile(op " " first ", %%zmm16, %%zmm16\n\t" op " " first ", %%zmm17, %%zmm17\n\t" op " " first \
               ", %%zmm18, %%zmm18\n\t" op " " first ", %%zmm19, %%zmm19" ::                          \
                   : "xmm16", "xmm17", "xmm18", "xmm19")
enum class Port { p5, p0, p05 };
template <Port P>
struct VPort {
  static constexpr double cycles = P == Port::p05 ? 2 : 4;
  static constexpr const char* name = P == Port::p5 ? "p5 vpermd" : P == Port::p0 ? "p0 vpsrlw" : "p05 vpaddd";
  void step() {
    if constexpr (P == Port::p5) Q3_ON_FOUR_REGS("vpermd", "%%zmm20");
    if constexpr (P == Port::p0) Q3_ON_FOUR_REGS("vpsrlw", "$1");
    if constexpr (P == Port::p05) Q3_ON_FOUR_REGS("vpaddd", "%%zmm20");
  }
  float sink() { return 0; }
};
// F dependent FMA chains, one FMA each per step: latency-bound at 4 cycles per step, so F / 4 FMAs per cycle, F / 8
// of the two FMA ports' peak (F = 8: "fma", the peak).
template <int F>
struct VFmaRate {
  static constexpr double cycles = 4;
  static constexpr const char* name = F == 2 ? "fma 25%" : F == 4 ? "fma 50%" : F == 6 ? "fma 75%" : "fma";
  __m512 a[F];
  VFmaRate() {
    for (int i = 0; i < F; i++) a[i] = _mm512_set1_ps(1.0f + (float)i * 1e-7f);
  }
  void step() {
    const __m512 b = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
#pragma GCC unroll 8
    for (int i = 0; i < F; i++) a[i] = _mm512_fmadd_ps(a[i], b, c);
  }
  float sink() { return sum_of(a); }
};
// The clock probe: 16 dependent IMULs (3 cycles each on every Intel core since Nehalem; unlike ADD of an immediate,
// which this core's renamer can fold, an IMUL chain cannot be shortened) = 48 core cycles per step.
struct VChain {
  static constexpr double cycles = 48;
  static constexpr const char* name = "chain";
  uint64_t r = 1;
  void step() {
    const uint64_t one = 1;
    asm volatile(
        "imul %1, %0\n\timul %1, %0\n\timul %1, %0\n\timul %1, %0\n\t"
        "imul %1, %0\n\timul %1, %0\n\timul %1, %0\n\timul %1, %0\n\t"
        "imul %1, %0\n\timul %1, %0\n\timul %1, %0\n\timul %1, %0\n\t"
        "imul %1, %0\n\timul %1, %0\n\timul %1, %0\n\timul %1, %0"
        : "+r"(r)
        : "r"(one));
  }
  float sink() { return (float)r; }
};
constexpr double kChainCycles = 48;

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }
float g_sink = 0;

// ns per unit of `units` units: each unit is the tile side's 4 instructions, each followed by `steps` vector steps.
template <class T, class V>
__attribute__((noinline)) double run(long units, int steps) {
  T t;
  V v;
  const double t0 = now();
  for (long u = 0; u < units; u++) {
    t.template sub<0>();
    for (int s = 0; s < steps; s++) v.step();
    t.template sub<1>();
    for (int s = 0; s < steps; s++) v.step();
    t.template sub<2>();
    for (int s = 0; s < steps; s++) v.step();
    t.template sub<3>();
    for (int s = 0; s < steps; s++) v.step();
  }
  const double dt = now() - t0;
  g_sink += v.sink();
  return dt * 1e9 / (double)units;
}

// Fastest of `reps` runs, each sized to about `run_ns` from a first estimate.
double g_run_ns = 5e5;
template <class T, class V>
double best(int steps, int reps) {
  const double est = run<T, V>(200, steps);
  const long units = std::max(200L, (long)(g_run_ns / std::max(est, 1.0)));
  double b = 1e30;
  for (int i = 0; i < reps; i++) b = std::min(b, run<T, V>(units, steps));
  return b;
}

// Timings of one pair over the rounds: A tile side alone, B vector side alone, C both; runs of run_ns each.
struct Pair {
  std::string tile, vec;
  int steps = 0;
  double run_ns = 5e5;
  std::vector<double> a, b, c;
  double (*fa)(int, int), (*fb)(int, int), (*fc)(int, int);
};

template <class T, class V>
Pair make_pair_of(int steps, double run_ns = 5e5) {
  Pair p;
  p.tile = T::name, p.vec = V::name, p.steps = steps, p.run_ns = run_ns;
  p.fa = [](int s, int r) { return best<T, VNone>(s, r); };
  p.fb = [](int s, int r) { return best<TNone, V>(s, r); };
  p.fc = [](int s, int r) { return best<T, V>(s, r); };
  return p;
}

using VFma = VFmaRate<8>;

// Vector steps that take about as long as one tile instruction of T (at least 1), so that A ~ B and the difference
// between max and sum is largest. From each side's core cycles alone (`cycles`: per tile instruction, or per tile
// load/store sub-step, and per vector step), as measured by this harness on the quiet machine, fixed so that every
// run times the same loops.
template <class T, class V>
int balance() {
  return std::max(1, (int)std::lround(T::cycles / V::cycles));
}

template <class T, class V>
void add(std::vector<Pair>& pairs, double run_ns = 5e5) {
  pairs.push_back(make_pair_of<T, V>(balance<T, V>(), run_ns));
}

template <class T>
void add_tile(std::vector<Pair>& pairs) {
  add<T, VFma>(pairs);
  add<T, VCvt>(pairs);
  add<T, VNib>(pairs);
  add<T, VFold>(pairs);
  add<T, VSt>(pairs);
}

// The clock probe beside a tile side: 2 chain steps (96 cycles) per tile instruction (~21): the chain is the longer
// side.
template <class T>
void add_clock(std::vector<Pair>& pairs, double run_ns) {
  pairs.push_back(make_pair_of<T, VChain>(2, run_ns));
}

}  // namespace

int main(int argc, char** argv) {
  const int rounds = argc > 1 ? std::atoi(argv[1]) : 5;
  if (syscall(SYS_arch_prctl, 0x1023 /* ARCH_REQ_XCOMP_PERM */, 18 /* XTILEDATA */) != 0) {
    std::fprintf(stderr, "AMX not available (no permission or no tile unit)\n");
    return 1;
  }
  // Tile inputs as bf16: 1.0 in the first KiB, 2^-20 in the second (fp32 sums stay normal; as int8 any values do).
  for (int i = 0; i < 1024; i += 2) {
    buf.tin[i] = 0x80, buf.tin[i + 1] = 0x3f;
    buf.tin[1024 + i] = 0x80, buf.tin[1025 + i] = 0x35;
  }
  for (int i = 0; i < 2048; i++) buf.half[i] = (uint16_t)(0x3c00 + (i & 7));
  for (int i = 0; i < 1024; i++) buf.act[i] = 1e-6f * (float)(i & 15);
  for (int i = 0; i < 512; i++) buf.sums[i] = i;
  for (int i = 0; i < 2048; i++) buf.packed[i] = (uint8_t)(i * 37);
  tiles_start();

  // Overlap: each tile side against each vector side, then dp4 against single ports, then two pairs in 50 ms runs.
  std::vector<Pair> pairs;
  add_tile<TDp4>(pairs);
  add_tile<TBf4>(pairs);
  add_tile<TLdDp4>(pairs);
  add_tile<TLdDp4St>(pairs);
  add_tile<TLd>(pairs);
  add_tile<TSt>(pairs);
  add<TDp4, VPort<Port::p5>>(pairs);
  add<TDp4, VPort<Port::p0>>(pairs);
  add<TDp4, VPort<Port::p05>>(pairs);
  add<TDp4, VFmaRate<2>>(pairs);
  add<TDp4, VFmaRate<4>>(pairs);
  add<TDp4, VFmaRate<6>>(pairs);
  add<TLd, VPort<Port::p5>>(pairs);
  add<TLd, VPort<Port::p0>>(pairs);
  add<TLd, VFmaRate<4>>(pairs);
  add<TSt, VPort<Port::p5>>(pairs);
  add<TSt, VPort<Port::p0>>(pairs);
  add<TSt, VFmaRate<4>>(pairs);
  pairs.push_back(make_pair_of<TDp4, VFma>(10));  // twice the balancing FMA steps
  add<TDp4, VFma>(pairs, 5e7);
  add<TDp4, VNib>(pairs, 5e7);
  // The clock: the chain alone and beside tile sides, in 0.5 ms and in 50 ms runs.
  std::vector<Pair> clock;
  for (double run_ns : {5e5, 5e7}) {
    clock.push_back(make_pair_of<TNone, VChain>(16, run_ns));
    add_clock<TDp1>(clock, run_ns);
    add_clock<TDp4>(clock, run_ns);
    add_clock<TBf4>(clock, run_ns);
    add_clock<TLdDp4St>(clock, run_ns);
  }

  for (int r = 0; r < rounds; r++)
    for (auto* list : {&pairs, &clock})
      for (auto& p : *list) {
        g_run_ns = p.run_ns;
        p.a.push_back(p.fa(p.steps, 3));
        p.b.push_back(p.fb(p.steps, 3));
        p.c.push_back(p.fc(p.steps, 3));
      }
  // A tile instruction's time against the rows of its A and C tiles (16 = 8 activation rows' low and high bytes).
  const int kRows[] = {4, 8, 12, 16};
  std::vector<double> by_rows[4];
  for (int r = 0; r < rounds; r++)
    for (int i = 0; i < 4; i++) {
      tiles_start(kRows[i]);
      by_rows[i].push_back(best<TDp4, VNone>(0, 3) / 4);
    }
  _tile_release();

  std::string md = "# AMX tile instructions beside AVX-512 work on one core (native/dev/cpu/amx_overlap.cpp)\n\n";
  md += "- command: `/tmp/amx_overlap " + std::to_string(rounds) + "` (build line in the source)\n";
  md += q3::dev::date_and_load_line();
  md += "- one thread, operands in L1; per round the fastest of 3 runs of ~0.5 ms each, rounds alternate the variants; "
        "median over " + std::to_string(rounds) + " rounds\n";
  md += "- run: the time of one run (the clock and the two long pairs also in 50 ms runs: a frequency licence, if "
        "any, takes effect after some time)\n\n";
  md += "A unit = the tile side's 4 tile instructions (or its loads/stores) and `steps` vector steps after each. "
        "overlap = (A + B - C) / min(A, B): 1 = the shorter side hides entirely, 0 = the times add.\n\n";
  md += "| tile side | vector side | steps | run | A tiles ns | B vector ns | C both ns | max(A,B) | A+B | C / max | "
        "overlap |\n|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|\n";
  for (const auto& p : pairs) {
    const double a = median(p.a), b = median(p.b), c = median(p.c);
    md += "| " + p.tile + " | " + p.vec + " | " + std::to_string(p.steps) + " | " + fmt("%.1f ms", p.run_ns / 1e6) +
          " | " + fmt("%.1f", a) + " | " + fmt("%.1f", b) + " | " + fmt("%.1f", c) + " | " +
          fmt("%.1f", std::max(a, b)) + " | " + fmt("%.1f", a + b) + " | " + fmt("%.2f", c / std::max(a, b)) + " | " +
          fmt("%.2f", (a + b - c) / std::min(a, b)) + " |\n";
  }
  md += "\nThe core clock: 16 dependent IMULs (48 cycles) per chain step. Alone, and beside a tile side that takes "
        "about half the chain's time: if the chain's time stays, the core clock did not drop while the tiles ran.\n\n"
        "| run | tile side | chain steps | tiles alone ns | chain alone ns | chain with tiles ns | GHz alone | "
        "GHz with tiles | tile instruction ns | cycles per tile instruction |\n"
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n";
  for (const auto& p : clock) {
    const double a = median(p.a), b = median(p.b), c = median(p.c);
    const double chain_cycles = 4.0 * p.steps * kChainCycles, ghz = chain_cycles / b;
    md += "| " + fmt("%.1f ms", p.run_ns / 1e6) + " | " + p.tile + " | " + std::to_string(4 * p.steps) + " | " +
          fmt("%.1f", a) + " | " + fmt("%.1f", b) + " | " + fmt("%.1f", c) + " | " + fmt("%.2f", ghz) + " | " +
          fmt("%.2f", chain_cycles / c) + " | " + (p.tile == "none" ? "-" : fmt("%.2f", a / 4)) + " | " +
          (p.tile == "none" ? "-" : fmt("%.1f", a / 4 * ghz)) + " |\n";
  }
  md += "\nTDPBUSD (dp4, 4 C tiles) against the rows of its A and C tiles (B: 16 rows of 64 bytes; 0.5 ms runs):\n\n"
        "| A and C rows | ns per instruction | cycles at the chain's clock |\n|---:|---:|---:|\n";
  const double ghz0 = 4.0 * clock[0].steps * kChainCycles / median(clock[0].b);
  for (int i = 0; i < 4; i++)
    md += "| " + std::to_string(kRows[i]) + " | " + fmt("%.2f", median(by_rows[i])) + " | " +
          fmt("%.1f", median(by_rows[i]) * ghz0) + " |\n";
  std::fputs(md.c_str(), stdout);
  std::fprintf(stderr, "sink %g\n", (double)g_sink);
  if (argc > 2)
    if (FILE* f = std::fopen(argv[2], "w")) std::fputs(md.c_str(), f), std::fclose(f);
  return 0;
}
