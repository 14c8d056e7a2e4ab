// Experiment: the fp16 lm_head matmul at 2..8 rows of x on AMX tiles (TDPBF16PS), against the mainline AVX-512 kernel
// (vcvtph2ps + FMA, which needs 8 FMAs per 16 weights at 8 rows). The tile unit multiplies bf16 pairs with fp32 sums,
// so the operands are split into bf16 parts whose products are exact:
// - an fp16 weight w (11 significant bits) is exactly wh + wl: wh its fp32 value cut to the top 8 significant bits
//   (a bf16), wl the remaining <= 3 bits (also a bf16). A 16-row x 32-k block of W becomes two A tiles (wh, wl),
//   converted in a small L1 buffer a unit or two ahead of use; W stays fp16 in memory.
// - an fp32 activation x (24 bits) is exactly xh + xm + xl, three bf16 parts of 8 bits each (amx::split_x, once per
//   call), laid out as the B tiles: column c of a tile is one (part, row of x).
// Every product wp * xq is exact in fp32 and the instruction sums them in fp32, like the FMA kernels. The one product
// left out, when 6..8 rows of x leave it no room in the first B tile, is wl * xl: under 2^-7 * 2^-15 of |w x|.
// TDPBF16PS rounds each accumulation to nearest even, treats denormal inputs as zero and flushes denormal outputs
// (it ignores MXCSR; Intel SDM, TDPBF16PS): a part below 2^-126 is dropped, an absolute error far under fp32 rounding
// of any sum that matters. Measured error against f16_matmul_ref: 1.5-3.3e-7, as the FMA kernel's 2.9-3.1e-7.
//
// Findings (shared 2-core machine, load 2-7; results in bench/results/cpu-head-skinny.md):
// - The conversion is the cost: 2 vcvtph2ps, 2 and, 2 sub, 2 vpermt2w and 2 stores per 32 weights, 20-24 GB/s of W
//   per core on its own (L2-resident W), whatever the number of rows; vcvtne2ps2bf16 for the packing was slower
//   (17 GB/s), an integer-only split is no cheaper (the fp16 subnormals need their own terms).
// - The tile instructions do not overlap the conversion well: with W in L2, tiles alone 55-80 GB/s, conversion alone
//   21-24, both 15-19 (converting each unit just before use, or a slab of 4 units at once, was worse: 7-10).
// - The two vCPUs share the tile unit: two processes issuing TDPBF16PS at once each ran at half the rate, and while
//   another engineer's int4 AMX benchmark ran, tiles alone dropped to 16 GB/s.
// So per core: AMX 13-17 GB/s of W at every M (L2-resident, best of many calls) against AVX-512's 30 (M = 2), 20-25
// (M = 4), 12-13 (M = 8); in DRAM on the loaded machine AMX was 0.6-0.85x of AVX-512 at M = 5 and 8. Not adopted.
// Build: g++ -O3 -march=native -I native/src -I native/include native/dev/cpu/f16_amx.cpp native/build/libq3core.a -lpthread -o /tmp/f16_amx
// Usage: /tmp/f16_amx l2|dram M [rounds]   (l2: one thread on a (128, 4096) matrix, best of many calls, GB/s per core;
//        dram: 2 threads over the (151936, 4096) lm_head, alternating, ratio to the same round's probe)
#pragma GCC target("avx512bf16,amx-bf16,amx-tile")
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "cpu/bandwidth_cpu.h"
#include "cpu/f16_matmul_cpu.h"
#include "head_inputs.h"
#include "threadpool.h"

using namespace q3;

namespace amx {

constexpr int kStep = 32;         // k values per tile instruction (16 bf16 pairs)
constexpr int kTileHalves = 512;  // uint16 per tile: 16 rows x 64 bytes, every tile here
constexpr int kPrefetchBytes = 1024;  // per W row, once per 64-byte line

// Tile registers (literal numbers for GCC's intrinsics). A tile register is not renamed: loading one that an
// instruction in flight still reads waits for that instruction, so consecutive k-steps load wh, wl and the
// activation parts into different registers (by parity).
#define Q3_C0 0   // sums: wh x B0 (one B tile), or wh x B0 + wl x B0 (two)
#define Q3_C1 1   // sums: wl x B0 (one B tile), or wh x B1 (two)
#define Q3_B0 2   // activation parts, tile 0 (even k-step with one B tile)
#define Q3_B1 3   // activation parts, tile 1 (two B tiles), or tile 0 of the odd k-step (one)
#define Q3_AH0 4  // wh, even k-step
#define Q3_AL0 5  // wl, even k-step
#define Q3_AH1 6  // wh, odd k-step
#define Q3_AL1 7  // wl, odd k-step

struct alignas(64) TileConfig {
  uint8_t palette = 1, start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

// Every tile is 16 rows x 64 bytes. Thread-local, not on the stack: the compiler does not see _tile_loadconfig read
// it and may drop the stores to a local (see awq_cpu_amx.cpp).
void configure() {
  thread_local TileConfig c;
  c = TileConfig{};
  for (int t = 0; t < 8; t++) c.rows[t] = 16, c.colsb[t] = 64;
  _tile_loadconfig(&c);
}

int b_tiles(int M) { return (3 * M + 15) / 16; }

// Splits of one fp32 value into bf16 bit patterns, hi + mid + lo == v exactly for finite v (down to bf16's normal
// range): each part is the previous remainder cut to its top 16 bits. A non-finite v is kept whole in hi.
void split3(float v, uint16_t (&p)[3]) {
  if (!std::isfinite(v)) {
    uint32_t b;
    std::memcpy(&b, &v, 4);
    p[0] = (uint16_t)(b >> 16), p[1] = p[2] = 0;
    return;
  }
  float r = v;
  for (int i = 0; i < 3; i++) {
    uint32_t b;
    std::memcpy(&b, &r, 4);
    b &= 0xFFFF0000u;
    p[i] = (uint16_t)(b >> 16);
    float part;
    std::memcpy(&part, &b, 4);
    r -= part;  // exact: part holds the leading bits of r
  }
}

// 32 fp16 weights (two halves of 16, already fp32 as f0, f1) as their bf16 parts: wh = the top 16 bits of each fp32
// value, wl = the rest (exact in bf16, so its top 16 bits too). The packing takes the high 16-bit word of each lane.
inline void split_w(__m512 f0, __m512 f1, __m512i hi_words, uint16_t* wh, uint16_t* wl) {
  const __m512i cut = _mm512_set1_epi32((int)0xFFFF0000u);
  const __m512 l0 = _mm512_sub_ps(f0, _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(f0), cut)));
  const __m512 l1 = _mm512_sub_ps(f1, _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(f1), cut)));
  _mm512_store_si512(wh, _mm512_permutex2var_epi16(_mm512_castps_si512(f0), hi_words, _mm512_castps_si512(f1)));
  _mm512_store_si512(wl, _mm512_permutex2var_epi16(_mm512_castps_si512(l0), hi_words, _mm512_castps_si512(l1)));
}

// Rows n .. n+15 of W at k values [k, k + 32) into a wh and a wl tile: row i of a tile is W row n+i. k >= K reads as
// zero.
void convert(const uint16_t* w, int K, int n, int k, uint16_t* wh, uint16_t* wl) {
  alignas(64) static const uint16_t kHiWords[32] = {1,  3,  5,  7,  9,  11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31,
                                                     33, 35, 37, 39, 41, 43, 45, 47, 49, 51, 53, 55, 57, 59, 61, 63};
  const __m512i hi_words = _mm512_load_si512(kHiWords);
  const uint16_t* row = w + (size_t)n * K + k;
  if (k + kStep <= K) {
#pragma GCC unroll 16
    for (int i = 0; i < 16; i++, row += K) {
      _mm_prefetch((const char*)row + kPrefetchBytes, _MM_HINT_T0);
      const __m512 f0 = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i*)row));
      const __m512 f1 = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i*)(row + 16)));
      split_w(f0, f1, hi_words, wh + i * kStep, wl + i * kStep);
    }
    return;
  }
  const __mmask32 mask = (__mmask32)((1u << (K - k)) - 1);
  for (int i = 0; i < 16; i++, row += K) {
    const __m512i h = _mm512_maskz_loadu_epi16(mask, row);
    split_w(_mm512_cvtph_ps(_mm512_castsi512_si256(h)), _mm512_cvtph_ps(_mm512_extracti64x4_epi64(h, 1)), hi_words,
            wh + i * kStep, wl + i * kStep);
  }
}

// The tile instructions of one k-step. One B tile (up to 5 rows of x): C0 += wh B, C1 += wl B, with the step's
// parity choosing the A and B registers. Two B tiles: C0 += wh B0 + wl B0, C1 += wh B1 (B1 holds only lo parts: wl xl
// is left out). GCC's tile intrinsics take register numbers as literal text, hence a macro.
#define Q3_MULTIPLY(AH, AL, BX)             \
  do {                                      \
    _tile_loadd(AH, wh, 64);                \
    _tile_loadd(AL, wl, 64);                \
    if (nb == 1) {                          \
      _tile_loadd(BX, xt, 64);              \
      _tile_dpbf16ps(Q3_C0, AH, BX);        \
      _tile_dpbf16ps(Q3_C1, AL, BX);        \
    } else {                                \
      _tile_loadd(Q3_B0, xt, 64);           \
      _tile_loadd(Q3_B1, xt + kTileHalves, 64); \
      _tile_dpbf16ps(Q3_C0, AH, Q3_B0);     \
      _tile_dpbf16ps(Q3_C1, AH, Q3_B1);     \
      _tile_dpbf16ps(Q3_C0, AL, Q3_B0);     \
    }                                       \
  } while (0)

inline void multiply(bool odd, const uint16_t* wh, const uint16_t* wl, const uint16_t* xt, int nb) {
  if (odd)
    Q3_MULTIPLY(Q3_AH1, Q3_AL1, Q3_B1);
  else
    Q3_MULTIPLY(Q3_AH0, Q3_AL0, Q3_B0);
}

size_t amx_x_bytes(int M, int K) { return (size_t)(K + kStep - 1) / kStep * b_tiles(M) * kTileHalves * 2; }

void amx_split_x(const float* x, int M, int K, uint16_t* dst) {
  const int nb = b_tiles(M);
  std::memset(dst, 0, amx_x_bytes(M, K));
  for (int m = 0; m < M; m++)
    for (int k = 0; k < K; k++) {
      uint16_t p[3];
      split3(x[(size_t)m * K + k], p);
      const int s = k / kStep, j = k % kStep / 2, q = k % 2;
      for (int part = 0; part < 3; part++) {
        const int col = part * M + m, t = col / 16, c = col % 16;
        dst[((size_t)s * nb + t) * kTileHalves + j * 32 + 2 * c + q] = p[part];
      }
    }
}

void rows_amx(const uint16_t* w, int N, int K, const float* x, const uint16_t* xt, int M, float* y, int n0, int n1) {
  const int nb = b_tiles(M), steps = (K + kStep - 1) / kStep, units = (n1 - n0) / 16 * steps;
  // Unit u is k-step u % steps of the 16 rows from n0 + u / steps * 16. The tile instructions of unit u are issued
  // first, then the weights of unit u + kAhead are converted while the tile unit works (converting just before use,
  // or a larger block at once, left the tile instructions waiting behind the conversion: native/dev/cpu/f16_amx.cpp).
  constexpr int kAhead = 2, kBufs = 4;
  alignas(64) uint16_t buf[kBufs][2][kTileHalves];  // [unit % kBufs][wh, wl]
  alignas(64) float c[2][16 * 16];
  // The unit kAhead after the current one, as its row and k (counters: a division per unit cost a quarter of the time).
  int ahead_n = n0, ahead_k = 0, ahead_u = 0;
  auto convert_next = [&] {
    convert(w, K, ahead_n, ahead_k, buf[ahead_u % kBufs][0], buf[ahead_u % kBufs][1]);
    ahead_u++;
    ahead_k += kStep;
    if (ahead_k >= K) ahead_k = 0, ahead_n += 16;
  };
  configure();
  for (int u = 0; u < std::min(units, kAhead); u++) convert_next();
  for (int n = n0, u = 0; u < units; n += 16) {
    _tile_zero(Q3_C0);
    _tile_zero(Q3_C1);
    for (int s = 0; s < steps; s++, u++) {
      multiply(u & 1, buf[u % kBufs][0], buf[u % kBufs][1], xt + (size_t)s * nb * kTileHalves, nb);
      if (u + kAhead < units) convert_next();
    }
    _tile_stored(Q3_C0, c[0], 64);
    _tile_stored(Q3_C1, c[1], 64);
    // Column col of B tile t is part col / M (hi, mid, lo) of row col % M of x; its sums are in C0 + C1 with one B
    // tile, in C0 (tile 0) or C1 (tile 1) with two.
    for (int i = 0; i < 16; i++)
      for (int m = 0; m < M; m++) {
        float sum = 0;
        for (int part = 0; part < 3; part++) {
          const int col = part * M + m, t = col / 16, e = i * 16 + col % 16;
          sum += nb == 1 ? c[0][e] + c[1][e] : c[t][e];
        }
        y[(size_t)m * N + n + i] = sum;
      }
  }
  _tile_release();
  const int n = n0 + units / steps * 16;
  if (n < n1) f16_cpu::rows_avx512(w, N, K, x, M, y, n, n1);
}

}  // namespace amx

namespace {
// Chunks of 16 rows taken by the threads in turn, as the mainline dispatcher; x 64-byte aligned.
void amx_call(const uint16_t* w, int N, int K, const float* x, const uint16_t* xt, int M, float* y, ThreadPool& pool) {
  const int chunk = std::max(16, N / (8 * pool.size()) / 16 * 16), n_chunks = (N + chunk - 1) / chunk;
  pool.parallel_dynamic(n_chunks, [&](int c) { amx::rows_amx(w, N, K, x, xt, M, y, c * chunk, std::min(N, (c + 1) * chunk)); });
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "l2";
  const int M = argc > 2 ? atoi(argv[2]) : 8;
  const int rounds = argc > 3 ? atoi(argv[3]) : 6;
  if (M < 2 || M > 8) return std::printf("M in 2..8\n"), 1;
  constexpr long kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;  // as amx_request_permission (awq_cpu_amx.cpp)
  if (syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) != 0) return std::printf("no AMX permission\n"), 1;
  if (!f16_matmul_cpu_force_isa("avx512")) return std::printf("no avx512\n"), 1;
  const int K = 4096, N = mode == "l2" ? 128 : 151936, P = mode == "l2" ? 1 : 2;
  const size_t bytes = (size_t)N * K * 2;
  uint16_t* w = dev::random_f16_matrix(N, K);
  float* x = dev::random_rows(M, K);
  std::vector<float> y((size_t)M * N);
  uint16_t* xt = (uint16_t*)std::aligned_alloc(64, (amx::amx_x_bytes(M, K) + 63) / 64 * 64);
  ThreadPool pool(P);
  // The AMX path as a dispatcher would run it: x split, then the rows split over the threads.
  auto run_amx = [&](const uint16_t* wm, int rows, float* out) {
    amx::amx_split_x(x, M, K, xt);
    amx_call(wm, rows, K, x, xt, M, out, pool);
  };
  {
    const int Nv = std::min(N, 512);
    std::vector<float> ref((size_t)M * Nv), a((size_t)M * Nv, NAN), b((size_t)M * Nv, NAN);
    f16_matmul_ref(w, Nv, K, x, M, ref.data());
    f16_matmul_cpu(w, Nv, K, x, M, a.data(), pool);
    run_amx(w, Nv, b.data());
    double ea = 0, eb = 0, n2 = 0;
    for (size_t i = 0; i < ref.size(); i++)
      ea += (a[i] - ref[i]) * (a[i] - ref[i]), eb += (b[i] - ref[i]) * (b[i] - ref[i]), n2 += ref[i] * ref[i];
    std::printf("err: avx512 %.3g, amx %.3g\n", std::sqrt(ea / n2), std::sqrt(eb / n2));
    const double t0 = dev::now_s();
    amx::amx_split_x(x, M, K, xt);
    std::printf("split of x: %.3f ms\n", (dev::now_s() - t0) * 1e3);
  }
  const char* paths[] = {"avx512", "amx"};
  std::vector<std::vector<double>> res(2);
  for (int r = 0; r < rounds; r++) {
    const double probe = mode == "dram" ? measure_read_bandwidth_cpu(pool, 1u << 30).best_gbs : 0;
    std::printf("round %d probe %.1f:", r, probe);
    for (int i = 0; i < 2; i++) {
      const int pi = (i + r) % 2;
      double best = 1e9;
      const int reps = mode == "l2" ? 300 : 2;
      for (int rep = 0; rep < reps; rep++) {
        const double t0 = dev::now_s();
        if (pi == 0)
          f16_matmul_cpu(w, N, K, x, M, y.data(), pool);
        else if (mode == "l2")  // the tile kernel alone, on x split once
          amx::rows_amx(w, N, K, x, xt, M, y.data(), 0, N);
        else
          run_amx(w, N, y.data());
        best = std::min(best, dev::now_s() - t0);
      }
      const double g = bytes / best / 1e9;
      res[pi].push_back(mode == "dram" ? g / probe : g);
      std::printf(" %s %.1f GB/s (%.2f ms)", paths[pi], g, best * 1e3);
    }
    std::printf("\n");
  }
  std::printf("\nM=%d %s: median, best %s\n", M, mode.c_str(), mode == "dram" ? "ratio to same-round probe" : "GB/s (1 thread, L2)");
  for (int pi = 0; pi < 2; pi++) {
    std::sort(res[pi].begin(), res[pi].end());
    std::printf("%-7s %.3f %.3f\n", paths[pi], res[pi][res[pi].size() / 2], res[pi].back());
  }
  std::free(w);
  return 0;
}
