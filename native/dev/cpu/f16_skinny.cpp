// Experiment: the fp16 lm_head matmul's AVX-512 kernel (vcvtph2ps + FMA) at 2..8 rows of x, in versions:
//   before   the mainline at the start of this experiment: RW W rows x all M rows per pass for M <= 4 (RW = 6 at
//            M <= 3, 4 at M = 4), two passes of 4 rows for M = 5..8, software prefetch only at M = 1
//   pf       the same, every W row also prefetched 512 B ahead (as at M = 1) at every M
//   pf-kc    pf, with K in chunks of 16 KiB of x (all M rows) for a block of 8 x RW W rows at a time: the chunk of x
//            stays in L1 instead of being read from L2 for every RW rows of W (x is 32-128 KiB at M = 2..8)
//   pf-1p    pf, M = 5..8 in one pass (RW = 4 at M <= 6, 3 at 7..8): each weight converted once instead of twice
//   pf-1p-kc pf-1p with the K chunks of pf-kc
//   pf-wide  pf with as many W rows per block as the registers hold (RW = 8 at M = 2, 7 at 3, 6 at 4, 4 at 5..6, 3
//            at 7..8; one pass), the 8 row streams per thread of M = 1 where they fit
//   rw       pf, one pass over W for every M with RW = 8 at M = 2 and 4 at M = 3..8 (the best of the sweeps below)
//   rw-kc    rw with the K chunks of pf-kc
//   library  f16_cpu::rows_avx512 as built (SHORT=1 runs before, pf, rw, rw-kc and library only)
//   (RWSWEEP=1 / RWSWEEP2=1: one pass, pf, RW = 2, 3, 4, 5 / 4, 6, 7, 8 at the given M)
// Two measurements: "l2": one thread on a (128, 4096) matrix that stays in L2, best of many calls (compute cost per
// byte of W, GB/s per core); "dram": 2 threads over the (151936, 4096) lm_head, each version in the same round as
// "before" (alternating before / version / version / before), reported as its speed-up over "before" in that round
// (median over rounds) and as a ratio to the round's bandwidth probe. Every version is first checked against
// f16_matmul_ref.
// Build: g++ -O3 -march=native -I native/src -I native/include native/dev/cpu/f16_skinny.cpp native/build/libq3core.a -lpthread -o /tmp/f16_skinny
// Usage: /tmp/f16_skinny l2|dram M [rounds]
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "cpu/bandwidth_cpu.h"
#include "cpu/f16_matmul_cpu.h"
#include "head_inputs.h"
#include "threadpool.h"

using namespace q3;

namespace {

constexpr int kPrefetchBytes = 512;

template <int RW, int RX, bool PF>
__attribute__((always_inline)) inline void step(const uint16_t* w, int K, const float* x, int n, int m, int k,
                                                __mmask16 mask, __m512 (&acc)[RW][RX]) {
  if constexpr (PF)
    if ((k & 31) == 0)
#pragma GCC unroll 8
      for (int i = 0; i < RW; i++) _mm_prefetch((const char*)(w + (size_t)(n + i) * K + k) + kPrefetchBytes, _MM_HINT_T0);
  __m512 wv[RW];
#pragma GCC unroll 8
  for (int i = 0; i < RW; i++) wv[i] = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask, w + (size_t)(n + i) * K + k));
#pragma GCC unroll 8
  for (int r = 0; r < RX; r++) {
    const __m512 xv = _mm512_maskz_loadu_ps(mask, x + (size_t)(m + r) * K + k);
#pragma GCC unroll 8
    for (int i = 0; i < RW; i++) acc[i][r] = _mm512_fmadd_ps(wv[i], xv, acc[i][r]);
  }
}

// y rows m .. m+RX-1 at n .. n+RW-1 (+)= W rows times x rows over k in [k0, k1).
template <int RW, int RX, bool PF>
void block(const uint16_t* w, int N, int K, const float* x, float* y, int n, int m, int k0, int k1, bool add) {
  __m512 acc[RW][RX];
#pragma GCC unroll 8
  for (int i = 0; i < RW; i++)
#pragma GCC unroll 8
    for (int r = 0; r < RX; r++) acc[i][r] = _mm512_setzero_ps();
  int k = k0;
  for (; k + 16 <= k1; k += 16) step<RW, RX, PF>(w, K, x, n, m, k, (__mmask16)0xFFFF, acc);
  if (k < k1) step<RW, RX, PF>(w, K, x, n, m, k, (__mmask16)((1u << (k1 - k)) - 1), acc);
#pragma GCC unroll 8
  for (int i = 0; i < RW; i++)
#pragma GCC unroll 8
    for (int r = 0; r < RX; r++) {
      float* o = y + (size_t)(m + r) * N + n + i;
      *o = (add ? *o : 0.f) + _mm512_reduce_add_ps(acc[i][r]);
    }
}

// Rows [n0, n1) of W times x rows m .. m+RX-1 (of M), RW W rows at a time; with KC, K in chunks of KC for blocks of
// 8 x RW rows.
template <int RW, int RX, bool PF, bool KC>
void pass(const uint16_t* w, int N, int K, const float* x, int M, float* y, int n0, int n1, int m) {
  const int kc = KC ? std::max(16, 16384 / (4 * M) / 16 * 16) : K, rb = KC ? 8 * RW : n1 - n0;
  for (int nb = n0; nb < n1; nb += rb) {
    const int ne = std::min(n1, nb + rb);
    for (int k0 = 0; k0 < K; k0 += kc) {
      const int k1 = std::min(K, k0 + kc);
      int n = nb;
      for (; n + RW <= ne; n += RW) block<RW, RX, PF>(w, N, K, x, y, n, m, k0, k1, k0 > 0);
      for (; n < ne; n++) block<1, RX, PF>(w, N, K, x, y, n, m, k0, k1, k0 > 0);
    }
  }
}

template <bool PF, bool KC, bool ONE_PASS, int M, bool WIDE = false>
void rows_v(const uint16_t* w, int N, int K, const float* x, int, float* y, int n0, int n1) {
  if constexpr (WIDE) {
    pass<M == 2 ? 8 : M == 3 ? 7 : M == 4 ? 6 : M <= 6 ? 4 : 3, M, PF, KC>(w, N, K, x, M, y, n0, n1, 0);
  } else if constexpr (M <= 4) {
    pass<M <= 3 ? 6 : 4, M, PF, KC>(w, N, K, x, M, y, n0, n1, 0);
  } else if constexpr (ONE_PASS) {
    pass<M <= 6 ? 4 : 3, M, PF, KC>(w, N, K, x, M, y, n0, n1, 0);
  } else {  // two passes over each block of 4 W rows (the second from L1), as the mainline before
    for (int n = n0; n < n1; n += 4) {
      const int ne = std::min(n1, n + 4);
      if (ne - n == 4) {
        pass<4, 4, PF, false>(w, N, K, x, M, y, n, ne, 0);
        pass<4, M - 4, PF, false>(w, N, K, x, M, y, n, ne, 4);
      } else {
        pass<1, 4, PF, false>(w, N, K, x, M, y, n, ne, 0);
        pass<1, M - 4, PF, false>(w, N, K, x, M, y, n, ne, 4);
      }
    }
  }
}

using Kernel = void (*)(const uint16_t*, int, int, const float*, int, float*, int, int);
struct Version {
  const char* name;
  Kernel fn;
};

// One pass, prefetch, RW W rows per block.
template <int RW, int M>
void rows_rw(const uint16_t* w, int N, int K, const float* x, int, float* y, int n0, int n1) {
  pass<RW, M, true, false>(w, N, K, x, M, y, n0, n1, 0);
}

template <int RW, int M>
void rows_rw_kc(const uint16_t* w, int N, int K, const float* x, int, float* y, int n0, int n1) {
  pass<RW, M, true, true>(w, N, K, x, M, y, n0, n1, 0);
}

template <int M>
std::vector<Version> versions_for() {
  if (getenv("SHORT"))
    return {{"before", rows_v<false, false, false, M>}, {"pf", rows_v<true, false, false, M>},
            {"rw", rows_rw<M == 2 ? 8 : 4, M>}, {"rw-kc", rows_rw_kc<M == 2 ? 8 : 4, M>},
            {"library", f16_cpu::rows_avx512}};
  if (getenv("RWSWEEP2"))
    return {{"before", rows_v<false, false, false, M>}, {"1p-rw4", rows_rw<4, M>}, {"1p-rw6", rows_rw<6, M>},
            {"1p-rw7", rows_rw<7, M>}, {"1p-rw8", rows_rw<8, M>}};
  if (getenv("RWSWEEP"))
    return {{"before", rows_v<false, false, false, M>}, {"1p-rw2", rows_rw<2, M>}, {"1p-rw3", rows_rw<3, M>},
            {"1p-rw4", rows_rw<4, M>}, {"1p-rw5", rows_rw<(M <= 5 ? 5 : 4), M>}};
  return {{"before", rows_v<false, false, false, M>}, {"pf", rows_v<true, false, false, M>},
          {"pf-kc", rows_v<true, true, false, M>},    {"pf-1p", rows_v<true, false, true, M>},
          {"pf-1p-kc", rows_v<true, true, true, M>}, {"pf-wide", rows_v<true, false, true, M, true>},
          {"rw", rows_rw<M == 2 ? 8 : 4, M>},          {"rw-kc", rows_rw_kc<M == 2 ? 8 : 4, M>}};
}


// The mainline dispatcher's split: chunks of 16 rows taken by the threads in turn.
void call(Kernel fn, const uint16_t* w, int N, int K, const float* x, int M, float* y, ThreadPool& pool) {
  const int chunk = std::max(16, N / (8 * pool.size()) / 16 * 16), n_chunks = (N + chunk - 1) / chunk;
  pool.parallel_dynamic(n_chunks, [&](int c) { fn(w, N, K, x, M, y, c * chunk, std::min(N, (c + 1) * chunk)); });
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "l2";
  const int M = argc > 2 ? atoi(argv[2]) : 8, rounds = argc > 3 ? atoi(argv[3]) : 6;
  const bool l2 = mode == "l2";
  const int K = 4096, N = l2 ? 128 : 151936;
  const size_t bytes = (size_t)N * K * 2;
  uint16_t* w = dev::random_f16_matrix(N, K);
  float* x = dev::random_rows(M, K);
  std::vector<float> y((size_t)M * N);
  std::vector<Version> vs;
  switch (M) {
    case 2: vs = versions_for<2>(); break;
    case 3: vs = versions_for<3>(); break;
    case 4: vs = versions_for<4>(); break;
    case 5: vs = versions_for<5>(); break;
    case 6: vs = versions_for<6>(); break;
    case 7: vs = versions_for<7>(); break;
    case 8: vs = versions_for<8>(); break;
    default: std::printf("M in 2..8\n"); return 1;
  }
  ThreadPool pool(l2 ? 1 : 2);
  {
    const int Nv = std::min(N, 512);
    std::vector<float> ref((size_t)M * Nv);
    f16_matmul_ref(w, Nv, K, x, M, ref.data());
    for (const Version& v : vs) {
      std::vector<float> a((size_t)M * Nv, NAN);
      call(v.fn, w, Nv, K, x, M, a.data(), pool);
      double e = 0, n2 = 0;
      for (size_t i = 0; i < ref.size(); i++) e += (a[i] - ref[i]) * (a[i] - ref[i]), n2 += ref[i] * ref[i];
      std::printf("%-9s err %.3g\n", v.name, std::sqrt(e / n2));
    }
  }
  // res[v]: per round, (GB/s or ratio to probe, speed-up over "before" in that round)
  std::vector<std::vector<double>> ratio(vs.size()), speedup(vs.size());
  for (int r = 0; r < rounds; r++) {
    const double probe = l2 ? 1 : measure_read_bandwidth_cpu(pool, 1u << 30).best_gbs;
    std::printf("round %d probe %.1f:", r, probe);
    for (size_t vi = 1; vi < vs.size(); vi++) {
      double tb = 1e9, tv = 1e9;
      const int reps = l2 ? 200 : 2;
      for (int rep = 0; rep < reps; rep++)
        for (int i = 0; i < 4; i++) {  // before, version, version, before
          const bool is_before = i == 0 || i == 3;
          const double t0 = dev::now_s();
          call(is_before ? vs[0].fn : vs[vi].fn, w, N, K, x, M, y.data(), pool);
          (is_before ? tb : tv) = std::min(is_before ? tb : tv, dev::now_s() - t0);
        }
      ratio[0].push_back(bytes / tb / 1e9 / probe);
      ratio[vi].push_back(bytes / tv / 1e9 / probe);
      speedup[vi].push_back(tb / tv);
      std::printf(" %s %.2fx", vs[vi].name, tb / tv);
    }
    std::printf("\n");
  }
  std::printf("\nM=%d %s: median %s; median (min-max) speed-up over 'before' in the same round\n", M, mode.c_str(),
              l2 ? "GB/s per core" : "ratio to same-round probe");
  for (size_t vi = 0; vi < vs.size(); vi++) {
    std::sort(ratio[vi].begin(), ratio[vi].end());
    std::printf("%-9s %.3f", vs[vi].name, ratio[vi][ratio[vi].size() / 2]);
    if (vi > 0) {
      std::sort(speedup[vi].begin(), speedup[vi].end());
      std::printf("  %.3f (%.3f-%.3f)", speedup[vi][speedup[vi].size() / 2], speedup[vi].front(), speedup[vi].back());
    }
    std::printf("\n");
  }
  std::free(w);
  return 0;
}
