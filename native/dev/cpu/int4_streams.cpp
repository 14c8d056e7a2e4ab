// Experiment: the AVX-512 VNNI int4 kernel, which machines without AMX run at M >= 3 rows, reading more tile streams
// per thread. native/dev/cpu/stream_compute.cpp found a DRAM read with 4-16 FMAs of work per line at 0.50-0.68 of the
// probe with one stream per thread but 0.86-0.99 with four; until 2949770 this kernel read one tile (one stream) at a
// time at M >= 3, in passes of up to 8 rows.
// Findings (bench/results/cpu-int4-streams.md, AMD EPYC Zen 4 without AMX): r4t2 1.05-1.16x at M = 3, 4, 5, 7 and
// 1.3-2.2x at M = 6, 8, 16 against r8t1; the library takes it (but at M = 5).
// Session 36 (Zen 5): r4t2 with other prefetch policies (run_vnni: T1 2-16 KiB, T2, NTA, none) and timing-only
// copies of its loop with parts left out (rows4_drop), a threads argument for the DRAM modes. From DRAM on one thread
// the kernel streams 0.65-0.77 of its own rate from L2, and neither its fold, its broadcasts nor the prefetch's
// distance or hint is what costs it; the AMD prefetch at M = 3..8 on two threads 1.00-1.04x, inside the noise
// (bench/results/cpu-zen5-stream-limits.md).
// The library's source is compiled into this file (its kernels are file-local templates), so these versions are the
// library's own loops with other row and tile counts:
//   mainline    tiles_avx512vnni as built
//   r8t1        one tile at a time, passes of 8 rows (tile_rows_passes: main's kernel at M >= 3 before 2949770)
//   rRtT        rows_vnni_passes<R, T>: passes of R rows over T adjacent tiles at once (T weight streams), each weight
//               word unpacked once per pass, each activation quad broadcast once for the T tiles, R x T x 2 int32 sums
//               in registers; the rest of a range (fewer than T tiles) by tiles_avx512vnni
// Each version is first checked against tiles_avx512vnni on the whole matrix and on an odd split (same int32 sums, same
// float operations in the same order: the same bits), and tiles_avx512vnni against tiles_scalar.
// "dram" (default): two threads, the 4096 -> 12288 shape (or 4096 -> 4096 with "o"), copies rotated over 512 MiB,
// split as awq_matmul_cpu splits it; per version and round the best pass over all copies and the mean, ÷ the same
// round's read probe and ÷ mainline in the same round (median over rounds; the order rotates by one per round).
// "l2": one thread, a 4096 x 512 matrix in L2, best of 200 calls, GB/s of packed weights.
// Build, with the flags CMake gives the library's AVX-512 file (native/CMakeLists.txt), since the kernels' source is
// compiled into this file: under -march=native GCC 12 tunes for the host and spilled the decode kernel's accumulators
// to the stack in its inner loop (on Zen 4: 36 instead of 54 GB/s from L3), so the figures of runs built that way
// (up to session 22) are for other code than the library's:
// g++ -O3 -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni -mfma -mf16c -mavx2 -I native/src -I native/include \
//   native/dev/cpu/int4_streams.cpp native/build/libq3core.a -lpthread -o /tmp/int4_streams
// Usage: /tmp/int4_streams M[,M...] [rounds] [comma-separated versions|all] [dram|o|l2] [results file]
//   [threads for dram|o, default 2]
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
#include "cpu/awq_cpu_avx512.cpp"
#include "cpu/awq_cpu_kernels.h"
#include "cpu/bandwidth_cpu.h"
#include "results_md.h"
#include "threadpool.h"

using namespace q3;
using namespace q3::awq_cpu;

namespace {

// The VNNI variants: the library's rows_vnni_passes<R, T> over groups of T tiles (the rest of the range by the
// library's kernel), with its prefetch P (the library gives the M >= 3 kernels IntelPrefetch on every CPU) or another,
// and the library's one-tile passes of 8 rows (main's kernel at M >= 3 before 2949770).
template <int R, int T, class P = IntelPrefetch>
void run_vnni(const PackedView& w, const QuantizedRows& x, int t0, int t1, float* y) {
  int t = t0;
  for (; t + T <= t1; t += T)
    row_passes<R>(x.M, [&](auto rows, int m) { rows_vnni<decltype(rows)::value, T, P>(w, x, t, m, y); });
  if (t < t1) tiles_avx512vnni(w, x, t, t1, y);
}

// Timing only (wrong results, not checked): rows_vnni<4, 2>'s loop with parts left out. Drop bit 1: no fold (the
// int32 sums are added into the outputs as they are, no record reads); bit 2: the activation quads broadcast once per
// block instead of per word (no broadcast loads in the word loop); bit 4: no software prefetch. Its outputs stay in
// registers (rows_vnni keeps them in memory) and it takes the AMD prefetch. M = 4 only (runs() leaves it out at other
// M; called there, it does nothing).
template <int Drop>
void rows4_drop(const PackedView& w, const QuantizedRows& x, int t0, int t1, float* y) {
  constexpr int R = 4, T = 2;
  if (x.M != R) return;
  const __m512i mask = _mm512_set1_epi32(0x0F0F0F0F);
  const int K = w.K, B = x.block, nb = K / B, nv = B / 8;
  for (int t = t0; t + T <= t1; t += T) {
    const uint8_t* wp[T];
    __m512 out[R][T];
    for (int i = 0; i < T; i++) wp[i] = w.tile(t + i);
    for (int r = 0; r < R; r++)
      for (int i = 0; i < T; i++) out[r][i] = _mm512_setzero_ps();
    const StreamPrefetch<T, AmdPrefetch> prefetch(w, t);
    for (int b = 0; b < nb; b++) {
      __m512i lo[R][T], hi[R][T];
      for (int r = 0; r < R; r++)
        for (int i = 0; i < T; i++) lo[r][i] = hi[r][i] = _mm512_setzero_si512();
      const size_t ahead = prefetch.ahead(wp[0]);
      __m512i xq[R][4];
      if constexpr (Drop & 2)
        for (int r = 0; r < R; r++) {
          const size_t at = (size_t)r * K + (size_t)b * B;
          xq[r][0] = quad(x.lo + at), xq[r][1] = quad(x.lo + at + 4), xq[r][2] = quad(x.hi + at),
          xq[r][3] = quad(x.hi + at + 4);
        }
      for (int j = 0; j < nv; j++) {
        __m512i w0[T], w1[T];
        for (int i = 0; i < T; i++) {
          if constexpr (!(Drop & 4)) AmdPrefetch::line(wp[i] + ahead);
          const __m512i v = _mm512_loadu_si512(wp[i]);
          wp[i] += kWordBytes;
          w0[i] = _mm512_and_si512(v, mask);
          w1[i] = _mm512_and_si512(_mm512_srli_epi32(v, 4), mask);
        }
        const size_t k = (size_t)b * B + (size_t)j * 8;
        for (int r = 0; r < R; r++) {
          const size_t at = (size_t)r * K + k;
          __m512i xl0, xl1, xh0, xh1;
          if constexpr (Drop & 2) {
            xl0 = xq[r][0], xl1 = xq[r][1], xh0 = xq[r][2], xh1 = xq[r][3];
          } else {
            xl0 = quad(x.lo + at), xl1 = quad(x.lo + at + 4), xh0 = quad(x.hi + at), xh1 = quad(x.hi + at + 4);
          }
          for (int i = 0; i < T; i++) {
            lo[r][i] = dot4<true>(dot4<true>(lo[r][i], w0[i], xl0), w1[i], xl1);
            hi[r][i] = dot4<true>(dot4<true>(hi[r][i], w0[i], xh0), w1[i], xh1);
          }
        }
      }
      const size_t g = (size_t)(b * B / w.group_size) * kMetaBytes;
      for (int r = 0; r < R; r++) {
        const size_t xb = (size_t)r * nb + b;
        for (int i = 0; i < T; i++) {
          const __m512i acc = _mm512_add_epi32(_mm512_slli_epi32(hi[r][i], 8), lo[r][i]);
          if constexpr (Drop & 1)
            out[r][i] = _mm512_add_ps(out[r][i], _mm512_cvtepi32_ps(acc));
          else
            out[r][i] = fold(out[r][i], acc, w.meta(t + i) + g, x.scale[xb], x.sum[xb]);
        }
      }
    }
    for (int r = 0; r < R; r++)
      for (int i = 0; i < T; i++) _mm512_storeu_ps(y + (size_t)r * w.N + (size_t)(t + i) * kTile, out[r][i]);
  }
}

void one_tile_passes(const PackedView& w, const QuantizedRows& x, int t0, int t1, float* y) {
  for (int t = t0; t < t1; t++) tile_rows_passes<true>(w, x, t, y);
}

using Fn = std::function<void(const PackedView&, const QuantizedRows&, int, int, float*)>;
struct V {
  const char* name;
  Fn fn;
};

std::vector<V> versions() {
  return {{"mainline", [](const PackedView& w, const QuantizedRows& x, int a, int b, float* y) { tiles_avx512vnni(w, x, a, b, y); }},
          {"r8t1", one_tile_passes},
          {"r4t1", run_vnni<4, 1>},
          {"r4t2", run_vnni<4, 2>},
          {"r3t2", run_vnni<3, 2>},
          {"r2t4", run_vnni<2, 4>},
          {"r3t4", run_vnni<3, 4>},
          {"r2t2", run_vnni<2, 2>},
          {"r5t2", run_vnni<5, 2>},
          {"r4t2 T1 2K", run_vnni<4, 2, AmdPrefetch>},
          {"r2t4 T1 2K", run_vnni<2, 4, AmdPrefetch>},
          {"r3t4 T1 2K", run_vnni<3, 4, AmdPrefetch>},
          {"r4t2 T1 4K", run_vnni<4, 2, Prefetch<4096, _MM_HINT_T1, _MM_HINT_T1>>},
          {"r4t2 T1 8K", run_vnni<4, 2, Prefetch<8192, _MM_HINT_T1, _MM_HINT_T1>>},
          {"r4t2 T1 16K", run_vnni<4, 2, Prefetch<16384, _MM_HINT_T1, _MM_HINT_T1>>},
          {"r4t2 T2 8K", run_vnni<4, 2, Prefetch<8192, _MM_HINT_T2, _MM_HINT_T1>>},
          {"r4t2 NTA 2K", run_vnni<4, 2, Prefetch<2048, _MM_HINT_NTA, _MM_HINT_T1>>},
          {"r4t2 copy (timing only)", rows4_drop<0>},
          {"r4t2 no fold (timing only)", rows4_drop<1>},
          {"r4t2 no broadcasts (timing only)", rows4_drop<2>},
          {"r4t2 no fold, no broadcasts (timing only)", rows4_drop<3>},
          {"r4t2 no fold, no broadcasts, no prefetch (timing only)", rows4_drop<7>},
          {"r4t2 no prefetch", run_vnni<4, 2, Prefetch<0, _MM_HINT_T1, _MM_HINT_T1>>},
          {"r4t2 T0 6K, records T1", run_vnni<4, 2, Prefetch<6144, _MM_HINT_T0, _MM_HINT_T1>>}};
}

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

// Every version against tiles_avx512vnni on the whole matrix and an odd split (bits); that kernel against tiles_scalar.
void check(const std::vector<V>& vs, const PackedView& w, const QuantizedRows& x, int M) {
  std::vector<float> ref((size_t)M * w.N), y(ref.size()), s(ref.size());
  tiles_avx512vnni(w, x, 0, w.n_tiles, ref.data());
  tiles_scalar(w, x, 0, w.n_tiles, s.data());
  double e = 0;
  for (size_t i = 0; i < s.size(); i++) e = std::max(e, (double)std::fabs(ref[i] - s[i]) / (std::fabs(s[i]) + 1e-3));
  std::printf("M = %d: library kernel vs tiles_scalar, max |d| / (|scalar| + 1e-3) = %.3g\n", M, e);
  for (const V& v : vs) {
    if (std::strstr(v.name, "timing only")) continue;
    for (int split : {0, 1}) {
      std::fill(y.begin(), y.end(), NAN);
      if (split) {  // odd ranges as the thread split can give them
        const int cut = w.n_tiles / 3 * 2 + 2;
        v.fn(w, x, 0, cut, y.data()), v.fn(w, x, cut, w.n_tiles, y.data());
      } else {
        v.fn(w, x, 0, w.n_tiles, y.data());
      }
      if (std::memcmp(y.data(), ref.data(), y.size() * sizeof(float)) != 0) {
        std::fprintf(stderr, "M = %d, %s: output differs from the library's kernel\n", M, v.name);
        std::exit(1);
      }
    }
  }
}

const char* g_only = nullptr;
int g_threads = 2;  // dram and o modes

// Whether version v runs at M rows: listed, and the timing-only copies of rows_vnni<4, 2> (rows4_drop) at M = 4 only.
bool runs(const V& v, int M) { return dev::listed(g_only, v.name) && (M == 4 || !std::strstr(v.name, "timing only")); }

std::string run_dram(int M, int rounds, int N) {
  const int K = 4096;
  std::mt19937 rng(3);
  const std::vector<AwqMatrixCpu> copies = dev::rotated_copies(dev::random_packed(K, N, rng), 512u << 20);
  const dev::RandomRows rows(M, K, rng);
  const QuantizedRows& x = rows.x;
  std::vector<V> vs = versions();
  vs.erase(std::remove_if(vs.begin(), vs.end(), [M](const V& v) { return !runs(v, M); }), vs.end());
  check(vs, dev::view_of(copies[0]), x, M);
  std::vector<float> y((size_t)M * N);
  ThreadPool pool(g_threads);
  const int n_tiles = (N + kTile - 1) / kTile, pairs = (n_tiles + 1) / 2, chunk = std::max(1, pairs / 16),
            n_chunks = (pairs + chunk - 1) / chunk;
  const size_t nv = vs.size();
  std::vector<std::vector<double>> best_p(nv), mean_p(nv), best_r(nv), mean_r(nv);
  for (int r = 0; r < rounds; r++) {
    const double probe = measure_read_bandwidth_cpu(pool, 1u << 30).best_gbs;
    std::printf("M %d round %d probe %.1f:", M, r, probe);
    std::vector<double> bg(nv), mg(nv);
    for (size_t i0 = 0; i0 < nv; i0++) {
      const size_t i = (i0 + r) % nv;
      double best = 1e9, total = 0;
      for (size_t c = 0; c < copies.size(); c++) {
        const PackedView w = dev::view_of(copies[c]);
        const double t0 = now();
        pool.parallel_dynamic(n_chunks, [&](int ci) {
          vs[i].fn(w, x, 2 * ci * chunk, std::min(n_tiles, 2 * (ci + 1) * chunk), y.data());
        });
        const double dt = now() - t0;
        best = std::min(best, dt), total += dt;
      }
      bg[i] = (double)copies[0].bytes_read() / best / 1e9;
      mg[i] = (double)copies[0].bytes_read() * copies.size() / total / 1e9;
    }
    for (size_t i = 0; i < nv; i++) {
      best_p[i].push_back(bg[i] / probe), mean_p[i].push_back(mg[i] / probe);
      best_r[i].push_back(bg[i] / bg[0]), mean_r[i].push_back(mg[i] / mg[0]);
      std::printf(" %s %.1f/%.1f", vs[i].name, mg[i], bg[i]);
    }
    std::printf("\n");
    std::fflush(stdout);
  }
  std::string out;
  for (size_t i = 0; i < nv; i++) {
    auto mm = [](const std::vector<double>& v) {
      return dev::fmt("%.3f", dev::median(v)) + " (" + dev::fmt("%.3f", *std::min_element(v.begin(), v.end())) + "-" +
             dev::fmt("%.3f", *std::max_element(v.begin(), v.end())) + ")";
    };
    out += "| " + std::to_string(M) + " | 4096 → " + std::to_string(N) + " | " + vs[i].name + " | " +
           dev::fmt("%.1f%%", 100 * dev::median(mean_p[i])) + " | " + dev::fmt("%.1f%%", 100 * dev::median(best_p[i])) +
           " | " + mm(mean_r[i]) + " | " + mm(best_r[i]) + " |\n";
  }
  return out;
}

std::string run_l2(int M, int rounds) {
  const int K = 4096, N = 512;
  std::mt19937 rng(3);
  const AwqMatrixCpu pk = dev::random_packed(K, N, rng);
  const PackedView w = dev::view_of(pk);
  const dev::RandomRows rows(M, K, rng);
  std::vector<V> vs = versions();
  vs.erase(std::remove_if(vs.begin(), vs.end(), [M](const V& v) { return !runs(v, M); }), vs.end());
  check(vs, w, rows.x, M);
  std::vector<float> y((size_t)M * N);
  const size_t nv = vs.size();
  std::vector<std::vector<double>> g(nv), rel(nv);
  for (int r = 0; r < rounds; r++) {
    std::vector<double> gr(nv);
    for (size_t i0 = 0; i0 < nv; i0++) {
      const size_t i = (i0 + r) % nv;
      double best = 1e9;
      for (int rep = 0; rep < 200; rep++) {
        const double t0 = now();
        vs[i].fn(w, rows.x, 0, w.n_tiles, y.data());
        best = std::min(best, now() - t0);
      }
      gr[i] = (double)pk.bytes_read() / best / 1e9;
    }
    for (size_t i = 0; i < nv; i++) g[i].push_back(gr[i]), rel[i].push_back(gr[i] / gr[0]);
  }
  std::string out;
  for (size_t i = 0; i < nv; i++)
    out += "| " + std::to_string(M) + " | " + vs[i].name + " | " + dev::fmt("%.1f", dev::median(g[i])) + " | " +
           dev::fmt("%.3f", dev::median(rel[i])) + " |\n";
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<int> ms;
  for (const char* p = argc > 1 ? argv[1] : "4"; *p;) {
    ms.push_back(std::clamp((int)std::strtol(p, const_cast<char**>(&p), 10), 3, 64));
    if (*p == ',') p++;
  }
  const int rounds = argc > 2 ? atoi(argv[2]) : 5;
  if (argc > 3 && std::string(argv[3]) != "all") g_only = argv[3];
  const std::string mode = argc > 4 ? argv[4] : "dram";
  if (argc > 6) g_threads = std::max(1, atoi(argv[6]));
  if (!awq_cpu_force_isa("avx512-vnni")) return std::printf("no AVX512-VNNI\n"), 1;
  std::string table;
  if (mode == "l2") {
    table = "| M | version | GB/s (one thread, L2) | ÷ mainline (same round) |\n|---:|---|---:|---:|\n";
    for (int M : ms) table += run_l2(M, rounds);
  } else {
    const int N = mode == "o" ? 4096 : 12288;
    table = "| M | K → N | version | mean ÷ probe | best ÷ probe | mean ÷ mainline (same round) | best ÷ mainline |\n"
            "|---:|---|---|---:|---:|---:|---:|\n";
    for (int M : ms) table += run_dram(M, rounds, N);
  }
  const std::string md = "# int4 VNNI kernel at M = 3..8: more tile streams per thread (native/dev/cpu/int4_streams.cpp)\n\n"
                         "- command: `/tmp/int4_streams " + std::string(argc > 1 ? argv[1] : "4") + " " +
                         std::to_string(rounds) + " " + (g_only ? g_only : "all") + " " + mode +
                         (argc > 5 ? std::string(" ") + argv[5] : std::string()) +
                         (argc > 6 ? std::string(" ") + argv[6] : std::string()) + "` (build line in the source)\n" +
                         (mode == "l2" ? std::string() : "- threads: " + std::to_string(g_threads) + "\n") +
                         dev::date_and_load_line() + "\n" + table;
  std::fputs(md.c_str(), stdout);
  if (argc > 5)
    if (FILE* f = std::fopen(argv[5], "w")) std::fputs(md.c_str(), f), std::fclose(f);
  return 0;
}
