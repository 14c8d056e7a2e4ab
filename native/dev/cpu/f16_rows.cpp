// Experiment: the fp16 lm_head matmul for the skinny M = 2..8 rows of decode batches, in versions:
//   main      mainline rows_avx512 (RW W rows x up to 4 x rows, accumulators in registers), x 64-byte aligned
//   pfD       RW W rows x all M rows (one pass), prefetching the same k of the W rows D blocks ahead
//   main+16B  the same on x starting 16 bytes past a 64-byte boundary: each 64-byte load spans two cache lines
//   b3-RW     RW W rows x all M rows, x interleaved (xi[k/16][row][16]) so its rows do not share one L1 set
//   kc2-KC    K in chunks of KC, so the chunk of x stays in L1 while the range of W passes over it
// Before the mainline's accumulators were forced into registers, GCC stored each one after every FMA (2-3x slower).
// Two measurements: "l2": one thread on a (512, 4096) matrix that fits L2, best of many calls (compute cost, GB/s per
// core); "dram": 2 threads over the (151936, 4096) lm_head, versions alternating within each round, ratio to that
// round's probe. Every version is first checked against f16_matmul_ref.
// Build: g++ -O3 -march=native -I native/src -I native/include native/dev/cpu/f16_rows.cpp native/build/libq3core.a -lpthread -o /tmp/f16_rows
// Usage: /tmp/f16_rows l2|dram M [rounds]
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include "cpu/bandwidth_cpu.h"
#include "cpu/f16_matmul_cpu.h"
#include "cpu/huge_pages.h"
#include "half.h"
#include "threadpool.h"

using namespace q3;

namespace {

// One k-step of RW W rows x RX x rows, as in the mainline kernel.
template <int RW, int RX>
__attribute__((always_inline)) inline void acc_step(const uint16_t* w, int K, const float* x, int n, int k, __mmask16 mask, __m512 (&acc)[RW][RX]) {
  __m512 wv[RW];
#pragma GCC unroll 8
  for (int i = 0; i < RW; i++) wv[i] = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask, w + (size_t)(n + i) * K + k));
#pragma GCC unroll 8
  for (int r = 0; r < RX; r++) {
    const __m512 xv = _mm512_maskz_loadu_ps(mask, x + (size_t)r * K + k);
#pragma GCC unroll 8
    for (int i = 0; i < RW; i++) acc[i][r] = _mm512_fmadd_ps(wv[i], xv, acc[i][r]);
  }
}

// The mainline block over K in chunks of KC (x chunk in L1), partial sums added into y.
template <int RW, int RX, int KC>
void rows_kc2(const uint16_t* w, int N, int K, const float* x, int M, float* y, int n0, int n1) {
  for (int k0 = 0; k0 < K; k0 += KC) {
    const int k1 = std::min(K, k0 + KC);
    auto run = [&](auto rw, int n) {
      constexpr int W = decltype(rw)::value;
      __m512 acc[W][RX];
#pragma GCC unroll 8
      for (int i = 0; i < W; i++)
#pragma GCC unroll 8
        for (int r = 0; r < RX; r++) acc[i][r] = _mm512_setzero_ps();
      int k = k0;
      for (; k + 16 <= k1; k += 16) acc_step<W, RX>(w, K, x, n, k, (__mmask16)0xFFFF, acc);
      if (k < k1) acc_step<W, RX>(w, K, x, n, k, (__mmask16)((1u << (k1 - k)) - 1), acc);
#pragma GCC unroll 8
      for (int i = 0; i < W; i++)
#pragma GCC unroll 8
        for (int r = 0; r < RX; r++) {
          float* o = y + (size_t)r * N + n + i;
          *o = (k0 == 0 ? 0.f : *o) + _mm512_reduce_add_ps(acc[i][r]);
        }
    };
    int n = n0;
    for (; n + RW <= n1; n += RW) run(std::integral_constant<int, RW>{}, n);
    for (; n < n1; n++) run(std::integral_constant<int, 1>{}, n);
  }
}

// x interleaved: xi[k/16][r][16] (rows of x K floats apart would all fall into one L1 set).
float* g_xi;  // 64-byte aligned
void interleave(const float* x, int M, int K) {
  const int kb = (K + 15) / 16;
  g_xi = (float*)std::aligned_alloc(64, (size_t)kb * M * 16 * sizeof(float));
  std::fill(g_xi, g_xi + (size_t)kb * M * 16, 0.f);
  for (int r = 0; r < M; r++)
    for (int k = 0; k < K; k++) g_xi[((size_t)(k / 16) * M + r) * 16 + k % 16] = x[(size_t)r * K + k];
}

template <int RW, int RX>
__attribute__((always_inline)) inline void step3(const uint16_t* w, int K, const float* xi, int n, int k, __mmask16 mask,
                                                 __m512 (&acc)[RW][RX]) {
  __m512 wv[RW];
#pragma GCC unroll 8
  for (int i = 0; i < RW; i++) wv[i] = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask, w + (size_t)(n + i) * K + k));
#pragma GCC unroll 8
  for (int r = 0; r < RX; r++) {
    const __m512 xv = _mm512_loadu_ps(xi + ((size_t)(k / 16) * RX + r) * 16);
#pragma GCC unroll 8
    for (int i = 0; i < RW; i++) acc[i][r] = _mm512_fmadd_ps(wv[i], xv, acc[i][r]);
  }
}

template <int RW, int RX>
void block3(const uint16_t* w, int N, int K, const float* xi, float* y, int n) {
  __m512 acc[RW][RX];
#pragma GCC unroll 8
  for (int i = 0; i < RW; i++)
#pragma GCC unroll 8
    for (int r = 0; r < RX; r++) acc[i][r] = _mm512_setzero_ps();
  int k = 0;
  for (; k + 16 <= K; k += 16) step3<RW, RX>(w, K, xi, n, k, (__mmask16)0xFFFF, acc);
  if (k < K) step3<RW, RX>(w, K, xi, n, k, (__mmask16)((1u << (K - k)) - 1), acc);
#pragma GCC unroll 8
  for (int i = 0; i < RW; i++)
#pragma GCC unroll 8
    for (int r = 0; r < RX; r++) y[(size_t)r * N + n + i] = _mm512_reduce_add_ps(acc[i][r]);
}

template <int RW, int RX>
void rows_b3(const uint16_t* w, int N, int K, const float*, int M, float* y, int n0, int n1) {
  const float* xi = g_xi;
  int n = n0;
  for (; n + RW <= n1; n += RW) block3<RW, RX>(w, N, K, xi, y, n);
  for (; n < n1; n++) block3<1, RX>(w, N, K, xi, y, n);
}

// The mainline block with a software prefetch of the same k of the next block's W rows (DIST blocks ahead), one
// prefetch per 64 bytes of each row: the next rows are in cache when the block reaches them.
template <int RW, int RX, int DIST>
void block_pf(const uint16_t* w, int N, int K, const float* x, float* y, int n) {
  __m512 acc[RW][RX];
#pragma GCC unroll 8
  for (int i = 0; i < RW; i++)
#pragma GCC unroll 8
    for (int r = 0; r < RX; r++) acc[i][r] = _mm512_setzero_ps();
  const uint16_t* next = w + (size_t)(n + RW * DIST) * K;
  int k = 0;
  for (; k + 32 <= K; k += 32) {
#pragma GCC unroll 8
    for (int i = 0; i < RW; i++) _mm_prefetch((const char*)(next + (size_t)i * K + k), _MM_HINT_T0);
    acc_step<RW, RX>(w, K, x, n, k, (__mmask16)0xFFFF, acc);
    acc_step<RW, RX>(w, K, x, n, k + 16, (__mmask16)0xFFFF, acc);
  }
  for (; k + 16 <= K; k += 16) acc_step<RW, RX>(w, K, x, n, k, (__mmask16)0xFFFF, acc);
  if (k < K) acc_step<RW, RX>(w, K, x, n, k, (__mmask16)((1u << (K - k)) - 1), acc);
#pragma GCC unroll 8
  for (int i = 0; i < RW; i++)
#pragma GCC unroll 8
    for (int r = 0; r < RX; r++) y[(size_t)r * N + n + i] = _mm512_reduce_add_ps(acc[i][r]);
}

template <int RW, int RX, int DIST>
void rows_pf(const uint16_t* w, int N, int K, const float* x, int M, float* y, int n0, int n1) {
  int n = n0;
  for (; n + RW <= n1; n += RW) block_pf<RW, RX, DIST>(w, N, K, x, y, n);
  for (; n < n1; n++) block_pf<1, RX, 0>(w, N, K, x, y, n);
}

// The mainline kernel on a copy of x that starts 16 bytes past a 64-byte boundary (as a large std::vector does).
float* g_xmis;
void main_misaligned(const uint16_t* w, int N, int K, const float*, int M, float* y, int n0, int n1) {
  f16_cpu::rows_avx512(w, N, K, g_xmis, M, y, n0, n1);
}

using Kernel = void (*)(const uint16_t*, int, int, const float*, int, float*, int, int);
struct Version {
  const char* name;
  Kernel fn;
};

template <int RX>
std::vector<Version> versions_for() {
  return {{"main", f16_cpu::rows_avx512},
          {"main+16B", main_misaligned},
          {"pf1", rows_pf<(RX <= 3 ? 6 : RX <= 5 ? 4 : 2), RX, 1>},
          {"pf2", rows_pf<(RX <= 3 ? 6 : RX <= 5 ? 4 : 2), RX, 2>},
          {"b3-2", rows_b3<2, RX>},
          {"b3-4", rows_b3<(RX <= 5 ? 4 : 2), RX>},
          {"kc2-512", rows_kc2<(RX <= 3 ? 6 : RX <= 5 ? 4 : 2), RX, 512>},
          {"kc2-1024", rows_kc2<(RX <= 3 ? 6 : RX <= 5 ? 4 : 2), RX, 1024>}};
}

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "l2";
  const int M = argc > 2 ? atoi(argv[2]) : 8;
  const int rounds = argc > 3 ? atoi(argv[3]) : 6;
  const int K = 4096, N = mode == "l2" ? 128 : 151936, P = mode == "l2" ? 1 : 2;
  const size_t n = (size_t)N * K, huge = 2u << 20, bytes = n * 2;
  uint16_t* w = (uint16_t*)std::aligned_alloc(huge, (bytes + huge - 1) / huge * huge);
  advise_huge_pages(w, bytes);
  uint32_t s = 12345;
  for (size_t i = 0; i < n; i++) {
    s ^= s << 13, s ^= s >> 17, s ^= s << 5;
    w[i] = (uint16_t)((s & 0x83ff) | 0x2000);
  }
  std::mt19937 rng(5);
  std::normal_distribution<float> d(0.f, 1.f);
  std::vector<float> x((size_t)M * K), y((size_t)M * N), ref((size_t)M * N);
  for (auto& v : x) v = d(rng);
  // x as the mainline's dispatcher hands it to the kernels: 64-byte aligned (ALIGN=0: as a plain vector, which starts
  // 16 bytes into its page, so every 64-byte load spans two cache lines)
  float* xa = (float*)std::aligned_alloc(64, ((size_t)M * K * 4 + 127) / 64 * 64) + (getenv("ALIGN") && !atoi(getenv("ALIGN")) ? 4 : 0);
  std::copy(x.begin(), x.end(), xa);
  g_xmis = (float*)std::aligned_alloc(64, ((size_t)M * K * 4 + 127) / 64 * 64) + 4;
  std::copy(x.begin(), x.end(), g_xmis);
  std::vector<Version> versions;
  switch (M) {
    case 2: versions = versions_for<2>(); break;
    case 3: versions = versions_for<3>(); break;
    case 4: versions = versions_for<4>(); break;
    case 6: versions = versions_for<6>(); break;
    case 8: versions = versions_for<8>(); break;
    default: std::printf("M in 2,3,4,6,8\n"); return 1;
  }
  ThreadPool pool(P);
  interleave(x.data(), M, K);
  {
    const int Nv = std::min(N, 512);
    f16_matmul_ref(w, Nv, K, xa, M, ref.data());  // first Nv rows as an (Nv, K) matrix
    for (auto& v : versions) {
      std::vector<float> yv((size_t)M * Nv, NAN);
      v.fn(w, Nv, K, xa, M, yv.data(), 0, Nv);
      double e = 0, n2 = 0;
      for (size_t i = 0; i < yv.size(); i++) e += (yv[i] - ref[i]) * (yv[i] - ref[i]), n2 += ref[i] * ref[i];
      std::printf("%-8s err %.3g\n", v.name, std::sqrt(e / n2));
    }
  }
  std::vector<std::vector<double>> res(versions.size());
  for (int r = 0; r < rounds; r++) {
    double probe = 0;
    if (mode == "dram") probe = measure_read_bandwidth_cpu(pool, 1u << 30).best_gbs;
    std::printf("round %d probe %.1f:", r, probe);
    for (size_t vi0 = 0; vi0 < versions.size(); vi0++) {
      const size_t vi = (vi0 + r * 3) % versions.size();
      const Version& v = versions[vi];
      double best = 1e9;
      const int reps = mode == "l2" ? 300 : 2;
      for (int rep = 0; rep < reps; rep++) {
        const double t0 = now();
        if (mode == "l2") {
          v.fn(w, N, K, xa, M, y.data(), 0, N);
        } else {
          const int chunk = std::max(8, N / (8 * P) / 8 * 8), n_chunks = (N + chunk - 1) / chunk;
          pool.parallel_dynamic(n_chunks, [&](int c) { v.fn(w, N, K, xa, M, y.data(), c * chunk, std::min(N, (c + 1) * chunk)); });
        }
        best = std::min(best, now() - t0);
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
    std::printf("%-8s %.3f\n", versions[vi].name, res[vi][res[vi].size() / 2]);
  }
  std::free(w);
  return 0;
}
