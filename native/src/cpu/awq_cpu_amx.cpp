// AMX tile kernel for the int4 AWQ matmul with three or more rows (prefill chunks, decode batches): the tile unit
// multiplies 16 rows x 64 k signed activation bytes by 64 k x 16 columns of unsigned weight bytes per instruction, 16
// times the work of a vpdpbusd. The weights stay int4 in memory (layout in awq_cpu_kernels.h); each block of a pair of
// tiles is expanded to bytes q once in a small L1 buffer and used for every row, and the zero point is applied with
// the scales. Both activation bytes (q = 256 hi + lo) are multiplied, so the int32 sums are exact.
// GCC 12 reports its own _mm512_undefined_* placeholders as maybe-uninitialized once inlined at -O3: a false positive.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "awq_cpu_kernels.h"

#ifdef __linux__
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace q3::awq_cpu {
namespace {

constexpr int kPrefetchBytes = 6144;  // as in the AVX-512 kernels

// Tile registers (GCC's tile intrinsics need them as literal numbers, hence macros). Rows of an A tile hold the low
// activation bytes of up to 8 rows, then their high bytes, so one instruction sums both into one C tile. Each block of
// k values (two k-steps for groups of 128) has its own A and B registers: a tile register is not renamed, so reusing
// one within a block would wait for the instruction still reading it.
#define Q3_C0 0   // sums, weight tile 0
#define Q3_C1 1   // sums, weight tile 1
#define Q3_A0 2   // activations, even k-step
#define Q3_A1 3   // activations, odd k-step
#define Q3_B00 4  // weights, tile 0, even k-step
#define Q3_B01 5  // weights, tile 0, odd k-step
#define Q3_B10 6  // weights, tile 1, even k-step
#define Q3_B11 7  // weights, tile 1, odd k-step

struct alignas(64) TileConfig {
  uint8_t palette = 1, start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

// prows: physical rows of the A and C tiles (2 x activation rows per pass, <= 16); kstep: k values per tile
// instruction (<= 64, a multiple of 4). The configuration lives in thread-local storage, not on the stack: the
// compiler does not see _tile_loadconfig read it and may drop the stores to a local (llama.cpp's AMX path crashes
// with SIGILL on this, built by GCC 12).
void configure(int prows, int kstep) {
  thread_local TileConfig c;
  c = TileConfig{};
  for (int t : {Q3_C0, Q3_C1}) c.rows[t] = (uint8_t)prows, c.colsb[t] = 64;
  for (int t : {Q3_A0, Q3_A1}) c.rows[t] = (uint8_t)prows, c.colsb[t] = (uint16_t)kstep;
  for (int t : {Q3_B00, Q3_B01, Q3_B10, Q3_B11}) c.rows[t] = (uint8_t)(kstep / 4), c.colsb[t] = 64;
  _tile_loadconfig(&c);
}

// Activation rows per pass: up to 8, since their low and high bytes share one 16-row tile.
inline int pass_rows(int M) { return std::min(M, 8); }

// The words of one block of one tile as B-tile rows of unsigned bytes q (0..15): word j gives row 2j (k = 8j .. 8j+3
// of each column) and row 2j+1 (8j+4 .. 8j+7). nv words, so 2 nv rows of 64 bytes; a k-step of kstep values is
// kstep / 4 rows. The zero point is taken off in the fold (z times the block's activation sum), which leaves two
// vector operations and two stores per word here. The prefetch runs kPrefetchBytes ahead of wp; once that passes `turn`
// (the end of this tile's weights) it moves on by `jump`, to the tile this stream reads next.
inline void expand(const uint8_t* wp, int nv, uint8_t* dst, const uint8_t* turn, size_t jump) {
  const __m512i mask = _mm512_set1_epi32(0x0F0F0F0F);
  for (int j = 0; j < nv; j++, wp += kWordBytes, dst += 128) {
    const uint8_t* pf = wp + kPrefetchBytes;
    _mm_prefetch((const char*)(pf >= turn ? pf + jump : pf), _MM_HINT_T0);
    const __m512i v = _mm512_loadu_si512(wp);
    _mm512_store_si512(dst, _mm512_and_si512(v, mask));
    _mm512_store_si512(dst + 64, _mm512_and_si512(_mm512_srli_epi32(v, 4), mask));
  }
}

}  // namespace

int amx_kstep(int block) {
  int kstep = 64;
  while (block % kstep != 0) kstep /= 2;  // block is a multiple of 8, so this stops at 8 at the latest
  return kstep;
}

size_t amx_tiles_bytes(int M, int K) {
  const int r = pass_rows(M), passes = (M + r - 1) / r;
  return (size_t)passes * 2 * r * K;
}

void amx_tile_activations(const QuantizedRows& x, int8_t* dst) {
  const int kstep = amx_kstep(x.block), r = pass_rows(x.M), passes = (x.M + r - 1) / r;
  for (int k = 0; k < x.K; k += kstep)
    for (int p = 0; p < passes; p++)
      for (const int8_t* src : {x.lo, x.hi})
        for (int i = 0; i < r; i++, dst += kstep) {
          const int m = p * r + i;
          if (m < x.M) {
            std::memcpy(dst, src + (size_t)m * x.K + k, kstep);
          } else {
            std::memset(dst, 0, kstep);
          }
        }
}

bool amx_request_permission() {
#ifdef __linux__
  constexpr long kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
  return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
#else
  return false;
#endif
}

namespace {

// The expansion of one block of a pair of tiles, done a piece at a time: the kernel spreads it over the tile
// instructions of an earlier block (pass_product calls step() between them) rather than running it in one stretch
// beside them. In one stretch the vector stores and the tile unit's loads and stores took turns; spread out, they
// overlap (native/dev/cpu/amx_parts.cpp: 1.3x at M = 4, one thread, matrix in L2).
// NV: words per tile and block when known at compile time (then a step is NV / 4 words, unrolled), 0 otherwise.
template <int NV>
class Expansion {
 public:
  static constexpr int kPieces = 8;  // step() calls per block the pieces are sized for (pass_product makes 8)
  Expansion() = default;
  // nt tiles (1 or 2) of nv words each: word k of tile j from src[j] + 64 k to dst[j] + 128 k; turn[j] and jump
  // steer the prefetches (see expand).
  Expansion(const uint8_t* src0, const uint8_t* src1, int nt, int nv, uint8_t* dst0, uint8_t* dst1,
            const uint8_t* const* turn, size_t jump)
      : src_{src0, src1}, dst_{dst0, dst1}, turn_{turn[0], turn[1]}, jump_(jump), nv_(NV ? NV : nv),
        total_(nt * nv_), piece_((nt * nv_ + kPieces - 1) / kPieces) {}
  void step() {
    if constexpr (NV > 0 && NV % 4 == 0) {
      if (done_ + NV / 4 <= total_) {  // NV / 4 words, all in one tile
        const int j = done_ >= NV, k = done_ - j * NV;
        expand(src_[j] + (size_t)k * kWordBytes, NV / 4, dst_[j] + (size_t)k * 128, turn_[j], jump_);
        done_ += NV / 4;
      }
      return;
    }
    run(std::min(total_, done_ + piece_));
  }
  void finish() { run(total_); }

 private:
  void run(int until) {
    for (; done_ < until; done_++) {
      const int j = done_ >= nv_, k = done_ - j * nv_;
      expand(src_[j] + (size_t)k * kWordBytes, 1, dst_[j] + (size_t)k * 128, turn_[j], jump_);
    }
  }
  const uint8_t* src_[2] = {};
  uint8_t* dst_[2] = {};
  const uint8_t* turn_[2] = {};
  size_t jump_ = 0;
  int nv_ = 0, total_ = 0, piece_ = 0, done_ = 0;
};

// Loads the expanded weights of one block (wb[j] for tile j, k-steps s and s + 1) into the B registers, with ex.step()
// after each tile's loads.
template <class Ex>
inline void load_b(const uint8_t* const* wb, int kstep, int n_steps, int s, Ex& ex) {
  const size_t b_bytes = (size_t)kstep / 4 * 64;
  const bool odd = s + 1 < n_steps;
  _tile_loadd(Q3_B00, wb[0] + (size_t)s * b_bytes, 64);
  if (odd) _tile_loadd(Q3_B01, wb[0] + (size_t)(s + 1) * b_bytes, 64);
  ex.step();
  _tile_loadd(Q3_B10, wb[1] + (size_t)s * b_bytes, 64);
  if (odd) _tile_loadd(Q3_B11, wb[1] + (size_t)(s + 1) * b_bytes, 64);
  ex.step();
}

// One block for one pass: C0 / C1 = its A tiles (n_steps k-steps from a, step_bytes apart) times the block's weights
// (wb[j] for tile j), stored to cbuf. own_b: the B registers are loaded here, per pair of k-steps; otherwise (a
// block of at most two k-steps, shared by several passes) the caller has loaded them. ex.step() runs between the tile
// instructions.
template <class Ex>
inline void pass_product(const int8_t* a, size_t step_bytes, int kstep, int n_steps, const uint8_t* const* wb,
                         bool own_b, int32_t (*cbuf)[16][16], Ex& ex) {
  ex.step();
  _tile_zero(Q3_C0);
  _tile_zero(Q3_C1);
  for (int s = 0; s < n_steps; s += 2) {
    const bool odd = s + 1 < n_steps;
    if (own_b) load_b(wb, kstep, n_steps, s, ex);
    _tile_loadd(Q3_A0, a + (size_t)s * step_bytes, kstep);
    if (odd) _tile_loadd(Q3_A1, a + (size_t)(s + 1) * step_bytes, kstep);
    ex.step();
    _tile_dpbsud(Q3_C0, Q3_A0, Q3_B00);
    _tile_dpbsud(Q3_C1, Q3_A0, Q3_B10);
    ex.step();
    if (odd) _tile_dpbsud(Q3_C0, Q3_A1, Q3_B01);
    if (odd) _tile_dpbsud(Q3_C1, Q3_A1, Q3_B11);
    ex.step();
  }
  _tile_stored(Q3_C0, cbuf[0], 64);
  ex.step();
  _tile_stored(Q3_C1, cbuf[1], 64);
  ex.step();
}

// The block's dot products of activation row i of a pass with r rows, zero point applied: C rows 0..r-1 hold the
// low-byte sums, r..2r-1 the high-byte ones, z the 16 columns' zero points and xsum the row's activation sum.
inline __m512 pass_row(const int32_t (*c)[16], int r, int i, __m512i z, int32_t xsum) {
  const __m512i d = _mm512_add_epi32(_mm512_slli_epi32(_mm512_load_si512(c[r + i]), 8), _mm512_load_si512(c[i]));
  return _mm512_cvtepi32_ps(_mm512_sub_epi32(d, _mm512_mullo_epi32(z, _mm512_set1_epi32(xsum))));
}

// One pair of tiles for all M rows (nt = 1 at the end of an odd range: the tile then goes through both halves and only
// one is stored, which keeps every loop over the pair a compile-time one, so the sums stay in registers). Blocks are
// software-pipelined: block b+kAhead is expanded (vector units), in pieces between the tile instructions, while the
// tile unit multiplies block b. A tile load cannot take its data from the store buffer, and those stores commit only
// once the tile instructions before them retire: expanding just one block ahead made the two units take turns. The
// ring's slots sit back to back (a slot per tile and block, not one sized for the largest block): with the tiles' slots
// 4 KiB apart, M = 4 ran 25% slower (amx_parts.cpp). R > 0: M = R <= 8 rows in one pass, outputs in registers, each
// block folded one block later (a vector load of a tile store's data waits for it to reach the cache); R = 0: passes
// of 8 rows, outputs in out (M, 32).
// BLOCK: x.block when known at compile time (128, the group size of the published checkpoints), 0 otherwise.
template <int R, int BLOCK>
void pair_amx(const PackedView& w, const QuantizedRows& x, int t, int nt, float* out, float* y) {
  const int K = w.K, B = BLOCK ? BLOCK : x.block, nb = K / B, nv = B / 8, M = x.M;
  const int kstep = BLOCK ? std::min(64, BLOCK) : amx_kstep(B), n_steps = B / kstep, r = pass_rows(M),
            passes = (M + r - 1) / r;
  using Ex = Expansion<BLOCK / 8>;
  const size_t a_bytes = (size_t)2 * r * kstep;
  constexpr int kAhead = 2, kRing = 4;
  // Expanded weights, slot (block % kRing, tile) at ((block % kRing) * 2 + tile) * nv * 128: packed as tightly as the
  // block size allows.
  alignas(64) uint8_t wbuf[kRing * 2 * kMaxBlock / 8 * 128];
  auto slot = [&](int b, int j) { return wbuf + ((size_t)(b % kRing) * 2 + j) * nv * 128; };
  alignas(64) int32_t cbuf[2][2][16][16];  // C tiles of one pass, [block % 2] (R > 0 folds a block one block later)
  const int tj[2] = {t, t + nt - 1};       // the pair's tiles
  __m512 acc[R > 0 ? R : 1][2];
#pragma GCC unroll 8
  for (int i = 0; i < (R > 0 ? R : 1); i++) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
  if (R == 0) std::fill(out, out + (size_t)M * 2 * kTile, 0.f);

  // Each tile's weights stream on into the same tile of the next pair (the next one this thread reads, unless its
  // chunk ends here); the scale/zero records at the end of each tile are read from the first block on, so they are
  // fetched now.
  const size_t words_bytes = (size_t)K / 8 * kWordBytes, meta_bytes = (size_t)(K / w.group_size) * kMetaBytes;
  const uint8_t* turn[2] = {w.tile(tj[0]) + words_bytes, w.tile(tj[1]) + words_bytes};
  const size_t jump = 2 * w.tile_bytes - words_bytes;
  for (int j = 0; j < nt; j++)
    for (size_t o = 0; o < meta_bytes; o += 64) _mm_prefetch((const char*)w.meta(tj[j]) + o, _MM_HINT_T0);
  auto expansion = [&](int b) {
    if (b >= nb) return Ex();
    const size_t at = (size_t)b * nv * kWordBytes;
    return Ex(w.tile(tj[0]) + at, w.tile(tj[1]) + at, nt, nv, slot(b, 0), slot(b, 1), turn, jump);
  };
  // The scales (times the activation scale later) and zero points of block b, per tile of the pair.
  auto meta = [&](int b, __m512* sv, __m512i* z) {
    const size_t g = (size_t)(b * B / w.group_size) * kMetaBytes;
#pragma GCC unroll 2
    for (int j = 0; j < 2; j++) {
      sv[j] = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i*)(w.meta(tj[j]) + g)));
      z[j] = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i*)(w.meta(tj[j]) + g + 32)));
    }
  };
  for (int b = 0; b < std::min(kAhead, nb); b++) expansion(b).finish();
  if constexpr (R > 0) {
    // One pass. Block b's C tiles are read one block later, after the next block's tile instructions: a vector load
    // waits for a tile store to reach the cache.
    auto fold = [&](int b) {
      __m512 sv[2];
      __m512i z[2];
      meta(b, sv, z);
#pragma GCC unroll 8
      for (int i = 0; i < R; i++) {
        const size_t xb = (size_t)i * nb + b;
        const __m512 xs = _mm512_set1_ps(x.scale[xb]);
#pragma GCC unroll 2
        for (int j = 0; j < 2; j++)
          acc[i][j] = _mm512_fmadd_ps(pass_row(cbuf[b % 2][j], R, i, z[j], x.sum[xb]), _mm512_mul_ps(sv[j], xs),
                                      acc[i][j]);
      }
    };
    for (int b = 0; b < nb; b++) {
      const uint8_t* wb[2] = {slot(b, 0), slot(b, nt - 1)};
      Ex ahead = expansion(b + kAhead);
      pass_product(x.tiles + (size_t)b * n_steps * a_bytes, a_bytes, kstep, n_steps, wb, true, cbuf[b % 2], ahead);
      ahead.finish();
      if (b > 0) fold(b - 1);
    }
    fold(nb - 1);
  } else {
    for (int b = 0; b < nb; b++) {
      const uint8_t* wb[2] = {slot(b, 0), slot(b, nt - 1)};
      __m512 sv[2];
      __m512i z[2];
      meta(b, sv, z);
      Ex ahead = expansion(b + kAhead), none;
      // Blocks of at most two k-steps load their B registers once for every pass.
      const bool shared_b = n_steps <= 2;
      if (shared_b) load_b(wb, kstep, n_steps, 0, none);
      for (int p = 0; p < passes; p++) {
        pass_product(x.tiles + ((size_t)b * n_steps * passes + p) * a_bytes, passes * a_bytes, kstep, n_steps, wb,
                     !shared_b, cbuf[0], p == 0 ? ahead : none);
        if (p == 0) ahead.finish();
        for (int i = 0; i < std::min(r, M - p * r); i++) {
          const int m = p * r + i;
          const size_t xb = (size_t)m * nb + b;
          const __m512 xs = _mm512_set1_ps(x.scale[xb]);
          float* o = out + (size_t)m * 2 * kTile;
#pragma GCC unroll 2
          for (int j = 0; j < 2; j++)
            _mm512_storeu_ps(o + j * kTile, _mm512_fmadd_ps(pass_row(cbuf[0][j], r, i, z[j], x.sum[xb]),
                                                            _mm512_mul_ps(sv[j], xs), _mm512_loadu_ps(o + j * kTile)));
        }
      }
    }
  }
  // Loops over compile-time bounds only: an acc index known only at run time would keep acc on the stack.
#pragma GCC unroll 2
  for (int j = 0; j < 2; j++) {
    if (j >= nt) break;
    const int lanes = std::min(kTile, w.N - (t + j) * kTile);
    const __mmask16 mask = lanes >= kTile ? (__mmask16)0xFFFF : (__mmask16)((1u << lanes) - 1);
    if constexpr (R > 0) {
#pragma GCC unroll 8
      for (int m = 0; m < R; m++) _mm512_mask_storeu_ps(y + (size_t)m * w.N + (size_t)(t + j) * kTile, mask, acc[m][j]);
    } else {
      for (int m = 0; m < M; m++)
        _mm512_mask_storeu_ps(y + (size_t)m * w.N + (size_t)(t + j) * kTile, mask,
                              _mm512_loadu_ps(out + (size_t)m * 2 * kTile + j * kTile));
    }
  }
}

// One pair of tiles, with the row count as a compile-time constant up to 8.
template <int BLOCK>
void pair_rows(const PackedView& w, const QuantizedRows& x, int t, int nt, float* out, float* y) {
  switch (x.M) {
    case 1: pair_amx<1, BLOCK>(w, x, t, nt, nullptr, y); break;
    case 2: pair_amx<2, BLOCK>(w, x, t, nt, nullptr, y); break;
    case 3: pair_amx<3, BLOCK>(w, x, t, nt, nullptr, y); break;
    case 4: pair_amx<4, BLOCK>(w, x, t, nt, nullptr, y); break;
    case 5: pair_amx<5, BLOCK>(w, x, t, nt, nullptr, y); break;
    case 6: pair_amx<6, BLOCK>(w, x, t, nt, nullptr, y); break;
    case 7: pair_amx<7, BLOCK>(w, x, t, nt, nullptr, y); break;
    case 8: pair_amx<8, BLOCK>(w, x, t, nt, nullptr, y); break;
    default: pair_amx<0, BLOCK>(w, x, t, nt, out, y); break;
  }
}

}  // namespace

void tiles_amx(const PackedView& w, const QuantizedRows& x, int t0, int t1, float* y) {
  const int M = x.M, r = pass_rows(M);
  thread_local std::vector<float> outbuf;
  if (M > 8) outbuf.resize((size_t)M * 2 * kTile);
  configure(2 * r, amx_kstep(x.block));
  for (int t = t0; t < t1; t += 2) {
    const int nt = std::min(2, t1 - t);  // 1 only for the last tile of an odd range
    if (x.block == 128) {
      pair_rows<128>(w, x, t, nt, outbuf.data(), y);
    } else {
      pair_rows<0>(w, x, t, nt, outbuf.data(), y);
    }
  }
  _tile_release();
}

}  // namespace q3::awq_cpu
