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
// The library takes two streams at M = 1 since (stretches<2, false> in head_screen_avx512.cpp): 0.88 of the read,
// 1.37x.
// Session 34, M = 2 (the third argument; batches of two rows): the library's loop then was one stream of block<8, 2>
// (16 accumulators, no room for a second stream), kept here as "1 stream (the library before session 34)". Two
// streams of half blocks (4 rows per pass) gained little; x's two rows paired in one register (row 0's 32-byte pieces
// in the low half, row 1's in the high, against 32 weight bytes broadcast to both halves: one accumulator per head
// row) fit 2 and 3 streams, and 3 read best (bench/results/cpu-zen5-head-m2.md). The library takes 3 paired streams
// at M = 2 since (stretches<3, true>).
// Build: g++ -O3 -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni -mfma -mf16c -mavx2 -I native/src \
//   -I native/include -I native/dev/cpu native/dev/cpu/head_screen_streams.cpp native/build/libq3core.a -lpthread \
//   -o /tmp/head_screen_streams
// Usage: /tmp/head_screen_streams [rounds] [results file] [M: 1 or 2, default 1]
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

using Kernel = void (*)(const ScreenedHead&, const uint8_t*, const float*, int, float*, int, int);

// An M = 1 version as a Kernel.
template <void (*F)(const ScreenedHead&, const uint8_t*, const float*, float*, int, int)>
void m1(const ScreenedHead& h, const uint8_t* xq, const float* sx, int, float* a, int n0, int n1) {
  F(h, xq, sx, a, n0, n1);
}

void library(const ScreenedHead& h, const uint8_t* xq, const float* sx, int M, float* a, int n0, int n1) {
  head_screen::rows_avx512(h, xq, sx, M, a, n0, n1);
}

void read_only(const ScreenedHead& h, const uint8_t*, const float*, int, float* a, int n0, int n1) {
  __m512i sums[4];
  dev::read_range((const uint8_t*)h.q.data() + (size_t)n0 * h.stride, (size_t)(n1 - n0) * h.stride, sums);
  _mm512_storeu_si512(a + n0, _mm512_add_epi64(_mm512_add_epi64(sums[0], sums[1]), _mm512_add_epi64(sums[2], sums[3])));
}


// M = 2, two stretches at once (the first half of the piece's blocks beside the second), as the library's M = 1 loop
// does; the rest of the piece with the library's M = 2 loop.
template <class Pair>
void two_stretches(const ScreenedHead& h, const uint8_t* xq, const float* sx, float* a, int n0, int n1, Pair pair) {
  const int half = (std::min(n1, h.rows) - n0) / B / 2;
  for (int b = 0; b < half; b++) pair(n0 + b * B, n0 + (half + b) * B);
  n0 += 2 * half * B;
  if (n0 < n1) head_screen::rows_avx512(h, xq, sx, 2, a, n0, n1);
}

// a[m][t] from an int32 dot of head row t with x row m.
inline void put(const ScreenedHead& h, const float* sx, float* a, int m, int t, int32_t dot) {
  if (t < h.rows) a[(size_t)m * h.rows + t] = (float)(dot - 128 * h.row_sum[t]) * (h.scale[t] * sx[m]);
}

// The library's M = 2 loop before session 34 (block<8, 2>): one stream, each block's 8 head rows times both x rows
// (16 accumulators), one 64-byte load per head row and 64 bytes of k.
void m2_one_stream(const ScreenedHead& h, const uint8_t* xq, const float* sx, int, float* a, int n0, int n1) {
  const int S = h.stride;
  for (int n = n0; n < n1; n += B) {
    const int8_t* q = h.q.data() + (size_t)n * S;
    __m512i acc[B][2];
    for (int i = 0; i < B; i++) acc[i][0] = acc[i][1] = _mm512_setzero_si512();
    for (int k = 0; k < S; k += 64, q += B * 64) {
      const __m512i x0 = _mm512_load_si512((const void*)(xq + k)), x1 = _mm512_load_si512((const void*)(xq + S + k));
      for (int i = 0; i < B; i++) {
        _mm_prefetch((const char*)(q + i * 64) + 1024, _MM_HINT_T0);
        const __m512i w = _mm512_loadu_si512((const void*)(q + i * 64));
        acc[i][0] = _mm512_dpbusd_epi32(acc[i][0], x0, w);
        acc[i][1] = _mm512_dpbusd_epi32(acc[i][1], x1, w);
      }
    }
    for (int i = 0; i < B; i++)
      for (int m = 0; m < 2; m++) put(h, sx, a, m, n + i, _mm512_reduce_add_epi32(acc[i][m]));
  }
}

// Version A: each block in two passes of 4 rows (4 rows x 2 x rows x 2 stretches = 16 accumulators); a pass reads
// 4 of every 8 lines of its stretch.
void m2_halves(const ScreenedHead& h, const uint8_t* xq, const float* sx, int, float* a, int n0, int n1) {
  const int S = h.stride;
  two_stretches(h, xq, sx, a, n0, n1, [&](int na, int nb) {
    for (int first = 0; first < B; first += 4) {
      const int8_t* q[2] = {h.q.data() + (size_t)na * S + first * 64, h.q.data() + (size_t)nb * S + first * 64};
      __m512i acc[2][4][2];
      for (int s = 0; s < 2; s++)
        for (int i = 0; i < 4; i++) acc[s][i][0] = acc[s][i][1] = _mm512_setzero_si512();
      for (int k = 0; k < S; k += 64, q[0] += B * 64, q[1] += B * 64) {
        const __m512i x0 = _mm512_load_si512((const void*)(xq + k)), x1 = _mm512_load_si512((const void*)(xq + S + k));
        for (int s = 0; s < 2; s++)
          for (int i = 0; i < 4; i++) {
            _mm_prefetch((const char*)(q[s] + i * 64) + 1024, _MM_HINT_T0);
            const __m512i w = _mm512_loadu_si512((const void*)(q[s] + i * 64));
            acc[s][i][0] = _mm512_dpbusd_epi32(acc[s][i][0], x0, w);
            acc[s][i][1] = _mm512_dpbusd_epi32(acc[s][i][1], x1, w);
          }
      }
      for (int s = 0; s < 2; s++)
        for (int i = 0; i < 4; i++)
          for (int m = 0; m < 2; m++)
            put(h, sx, a, m, (s ? nb : na) + first + i, _mm512_reduce_add_epi32(acc[s][i][m]));
    }
  });
}

// Version B: both x rows in one register (x row 0's 32 bytes in the low half, row 1's in the high half) against 32
// weight bytes broadcast to both halves: one accumulator per head row holds both x rows' sums, so 8 rows x 2
// stretches = 16 accumulators and one pass; two 32-byte broadcast loads per 64 weight bytes.
template <int Streams, int Dist = 1024, int Hint = _MM_HINT_T0>
void m2_paired(const ScreenedHead& h, const uint8_t* xq, const float* sx, int, float* a, int n0, int n1) {
  const int S = h.stride;
  thread_local std::vector<uint8_t> xp;  // per 64-byte step: (row 0 bytes 0-31 | row 1 bytes 0-31), then 32-63
  xp.resize((size_t)2 * S);
  for (int k = 0; k < S; k += 32) {
    std::memcpy(xp.data() + 2 * k, xq + k, 32);
    std::memcpy(xp.data() + 2 * k + 32, xq + S + k, 32);
  }
  auto blocks = [&](const int* n) {
    const int8_t* q[Streams];
    __m512i acc[Streams][B];
    for (int s = 0; s < Streams; s++) {
      q[s] = h.q.data() + (size_t)n[s] * S;
      for (int i = 0; i < B; i++) acc[s][i] = _mm512_setzero_si512();
    }
    for (int k = 0; k < S; k += 64) {
      const __m512i xa = _mm512_loadu_si512((const void*)(xp.data() + 2 * k)),
                    xb = _mm512_loadu_si512((const void*)(xp.data() + 2 * k + 64));
      for (int s = 0; s < Streams; s++)
        for (int i = 0; i < B; i++) {
          _mm_prefetch((const char*)(q[s] + i * 64) + Dist, (_mm_hint)Hint);
          const __m512i wa = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i*)(q[s] + i * 64)));
          const __m512i wb = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i*)(q[s] + i * 64 + 32)));
          acc[s][i] = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(acc[s][i], xa, wa), xb, wb);
        }
      for (int s = 0; s < Streams; s++) q[s] += B * 64;
    }
    for (int s = 0; s < Streams; s++)
      for (int i = 0; i < B; i++) {
        const __m512i v = acc[s][i];
        put(h, sx, a, 0, n[s] + i, _mm512_reduce_add_epi32(_mm512_zextsi256_si512(_mm512_castsi512_si256(v))));
        put(h, sx, a, 1, n[s] + i, _mm512_reduce_add_epi32(_mm512_zextsi256_si512(_mm512_extracti64x4_epi64(v, 1))));
      }
  };
  if constexpr (Streams == 1) {
    for (int n = n0; n < n1; n += B) blocks(&n);
  } else {  // Streams stretches of len blocks, a block of each in turn; the rest with the library's loop
    const int len = (std::min(n1, h.rows) - n0) / B / Streams;
    for (int b = 0; b < len; b++) {
      int n[Streams];
      for (int s = 0; s < Streams; s++) n[s] = n0 + (s * len + b) * B;
      blocks(n);
    }
    n0 += Streams * len * B;
    if (n0 < n1) head_screen::rows_avx512(h, xq, sx, 2, a, n0, n1);
  }
}

struct Version {
  const char* name;
  Kernel fn;
};

const Version kVersions1[] = {
    {"library", library},
    {"read of the same bytes", read_only},
    {"1 stream, T0 1 KiB (the library before session 33)", m1<rows_var<1, 1024, _MM_HINT_T0>>},
    {"1 stream, T1 2 KiB", m1<rows_var<1, 2048, _MM_HINT_T1>>},
    {"1 stream, T0 2 KiB", m1<rows_var<1, 2048, _MM_HINT_T0>>},
    {"1 stream, no prefetch", m1<rows_var<1, 0, 0>>},
    {"2 streams, T0 1 KiB", m1<rows_var<2, 1024, _MM_HINT_T0>>},
    {"2 streams, T1 2 KiB", m1<rows_var<2, 2048, _MM_HINT_T1>>},
    {"2 streams, T0 512 B", m1<rows_var<2, 512, _MM_HINT_T0>>},
    {"2 streams, T0 2 KiB", m1<rows_var<2, 2048, _MM_HINT_T0>>},
    {"2 streams, no prefetch", m1<rows_var<2, 0, 0>>},
    {"3 streams, T0 1 KiB", m1<rows_var<3, 1024, _MM_HINT_T0>>},
    {"4 streams, T0 1 KiB", m1<rows_var<4, 1024, _MM_HINT_T0>>},
    {"4 streams, no prefetch", m1<rows_var<4, 0, 0>>},
    {"4 streams, T1 2 KiB", m1<rows_var<4, 2048, _MM_HINT_T1>>},
};

const Version kVersions2[] = {
    {"library", library},
    {"read of the same bytes", read_only},
    {"1 stream (the library before session 34)", m2_one_stream},
    {"2 streams, 4 rows per pass", m2_halves},
    {"1 stream, x rows paired in one register", m2_paired<1>},
    {"2 streams, x rows paired in one register", m2_paired<2>},
    {"2 streams, x rows paired, T0 2 KiB", m2_paired<2, 2048>},
    {"2 streams, x rows paired, T0 512 B", m2_paired<2, 512>},
    {"3 streams, x rows paired", m2_paired<3>},
    {"3 streams, x rows paired, T0 2 KiB", m2_paired<3, 2048>},
    {"3 streams, x rows paired, T1 2 KiB", m2_paired<3, 2048, _MM_HINT_T1>},
};

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

}  // namespace

int main(int argc, char** argv) {
  const int rounds = argc > 1 ? std::atoi(argv[1]) : 10;
  const int M = argc > 3 ? std::atoi(argv[3]) : 1;
  if (M != 1 && M != 2) return std::fprintf(stderr, "M is 1 or 2\n"), 2;
  const Version* versions = M == 1 ? kVersions1 : kVersions2;
  const int n = M == 1 ? (int)(sizeof kVersions1 / sizeof kVersions1[0])
                       : (int)(sizeof kVersions2 / sizeof kVersions2[0]);
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
  alignas(64) static uint8_t xq[2 * 4096];
  for (auto& v : xq) v = (uint8_t)(rng() % 256);
  const float sx[2] = {0.01f, 0.02f};
  const int blocks = (rows + B - 1) / B;
  const std::vector<int> pieces = tapered_pieces(blocks, std::max(1, blocks / (8 * pool.size())), pool.size(), 16);
  auto run = [&](Kernel fn, float* a) {
    pool.parallel_dynamic((int)pieces.size() - 1,
                          [&](int c) { fn(h, xq, sx, M, a, pieces[c] * B, std::min(rows, pieces[c + 1] * B)); });
  };
  std::vector<float> ref((size_t)M * rows + 64), out((size_t)M * rows + 64);
  run(library, ref.data());
  for (int v = 2; v < n; v++) {
    std::fill(out.begin(), out.end(), -1.f);
    run(versions[v].fn, out.data());
    if (std::memcmp(out.data(), ref.data(), (size_t)M * rows * sizeof(float)) != 0) {
      std::fprintf(stderr, "%s: not the library's bits\n", versions[v].name);
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
      run(versions[v].fn, out.data());  // warm-up call
      double best_t = 1e9;
      for (int c = 0; c < 3; c++) {
        const double t0 = now();
        run(versions[v].fn, out.data());
        best_t = std::min(best_t, now() - t0);
      }
      g[v] = gb / best_t;
    }
    for (int v = 0; v < n; v++)
      rate[v].push_back(g[v]), per_read[v].push_back(g[v] / g[1]), per_lib[v].push_back(g[v] / g[0]);
    std::printf("round %d: read %.1f, library %.1f GB/s\n", r, g[1], g[0]);
  }
  std::string md = "# The screened head's int8 pass: streams and prefetch (native/dev/cpu/head_screen_streams.cpp)\n\n"
                   "- cpu: " + cpu_model_name() + ", 2 threads; M = " + std::to_string(M) + "; " +
                   std::to_string(rounds) +
                   " rounds, best of 3 calls each\n" +
                   dev::date_and_load_line() +
                   "\n| version | GB/s | ÷ read of the same bytes | ÷ library (same round) |\n|---|---:|---:|---:|\n";
  for (int v = 0; v < n; v++) {
    auto mm = [](std::vector<double> x) {
      std::sort(x.begin(), x.end());
      return dev::fmt("%.3f", dev::median(x)) + " (" + dev::fmt("%.3f", x.front()) + "-" +
             dev::fmt("%.3f", x.back()) + ")";
    };
    md += std::string("| ") + versions[v].name + " | " + dev::fmt("%.1f", dev::median(rate[v])) + " | " +
          mm(per_read[v]) + " | " + mm(per_lib[v]) + " |\n";
  }
  std::fputs(md.c_str(), stdout);
  if (argc > 2)
    if (FILE* f = std::fopen(argv[2], "w")) std::fputs(md.c_str(), f), std::fclose(f);
  return 0;
}
