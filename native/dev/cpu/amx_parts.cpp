// Experiment: where the AMX int4 kernel's time goes at M = 3..8 rows, and versions of it. One pair of tiles, block
// 128, fold one block later, unless said otherwise:
//   mainline   tiles_amx as built into libq3core
//   flat       the next blocks' expansion (load, two ANDs, shift, two stores per word) in one run after the block's
//              tile instructions, as mainline was before the expansion was spread out
//   mix[-aN]   the expansion cut into 8 pieces placed between the tile instructions (N blocks ahead, default 2)
//   mix-dbl    mix with the C registers double-buffered by block parity (one A and two B registers per k-step)
//   lr[-mix]   only the low nibbles expanded (one store per word), the packed words themselves the other B tile, with
//              activations 16 x_lo - x_hi in three byte planes (3M tile rows; M <= 5)
//   e:*        the expansion alone: plain, no prefetch, one store per word, loads only, stores only
//   f:*        flat with parts left out: f:expand / f:tiles / f:fold only that part, f:-X all but X
//   p:*        B tiles from a read-only buffer expanded before the run (no store-to-tile-load dependence)
//   t-*        tile instructions only (B from a fixed L1 buffer): as mainline, without the per-block zero and store,
//              C double-buffered by block parity
//   dram mode: mainline and mix-a1 with prefetch distances 3/6/12 KiB, into L1 or (-l2) L2 only
// "l2" mode (default): one thread, a 4096 x 512 matrix that stays in L2, best of 200 calls, GB/s of packed weights,
// median over rounds (versions alternate). "dram" mode: two threads, 4096 -> 12288 copies rotated over 512 MiB,
// ratio to the same round's read-bandwidth probe. Every l2 version except the timing-only ones is first checked
// against tiles_scalar.
// Build: g++ -O3 -march=native -mamx-tile -mamx-int8 -I native/src -I native/include native/dev/cpu/amx_parts.cpp native/build/libq3core.a -lpthread -o /tmp/amx_parts
// Usage: /tmp/amx_parts M [rounds] [comma-separated versions] [dram]
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

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

using dev::TileConfig;

void configure(int prows) {
  thread_local TileConfig c;
  c = TileConfig{};
  for (int t : {0, 1}) c.rows[t] = (uint8_t)prows, c.colsb[t] = 64;
  for (int t : {2, 3}) c.rows[t] = (uint8_t)prows, c.colsb[t] = 64;
  for (int t : {4, 5, 6, 7}) c.rows[t] = 16, c.colsb[t] = 64;
  _tile_loadconfig(&c);
}

// One block's tile instructions for a pair of tiles: C0 = A0 B[0] + A1 B[1], C1 = A0 B[2] + A1 B[3], stored to c0 / c1
// (rows 64 bytes apart), with piece(0..7) between them (the spread-out expansion, or nothing).
template <class Piece>
inline void block_tiles(const std::array<const void*, 4>& bt, const int8_t* a0, const int8_t* a1, int32_t* c0,
                        int32_t* c1, Piece&& piece) {
  piece(0);
  _tile_loadd(4, bt[0], 64);
  _tile_loadd(5, bt[1], 64);
  piece(1);
  _tile_loadd(6, bt[2], 64);
  _tile_loadd(7, bt[3], 64);
  piece(2);
  _tile_zero(0);
  _tile_zero(1);
  _tile_loadd(2, a0, 64);
  _tile_loadd(3, a1, 64);
  piece(3);
  _tile_dpbsud(0, 2, 4);
  _tile_dpbsud(1, 2, 6);
  piece(4);
  _tile_dpbsud(0, 3, 5);
  _tile_dpbsud(1, 3, 7);
  piece(5);
  _tile_stored(0, c0, 64);
  piece(6);
  _tile_stored(1, c1, 64);
  piece(7);
}

// block_tiles with the C registers double-buffered (0/1 on even blocks, 2/3 on odd ones, so a block's products need
// not wait for the previous block's C stores): A in registers 4 (k-step 0) and 7 (k-step 1), B reloaded per k-step
// into 5 and 6.
#define Q3_BLOCK_TILES_DBL(NAME, C0, C1)                                                                        \
  template <class Piece>                                                                                        \
  inline void NAME(const std::array<const void*, 4>& bt, const int8_t* a0, const int8_t* a1, int32_t* c0,       \
                   int32_t* c1, Piece&& piece) {                                                                \
    piece(0);                                                                                                   \
    _tile_zero(C0);                                                                                             \
    _tile_zero(C1);                                                                                             \
    _tile_loadd(4, a0, 64);                                                                                     \
    _tile_loadd(5, bt[0], 64);                                                                                  \
    piece(1);                                                                                                   \
    _tile_loadd(6, bt[2], 64);                                                                                  \
    _tile_dpbsud(C0, 4, 5);                                                                                     \
    _tile_dpbsud(C1, 4, 6);                                                                                     \
    piece(2);                                                                                                   \
    _tile_loadd(7, a1, 64);                                                                                     \
    _tile_loadd(5, bt[1], 64);                                                                                  \
    piece(3);                                                                                                   \
    _tile_loadd(6, bt[3], 64);                                                                                  \
    _tile_dpbsud(C0, 7, 5);                                                                                     \
    _tile_dpbsud(C1, 7, 6);                                                                                     \
    piece(4);                                                                                                   \
    _tile_stored(C0, c0, 64);                                                                                   \
    piece(5);                                                                                                   \
    _tile_stored(C1, c1, 64);                                                                                   \
    piece(6);                                                                                                   \
    piece(7);                                                                                                   \
  }
Q3_BLOCK_TILES_DBL(block_tiles_even, 0, 1)
Q3_BLOCK_TILES_DBL(block_tiles_odd, 2, 3)

void configure_dbl(int prows) {
  thread_local TileConfig c;
  c = TileConfig{};
  for (int t : {0, 1, 2, 3, 4, 7}) c.rows[t] = (uint8_t)prows, c.colsb[t] = 64;
  for (int t : {5, 6}) c.rows[t] = 16, c.colsb[t] = 64;
  _tile_loadconfig(&c);
}

// One pair of tiles, block 128, one pass of R rows, fold LAG blocks later. MIX: the next blocks' expansion is cut
// into 8 pieces of 4 words placed between the tile instructions instead of in one run after them. AHEAD: blocks
// expanded ahead. SKIP (timing only): 1 no expand, 2 no tile instructions, 4 no fold.
template <int R, int LAG, bool MIX, int AHEAD, int SKIP, int PF = kPrefetchBytes, bool DBL = false>
void pair_kernel(const PackedView& w, const QuantizedRows& x, const int8_t* atiles, int t, float* y, uint8_t* wring,
                 int32_t* cring, const uint8_t* pre) {
  const int K = w.K, B = 128, nb = K / B, nv = 16;
  constexpr size_t kBlockSpan = 4096;
  constexpr int kRing = 4;
  static_assert(AHEAD < kRing, "ring too small");
  __m512 acc[R][2];
  for (int i = 0; i < R; i++) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
  const __m512i mask = _mm512_set1_epi32(0x0F0F0F0F);
  auto slot = [&](int b, int j) { return wring + (size_t)(b % kRing) * kBlockSpan + j * 2048; };
  // the B tiles' source: the ring, or (timing only) a read-only buffer expanded before the run
  auto bsrc = [&](int b, int j) { return pre ? pre + (size_t)b * kBlockSpan + j * 2048 : slot(b, j); };
  // words [k0, k1) of tile j of block b (32 words per block: tile = k / 16)
  auto expand_words = [&](int b, int k0, int k1) {
    if (SKIP & 1) return;
    if (b >= nb) return;
    for (int k = k0; k < k1; k++) {
      const int j = k / nv, kk = k % nv;
      const uint8_t* wp = w.tile(t + j) + ((size_t)b * nv + kk) * kWordBytes;
      uint8_t* dst = slot(b, j) + (size_t)kk * 128;
      _mm_prefetch((const char*)wp + (PF > 0 ? PF : -PF), PF > 0 ? _MM_HINT_T0 : _MM_HINT_T1);
      const __m512i v = _mm512_loadu_si512(wp);
      _mm512_store_si512(dst, _mm512_and_si512(v, mask));
      _mm512_store_si512(dst + 64, _mm512_and_si512(_mm512_srli_epi32(v, 4), mask));
    }
  };
  auto piece = [&](int b, int i) {
    if constexpr (MIX) expand_words(b, 4 * i, 4 * i + 4);
  };
  auto cslot = [&](int b, int j) { return cring + ((size_t)(b % (LAG + 1)) * 2 + j) * 256; };
  for (int b = 0; b < std::min(AHEAD, nb); b++) expand_words(b, 0, 32);
  const size_t a_step = (size_t)2 * R * 64;  // one k-step's A tile
  for (int b = 0; b < nb + LAG; b++) {
    const int e = b + AHEAD;
    if (b < nb && !(SKIP & 2)) {
      const int8_t* a = atiles + (size_t)b * 2 * a_step;
      const std::array<const void*, 4> bt = {bsrc(b, 0), bsrc(b, 0) + 1024, bsrc(b, 1), bsrc(b, 1) + 1024};
      if (!DBL) {
        block_tiles(bt, a, a + a_step, cslot(b, 0), cslot(b, 1), [&](int i) { piece(e, i); });
      } else if (b % 2 == 0) {
        block_tiles_even(bt, a, a + a_step, cslot(b, 0), cslot(b, 1), [&](int i) { piece(e, i); });
      } else {
        block_tiles_odd(bt, a, a + a_step, cslot(b, 0), cslot(b, 1), [&](int i) { piece(e, i); });
      }
    } else if (MIX && b < nb) {
      for (int i = 0; i < 8; i++) piece(e, i);
    }
    if (!MIX && b < nb) expand_words(e, 0, 32);
    const int f = b - LAG;
    if (f >= 0 && !(SKIP & 4)) {
      const size_t g = (size_t)f * kMetaBytes;
      for (int j = 0; j < 2; j++) {
        const int32_t* c = cslot(f, j);
        const __m512 sv = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i*)(w.meta(t + j) + g)));
        const __m512i z = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i*)(w.meta(t + j) + g + 32)));
        for (int i = 0; i < R; i++) {
          const __m512 xs = _mm512_set1_ps(x.scale[(size_t)i * nb + f]);
          const __m512i lo = _mm512_load_si512(c + (size_t)i * 16);
          const __m512i hi = _mm512_load_si512(c + (size_t)(R + i) * 16);
          __m512i di = _mm512_add_epi32(_mm512_slli_epi32(hi, 8), lo);
          di = _mm512_sub_epi32(di, _mm512_mullo_epi32(z, _mm512_set1_epi32(x.sum[(size_t)i * nb + f])));
          acc[i][j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(di), _mm512_mul_ps(sv, xs), acc[i][j]);
        }
      }
    }
  }
  for (int j = 0; j < 2; j++)
    for (int m = 0; m < R; m++) _mm512_storeu_ps(y + (size_t)m * w.N + (size_t)(t + j) * kTile, acc[m][j]);
}

// One block, tile instructions only, into C registers C0 / C1: one A and two B registers reloaded per k-step. (A macro:
// the tile intrinsics take register numbers as literals.)
#define Q3_DBL_BLOCK(NAME, C0, C1)                                                        \
  inline void NAME(const int8_t* a, size_t a_step, const uint8_t* wb, int32_t* c) {       \
    _tile_zero(C0);                                                                       \
    _tile_zero(C1);                                                                       \
    for (int s = 0; s < 2; s++) {                                                         \
      _tile_loadd(4, a + s * a_step, 64);                                                 \
      _tile_loadd(5, wb + s * 1024, 64);                                                  \
      _tile_loadd(6, wb + 2048 + s * 1024, 64);                                           \
      _tile_dpbsud(C0, 4, 5);                                                             \
      _tile_dpbsud(C1, 4, 6);                                                             \
    }                                                                                     \
    _tile_stored(C0, c, 64);                                                              \
    _tile_stored(C1, c + 256, 64);                                                        \
  }
Q3_DBL_BLOCK(dbl_block_even, 0, 1)
Q3_DBL_BLOCK(dbl_block_odd, 2, 3)

// Tile instructions only (timing, not results): B from a fixed L1-resident buffer of expanded weights, A from the
// activation tiles, C stored per block (or not). SCHED 0: as mainline (C0/C1, A0/A1, four B registers);
// 1: same without the per-block zero and store; 2: C double-buffered by block parity (regs 0-3), one A and two B
// registers reloaded per k-step.
template <int R, int SCHED>
void tiles_only(const PackedView& w, const int8_t* atiles, const uint8_t* wfix, int32_t* cbuf) {
  const int nb = w.K / 128;
  const size_t a_step = (size_t)2 * R * 64;
  for (int t = 0; t < w.n_tiles; t += 2) {
    for (int b = 0; b < nb; b++) {
      const uint8_t* wb = wfix + (size_t)(b % 4) * 4096;
      const int8_t* a = atiles + (size_t)b * 2 * a_step;
      if constexpr (SCHED <= 1) {
        _tile_loadd(4, wb, 64);
        _tile_loadd(5, wb + 1024, 64);
        _tile_loadd(6, wb + 2048, 64);
        _tile_loadd(7, wb + 3072, 64);
        if (SCHED == 0) { _tile_zero(0); _tile_zero(1); }
        _tile_loadd(2, a, 64);
        _tile_loadd(3, a + a_step, 64);
        _tile_dpbsud(0, 2, 4);
        _tile_dpbsud(1, 2, 6);
        _tile_dpbsud(0, 3, 5);
        _tile_dpbsud(1, 3, 7);
        if (SCHED == 0) { _tile_stored(0, cbuf, 64); _tile_stored(1, cbuf + 256, 64); }
      } else {  // C double-buffered: registers 0/1 on even blocks, 2/3 on odd ones
        int32_t* c = cbuf + (b % 2) * 512;
        if (b % 2 == 0) {
          dbl_block_even(a, a_step, wb, c);
        } else {
          dbl_block_odd(a, a_step, wb, c);
        }
      }
    }
  }
}

template <int R, int SCHED>
void run_tiles_only(const PackedView& w, const int8_t* atiles) {
  alignas(4096) static uint8_t wfix[4 * 4096];
  alignas(64) static int32_t cbuf[1024];
  thread_local TileConfig c;
  c = TileConfig{};
  for (int i = 0; i < 8; i++) c.rows[i] = 16, c.colsb[i] = 64;
  const bool dbl = SCHED >= 2;
  for (int i = 0; i < (dbl ? 4 : 2); i++) c.rows[i] = 2 * R;  // C tiles
  if (dbl) {
    c.rows[4] = 2 * R;  // A
  } else {
    c.rows[2] = c.rows[3] = 2 * R;
  }
  _tile_loadconfig(&c);
  tiles_only<R, SCHED>(w, atiles, wfix, cbuf);
  _tile_release();
}

// "lr": only the low nibbles are expanded (v & 0x0F0F0F0F, one store per word); the packed word itself is the other
// B tile (its bytes are L + 16 H). 16 (x_lo-positions . L + x_hi-positions . H) = x_hi . (L + 16 H) + (16 x_lo - x_hi) . L,
// so the A tile of the raw words holds the activations at the high-nibble positions (two byte planes, the third zero)
// and the A tile of the expanded words holds 16 x_lo - x_hi (three byte planes); C row plane * R + m. R <= 5.
struct LrActivations {
  std::vector<int8_t> data;  // per block: A_R (3R rows x 64) then A_L (3R rows x 64)
};

LrActivations lr_activations(const QuantizedRows& x) {
  const int R = x.M, nb = x.K / 128;
  LrActivations a;
  a.data.assign((size_t)nb * 2 * 3 * R * 64, 0);
  for (int b = 0; b < nb; b++) {
    int8_t* ar = a.data.data() + (size_t)b * 2 * 3 * R * 64;
    int8_t* al = ar + (size_t)3 * R * 64;
    for (int m = 0; m < R; m++)
      for (int j = 0; j < 16; j++)
        for (int i = 0; i < 4; i++) {
          const size_t k = (size_t)b * 128 + 8 * j;
          const int c = 4 * j + i;
          const int32_t xl = x.q[(size_t)m * x.K + k + i], xh = x.q[(size_t)m * x.K + k + 4 + i];
          ar[(size_t)(0 * R + m) * 64 + c] = x.lo[(size_t)m * x.K + k + 4 + i];
          ar[(size_t)(1 * R + m) * 64 + c] = x.hi[(size_t)m * x.K + k + 4 + i];
          int32_t v = 16 * xl - xh;
          const int p0 = ((v + 128) & 255) - 128;
          v = (v - p0) / 256;
          const int p1 = ((v + 128) & 255) - 128;
          const int p2 = (v - p1) / 256;
          al[(size_t)(0 * R + m) * 64 + c] = (int8_t)p0;
          al[(size_t)(1 * R + m) * 64 + c] = (int8_t)p1;
          al[(size_t)(2 * R + m) * 64 + c] = (int8_t)p2;
        }
  }
  return a;
}

template <int R, bool MIX, int AHEAD>
void pair_lr(const PackedView& w, const QuantizedRows& x, const int8_t* atiles, int t, float* y, uint8_t* wring,
             int32_t* cbuf) {
  const int K = w.K, nb = K / 128, nv = 16;
  constexpr int kRing = 4;
  __m512 acc[R][2];
  for (int i = 0; i < R; i++) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
  const __m512i mask = _mm512_set1_epi32(0x0F0F0F0F);
  auto slot = [&](int b, int j) { return wring + (size_t)(b % kRing) * 2048 + j * 1024; };
  auto raw = [&](int b, int j) { return w.tile(t + j) + (size_t)b * nv * kWordBytes; };
  auto expand_words = [&](int b, int k0, int k1) {
    if (b >= nb) return;
    for (int k = k0; k < k1; k++) {
      const int j = k / nv, kk = k % nv;
      const uint8_t* wp = raw(b, j) + (size_t)kk * kWordBytes;
      _mm_prefetch((const char*)wp + kPrefetchBytes, _MM_HINT_T0);
      _mm512_store_si512(slot(b, j) + (size_t)kk * 64, _mm512_and_si512(_mm512_loadu_si512(wp), mask));
    }
  };
  auto piece = [&](int b, int i) {
    if constexpr (MIX) expand_words(b, 4 * i, 4 * i + 4);
  };
  for (int b = 0; b < std::min(AHEAD, nb); b++) expand_words(b, 0, 32);
  // d = (plane 0 + 256 plane 1 + 65536 plane 2) / 16 (exact: a multiple of 16), then as the mainline's fold.
  auto fold = [&](int f) {
    const int32_t* cf = cbuf + (size_t)(f % 2) * 2 * 256;
    const size_t g = (size_t)f * kMetaBytes;
    for (int j = 0; j < 2; j++) {
      const int32_t* c = cf + j * 256;
      const __m512 sv = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i*)(w.meta(t + j) + g)));
      const __m512i z = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i*)(w.meta(t + j) + g + 32)));
      for (int i = 0; i < R; i++) {
        const __m512 xs = _mm512_set1_ps(x.scale[(size_t)i * nb + f]);
        const __m512i p0 = _mm512_load_si512(c + (size_t)i * 16);
        const __m512i p1 = _mm512_load_si512(c + (size_t)(R + i) * 16);
        const __m512i p2 = _mm512_load_si512(c + (size_t)(2 * R + i) * 16);
        __m512i di = _mm512_add_epi32(_mm512_add_epi32(_mm512_slli_epi32(p2, 16), _mm512_slli_epi32(p1, 8)), p0);
        di = _mm512_srai_epi32(di, 4);
        di = _mm512_sub_epi32(di, _mm512_mullo_epi32(z, _mm512_set1_epi32(x.sum[(size_t)i * nb + f])));
        acc[i][j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(di), _mm512_mul_ps(sv, xs), acc[i][j]);
      }
    }
  };
  const size_t a_bytes = (size_t)3 * R * 64;
  for (int b = 0; b < nb; b++) {
    const int e = b + AHEAD;
    int32_t* c0 = cbuf + (size_t)(b % 2) * 2 * 256;
    const int8_t* a = atiles + (size_t)b * 2 * a_bytes;
    block_tiles({raw(b, 0), slot(b, 0), raw(b, 1), slot(b, 1)}, a, a + a_bytes, c0, c0 + 256,
                [&](int i) { piece(e, i); });
    if (!MIX) expand_words(e, 0, 32);
    if (b > 0) fold(b - 1);
  }
  fold(nb - 1);
  for (int j = 0; j < 2; j++)
    for (int m = 0; m < R; m++) _mm512_storeu_ps(y + (size_t)m * w.N + (size_t)(t + j) * kTile, acc[m][j]);
}

// Expansion alone (timing only), over every tile pair and block: EV 0 as the kernels (prefetch, load, two ANDs,
// shift, two stores), 1 without the prefetch, 2 one store per word, 3 no stores (loads xor-ed), 4 stores only
// (no loads).
template <int EV>
void expand_only(const PackedView& w, uint8_t* ring, float* y) {
  const __m512i mask = _mm512_set1_epi32(0x0F0F0F0F);
  __m512i acc = _mm512_setzero_si512();
  const int nb = w.K / 128;
  for (int t = 0; t < w.n_tiles; t += 2)
    for (int b = 0; b < nb; b++)
      for (int j = 0; j < 2; j++) {
        const uint8_t* wp = w.tile(t + j) + (size_t)b * 16 * kWordBytes;
        uint8_t* dst = ring + (size_t)(b % 4) * 4096 + j * 2048;
        for (int k = 0; k < 16; k++, wp += 64, dst += 128) {
          if (EV != 1 && EV != 4) _mm_prefetch((const char*)wp + kPrefetchBytes, _MM_HINT_T0);
          const __m512i v = EV == 4 ? _mm512_set1_epi32(k) : _mm512_loadu_si512(wp);
          if (EV == 3) {
            acc = _mm512_xor_si512(acc, v);
            continue;
          }
          _mm512_store_si512(dst, _mm512_and_si512(v, mask));
          if (EV != 2) _mm512_store_si512(dst + 64, _mm512_and_si512(_mm512_srli_epi32(v, 4), mask));
        }
      }
  y[0] = (float)_mm512_reduce_add_epi32(acc);
}

template <int EV>
void run_expand_only(const PackedView& w, float* y) {
  alignas(4096) static uint8_t ring[4 * 4096];
  expand_only<EV>(w, ring, y);
}

template <int R, bool MIX, int AHEAD>
void run_lr(const PackedView& w, const QuantizedRows& x, const int8_t* atiles, float* y) {
  alignas(4096) static uint8_t wring[4 * 2048];
  alignas(4096) static int32_t cbuf[2 * 2 * 256];
  thread_local TileConfig c;
  c = TileConfig{};
  for (int i = 0; i < 4; i++) c.rows[i] = 3 * R, c.colsb[i] = 64;
  for (int i = 4; i < 8; i++) c.rows[i] = 16, c.colsb[i] = 64;
  _tile_loadconfig(&c);
  for (int t = 0; t < w.n_tiles; t += 2) pair_lr<R, MIX, AHEAD>(w, x, atiles, t, y, wring, cbuf);
  _tile_release();
}

// Tiles [t0, t1) (an even count). PF: prefetch distance in bytes (negative: into L2 only).
template <int R, int LAG, bool MIX, int AHEAD, int SKIP = 0, bool PRE = false, int PF = kPrefetchBytes,
          bool DBL = false>
void run_kernel(const PackedView& w, const QuantizedRows& x, const int8_t* atiles, float* y, int t0 = 0,
                int t1 = -1) {
  alignas(4096) thread_local uint8_t wring[4 * 4096];
  alignas(4096) thread_local int32_t cring[3 * 2 * 256];
  alignas(4096) static uint8_t pre[32 * 4096];  // one pair's blocks, expanded (contents irrelevant for timing)
  if (DBL) {
    configure_dbl(2 * R);
  } else {
    configure(2 * R);
  }
  if (t1 < 0) t1 = w.n_tiles;
  for (int t = t0; t < t1; t += 2)
    pair_kernel<R, LAG, MIX, AHEAD, SKIP, PF, DBL>(w, x, atiles, t, y, wring, cring, PRE ? pre : nullptr);
  _tile_release();
}

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

const char* g_only = nullptr;  // comma-separated names to run (all when null)

bool selected(const char* name) { return dev::listed(g_only, name); }

// DRAM mode: 2 threads, the 4096 -> 12288 shape, copies rotated over 512 MiB, versions alternating within each round;
// each version's best pass over all copies against that round's read-bandwidth probe (median over rounds).
template <int R>
int run_dram(int rounds) {
  const int M = R, K = 4096, N = 12288;
  std::mt19937 rng(3);
  const std::vector<AwqMatrixCpu> copies = dev::rotated_copies(dev::random_packed(K, N, rng), 512u << 20);
  auto view = [&](size_t i) { return dev::view_of(copies[i]); };
  const dev::RandomRows rows(M, K, rng);
  const QuantizedRows& x = rows.x;
  const int8_t* flat = rows.tiles.data();
  using Kernel = std::function<void(const PackedView&, int, int, float*)>;
  struct V {
    const char* name;
    Kernel fn;
  };
  std::vector<V> vs = {
      {"mainline", [&](const PackedView& w, int a, int b, float* y) { tiles_amx(w, x, a, b, y); }},
      {"mix-a1", [&](const PackedView& w, int a, int b, float* y) { run_kernel<R, 1, true, 1>(w, x, flat, y, a, b); }},
      {"pf3k", [&](const PackedView& w, int a, int b, float* y) { run_kernel<R, 1, true, 1, 0, false, 3072>(w, x, flat, y, a, b); }},
      {"pf12k", [&](const PackedView& w, int a, int b, float* y) { run_kernel<R, 1, true, 1, 0, false, 12288>(w, x, flat, y, a, b); }},
      {"pf6k-l2", [&](const PackedView& w, int a, int b, float* y) { run_kernel<R, 1, true, 1, 0, false, -6144>(w, x, flat, y, a, b); }},
      {"pf12k-l2", [&](const PackedView& w, int a, int b, float* y) { run_kernel<R, 1, true, 1, 0, false, -12288>(w, x, flat, y, a, b); }},
  };
  vs.erase(std::remove_if(vs.begin(), vs.end(), [](const V& v) { return !selected(v.name); }), vs.end());
  std::vector<float> y((size_t)M * N);
  ThreadPool pool(2);
  const int n_tiles = N / kTile, pairs = n_tiles / 2, chunk = std::max(1, pairs / 16), n_chunks = (pairs + chunk - 1) / chunk;
  std::vector<std::vector<double>> res(vs.size());
  for (int r = 0; r < rounds; r++) {
    const double probe = measure_read_bandwidth_cpu(pool, 1u << 30).best_gbs;
    std::printf("round %d probe %.1f:", r, probe);
    for (size_t i0 = 0; i0 < vs.size(); i0++) {
      const size_t i = (i0 + r) % vs.size();
      double best = 1e9;
      for (size_t c = 0; c < copies.size(); c++) {
        const PackedView w = view(c);
        const double t0 = now();
        pool.parallel_dynamic(n_chunks, [&](int ci) {
          vs[i].fn(w, 2 * ci * chunk, std::min(n_tiles, 2 * (ci + 1) * chunk), y.data());
        });
        best = std::min(best, now() - t0);
      }
      const double g = (double)copies[0].bytes_read() / best / 1e9;
      res[i].push_back(g / probe);
      std::printf(" %s %.1f", vs[i].name, g);
    }
    std::printf("\n");
  }
  std::printf("M=%d, 2 threads, DRAM: median ratio to the same-round probe over %d rounds\n", M, rounds);
  for (size_t i = 0; i < vs.size(); i++) {
    std::sort(res[i].begin(), res[i].end());
    std::printf("%-9s %.3f\n", vs[i].name, res[i][res[i].size() / 2]);
  }
  return 0;
}

template <int R>
int run(int rounds) {
  const int M = R;
  std::mt19937 rng(3);
  const int K = 4096, N = 512;
  const AwqMatrixCpu pk = dev::random_packed(K, N, rng);
  const PackedView w = dev::view_of(pk);
  dev::RandomRows rows(M, K, rng);
  QuantizedRows& x = rows.x;
  std::vector<int8_t>& flat = rows.tiles;
  const LrActivations lra = R <= 5 ? lr_activations(x) : LrActivations{};

  struct V {
    const char* name;
    std::function<void(float*)> fn;
  };
  std::vector<V> vs = {
      {"mainline", [&](float* y) { tiles_amx(w, x, 0, w.n_tiles, y); }},
      {"flat", [&](float* y) { run_kernel<R, 1, false, 2>(w, x, flat.data(), y); }},
      {"flat-a3", [&](float* y) { run_kernel<R, 1, false, 3>(w, x, flat.data(), y); }},
      {"flat-lag2", [&](float* y) { run_kernel<R, 2, false, 2>(w, x, flat.data(), y); }},
      {"mix", [&](float* y) { run_kernel<R, 1, true, 2>(w, x, flat.data(), y); }},
      {"mix-a1", [&](float* y) { run_kernel<R, 1, true, 1>(w, x, flat.data(), y); }},
      {"mix-a3", [&](float* y) { run_kernel<R, 1, true, 3>(w, x, flat.data(), y); }},
      {"mix-dbl", [&](float* y) { run_kernel<R, 1, true, 2, 0, false, kPrefetchBytes, true>(w, x, flat.data(), y); }},
      {"mix-dbl-a1", [&](float* y) { run_kernel<R, 1, true, 1, 0, false, kPrefetchBytes, true>(w, x, flat.data(), y); }},
      {"lr", [&](float* y) { if constexpr (R <= 5) run_lr<R, false, 2>(w, x, lra.data.data(), y); }},
      {"lr-mix", [&](float* y) { if constexpr (R <= 5) run_lr<R, true, 2>(w, x, lra.data.data(), y); }},
      {"lr-mix-a1", [&](float* y) { if constexpr (R <= 5) run_lr<R, true, 1>(w, x, lra.data.data(), y); }},
      {"e:plain", [&](float* y) { run_expand_only<0>(w, y); }},
      {"e:nopf", [&](float* y) { run_expand_only<1>(w, y); }},
      {"e:1store", [&](float* y) { run_expand_only<2>(w, y); }},
      {"e:loads", [&](float* y) { run_expand_only<3>(w, y); }},
      {"e:stores", [&](float* y) { run_expand_only<4>(w, y); }},
      {"f:expand", [&](float* y) { run_kernel<R, 1, false, 2, 6>(w, x, flat.data(), y); }},
      {"f:tiles", [&](float* y) { run_kernel<R, 1, false, 2, 5>(w, x, flat.data(), y); }},
      {"f:fold", [&](float* y) { run_kernel<R, 1, false, 2, 3>(w, x, flat.data(), y); }},
      {"f:-expand", [&](float* y) { run_kernel<R, 1, false, 2, 1>(w, x, flat.data(), y); }},
      {"f:-tiles", [&](float* y) { run_kernel<R, 1, false, 2, 2>(w, x, flat.data(), y); }},
      {"f:-fold", [&](float* y) { run_kernel<R, 1, false, 2, 4>(w, x, flat.data(), y); }},
      {"p:pre", [&](float* y) { run_kernel<R, 1, false, 2, 0, true>(w, x, flat.data(), y); }},
      {"p:pre-mix", [&](float* y) { run_kernel<R, 1, true, 2, 0, true>(w, x, flat.data(), y); }},
      {"p:pre-fold", [&](float* y) { run_kernel<R, 1, false, 2, 4, true>(w, x, flat.data(), y); }},
      {"p:pre-noexp", [&](float* y) { run_kernel<R, 1, false, 2, 1, true>(w, x, flat.data(), y); }},
      {"t-base", [&](float*) { run_tiles_only<R, 0>(w, flat.data()); }},
      {"t-nostore", [&](float*) { run_tiles_only<R, 1>(w, flat.data()); }},
      {"t-dblC", [&](float*) { run_tiles_only<R, 2>(w, flat.data()); }},
  };
  vs.erase(std::remove_if(vs.begin(), vs.end(), [](const V& v) { return !selected(v.name); }), vs.end());
  std::vector<float> ref((size_t)M * N), y((size_t)M * N);
  tiles_scalar(w, x, 0, w.n_tiles, ref.data());
  for (auto& v : vs) {
    if (v.name[1] == '-' || v.name[1] == ':') continue;
    std::fill(y.begin(), y.end(), NAN);
    v.fn(y.data());
    double e = 0;
    for (size_t i = 0; i < y.size(); i++) e = std::max(e, (double)std::fabs(y[i] - ref[i]) / (std::fabs(ref[i]) + 1e-3));
    std::printf("%-9s max rel err %.3g\n", v.name, e);
  }
  std::vector<std::vector<double>> res(vs.size());
  for (int r = 0; r < rounds; r++) {
    for (size_t i0 = 0; i0 < vs.size(); i0++) {
      const size_t i = (i0 + r) % vs.size();
      double best = 1e9;
      for (int rep = 0; rep < 200; rep++) {
        const double t0 = now();
        vs[i].fn(y.data());
        best = std::min(best, now() - t0);
      }
      res[i].push_back((double)pk.bytes_read() / best / 1e9);
    }
  }
  std::printf("M=%d, 1 thread, L2: median GB/s over %d rounds\n", M, rounds);
  for (size_t i = 0; i < vs.size(); i++) {
    std::sort(res[i].begin(), res[i].end());
    std::printf("%-9s %.1f\n", vs[i].name, res[i][res[i].size() / 2]);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const int M = argc > 1 ? atoi(argv[1]) : 4;
  const int rounds = argc > 2 ? atoi(argv[2]) : 5;
  if (argc > 3) g_only = argv[3];
  if (!awq_cpu_force_isa("amx")) return std::printf("no amx\n"), 1;
  if (argc > 4 && std::string(argv[4]) == "dram") {
    switch (M) {
      case 4: return run_dram<4>(rounds);
      case 8: return run_dram<8>(rounds);
      default: return std::printf("dram: M must be 4 or 8\n"), 1;
    }
  }
  switch (M) {
    case 3: return run<3>(rounds);
    case 4: return run<4>(rounds);
    case 5: return run<5>(rounds);
    case 6: return run<6>(rounds);
    case 8: return run<8>(rounds);
    default: return std::printf("M must be 3, 4, 5, 6 or 8\n"), 1;
  }
}
