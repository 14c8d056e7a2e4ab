// Experiment: what caps the decode (M = 1) int4 GEMV, the memory system or the arithmetic. In alternating rounds of
// one run, on the 4096 -> 12288 shape with 2 threads:
//   (a) the mainline kernel (tiles_avx512vnni) streaming from DRAM (copies of the matrix over ~2 GiB);
//   (b) the same loads and prefetches over the same tiles, no arithmetic (each word xor-ed into an accumulator);
//   (c) the mainline kernel on an L2-resident matrix (each thread its own ~1 MiB, many passes): the compute ceiling,
//       in GB/s of weights;
//   (d) the read bandwidth probe (1 GiB, as every benchmark uses it) and the same probe over 3 GiB (a buffer ten times
//       the last-level cache, to see how much of the probe is cache);
// plus candidate kernels, each from DRAM and from L2. Every call counts (total bytes / total time).
// Build: g++ -O3 -march=native -I native/src -I native/include native/dev/cpu/gemv_bound.cpp native/build/libq3core.a -lpthread -o /tmp/gemv_bound
// Usage: /tmp/gemv_bound [rounds] [path of a results file to write]
// (g1-g5), added on an AMD EPYC (Zen 4): the library's AMD prefetch (T1 2 KiB ahead) with the four streams of a tile
// range far apart (one_row<..., Strided>: each stream one long sequential stretch, as in the probe's loop), checked to give
// the same bits as tiles_avx512vnni_amd before timing (bench/results/cpu-zen4-bound.md).
#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "awq_inputs.h"
#include "cpu/awq_cpu.h"
#include "cpu/awq_cpu_kernels.h"
#include "cpu/bandwidth_cpu.h"
#include "half.h"
#include "threadpool.h"
#include "results_md.h"

using namespace q3;
using namespace q3::awq_cpu;

namespace {

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

constexpr int kPf = 6144;

// (b): the mainline's T = 4 streams and T0 prefetch 6 KiB ahead, each word only xor-ed into an accumulator.
void read_only(const PackedView& w, const QuantizedRows&, int t0, int t1, float* y) {
  constexpr int T = 4;
  for (int t = t0; t + T <= t1; t += T) {
    const uint8_t* wp[T];
    __m512i acc[T];
    for (int i = 0; i < T; i++) wp[i] = w.tile(t + i), acc[i] = _mm512_setzero_si512();
    const int words = (int)(w.tile_bytes / kWordBytes);
    for (int j = 0; j < words; j++) {
      for (int i = 0; i < T; i++) {
        _mm_prefetch((const char*)wp[i] + kPf, _MM_HINT_T0);
        acc[i] = _mm512_xor_si512(acc[i], _mm512_load_si512(wp[i]));
        wp[i] += kWordBytes;
      }
    }
    for (int i = 0; i < T; i++) _mm512_storeu_si512(y + (size_t)(t + i) * kTile, acc[i]);
  }
}

inline __m512i quad(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm512_set1_epi32(v);
}

// The mainline M = 1 kernel (tiles_one_row<VNNI, 4>, meta prefetch and next-group turn included) with the prefetch as
// parameters: PF bytes ahead with hint H, plus (PF2 > 0) a second prefetch PF2 bytes ahead with hint H2.
// Strided (g2-g5): the four streams far apart. A range of n tiles is walked as four runs of n / 4 adjacent tiles, one
// per stream, the g-th group taking tile g of each run, so that each stream reads one long sequential stretch (as the
// probe's loop does) instead of turning every 32 KiB tile; its prefetch runs straight ahead (a stream's next tile
// follows its current one in memory). Same arithmetic, same bits. !Compute: the same loads only, xor-ed together.
template <int PF, int H, int PF2, int H2, bool Strided = false, bool Compute = true>
void one_row(const PackedView& w, const QuantizedRows& x, int t0, int t1, float* y) {
  constexpr int T = 4;
  const __m512i m0 = _mm512_set1_epi32(0x0F0F0F0F), m1 = _mm512_set1_epi32((int)0xF0F0F0F0);
  const int B = x.block, nb = w.K / B, nv = B / 8;
  const int q = (t1 - t0) / T;
  for (int t = t0; t + T <= t1; t += T) {
    int tt[T];
    const uint8_t* wp[T];
    __m512 out[T];
    __m512i sink = _mm512_setzero_si512();
    for (int i = 0; i < T; i++)
      tt[i] = Strided ? t0 + i * q + (t - t0) / T : t + i, wp[i] = w.tile(tt[i]), out[i] = _mm512_setzero_ps();
    const size_t meta_bytes = (size_t)(w.K / w.group_size) * kMetaBytes;
    for (int i = 0; i < T; i++)
      for (size_t o = 0; o < meta_bytes; o += 64) _mm_prefetch((const char*)w.meta(tt[i]) + o, _MM_HINT_T0);
    const size_t jump = Strided ? 0 : (size_t)(T - 1) * w.tile_bytes;
    const uint8_t* turn = w.tile(t + 1) - PF;
    const uint8_t* turn2 = w.tile(t + 1) - PF2;
    for (int b = 0; b < nb; b++) {
      const int8_t* xl = x.lo + (size_t)b * B;
      const int8_t* xh = x.hi + (size_t)b * B;
      __m512i l0[T], l1[T], h0[T], h1[T];
      for (int i = 0; i < T; i++) l0[i] = l1[i] = h0[i] = h1[i] = _mm512_setzero_si512();
      const size_t ahead = PF + (wp[0] >= turn ? jump : 0), ahead2 = PF2 + (wp[0] >= turn2 ? jump : 0);
      for (int j = 0; j < nv; j++, xl += 8, xh += 8) {
        const __m512i xl0 = quad(xl), xl1 = quad(xl + 4), xh0 = quad(xh), xh1 = quad(xh + 4);
        for (int i = 0; i < T; i++) {
          _mm_prefetch((const char*)wp[i] + ahead, (_mm_hint)H);
          if (PF2 > 0) _mm_prefetch((const char*)wp[i] + ahead2, (_mm_hint)H2);
          const __m512i v = _mm512_loadu_si512(wp[i]);
          wp[i] += kWordBytes;
          if (!Compute) {
            sink = _mm512_xor_si512(sink, v);
            continue;
          }
          const __m512i w0 = _mm512_and_si512(v, m0), w1 = _mm512_and_si512(v, m1);
          l0[i] = _mm512_dpbusd_epi32(l0[i], w0, xl0);
          l1[i] = _mm512_dpbusd_epi32(l1[i], w1, xl1);
          h0[i] = _mm512_dpbusd_epi32(h0[i], w0, xh0);
          h1[i] = _mm512_dpbusd_epi32(h1[i], w1, xh1);
        }
      }
      if (!Compute) continue;
      const size_t g = (size_t)(b * B / w.group_size) * kMetaBytes;
      for (int i = 0; i < T; i++) {
        const __m512i h = _mm512_add_epi32(h0[i], _mm512_srai_epi32(h1[i], 4));
        const __m512i acc =
            _mm512_add_epi32(_mm512_slli_epi32(h, 8), _mm512_add_epi32(l0[i], _mm512_srai_epi32(l1[i], 4)));
        const uint8_t* rec = w.meta(tt[i]) + g;
        const __m512 s = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i*)rec));
        const __m512i z = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i*)(rec + 32)));
        const __m512i d = _mm512_sub_epi32(acc, _mm512_mullo_epi32(z, _mm512_set1_epi32(x.sum[b])));
        out[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d), _mm512_mul_ps(s, _mm512_set1_ps(x.scale[b])), out[i]);
      }
    }
    for (int i = 0; i < T; i++) _mm512_storeu_ps(y + (size_t)tt[i] * kTile, Compute ? out[i] : _mm512_castsi512_ps(sink));
  }
}

using Kernel = void (*)(const PackedView&, const QuantizedRows&, int, int, float*);

struct Matrix {
  AwqMatrixCpu m;
  PackedView view() const {
    uint64_t off;
    std::memcpy(&off, m.storage.data(), 8);
    const size_t tb = ((size_t)m.K / 8 * kWordBytes + (size_t)m.K / m.group_size * kMetaBytes + 63) / 64 * 64;
    return PackedView{m.K, m.N, m.group_size, (m.N + kTile - 1) / kTile, tb, m.storage.data() + off};
  }
};

Matrix random_matrix(int K, int N, std::mt19937& rng) {
  std::vector<int32_t> qw((size_t)K * N / 8), qz((size_t)K / 128 * N / 8);
  std::vector<uint16_t> sc((size_t)K / 128 * N);
  for (auto& v : qw) v = (int32_t)rng();
  for (auto& v : qz) v = (int32_t)rng();
  for (auto& v : sc) v = f32_to_f16(0.01f);
  return Matrix{awq_pack_cpu(K, 128, {AwqSource{qw.data(), qz.data(), sc.data(), N}})};
}

// One matmul over tiles split as awq_matmul_cpu splits them (~8 chunks of 4-tile groups per thread, claimed in turn).
void matmul(const PackedView& w, const QuantizedRows& x, float* y, Kernel k, ThreadPool& pool) {
  const int groups = w.n_tiles / 4, P = pool.size();
  const int chunk = std::max(1, groups / (8 * P)), n = (groups + chunk - 1) / chunk;
  pool.parallel_dynamic(n, [&](int c) { k(w, x, c * chunk * 4, std::min(groups, (c + 1) * chunk) * 4, y); });
}

struct Version {
  std::string name;
  Kernel k;
  bool amx;       // needs the AMX tile configuration and x.tiles
  bool resident;  // L2-resident matrix instead of DRAM copies
  bool probe3g;   // (d): the probe over 3 GiB
};

}  // namespace

int main(int argc, char** argv) {
  const int rounds = argc > 1 ? atoi(argv[1]) : 6;
  const int K = 4096, N = 12288, P = 2;
  ThreadPool pool(P);
  const bool amx = amx_request_permission();
  std::mt19937 rng(3);
  // DRAM: copies of one matrix, ~2 GiB in all (several times the 300 MiB last-level cache).
  std::vector<Matrix> copies;
  copies.push_back(random_matrix(K, N, rng));
  while (copies.size() * copies[0].m.bytes_read() < (2048u << 20)) {
    Matrix c{AwqMatrixCpu{}};
    c.m.K = K, c.m.N = N, c.m.group_size = 128;
    c.m.storage.assign(copies[0].m.storage.begin(), copies[0].m.storage.end());
    copies.push_back(std::move(c));
  }
  // L2: one small matrix per thread (K x 256: 16 tiles, ~540 KB), each thread passing over its own many times.
  std::vector<Matrix> small;
  for (int p = 0; p < P; p++) small.push_back(random_matrix(K, 256, rng));
  constexpr int kPasses = 200;

  std::vector<int16_t> q(K);
  std::vector<int8_t> hi(K), lo(K);
  std::vector<float> s(K / 128, 1e-4f), y((size_t)N + 64);
  std::vector<int32_t> sum(K / 128, 0);
  for (int k = 0; k < K; k++) {
    const int v = (int)(rng() % 60000) - 30000, l = ((v + 128) & 255) - 128;
    q[k] = (int16_t)v, lo[k] = (int8_t)l, hi[k] = (int8_t)((v - l) / 256);
  }
  QuantizedRows x{1, K, 128, q.data(), hi.data(), lo.data(), s.data(), sum.data()};
  std::vector<int8_t> atiles(amx_tiles_bytes(1, K) + 64);
  int8_t* at = atiles.data() + (64 - (uintptr_t)atiles.data() % 64) % 64;
  amx_tile_activations(x, at);
  QuantizedRows xa = x;
  xa.tiles = at;

  std::vector<Version> versions = {
      {"(d) probe 1 GiB (best 32 MiB segment)", nullptr, false, false, false},
      {"(d') probe 3 GiB (best 32 MiB segment)", nullptr, false, false, true},
      {"(a) mainline VNNI, DRAM", tiles_avx512vnni, false, false, false},
      {"(b) loads + prefetch only, DRAM", read_only, false, false, false},
      {"(b') probe's loop over the same bytes, DRAM", dev::read_tiles, false, false, false},
      {"(c) mainline VNNI, L2", tiles_avx512vnni, false, true, false},
      {"(a2) mainline VNNI, AMD prefetch, DRAM", tiles_avx512vnni_amd, false, false, false},
      {"(c2) mainline VNNI, AMD prefetch, L2", tiles_avx512vnni_amd, false, true, false},
      {"(g1) kernel T1 2K, adjacent tiles, DRAM", one_row<2048, _MM_HINT_T1, 0, 0>, false, false, false},
      {"(g2) kernel T1 2K, strided streams, DRAM", one_row<2048, _MM_HINT_T1, 0, 0, true>, false, false, false},
      {"(g3) loads only T1 2K, strided streams, DRAM", one_row<2048, _MM_HINT_T1, 0, 0, true, false>, false, false, false},
      {"(g4) kernel T1 4K, strided streams, DRAM", one_row<4096, _MM_HINT_T1, 0, 0, true>, false, false, false},
      {"(g5) kernel T1 2K, strided streams, L2", one_row<2048, _MM_HINT_T1, 0, 0, true>, false, true, false},
      {"(c') loads + prefetch only, L2", read_only, false, true, false},
      {"(f1) kernel, T0 6K (= mainline)", one_row<6144, _MM_HINT_T0, 0, 0>, false, false, false},
      {"(f2) kernel, T0 12K", one_row<12288, _MM_HINT_T0, 0, 0>, false, false, false},
      {"(f3) kernel, T1 6K", one_row<6144, _MM_HINT_T1, 0, 0>, false, false, false},
      {"(f4) kernel, T0 2K + T1 12K", one_row<2048, _MM_HINT_T0, 12288, _MM_HINT_T1>, false, false, false},
      {"(f5) kernel, T0 6K + T2 24K", one_row<6144, _MM_HINT_T0, 24576, _MM_HINT_T2>, false, false, false},
      {"(f6) kernel, NTA 6K", one_row<6144, _MM_HINT_NTA, 0, 0>, false, false, false},
  };
  if (amx) versions.push_back({"(e) AMX path at M=1, L2", tiles_amx, true, true, false});
  const int nv = (int)versions.size();
  // The strided kernel must give the library kernel's bits over a whole matrix, split as matmul() splits it.
  {
    std::vector<float> want((size_t)N + 64), got((size_t)N + 64);
    matmul(copies[0].view(), x, want.data(), tiles_avx512vnni_amd, pool);
    matmul(copies[0].view(), x, got.data(), one_row<2048, _MM_HINT_T1, 0, 0, true>, pool);
    if (std::memcmp(want.data(), got.data(), (size_t)N * sizeof(float)) != 0) {
      std::fprintf(stderr, "the strided kernel differs from tiles_avx512vnni_amd\n");
      return 1;
    }
  }
  // Per version and round: the mean over all calls (every byte counts) and the best single call (one ~25 MB copy, as
  // long as one probe segment).
  std::vector<std::vector<double>> mean(nv), best(nv), ratio(nv), ratio_best(nv);
  for (int r = 0; r < rounds; r++) {
    std::vector<double> rm(nv), rb(nv);
    for (int vi = 0; vi < nv; vi++) {
      const int v = (vi + r) % nv;  // the order rotates: load from others drifts within a round
      const Version& ver = versions[v];
      const QuantizedRows& xr = ver.amx ? xa : x;
      if (ver.k == nullptr) {
        rm[v] = rb[v] = measure_read_bandwidth_cpu(pool, ver.probe3g ? (3072u << 20) : (1024u << 20)).best_gbs;
      } else if (ver.resident) {
        const double t0 = now();
        pool.parallel_for(P, [&](int p) {
          const PackedView w = small[p].view();
          for (int i = 0; i < kPasses; i++) ver.k(w, xr, 0, w.n_tiles, y.data());
        });
        rm[v] = rb[v] = (double)P * kPasses * small[0].m.bytes_read() / (now() - t0) / 1e9;
      } else {
        double total = 0, fastest = 1e9;
        for (const Matrix& c : copies) {
          const double t0 = now();
          matmul(c.view(), xr, y.data(), ver.k, pool);
          const double dt = now() - t0;
          total += dt, fastest = std::min(fastest, dt);
        }
        rm[v] = (double)copies.size() * copies[0].m.bytes_read() / total / 1e9;
        rb[v] = copies[0].m.bytes_read() / fastest / 1e9;
      }
    }
    std::printf("round %d:", r);
    for (int v = 0; v < nv; v++) {
      mean[v].push_back(rm[v]), best[v].push_back(rb[v]);
      ratio[v].push_back(rm[v] / rm[0]), ratio_best[v].push_back(rb[v] / rm[0]);
      std::printf(" %.1f/%.1f", rm[v], rb[v]);
    }
    std::printf("\n");
    std::fflush(stdout);
  }
  auto med = [&](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  std::printf("\n%-46s %8s %8s %8s %8s\n", "version (median over rounds)", "mean", "best", "mean %", "best %");
  std::printf("%-46s %8s %8s %8s %8s\n", "", "GB/s", "call", "probe", "probe");
  for (int v = 0; v < nv; v++)
    std::printf("%-46s %8.1f %8.1f %7.1f%% %7.1f%%\n", versions[v].name.c_str(), med(mean[v]), med(best[v]),
                100 * med(ratio[v]), 100 * med(ratio_best[v]));
  if (argc > 2) {
    using q3::dev::fmt;
    auto span = [&](const std::vector<double>& v, const char* f) {
      return fmt(f, q3::dev::median(v)) + " (" + fmt(f, *std::min_element(v.begin(), v.end())) + "-" +
             fmt(f, *std::max_element(v.begin(), v.end())) + ")";
    };
    std::string md = "| version | mean GB/s | best call GB/s | mean ÷ probe | best call ÷ probe |\n|---|---:|---:|---:|---:|\n";
    for (int v = 0; v < nv; v++)
      md += "| " + versions[v].name + " | " + span(mean[v], "%.1f") + " | " + span(best[v], "%.1f") + " | " +
            span(ratio[v], "%.2f") + " | " + span(ratio_best[v], "%.2f") + " |\n";
    FILE* f = std::fopen(argv[2], "w");
    if (!f) return 1;
    std::fprintf(f, "# What caps the batch-1 int4 GEMV on this machine (native/dev/cpu/gemv_bound.cpp)\n\n");
    std::fprintf(f, "- command: `/tmp/gemv_bound %d %s` (build line in the source)\n%s", rounds, argv[2],
                 q3::dev::date_and_load_line().c_str());
    std::fprintf(f, "- the 4096 -> 12288 int4 matrix, M = 1, 2 threads; DRAM versions over ~2 GiB of copies, L2 versions "
                    "over a per-thread 540 KB matrix 200 times; median (min-max) over %d rounds, versions in an order "
                    "rotated each round; ÷ probe = the same round's read probe (1 GiB, best 32 MiB segment)\n\n%s",
                 rounds, md.c_str());
    std::fclose(f);
  }
  return 0;
}
