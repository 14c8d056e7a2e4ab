// Experiment: the int4 AWQ matmul for the skinny M = 2..8 rows of decode batches, in versions:
//   amx        mainline tiles_amx
//   amx-lagL   signed weight bytes q - z (the earlier mainline), the fold of a block's C tiles L blocks later
//   amxu-lag1  unsigned weight bytes, zero point in the fold (what mainline now does), fold one block later
//   -expand, -tiles, -fold, dummy, expand, tiles, fold: amxu-lag1 without (or with only) that part, to see where
//              the time goes (expand, tile instructions and fold add up: the units do not overlap)
//   vnni       mainline tiles_avx512vnni (M = 2: two_rows_vnni, 2 rows x 4 tiles register-blocked; at M = 4 the same
//              blocking (4 rows x 2 tiles) was slower than AMX, 16 vpdpbusd per word)
// Two measurements: "l2": one thread on a matrix that fits L2, best of many calls (compute cost, GB/s per core);
// "dram": 2 threads, copies rotated over 512 MiB, versions alternating within each round, ratio to that round's
// probe. Every version is first checked against tiles_scalar.
// Build: g++ -O3 -march=native -I native/src -I native/include native/dev/cpu/awq_rows.cpp native/build/libq3core.a -lpthread -o /tmp/awq_rows
// Usage: /tmp/awq_rows l2|dram M [rounds]
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
#include <vector>

#include "awq_inputs.h"
#include "cpu/awq_cpu.h"
#include "cpu/awq_cpu_kernels.h"
#include "cpu/bandwidth_cpu.h"
#include "half.h"
#include "threadpool.h"

using namespace q3;
using namespace q3::awq_cpu;

namespace {

constexpr int kPrefetchBytes = 6144;

inline __m512i quad(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm512_set1_epi32(v);
}

inline __m512 fold(__m512 out, __m512i acc, const uint8_t* rec, float xscale, int32_t xsum) {
  const __m512 s = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i*)rec));
  const __m512i z = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i*)(rec + 32)));
  const __m512i d = _mm512_sub_epi32(acc, _mm512_mullo_epi32(z, _mm512_set1_epi32(xsum)));
  return _mm512_fmadd_ps(_mm512_cvtepi32_ps(d), _mm512_mul_ps(s, _mm512_set1_ps(xscale)), out);
}

// ---- AMX with the fold lagging ----
#define Q3_C0 0
#define Q3_C1 1
#define Q3_A0 2
#define Q3_A1 3
#define Q3_B00 4
#define Q3_B01 5
#define Q3_B10 6
#define Q3_B11 7

using dev::TileConfig;

void configure(int prows, int kstep) {
  thread_local TileConfig c;
  c = TileConfig{};
  for (int t : {Q3_C0, Q3_C1}) c.rows[t] = (uint8_t)prows, c.colsb[t] = 64;
  for (int t : {Q3_A0, Q3_A1}) c.rows[t] = (uint8_t)prows, c.colsb[t] = (uint16_t)kstep;
  for (int t : {Q3_B00, Q3_B01, Q3_B10, Q3_B11}) c.rows[t] = (uint8_t)(kstep / 4), c.colsb[t] = 64;
  _tile_loadconfig(&c);
}

inline void expand(const uint8_t* wp, int nv, const uint8_t* zeros, uint8_t* dst) {
  const __m512i mask = _mm512_set1_epi32(0x0F0F0F0F);
  const __m512i z = _mm512_mullo_epi32(_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i*)zeros)),
                                       _mm512_set1_epi32(0x01010101));
  for (int j = 0; j < nv; j++, wp += kWordBytes, dst += 128) {
    _mm_prefetch((const char*)wp + kPrefetchBytes, _MM_HINT_T0);
    const __m512i v = _mm512_loadu_si512(wp);
    _mm512_store_si512(dst, _mm512_sub_epi8(_mm512_and_si512(v, mask), z));
    _mm512_store_si512(dst + 64, _mm512_sub_epi8(_mm512_and_si512(_mm512_srli_epi32(v, 4), mask), z));
  }
}

// Unsigned weight bytes (no zero point): load, and, shift, and, two stores per word.
inline void expand_u(const uint8_t* wp, int nv, uint8_t* dst) {
  const __m512i mask = _mm512_set1_epi32(0x0F0F0F0F);
  for (int j = 0; j < nv; j++, wp += kWordBytes, dst += 128) {
    _mm_prefetch((const char*)wp + kPrefetchBytes, _MM_HINT_T0);
    const __m512i v = _mm512_loadu_si512(wp);
    _mm512_store_si512(dst, _mm512_and_si512(v, mask));
    _mm512_store_si512(dst + 64, _mm512_and_si512(_mm512_srli_epi32(v, 4), mask));
  }
}

// Block size 128 only (two k-steps of 64): one pass of R <= 8 rows, two tiles.
template <int R, int LAG, bool U, int SKIP = 0>  // SKIP (timing breakdown only): 1 expand, 2 tile ops, 4 fold
void pair_amx_lag(const PackedView& w, const QuantizedRows& x, int t, float* y) {
  const int K = w.K, B = x.block, nb = K / B, nv = B / 8;
  const size_t a_bytes = (size_t)2 * R * 64;
  constexpr int kAhead = 2, kRing = 4;
  alignas(64) uint8_t wbuf[kRing][2][16 * 128];
  alignas(64) uint8_t wdummy[kRing][2][16 * 128];
  uint8_t(*wdst)[2][16 * 128] = (SKIP & 8) ? wdummy : wbuf;
  alignas(64) int32_t cbuf[LAG + 1][2][16][16];
  __m512 acc[R][2];
  for (int i = 0; i < R; i++) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
  auto expand_block = [&](int b) {
    if (SKIP & 1) return;
    for (int j = 0; j < 2; j++) {
      if constexpr (U) {
        expand_u(w.tile(t + j) + (size_t)b * nv * kWordBytes, nv, wdst[b % kRing][j]);
      } else {
        expand(w.tile(t + j) + (size_t)b * nv * kWordBytes, nv,
               w.meta(t + j) + (size_t)(b * B / w.group_size) * kMetaBytes + 32, wbuf[b % kRing][j]);
      }
    }
  };
  for (int b = 0; b < std::min(kAhead, nb); b++) expand_block(b);
  for (int b = 0; b < nb + LAG; b++) {
    if (b < nb && !(SKIP & 2)) {
      const uint8_t* wb0 = wbuf[b % kRing][0];
      const uint8_t* wb1 = wbuf[b % kRing][1];
      _tile_loadd(Q3_B00, wb0, 64);
      _tile_loadd(Q3_B01, wb0 + 1024, 64);
      _tile_loadd(Q3_B10, wb1, 64);
      _tile_loadd(Q3_B11, wb1 + 1024, 64);
      const int8_t* a = x.tiles + (size_t)b * 2 * a_bytes;
      _tile_zero(Q3_C0);
      _tile_zero(Q3_C1);
      _tile_loadd(Q3_A0, a, 64);
      _tile_loadd(Q3_A1, a + a_bytes, 64);
      if constexpr (U) {
        _tile_dpbsud(Q3_C0, Q3_A0, Q3_B00);
        _tile_dpbsud(Q3_C1, Q3_A0, Q3_B10);
        _tile_dpbsud(Q3_C0, Q3_A1, Q3_B01);
        _tile_dpbsud(Q3_C1, Q3_A1, Q3_B11);
      } else {
        _tile_dpbssd(Q3_C0, Q3_A0, Q3_B00);
        _tile_dpbssd(Q3_C1, Q3_A0, Q3_B10);
        _tile_dpbssd(Q3_C0, Q3_A1, Q3_B01);
        _tile_dpbssd(Q3_C1, Q3_A1, Q3_B11);
      }
      _tile_stored(Q3_C0, cbuf[b % (LAG + 1)][0], 64);
      _tile_stored(Q3_C1, cbuf[b % (LAG + 1)][1], 64);
    }
    if (b < nb && b + kAhead < nb) expand_block(b + kAhead);
    const int f = b - LAG;
    if (f >= 0 && !(SKIP & 4)) {
      const size_t g = (size_t)(f * B / w.group_size) * kMetaBytes;
      const int32_t(*c)[16][16] = cbuf[f % (LAG + 1)];
      for (int j = 0; j < 2; j++) {
        const __m512 sv = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i*)(w.meta(t + j) + g)));
        const __m512i z = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i*)(w.meta(t + j) + g + 32)));
        for (int i = 0; i < R; i++) {
          const __m512 xs = _mm512_set1_ps(x.scale[(size_t)i * nb + f]);
          __m512i di = _mm512_add_epi32(_mm512_slli_epi32(_mm512_load_si512(c[j][R + i]), 8), _mm512_load_si512(c[j][i]));
          if constexpr (U) di = _mm512_sub_epi32(di, _mm512_mullo_epi32(z, _mm512_set1_epi32(x.sum[(size_t)i * nb + f])));
          const __m512 d = _mm512_cvtepi32_ps(di);
          acc[i][j] = _mm512_fmadd_ps(d, _mm512_mul_ps(sv, xs), acc[i][j]);
        }
      }
    }
  }
  for (int j = 0; j < 2; j++)
    for (int m = 0; m < R; m++) _mm512_storeu_ps(y + (size_t)m * w.N + (size_t)(t + j) * kTile, acc[m][j]);
}

template <int LAG, bool U, int SKIP = 0>
void amx_lag(const PackedView& w, const QuantizedRows& x, int t0, int t1, float* y) {
  configure(2 * x.M, 64);
  for (int t = t0; t < t1; t += 2) {
    switch (x.M) {
      case 2: pair_amx_lag<2, LAG, U, SKIP>(w, x, t, y); break;
      case 4: pair_amx_lag<4, LAG, U, SKIP>(w, x, t, y); break;
      case 8: pair_amx_lag<8, LAG, U, SKIP>(w, x, t, y); break;
      default: std::abort();
    }
  }
  _tile_release();
}

using Kernel = void (*)(const PackedView&, const QuantizedRows&, int, int, float*);
struct Version {
  const char* name;
  Kernel fn;
  int group;  // tiles per kernel call unit
};

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

struct Packed {
  std::vector<AwqMatrixCpu> copies;
  PackedView view(size_t i) const { return dev::view_of(copies[i]); }
};

Packed make(int K, int N, size_t total, std::mt19937& rng) { return Packed{dev::rotated_copies(dev::random_packed(K, N, rng), total)}; }

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "l2";
  const int M = argc > 2 ? atoi(argv[2]) : 2;
  const int rounds = argc > 3 ? atoi(argv[3]) : 6;
  if (!awq_cpu_force_isa("amx")) {
    std::printf("no amx\n");
    return 1;
  }
  std::mt19937 rng(3);
  const int K = 4096, N = mode == "l2" ? 512 : 12288, P = mode == "l2" ? 1 : 2;
  Packed pk = make(K, N, mode == "l2" ? 0 : (512u << 20), rng);
  ThreadPool pool(P);
  // activations
  std::normal_distribution<float> d(0.f, 1.f);
  std::vector<float> xf((size_t)M * K);
  for (auto& v : xf) v = d(rng);
  const int nb = K / 128;
  std::vector<int16_t> q((size_t)M * K);
  std::vector<int8_t> hi((size_t)M * K), lo((size_t)M * K);
  std::vector<float> sc((size_t)M * nb);
  std::vector<int32_t> sum((size_t)M * nb);
  quantize_rows_avx512(xf.data(), M, K, 128, q.data(), hi.data(), lo.data(), sc.data(), sum.data());
  QuantizedRows x{M, K, 128, q.data(), hi.data(), lo.data(), sc.data(), sum.data()};
  std::vector<int8_t> tiles(amx_tiles_bytes(M, K));
  amx_tile_activations(x, tiles.data());
  x.tiles = tiles.data();

  std::vector<Version> versions = {
      {"amx", tiles_amx, 2},
      {"amx-lag0", amx_lag<0, false>, 2},
      {"amx-lag1", amx_lag<1, false>, 2},
      {"amx-lag2", amx_lag<2, false>, 2},
      {"amxu-lag1", amx_lag<1, true>, 2},
      {"-expand", amx_lag<1, true, 1>, 2},
      {"dummy", amx_lag<1, true, 8>, 2},
      {"-tiles", amx_lag<1, true, 2>, 2},
      {"-fold", amx_lag<1, true, 4>, 2},
      {"expand", amx_lag<1, true, 6>, 2},
      {"tiles", amx_lag<1, true, 5>, 2},
      {"fold", amx_lag<1, true, 3>, 2},
      {"vnni", tiles_avx512vnni, 2},
  };
  // validate
  std::vector<float> ref((size_t)M * N), y((size_t)M * N);
  tiles_scalar(pk.view(0), x, 0, N / kTile, ref.data());
  for (auto& v : versions) {
    std::fill(y.begin(), y.end(), NAN);
    v.fn(pk.view(0), x, 0, N / kTile, y.data());
    double e = 0, n2 = 0;
    for (size_t i = 0; i < y.size(); i++) e += (y[i] - ref[i]) * (y[i] - ref[i]), n2 += ref[i] * ref[i];
    std::printf("%-10s err %.3g\n", v.name, std::sqrt(e / n2));
  }
  const double bytes = (double)pk.copies[0].bytes_read();
  std::vector<std::vector<double>> res(versions.size());
  for (int r = 0; r < rounds; r++) {
    double probe = 0;
    if (mode == "dram") probe = measure_read_bandwidth_cpu(pool, 1u << 30).best_gbs;
    std::printf("round %d probe %.1f:", r, probe);
    for (size_t vi0 = 0; vi0 < versions.size(); vi0++) {
      const size_t vi = (vi0 + r * 3) % versions.size();
      const Version& v = versions[vi];
      double best = 1e9;
      if (mode == "l2") {
        const PackedView w = pk.view(0);
        for (int rep = 0; rep < 200; rep++) {
          const double t0 = now();
          v.fn(w, x, 0, N / kTile, y.data());
          best = std::min(best, now() - t0);
        }
      } else {
        for (size_t c = 0; c < pk.copies.size(); c++) {
          const PackedView w = pk.view(c);
          const int groups = w.n_tiles / 4, chunk = std::max(1, groups / (8 * P)), n_chunks = (groups + chunk - 1) / chunk;
          const double t0 = now();
          pool.parallel_dynamic(n_chunks, [&](int ci) {
            const int a = ci * chunk * 4, b = std::min(w.n_tiles, (ci + 1) * chunk * 4);
            v.fn(w, x, a, b, y.data());
          });
          best = std::min(best, now() - t0);
        }
      }
      const double g = bytes / best / 1e9;
      res[vi].push_back(mode == "dram" ? g / probe : g);
      std::printf(" %s %.1f", v.name, g);
    }
    std::printf("\n");
  }
  std::printf("\nM=%d %s: median %s\n", M, mode.c_str(), mode == "dram" ? "ratio to same-round probe" : "GB/s (1 thread, L2)");
  for (size_t vi = 0; vi < versions.size(); vi++) {
    std::sort(res[vi].begin(), res[vi].end());
    std::printf("%-10s %.3f\n", versions[vi].name, res[vi][res[vi].size() / 2]);
  }
  return 0;
}
