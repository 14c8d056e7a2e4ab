// Experiment: the decode (M = 1) int4 GEMV streaming from DRAM, in versions that differ in how many tile streams a
// thread reads at once and how far ahead (and into which cache level) it prefetches; each round times the read
// bandwidth probe and every version on the 4096 -> 12288 (gate|up) shape over 512 MiB of copies, 2 threads.
// Build: g++ -O3 -march=native -I native/src -I native/include native/dev/cpu/awq_gemv_dram.cpp native/build/libq3core.a -lpthread -o /tmp/gemv_dram
// Usage: /tmp/gemv_dram [rounds]
#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
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

inline __m512i quad(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm512_set1_epi32(v);
}

// The mainline kernel's arithmetic (awq_cpu_avx512.cpp), with the stream count T, prefetch distance PF and hint H as
// parameters.
template <int T, int PF, int H>
void tiles_v(const PackedView& w, const QuantizedRows& x, int t, float* y) {
  const __m512i m0 = _mm512_set1_epi32(0x0F0F0F0F), m1 = _mm512_set1_epi32((int)0xF0F0F0F0);
  const int B = x.block, nb = w.K / B, nv = B / 8;
  const uint8_t* wp[T];
  __m512 out[T];
  for (int i = 0; i < T; i++) wp[i] = w.tile(t + i), out[i] = _mm512_setzero_ps();
  for (int b = 0; b < nb; b++) {
    const int8_t* xl = x.lo + (size_t)b * B;
    const int8_t* xh = x.hi + (size_t)b * B;
    __m512i l0[T], l1[T], h0[T], h1[T];
    for (int i = 0; i < T; i++) l0[i] = l1[i] = h0[i] = h1[i] = _mm512_setzero_si512();
    for (int j = 0; j < nv; j++, xl += 8, xh += 8) {
      const __m512i xl0 = quad(xl), xl1 = quad(xl + 4), xh0 = quad(xh), xh1 = quad(xh + 4);
      for (int i = 0; i < T; i++) {
        if (PF > 0) _mm_prefetch((const char*)wp[i] + PF, (_mm_hint)H);
        const __m512i v = _mm512_loadu_si512(wp[i]);
        wp[i] += kWordBytes;
        const __m512i w0 = _mm512_and_si512(v, m0), w1 = _mm512_and_si512(v, m1);
        l0[i] = _mm512_dpbusd_epi32(l0[i], w0, xl0);
        l1[i] = _mm512_dpbusd_epi32(l1[i], w1, xl1);
        h0[i] = _mm512_dpbusd_epi32(h0[i], w0, xh0);
        h1[i] = _mm512_dpbusd_epi32(h1[i], w1, xh1);
      }
    }
    const size_t g = (size_t)(b * B / w.group_size) * kMetaBytes;
    for (int i = 0; i < T; i++) {
      const __m512i h = _mm512_add_epi32(h0[i], _mm512_srai_epi32(h1[i], 4));
      const __m512i acc = _mm512_add_epi32(_mm512_slli_epi32(h, 8), _mm512_add_epi32(l0[i], _mm512_srai_epi32(l1[i], 4)));
      const uint8_t* rec = w.meta(t + i) + g;
      const __m512 s = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i*)rec));
      const __m512i z = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i*)(rec + 32)));
      const __m512i d = _mm512_sub_epi32(acc, _mm512_mullo_epi32(z, _mm512_set1_epi32(x.sum[b])));
      out[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d), _mm512_mul_ps(s, _mm512_set1_ps(x.scale[b])), out[i]);
    }
  }
  for (int i = 0; i < T; i++) _mm512_storeu_ps(y + (size_t)(t + i) * kTile, out[i]);
}

struct Version {
  const char* name;
  void (*fn)(const PackedView&, const QuantizedRows&, int, float*);
  int T;
};

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

}  // namespace

int main(int argc, char** argv) {
  const int rounds = argc > 1 ? atoi(argv[1]) : 6;
  const int K = 4096, N = 12288, P = 2;
  ThreadPool pool(P);
  std::mt19937 rng(3);
  const std::vector<AwqMatrixCpu> copies = dev::rotated_copies(dev::random_packed(K, N, rng), 512u << 20);
  std::vector<int16_t> q(K);
  std::vector<int8_t> hi(K), lo(K);
  std::vector<float> s(K / 128, 1e-4f), y(N);
  std::vector<int32_t> sum(K / 128, 0);
  for (int k = 0; k < K; k++) {
    const int v = (int)(rng() % 60000) - 30000, l = ((v + 128) & 255) - 128;
    q[k] = (int16_t)v, lo[k] = (int8_t)l, hi[k] = (int8_t)((v - l) / 256);
  }
  const QuantizedRows x{1, K, 128, q.data(), hi.data(), lo.data(), s.data(), sum.data()};
  const Version versions[] = {
      {"v1 T=2 pf 6K L1", tiles_v<2, 6144, _MM_HINT_T0>, 2},
      {"v2 T=2 pf 4K L2", tiles_v<2, 4096, _MM_HINT_T1>, 2},
      {"v3 T=4 pf 6K L1 (mainline)", tiles_v<4, 6144, _MM_HINT_T0>, 4},
      {"v4 T=4 pf 2K L2", tiles_v<4, 2048, _MM_HINT_T1>, 4},
      {"v5 T=4 pf 4K L2", tiles_v<4, 4096, _MM_HINT_T1>, 4},
      {"v6 T=2 no prefetch", tiles_v<2, 0, 0>, 2},
      {"v7 T=1 pf 6K L1", tiles_v<1, 6144, _MM_HINT_T0>, 1},
  };
  const int nv = sizeof versions / sizeof versions[0];
  std::vector<std::vector<double>> ratio(nv), gbs(nv);
  for (int r = 0; r < rounds; r++) {
    const double probe = measure_read_bandwidth_cpu(pool, 1u << 30).best_gbs;
    std::printf("round %d probe %.1f GB/s:", r, probe);
    std::vector<double> round_gbs(nv);
    for (int vi = 0; vi < nv; vi++) {  // a different version first each round: load from others drifts within a round
      const int v = (vi + r * 3) % nv;
      double best = 1e9;
      for (const AwqMatrixCpu& c : copies) {
        const PackedView w = dev::view_of(c);
        const int T = versions[v].T, groups = w.n_tiles / T, chunk = std::max(1, groups / (8 * P));
        const int n_chunks = (groups + chunk - 1) / chunk;
        const double t0 = now();
        pool.parallel_dynamic(n_chunks, [&](int ci) {
          for (int gi = ci * chunk; gi < std::min(groups, (ci + 1) * chunk); gi++) versions[v].fn(w, x, gi * T, y.data());
        });
        best = std::min(best, now() - t0);
      }
      const double g = copies[0].bytes_read() / best / 1e9;
      gbs[v].push_back(g);
      ratio[v].push_back(g / probe);
      round_gbs[v] = g;
    }
    for (int v = 0; v < nv; v++) std::printf(" %.1f", round_gbs[v]);
    std::printf("\n");
  }
  std::printf("\nversion: median GB/s, median ratio to the same round's probe (best call of each round)\n");
  for (int v = 0; v < nv; v++) {
    std::sort(gbs[v].begin(), gbs[v].end());
    std::sort(ratio[v].begin(), ratio[v].end());
    std::printf("%-30s %6.1f GB/s  %5.1f%%\n", versions[v].name, gbs[v][rounds / 2], 100 * ratio[v][rounds / 2]);
  }
  return 0;
}
