// Experiment: the screened lm_head's int8 pass (head_screen_avx512.cpp, rows_avx512) at M = 1 on the Qwen3-8B head
// (151936 x 4096 int8, 622 MB, 2 threads) from DRAM, against copies of its loop with another software prefetch
// (hint, distance) or walking 2 or 4 stretches of the head at once instead of one. The library's loop reads each
// thread's piece as one sequential stream (blocks of 8 rows whose 64-byte pieces are interleaved) with a T0 prefetch
// 1 KiB ahead, tuned on the Zen 4; session 33 found the int4 decode kernel on the Zen 5 host wanting 4 streams
// (bench/results/cpu-zen5-streams.md). Every version is first checked against the library's kernel (same bits), then
// timed in alternating rounds with the same pieces (screened_head_approx's tapered split), beside a plain read of the
// same bytes (the probe's loop); GB/s of the int8 rows, median over rounds, and ÷ the read and ÷ the library of the
// same round.
// Findings (bench/results/cpu-zen5-head-streams.md, Zen 5 host, 10-12 rounds): one stream read 0.62-0.65 of the read,
// two 0.84-0.85 (T0 512 B to 2 KiB ahead alike, none 0.78), three or four no better (four without prefetch 0.60).
// The library takes two streams at M = 1 since (two_blocks in head_screen_avx512.cpp): 0.88 of the read, 1.37x.
// Build: g++ -O3 -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni -mfma -mf16c -mavx2 -I native/src \
//   -I native/include -I native/dev/cpu native/dev/cpu/head_screen_streams.cpp native/build/libq3core.a -lpthread \
//   -o /tmp/head_screen_streams
// Usage: /tmp/head_screen_streams [rounds] [results file]
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
#include "cpu/bandwidth_cpu.h"
#include "cpu/head_screen.h"
#include "half.h"
#include "results_md.h"
#include "threadpool.h"

using namespace q3;

namespace {

constexpr int B = kScreenBlockRows;

// The library's block loop at M = 1 (8 rows, one accumulator each) over S stretches at once: stretch s starts at
// block n0 + s * len and runs len blocks; Dist bytes ahead with Hint (Dist 0: no software prefetch).
template <int S, int Dist, int Hint>
void rows_var(const ScreenedHead& h, const uint8_t* xq, const float* sx, float* a, int n0, int n1) {
  const int St = h.stride, blocks = (n1 - n0 + B - 1) / B, len = blocks / S;
  auto one = [&](int nb, int ne) {  // the library's loop, one stretch
    for (int n = nb; n < ne; n += B) {
      const int8_t* q = h.q.data() + (size_t)n * St;
      __m512i acc[B];
      for (int i = 0; i < B; i++) acc[i] = _mm512_setzero_si512();
      for (int k = 0; k < St; k += 64, q += B * 64) {
        const __m512i xv = _mm512_load_si512((const void*)(xq + k));
        for (int i = 0; i < B; i++) {
          if constexpr (Dist > 0) _mm_prefetch((const char*)(q + i * 64) + Dist, (_mm_hint)Hint);
          acc[i] = _mm512_dpbusd_epi32(acc[i], xv, _mm512_loadu_si512((const void*)(q + i * 64)));
        }
      }
      for (int i = 0; i < B && n + i < h.rows; i++)
        a[n + i] = (float)(_mm512_reduce_add_epi32(acc[i]) - 128 * h.row_sum[n + i]) * (h.scale[n + i] * sx[0]);
    }
  };
  if (S == 1 || len == 0) return one(n0, n1);
  // S stretches of len blocks, a block of each in turn (the rest after them alone)
  for (int b = 0; b < len; b++) {
    const int8_t* q[S];
    __m512i acc[S][B];
    for (int s = 0; s < S; s++) {
      q[s] = h.q.data() + (size_t)(n0 + (s * len + b) * B) * St;
      for (int i = 0; i < B; i++) acc[s][i] = _mm512_setzero_si512();
    }
    for (int k = 0; k < St; k += 64) {
      const __m512i xv = _mm512_load_si512((const void*)(xq + k));
      for (int s = 0; s < S; s++)
        for (int i = 0; i < B; i++) {
          if constexpr (Dist > 0) _mm_prefetch((const char*)(q[s] + i * 64) + Dist, (_mm_hint)Hint);
          acc[s][i] = _mm512_dpbusd_epi32(acc[s][i], xv, _mm512_loadu_si512((const void*)(q[s] + i * 64)));
        }
      for (int s = 0; s < S; s++) q[s] += B * 64;
    }
    for (int s = 0; s < S; s++) {
      const int n = n0 + (s * len + b) * B;
      for (int i = 0; i < B && n + i < h.rows; i++)
        a[n + i] = (float)(_mm512_reduce_add_epi32(acc[s][i]) - 128 * h.row_sum[n + i]) * (h.scale[n + i] * sx[0]);
    }
  }
  one(n0 + S * len * B, n1);
}

using Kernel = void (*)(const ScreenedHead&, const uint8_t*, const float*, float*, int, int);

void library(const ScreenedHead& h, const uint8_t* xq, const float* sx, float* a, int n0, int n1) {
  head_screen::rows_avx512(h, xq, sx, 1, a, n0, n1);
}

void read_only(const ScreenedHead& h, const uint8_t*, const float*, float* a, int n0, int n1) {
  __m512i sums[4];
  dev::read_range((const uint8_t*)h.q.data() + (size_t)n0 * h.stride, (size_t)(n1 - n0) * h.stride, sums);
  _mm512_storeu_si512(a + n0, _mm512_add_epi64(_mm512_add_epi64(sums[0], sums[1]), _mm512_add_epi64(sums[2], sums[3])));
}

struct Version {
  const char* name;
  Kernel fn;
};

const Version kVersions[] = {
    {"library", library},
    {"read of the same bytes", read_only},
    {"1 stream, T0 1 KiB (the library before session 33)", rows_var<1, 1024, _MM_HINT_T0>},
    {"1 stream, T1 2 KiB", rows_var<1, 2048, _MM_HINT_T1>},
    {"1 stream, T0 2 KiB", rows_var<1, 2048, _MM_HINT_T0>},
    {"1 stream, no prefetch", rows_var<1, 0, 0>},
    {"2 streams, T0 1 KiB", rows_var<2, 1024, _MM_HINT_T0>},
    {"2 streams, T1 2 KiB", rows_var<2, 2048, _MM_HINT_T1>},
    {"2 streams, T0 512 B", rows_var<2, 512, _MM_HINT_T0>},
    {"2 streams, T0 2 KiB", rows_var<2, 2048, _MM_HINT_T0>},
    {"2 streams, no prefetch", rows_var<2, 0, 0>},
    {"3 streams, T0 1 KiB", rows_var<3, 1024, _MM_HINT_T0>},
    {"4 streams, T0 1 KiB", rows_var<4, 1024, _MM_HINT_T0>},
    {"4 streams, no prefetch", rows_var<4, 0, 0>},
    {"4 streams, T1 2 KiB", rows_var<4, 2048, _MM_HINT_T1>},
};

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

}  // namespace

int main(int argc, char** argv) {
  const int rounds = argc > 1 ? std::atoi(argv[1]) : 10;
  const int rows = 151936, cols = 4096;
  ThreadPool pool(2);
  std::mt19937 rng(7);
  ScreenedHead h;
  {
    std::vector<uint16_t> w((size_t)rows * cols);
    std::normal_distribution<float> nd(0.f, 0.02f);
    for (size_t i = 0; i < w.size(); i += 4096) {  // a row's worth of normals, reused with a shift (fast to make)
      uint16_t row[4096];
      for (int k = 0; k < 4096; k++) row[k] = f32_to_f16(nd(rng));
      const size_t shift = rng() % 4096;
      for (int k = 0; k < 4096 && i + k < w.size(); k++) w[i + k] = row[(k + shift) % 4096];
    }
    build_screened_head(w.data(), rows, cols, h, pool);
  }
  alignas(64) static uint8_t xq[4096];
  for (auto& v : xq) v = (uint8_t)(rng() % 256);
  const float sx[1] = {0.01f};
  const int blocks = (rows + B - 1) / B;
  const std::vector<int> pieces = tapered_pieces(blocks, std::max(1, blocks / (8 * pool.size())), pool.size(), 16);
  auto run = [&](Kernel fn, float* a) {
    pool.parallel_dynamic((int)pieces.size() - 1,
                          [&](int c) { fn(h, xq, sx, a, pieces[c] * B, std::min(rows, pieces[c + 1] * B)); });
  };
  std::vector<float> ref(rows + 64), out(rows + 64);
  run(library, ref.data());
  const int n = (int)(sizeof kVersions / sizeof kVersions[0]);
  for (int v = 2; v < n; v++) {
    std::fill(out.begin(), out.end(), -1.f);
    run(kVersions[v].fn, out.data());
    if (std::memcmp(out.data(), ref.data(), rows * sizeof(float)) != 0) {
      std::fprintf(stderr, "%s: not the library's bits\n", kVersions[v].name);
      return 1;
    }
  }
  std::printf("%d versions checked (same bits as the library's kernel)\n", n - 2);
  const double gb = (double)rows * h.stride / 1e9;
  std::vector<std::vector<double>> rate(n), per_read(n), per_lib(n);
  for (int r = 0; r < rounds; r++) {
    std::vector<double> g(n);
    for (int i = 0; i < n; i++) {
      const int v = (i + r) % n;
      run(kVersions[v].fn, out.data());  // warm-up call
      double best_t = 1e9;
      for (int c = 0; c < 3; c++) {
        const double t0 = now();
        run(kVersions[v].fn, out.data());
        best_t = std::min(best_t, now() - t0);
      }
      g[v] = gb / best_t;
    }
    for (int v = 0; v < n; v++)
      rate[v].push_back(g[v]), per_read[v].push_back(g[v] / g[1]), per_lib[v].push_back(g[v] / g[0]);
    std::printf("round %d: read %.1f, library %.1f GB/s\n", r, g[1], g[0]);
  }
  std::string md = "# The screened head's int8 pass: streams and prefetch (native/dev/cpu/head_screen_streams.cpp)\n\n"
                   "- cpu: " + cpu_model_name() + ", 2 threads; M = 1; " + std::to_string(rounds) +
                   " rounds, best of 3 calls each\n" +
                   dev::date_and_load_line() +
                   "\n| version | GB/s | ÷ read of the same bytes | ÷ library (same round) |\n|---|---:|---:|---:|\n";
  for (int v = 0; v < n; v++) {
    auto mm = [](std::vector<double> x) {
      std::sort(x.begin(), x.end());
      return dev::fmt("%.3f", dev::median(x)) + " (" + dev::fmt("%.3f", x.front()) + "-" +
             dev::fmt("%.3f", x.back()) + ")";
    };
    md += std::string("| ") + kVersions[v].name + " | " + dev::fmt("%.1f", dev::median(rate[v])) + " | " +
          mm(per_read[v]) + " | " + mm(per_lib[v]) + " |\n";
  }
  std::fputs(md.c_str(), stdout);
  if (argc > 2)
    if (FILE* f = std::fopen(argv[2], "w")) std::fputs(md.c_str(), f), std::fclose(f);
  return 0;
}
