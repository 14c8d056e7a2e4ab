// AMX tile kernel for the int4 AWQ matmul with several rows (prefill chunks, decode batches): the tile unit multiplies
// 16 rows x 64 k signed activation bytes by 64 k x 16 columns of unsigned weight bytes per instruction, 16 times the
// work of a vpdpbusd. The weights stay int4 in memory (layout in awq_cpu_kernels.h); each block of a pair of tiles is
// expanded to bytes once in a small L1 buffer and used for every row. Both activation bytes (q = 256 hi + lo) are
// multiplied, so the int32 sums equal the other paths' exactly.
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

// Tile registers (GCC's tile intrinsics need them as literal numbers, hence macros): C (int32 sums) for the low and
// high activation byte of each of the two weight tiles, the two A tiles (activation bytes) and the two B tiles
// (expanded weights).
#define Q3_CL0 0
#define Q3_CH0 1
#define Q3_CL1 2
#define Q3_CH1 3
#define Q3_AL 4
#define Q3_AH 5
#define Q3_B0 6
#define Q3_B1 7

struct alignas(64) TileConfig {
  uint8_t palette = 1, start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

// rows: activation rows per pass (<= 16); kstep: k values per tile instruction (<= 64, a multiple of 4). The
// configuration lives in thread-local storage, not on the stack: the compiler does not see _tile_loadconfig read it
// and may drop the stores to a local (llama.cpp's AMX path crashes with SIGILL on this, built by GCC 12).
void configure(int rows, int kstep) {
  thread_local TileConfig c;
  c = TileConfig{};
  for (int t : {Q3_CL0, Q3_CH0, Q3_CL1, Q3_CH1}) c.rows[t] = (uint8_t)rows, c.colsb[t] = 64;
  for (int t : {Q3_AL, Q3_AH}) c.rows[t] = (uint8_t)rows, c.colsb[t] = (uint16_t)kstep;
  for (int t : {Q3_B0, Q3_B1}) c.rows[t] = (uint8_t)(kstep / 4), c.colsb[t] = 64;
  _tile_loadconfig(&c);
}

// y += s * xscale * (acc - z * sum(x_int)) for one row and one tile's 16 columns.
inline __m512 fold(__m512 out, __m512i acc, const uint8_t* rec, float xscale, int32_t xsum) {
  const __m512 s = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i*)rec));
  const __m512i z = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i*)(rec + 32)));
  const __m512i d = _mm512_sub_epi32(acc, _mm512_mullo_epi32(z, _mm512_set1_epi32(xsum)));
  return _mm512_fmadd_ps(_mm512_cvtepi32_ps(d), _mm512_mul_ps(s, _mm512_set1_ps(xscale)), out);
}

// The words of one block of one tile as B-tile rows: word j gives row 2j (q0..q3 of each column) and row 2j+1
// (q4..q7). nv words, so 2 nv rows of 64 bytes; a k-step of kstep values is kstep / 4 consecutive rows.
inline void expand(const uint8_t* wp, int nv, uint8_t* dst) {
  const __m512i mask = _mm512_set1_epi32(0x0F0F0F0F);
  for (int j = 0; j < nv; j++, wp += kWordBytes, dst += 128) {
    _mm_prefetch((const char*)wp + kPrefetchBytes, _MM_HINT_T0);
    const __m512i v = _mm512_loadu_si512(wp);
    _mm512_store_si512(dst, _mm512_and_si512(v, mask));
    _mm512_store_si512(dst + 64, _mm512_and_si512(_mm512_srli_epi32(v, 4), mask));
  }
}

}  // namespace

bool amx_request_permission() {
#ifdef __linux__
  constexpr long kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
  return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
#else
  return false;
#endif
}

void tiles_amx(const PackedView& w, const QuantizedRows& x, int t0, int t1, float* y) {
  const int K = w.K, B = x.block, nb = K / B, nv = B / 8, M = x.M;
  int kstep = 64;
  while (B % kstep != 0) kstep /= 2;  // B is a multiple of 8, so this stops at 8 at the latest
  const int n_steps = B / kstep, rows = std::min(M, 16);
  // Activations are padded to whole passes of 16 rows when M > 16 (awq_cpu.cpp), so one configuration serves all.
  const int passes = (M + rows - 1) / rows;

  alignas(64) uint8_t wbuf[2][kMaxBlock / 8 * 128];  // expanded weights of one block, per tile
  alignas(64) int32_t cbuf[4][16][16];                // C tiles of one pass
  thread_local std::vector<float> outbuf;
  outbuf.resize((size_t)M * 2 * kTile);
  float* out = outbuf.data();  // (M, 32): the pair's outputs, accumulated over the blocks

  configure(rows, kstep);
  for (int t = t0; t < t1; t += 2) {
    const int nt = std::min(2, t1 - t);  // 1 only for the last tile of an odd range
    std::fill(out, out + (size_t)M * 2 * kTile, 0.f);
    const uint8_t* wp[2] = {w.tile(t), w.tile(t + nt - 1)};
    for (int b = 0; b < nb; b++) {
      for (int i = 0; i < nt; i++) expand(wp[i] + (size_t)b * nv * kWordBytes, nv, wbuf[i]);
      const size_t g = (size_t)(b * B / w.group_size) * kMetaBytes;
      for (int p = 0; p < passes; p++) {
        const int m0 = p * rows, mr = std::min(rows, M - m0);
        _tile_zero(Q3_CL0);
        _tile_zero(Q3_CH0);
        _tile_zero(Q3_CL1);
        _tile_zero(Q3_CH1);
        for (int s = 0; s < n_steps; s++) {
          const size_t at = (size_t)m0 * K + (size_t)b * B + (size_t)s * kstep;
          _tile_loadd(Q3_AL, x.lo + at, K);
          _tile_loadd(Q3_AH, x.hi + at, K);
          _tile_loadd(Q3_B0, wbuf[0] + (size_t)s * kstep / 4 * 64, 64);
          _tile_dpbsud(Q3_CL0, Q3_AL, Q3_B0);
          _tile_dpbsud(Q3_CH0, Q3_AH, Q3_B0);
          if (nt == 2) {
            _tile_loadd(Q3_B1, wbuf[1] + (size_t)s * kstep / 4 * 64, 64);
            _tile_dpbsud(Q3_CL1, Q3_AL, Q3_B1);
            _tile_dpbsud(Q3_CH1, Q3_AH, Q3_B1);
          }
        }
        _tile_stored(Q3_CL0, cbuf[0], 64);
        _tile_stored(Q3_CH0, cbuf[1], 64);
        if (nt == 2) {
          _tile_stored(Q3_CL1, cbuf[2], 64);
          _tile_stored(Q3_CH1, cbuf[3], 64);
        }
        for (int r = 0; r < mr; r++) {
          const size_t xi = (size_t)(m0 + r) * nb + b;
          for (int i = 0; i < nt; i++) {
            const __m512i acc = _mm512_add_epi32(_mm512_slli_epi32(_mm512_load_si512(cbuf[2 * i + 1][r]), 8),
                                                 _mm512_load_si512(cbuf[2 * i][r]));
            float* o = out + (size_t)(m0 + r) * 2 * kTile + i * kTile;
            _mm512_storeu_ps(o, fold(_mm512_loadu_ps(o), acc, w.meta(t + i) + g, x.scale[xi], x.sum[xi]));
          }
        }
      }
    }
    for (int i = 0; i < nt; i++) {
      const int lanes = std::min(kTile, w.N - (t + i) * kTile);
      for (int m = 0; m < M; m++)
        std::memcpy(y + (size_t)m * w.N + (size_t)(t + i) * kTile, out + (size_t)m * 2 * kTile + i * kTile,
                    sizeof(float) * lanes);
    }
  }
  _tile_release();
}

}  // namespace q3::awq_cpu
