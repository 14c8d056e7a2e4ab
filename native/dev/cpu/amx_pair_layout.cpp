// Experiment: a packed int4 layout whose bytes the AMX tile unit reads straight from memory, against today's kernel.
//
// Today (awq_cpu_kernels.h) a 64-byte word holds 16 columns x 8 k: every byte has two k values of one column, so the
// AMX kernel expands each word into two B-tile rows of plain bytes q (load, two ANDs, a shift, two stores) and the tile
// unit reads only the expanded copy.
//
// "pair" layout: a tile is 32 columns; word kq holds, for column slot s (0..15), one uint32 whose byte i is
// q(4kq + i, s) | q(4kq + i, 16 + s) << 4: the same k for two columns, in the B tile's VNNI order. Sixteen words are
// one B tile (64 k x 16 slots) as they lie in memory. Read as unsigned bytes U = lo + 16 hi, one tile product with
// the packed words gives S1 = x.lo + 16 x.hi (lo: columns 0..15, hi: 16..31), a second with the expanded low nibbles
// L = U & 0x0F (one AND and one store per word) gives S2 = x.lo, and x.hi = (S1 - S2) / 16, exact in int32 (for
// each activation byte plane: |S1| <= 128 * 255 * 128 < 2^22; the 16-bit combination 256 hi + lo stays below
// 32639 * 255 * 256 < 2^31 even at blocks of 256). Same tile instructions as today per 32 columns, half the expansion.
// TDPBSUD takes the weights as unsigned bytes, so the high nibble needs no bias.
//
// Modes: l2 one thread, matrix in L2; l2x2 one and two threads, each its own matrix in L2; dram two threads over DRAM
// against the same round's read probe. Versions:
//   mainline   tiles_amx as built into libq3core (today's layout)
//   pair       the pair layout, expansion spread in 8 pieces between the tile instructions, 2 blocks ahead
//   pair-a1    the same, 1 block ahead
//   pair-flat  the expansion in one run after each block's tile instructions
//   pair-nopf  pair without the software prefetch; pair-pfl2 with it into L2 (T1) instead of L1
//   x:*        (timing only, wrong results) pair with parts left out: x:noexp no expansion (the tile loads read the
//              packed words from L2 or DRAM), x:loads the expansion's loads and prefetches without its stores, x:nofold no fold;
//              only one part: x:tiles, x:fold, x:expand
// Every version is checked against tiles_scalar on today's layout first; the pair versions must give the same bits as
// mainline (same int32 sums, same float operations in the same order).
// Build: g++ -O3 -march=native -I native/src -I native/include native/dev/cpu/amx_pair_layout.cpp native/build/libq3core.a -lpthread -o /tmp/amx_pair_layout
// Usage: /tmp/amx_pair_layout M [rounds] [l2|l2x2|dram] [comma-separated versions]
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "awq_format.h"
#include "awq_inputs.h"
#include "cpu/awq_cpu.h"
#include "cpu/awq_cpu_kernels.h"
#include "cpu/bandwidth_cpu.h"
#include "cpu/huge_pages.h"
#include "half.h"
#include "threadpool.h"

using namespace q3;
using namespace q3::awq_cpu;

namespace {

constexpr int kPrefetchBytes = 6144;
constexpr int kPairCols = 32;      // columns per tile of the pair layout
constexpr int kPairMeta = 96;      // per tile and group: 32 fp16 scales + 32 uint8 zero points

struct PairMatrix {
  int K = 0, N = 0, G = 0, n_tiles = 0;
  size_t tile_bytes = 0;
  std::vector<uint8_t, HugePageAllocator<uint8_t>> storage;
  const uint8_t* tile(int t) const { return storage.data() + (size_t)t * tile_bytes; }
  const uint8_t* meta(int t) const { return tile(t) + (size_t)K / 4 * 64; }
  size_t bytes() const { return storage.size(); }
};

PairMatrix pack_pairs(const AwqSource& s, int K, int G) {
  PairMatrix p;
  p.K = K, p.N = s.N, p.G = G, p.n_tiles = (s.N + kPairCols - 1) / kPairCols;
  p.tile_bytes = ((size_t)K / 4 * 64 + (size_t)K / G * kPairMeta + 63) / 64 * 64;
  p.storage.assign((size_t)p.n_tiles * p.tile_bytes, 0);
  const int pc = s.N / 8;
  for (int k = 0; k < K; k++)
    for (int n = 0; n < s.N; n++) {
      const int t = n / kPairCols, c = n % kPairCols, slot = c % 16, nib = c / 16;
      uint8_t* b = p.storage.data() + (size_t)t * p.tile_bytes + (size_t)(k / 4) * 64 + slot * 4 + k % 4;
      *b |= (uint8_t)(awq::unpack(s.qweight + (size_t)k * pc, n) << (4 * nib));
    }
  for (int g = 0; g < K / G; g++)
    for (int n = 0; n < s.N; n++) {
      const int t = n / kPairCols, c = n % kPairCols;
      uint8_t* rec = p.storage.data() + (size_t)t * p.tile_bytes + (size_t)K / 4 * 64 + (size_t)g * kPairMeta;
      std::memcpy(rec + 2 * c, &s.scales[(size_t)g * s.N + n], 2);
      rec[64 + c] = (uint8_t)awq::unpack(s.qzeros + (size_t)g * pc, n);
    }
  return p;
}

// A copy of p on huge pages.
PairMatrix copy_of(const PairMatrix& p) {
  PairMatrix c;
  c.K = p.K, c.N = p.N, c.G = p.G, c.n_tiles = p.n_tiles, c.tile_bytes = p.tile_bytes;
  c.storage.reserve(p.storage.size());
  advise_huge_pages(c.storage.data(), p.storage.size());
  c.storage.assign(p.storage.begin(), p.storage.end());
  return c;
}

// Tile registers: 0 C of the packed words (S1), 1 C of the low nibbles (S2), 2/3 A of k-step 0/1, 4/5 B packed
// words of k-step 0/1, 6/7 B low nibbles of k-step 0/1.
void configure(int prows) {
  thread_local dev::TileConfig c;
  c = dev::TileConfig{};
  for (int t : {0, 1, 2, 3}) c.rows[t] = (uint8_t)prows, c.colsb[t] = 64;
  for (int t : {4, 5, 6, 7}) c.rows[t] = 16, c.colsb[t] = 64;
  _tile_loadconfig(&c);
}

// One tile of the pair layout (32 columns) for R <= 8 rows, block 128 (two k-steps of 64). MIX: the expansion of
// block b + AHEAD in 8 pieces of 4 words between the tile instructions; otherwise in one run after them. Each block is
// folded one block later.
template <int R, bool MIX, int AHEAD, int SKIP = 0, int PF = 1>
void pair_tile(const PairMatrix& w, const QuantizedRows& x, int t, float* y, uint8_t* ring, int32_t* cbuf) {
  constexpr int kRing = 4, kWords = 32;  // words per block
  const int nb = w.K / 128;
  const uint8_t* words = w.tile(t);
  const uint8_t* meta = w.meta(t);
  const __m512i mask = _mm512_set1_epi32(0x0F0F0F0F);
  __m512i sink = _mm512_setzero_si512();
  auto slot = [&](int b) { return ring + (size_t)(b % kRing) * kWords * 64; };
  auto expand = [&](int b, int k0, int k1) {
    if ((SKIP & 2) || b >= nb) return;
    const uint8_t* wp = words + ((size_t)b * kWords + k0) * 64;
    uint8_t* dst = slot(b) + (size_t)k0 * 64;
    for (int k = k0; k < k1; k++, wp += 64, dst += 64) {
      if (PF == 1) _mm_prefetch((const char*)wp + kPrefetchBytes, _MM_HINT_T0);
      if (PF == 2) _mm_prefetch((const char*)wp + kPrefetchBytes, _MM_HINT_T1);
      if (SKIP & 1) {
        sink = _mm512_xor_si512(sink, _mm512_loadu_si512(wp));
      } else {
        _mm512_store_si512(dst, _mm512_and_si512(_mm512_loadu_si512(wp), mask));
      }
    }
  };
  auto piece = [&](int b, int i) {
    if constexpr (MIX) expand(b, 4 * i, 4 * i + 4);
  };
  for (size_t o = 0; o < (size_t)(w.K / w.G) * kPairMeta; o += 64) _mm_prefetch((const char*)meta + o, _MM_HINT_T0);
  __m512 acc[R][2];
#pragma GCC unroll 8
  for (int i = 0; i < R; i++) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
  auto fold = [&](int b) {
    if (SKIP & 4) return;
    const int32_t* c1 = cbuf + (size_t)(b % 2) * 512;  // S1 (packed words)
    const int32_t* c2 = c1 + 256;                      // S2 (low nibbles)
    const uint8_t* rec = meta + (size_t)(b * 128 / w.G) * kPairMeta;
    __m512 sv[2];
    __m512i z[2];
#pragma GCC unroll 2
    for (int j = 0; j < 2; j++) {
      sv[j] = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i*)(rec + 32 * j)));
      z[j] = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i*)(rec + 64 + 16 * j)));
    }
#pragma GCC unroll 8
    for (int i = 0; i < R; i++) {
      const size_t xb = (size_t)i * nb + b;
      const __m512 xs = _mm512_set1_ps(x.scale[xb]);
      const __m512i xsum = _mm512_set1_epi32(x.sum[xb]);
      const __m512i l_lo = _mm512_load_si512(c2 + i * 16), l_hi = _mm512_load_si512(c2 + (R + i) * 16);
      const __m512i u_lo = _mm512_load_si512(c1 + i * 16), u_hi = _mm512_load_si512(c1 + (R + i) * 16);
      const __m512i h_lo = _mm512_srai_epi32(_mm512_sub_epi32(u_lo, l_lo), 4);
      const __m512i h_hi = _mm512_srai_epi32(_mm512_sub_epi32(u_hi, l_hi), 4);
      const __m512i d[2] = {_mm512_add_epi32(_mm512_slli_epi32(l_hi, 8), l_lo),
                            _mm512_add_epi32(_mm512_slli_epi32(h_hi, 8), h_lo)};
#pragma GCC unroll 2
      for (int j = 0; j < 2; j++)
        acc[i][j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(d[j], _mm512_mullo_epi32(z[j], xsum))),
                                    _mm512_mul_ps(sv[j], xs), acc[i][j]);
    }
  };
  for (int b = 0; b < std::min(AHEAD, nb); b++) expand(b, 0, kWords);
  const size_t a_step = (size_t)2 * R * 64;
  for (int b = 0; b < nb; b++) {
    const int e = b + AHEAD;
    const uint8_t* u = words + (size_t)b * kWords * 64;
    const uint8_t* l = slot(b);
    const int8_t* a = x.tiles + (size_t)b * 2 * a_step;
    int32_t* c = cbuf + (size_t)(b % 2) * 512;
    if (SKIP & 8) {
      for (int i = 0; i < 8; i++) piece(e, i);
      if (b > 0) fold(b - 1);
      continue;
    }
    piece(e, 0);
    _tile_loadd(4, u, 64);
    _tile_loadd(5, u + 1024, 64);
    piece(e, 1);
    _tile_loadd(6, l, 64);
    _tile_loadd(7, l + 1024, 64);
    piece(e, 2);
    _tile_zero(0);
    _tile_zero(1);
    _tile_loadd(2, a, 64);
    _tile_loadd(3, a + a_step, 64);
    piece(e, 3);
    _tile_dpbsud(0, 2, 4);
    _tile_dpbsud(1, 2, 6);
    piece(e, 4);
    _tile_dpbsud(0, 3, 5);
    _tile_dpbsud(1, 3, 7);
    piece(e, 5);
    _tile_stored(0, c, 64);
    piece(e, 6);
    _tile_stored(1, c + 256, 64);
    piece(e, 7);
    if (!MIX) expand(e, 0, kWords);
    if (b > 0) fold(b - 1);
  }
  fold(nb - 1);
#pragma GCC unroll 2
  for (int j = 0; j < 2; j++)
#pragma GCC unroll 8
    for (int m = 0; m < R; m++) _mm512_storeu_ps(y + (size_t)m * w.N + (size_t)t * kPairCols + 16 * j, acc[m][j]);
  if (SKIP & 1) y[0] += (float)_mm512_reduce_add_epi32(sink);
}

template <int R, bool MIX, int AHEAD, int SKIP = 0, int PF = 1>
void run_pairs(const PairMatrix& w, const QuantizedRows& x, int t0, int t1, float* y) {
  alignas(4096) thread_local uint8_t ring[4 * 32 * 64];
  alignas(64) thread_local int32_t cbuf[2 * 512];
  configure(2 * R);
  for (int t = t0; t < t1; t++) pair_tile<R, MIX, AHEAD, SKIP, PF>(w, x, t, y, ring, cbuf);
  _tile_release();
}

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

const char* g_only = nullptr;  // comma-separated names to run (all when null)

bool selected(const char* name) { return dev::listed(g_only, name); }

// A version runs tiles [t0, t1) of its own layout (units: 16 columns for mainline, 32 for the pair layout) of copy c.
struct Version {
  const char* name;
  bool pair;
  std::function<void(size_t c, int t0, int t1, float* y)> fn;
};

template <int R>
std::vector<Version> versions(const std::vector<AwqMatrixCpu>& old, const std::vector<PairMatrix>& pk,
                              const QuantizedRows& x) {
  std::vector<Version> vs = {
      {"mainline", false, [&](size_t c, int a, int b, float* y) { tiles_amx(dev::view_of(old[c]), x, a, b, y); }},
      {"pair", true, [&](size_t c, int a, int b, float* y) { run_pairs<R, true, 2>(pk[c], x, a, b, y); }},
      {"pair-a1", true, [&](size_t c, int a, int b, float* y) { run_pairs<R, true, 1>(pk[c], x, a, b, y); }},
      {"pair-flat", true, [&](size_t c, int a, int b, float* y) { run_pairs<R, false, 2>(pk[c], x, a, b, y); }},
      {"pair-nopf", true, [&](size_t c, int a, int b, float* y) { run_pairs<R, true, 2, 0, 0>(pk[c], x, a, b, y); }},
      {"pair-pfl2", true, [&](size_t c, int a, int b, float* y) { run_pairs<R, true, 2, 0, 2>(pk[c], x, a, b, y); }},
      {"x:loads-nopf", true, [&](size_t c, int a, int b, float* y) { run_pairs<R, true, 2, 1, 0>(pk[c], x, a, b, y); }},
      {"x:noexp", true, [&](size_t c, int a, int b, float* y) { run_pairs<R, true, 2, 2>(pk[c], x, a, b, y); }},
      {"x:loads", true, [&](size_t c, int a, int b, float* y) { run_pairs<R, true, 2, 1>(pk[c], x, a, b, y); }},
      {"x:nofold", true, [&](size_t c, int a, int b, float* y) { run_pairs<R, true, 2, 4>(pk[c], x, a, b, y); }},
      {"x:tiles", true, [&](size_t c, int a, int b, float* y) { run_pairs<R, true, 2, 6>(pk[c], x, a, b, y); }},
      {"x:fold", true, [&](size_t c, int a, int b, float* y) { run_pairs<R, true, 2, 10>(pk[c], x, a, b, y); }},
      {"x:expand", true, [&](size_t c, int a, int b, float* y) { run_pairs<R, true, 2, 12>(pk[c], x, a, b, y); }},
  };
  vs.erase(std::remove_if(vs.begin(), vs.end(), [](const Version& v) { return !selected(v.name); }), vs.end());
  return vs;
}

// Checks every version against tiles_scalar (today's layout) on copy 0: max relative error, and whether the bits equal
// mainline's.
bool check(const std::vector<Version>& vs, const AwqMatrixCpu& old, const QuantizedRows& x, int N) {
  const PackedView w = dev::view_of(old);
  std::vector<float> ref((size_t)x.M * N), main((size_t)x.M * N), y((size_t)x.M * N);
  tiles_scalar(w, x, 0, w.n_tiles, ref.data());
  tiles_amx(w, x, 0, w.n_tiles, main.data());
  bool ok = true;
  for (const Version& v : vs) {
    if (v.name[0] == 'x') continue;  // timing only
    std::fill(y.begin(), y.end(), NAN);
    v.fn(0, 0, v.pair ? N / kPairCols : w.n_tiles, y.data());
    double e = 0;
    bool same = true;
    for (size_t i = 0; i < y.size(); i++) {
      e = std::max(e, (double)std::fabs(y[i] - ref[i]) / (std::fabs(ref[i]) + 1e-3));
      same &= std::memcmp(&y[i], &main[i], 4) == 0;
    }
    std::printf("%-10s max rel err vs tiles_scalar %.3g, bits %s mainline's\n", v.name, e, same ? "equal" : "DIFFER from");
    ok &= same && e < 1e-3;
  }
  return ok;
}

// One table row per version: its median (min-max) over rounds, and the median over rounds of its ratio to mainline's
// figure of the same round (when mainline ran).
void print_rows(const std::vector<Version>& vs, const std::vector<std::vector<double>>& res, const char* fmt) {
  size_t main = vs.size();
  for (size_t i = 0; i < vs.size(); i++)
    if (std::string(vs[i].name) == "mainline") main = i;
  for (size_t i = 0; i < vs.size(); i++) {
    std::vector<double> v = res[i], rel;
    if (main < vs.size())
      for (size_t r = 0; r < v.size(); r++) rel.push_back(v[r] / res[main][r]);
    std::sort(v.begin(), v.end());
    std::sort(rel.begin(), rel.end());
    std::printf("| %s | ", vs[i].name);
    std::printf(fmt, v[v.size() / 2], v.front(), v.back());
    if (rel.empty()) {
      std::printf(" | |\n");
    } else {
      std::printf(" | %.2f |\n", rel[rel.size() / 2]);
    }
  }
}

template <int R>
int run_l2(int rounds) {
  const int K = 4096, N = 512;
  std::mt19937 rng(3);
  const dev::RandomAwq in(K, N, rng);
  const std::vector<AwqMatrixCpu> old = [&] {
    std::vector<AwqMatrixCpu> v;
    v.push_back(awq_pack_cpu(K, 128, {in.src}));
    return v;
  }();
  const std::vector<PairMatrix> pk = [&] {
    std::vector<PairMatrix> v;
    v.push_back(pack_pairs(in.src, K, 128));
    return v;
  }();
  const dev::RandomRows rows(R, K, rng);
  const std::vector<Version> vs = versions<R>(old, pk, rows.x);
  if (!check(vs, old[0], rows.x, N)) return std::printf("check failed\n"), 1;
  std::vector<float> y((size_t)R * N);
  std::vector<std::vector<double>> res(vs.size());
  for (int r = 0; r < rounds; r++)
    for (size_t i0 = 0; i0 < vs.size(); i0++) {
      const size_t i = (i0 + r) % vs.size();
      const int t1 = vs[i].pair ? N / kPairCols : N / kTile;
      double best = 1e9;
      for (int rep = 0; rep < 200; rep++) {
        const double t0 = now();
        vs[i].fn(0, 0, t1, y.data());
        best = std::min(best, now() - t0);
      }
      res[i].push_back((double)old[0].bytes_read() / best / 1e9);
    }
  std::printf("\nM=%d, 1 thread, %d x %d matrix in L2, %d rounds\n\n| version | GB/s of packed weights, median (min-max) |"
              " ÷ mainline (median of same-round ratios) |\n|---|---:|---:|\n", R, K, N, rounds);
  print_rows(vs, res, "%.1f (%.1f-%.1f)");
  return 0;
}

// Two threads, the 4096 -> 12288 shape, copies of both layouts rotated over 256 MiB each; chunks of tiles taken in turn
// as awq_matmul_cpu does (about 8 per thread, whole pairs of 16-column tiles = one 32-column tile).
template <int R>
int run_dram(int rounds) {
  const int K = 4096, N = 12288;
  std::mt19937 rng(3);
  std::vector<AwqMatrixCpu> old;
  std::vector<PairMatrix> pk;
  {
    const dev::RandomAwq in(K, N, rng);
    old = dev::rotated_copies(awq_pack_cpu(K, 128, {in.src}), 256u << 20);
    const PairMatrix first = pack_pairs(in.src, K, 128);
    while (pk.size() < old.size()) pk.push_back(copy_of(first));
  }
  const dev::RandomRows rows(R, K, rng);
  const std::vector<Version> vs = versions<R>(old, pk, rows.x);
  if (!check(vs, old[0], rows.x, N)) return std::printf("check failed\n"), 1;
  std::vector<float> y((size_t)R * N);
  ThreadPool pool(2);
  const int pairs = N / kPairCols, chunk = std::max(1, pairs / 16), n_chunks = (pairs + chunk - 1) / chunk;
  std::vector<std::vector<double>> res(vs.size());
  for (int r = 0; r < rounds; r++) {
    const double probe = measure_read_bandwidth_cpu(pool, 1u << 30).best_gbs;
    std::printf("round %d probe %.1f:", r, probe);
    for (size_t i0 = 0; i0 < vs.size(); i0++) {
      const size_t i = (i0 + r) % vs.size();
      const int u = vs[i].pair ? 1 : 2;  // tiles of the version's layout per 32 columns
      double best = 1e9;
      for (size_t c = 0; c < old.size(); c++) {
        const double t0 = now();
        pool.parallel_dynamic(n_chunks, [&](int ci) {
          vs[i].fn(c, u * ci * chunk, u * std::min(pairs, (ci + 1) * chunk), y.data());
        });
        best = std::min(best, now() - t0);
      }
      const double g = (double)old[0].bytes_read() / best / 1e9;
      res[i].push_back(g / probe);
      std::printf(" %s %.1f", vs[i].name, g);
    }
    std::printf("\n");
  }
  std::printf("\nM=%d, 2 threads, %d -> %d over DRAM, %d rounds\n\n| version | ratio to the same round's probe, median "
              "(min-max) | ÷ mainline (median of same-round ratios) |\n|---|---:|---:|\n", R, K, N, rounds);
  print_rows(vs, res, "%.3f (%.3f-%.3f)");
  return 0;
}

// Both cores: each of two threads passes 100 times over its own L2-resident 4096 x 512 matrix, against one
// thread doing the same while the other waits, alternating; GB/s = all bytes / wall time.
template <int R>
int run_l2x2(int rounds) {
  const int K = 4096, N = 512, reps = 100;
  std::mt19937 rng(3);
  std::vector<AwqMatrixCpu> old;
  std::vector<PairMatrix> pk;
  {
    const dev::RandomAwq in(K, N, rng);
    for (int i = 0; i < 2; i++) old.push_back(awq_pack_cpu(K, 128, {in.src}));
    for (int i = 0; i < 2; i++) pk.push_back(pack_pairs(in.src, K, 128));
  }
  const dev::RandomRows rows(R, K, rng);
  const std::vector<Version> vs = versions<R>(old, pk, rows.x);
  if (!check(vs, old[0], rows.x, N)) return std::printf("check failed\n"), 1;
  std::vector<float> y((size_t)2 * R * N);
  std::vector<std::vector<double>> res(2 * vs.size());  // [2 i]: 1 thread, [2 i + 1]: 2 threads
  for (int r = 0; r < rounds; r++)
    for (size_t i0 = 0; i0 < vs.size(); i0++) {
      const size_t i = (i0 + r) % vs.size();
      const int t1 = vs[i].pair ? N / kPairCols : N / kTile;
      for (int threads : {1, 2}) {
        double best = 1e9;
        for (int pass = 0; pass < 3; pass++) {
          // Plain threads, not the pool: its caller takes a share a slow-waking worker has not started on.
          const double t0 = now();
          std::vector<std::thread> th;
          for (int c = 0; c < threads; c++)
            th.emplace_back([&, c] {
              for (int k = 0; k < reps; k++) vs[i].fn(c, 0, t1, y.data() + (size_t)c * R * N);
            });
          for (auto& t : th) t.join();
          best = std::min(best, now() - t0);
        }
        res[2 * i + threads - 1].push_back((double)threads * reps * old[0].bytes_read() / best / 1e9);
      }
    }
  std::printf("\nM=%d, 1 and 2 threads, each its own %d x %d matrix in L2, %d rounds\n\n| version | 1 thread GB/s | "
              "2 threads GB/s (total) | 2 threads ÷ 1 thread (median of same-round ratios) |\n|---|---:|---:|---:|\n",
              R, K, N, rounds);
  for (size_t i = 0; i < vs.size(); i++) {
    std::vector<double> a = res[2 * i], b = res[2 * i + 1], q;
    for (size_t k = 0; k < a.size(); k++) q.push_back(b[k] / a[k]);
    for (auto* v : {&a, &b, &q}) std::sort(v->begin(), v->end());
    std::printf("| %s | %.1f (%.1f-%.1f) | %.1f (%.1f-%.1f) | %.2f |\n", vs[i].name, a[a.size() / 2], a.front(), a.back(),
                b[b.size() / 2], b.front(), b.back(), q[q.size() / 2]);
  }
  return 0;
}

template <int R>
int run(int rounds, const std::string& mode) {
  if (mode == "dram") return run_dram<R>(rounds);
  if (mode == "l2x2") return run_l2x2<R>(rounds);
  return run_l2<R>(rounds);
}

}  // namespace

int main(int argc, char** argv) {
  const int M = argc > 1 ? atoi(argv[1]) : 4;
  const int rounds = argc > 2 ? atoi(argv[2]) : 5;
  const std::string mode = argc > 3 ? argv[3] : "l2";
  if (argc > 4) g_only = argv[4];
  if (!awq_cpu_force_isa("amx")) return std::printf("no amx\n"), 1;
  switch (M) {
    case 3: return run<3>(rounds, mode);
    case 4: return run<4>(rounds, mode);
    case 5: return run<5>(rounds, mode);
    case 8: return run<8>(rounds, mode);
    default: return std::printf("M must be 3, 4, 5 or 8\n"), 1;
  }
}
