// Experiment: which read loop streams DRAM fastest on this machine (the bandwidth probe's candidates).
// Build: g++ -O3 -march=native -I native/src native/dev/cpu/read_bandwidth.cpp native/src/threadpool.cpp -o /tmp/rb -lpthread
#include <immintrin.h>
#include <sys/mman.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "threadpool.h"

using namespace q3;

typedef uint64_t (*Loop)(const uint8_t*, size_t);

uint64_t v1_sum4(const uint8_t* p, size_t n) {
  __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
  for (size_t i = 0; i + 256 <= n; i += 256) {
    a0 = _mm512_add_epi64(a0, _mm512_load_si512(p + i));
    a1 = _mm512_add_epi64(a1, _mm512_load_si512(p + i + 64));
    a2 = _mm512_add_epi64(a2, _mm512_load_si512(p + i + 128));
    a3 = _mm512_add_epi64(a3, _mm512_load_si512(p + i + 192));
  }
  return _mm512_reduce_add_epi64(_mm512_add_epi64(_mm512_add_epi64(a0, a1), _mm512_add_epi64(a2, a3)));
}

template <int D, int HINT>
uint64_t v_pf(const uint8_t* p, size_t n) {
  __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
  for (size_t i = 0; i + 256 <= n; i += 256) {
    _mm_prefetch((const char*)p + i + D, (_mm_hint)HINT);
    _mm_prefetch((const char*)p + i + D + 64, (_mm_hint)HINT);
    _mm_prefetch((const char*)p + i + D + 128, (_mm_hint)HINT);
    _mm_prefetch((const char*)p + i + D + 192, (_mm_hint)HINT);
    a0 = _mm512_add_epi64(a0, _mm512_load_si512(p + i));
    a1 = _mm512_add_epi64(a1, _mm512_load_si512(p + i + 64));
    a2 = _mm512_add_epi64(a2, _mm512_load_si512(p + i + 128));
    a3 = _mm512_add_epi64(a3, _mm512_load_si512(p + i + 192));
  }
  return _mm512_reduce_add_epi64(_mm512_add_epi64(_mm512_add_epi64(a0, a1), _mm512_add_epi64(a2, a3)));
}

// S interleaved streams over the part, each 256 B per iteration.
template <int S>
uint64_t v_streams(const uint8_t* p, size_t n) {
  const size_t sub = n / S / 256 * 256;
  __m512i a[S][2];
  for (int s = 0; s < S; s++) a[s][0] = a[s][1] = _mm512_setzero_si512();
  for (size_t i = 0; i + 256 <= sub; i += 256) {
    for (int s = 0; s < S; s++) {
      const uint8_t* q = p + s * sub + i;
      a[s][0] = _mm512_add_epi64(a[s][0], _mm512_add_epi64(_mm512_load_si512(q), _mm512_load_si512(q + 64)));
      a[s][1] = _mm512_add_epi64(a[s][1], _mm512_add_epi64(_mm512_load_si512(q + 128), _mm512_load_si512(q + 192)));
    }
  }
  __m512i t = _mm512_setzero_si512();
  for (int s = 0; s < S; s++) t = _mm512_add_epi64(t, _mm512_add_epi64(a[s][0], a[s][1]));
  return _mm512_reduce_add_epi64(t);
}

uint64_t v_ntload(const uint8_t* p, size_t n) {
  __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
  for (size_t i = 0; i + 256 <= n; i += 256) {
    a0 = _mm512_add_epi64(a0, _mm512_stream_load_si512((void*)(p + i)));
    a1 = _mm512_add_epi64(a1, _mm512_stream_load_si512((void*)(p + i + 64)));
    a2 = _mm512_add_epi64(a2, _mm512_stream_load_si512((void*)(p + i + 128)));
    a3 = _mm512_add_epi64(a3, _mm512_stream_load_si512((void*)(p + i + 192)));
  }
  return _mm512_reduce_add_epi64(_mm512_add_epi64(_mm512_add_epi64(a0, a1), _mm512_add_epi64(a2, a3)));
}

// 256-bit loads (what an AVX2 kernel would issue)
uint64_t v_avx2(const uint8_t* p, size_t n) {
  __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
  for (size_t i = 0; i + 128 <= n; i += 128) {
    a0 = _mm256_add_epi64(a0, _mm256_load_si256((const __m256i*)(p + i)));
    a1 = _mm256_add_epi64(a1, _mm256_load_si256((const __m256i*)(p + i + 32)));
    a2 = _mm256_add_epi64(a2, _mm256_load_si256((const __m256i*)(p + i + 64)));
    a3 = _mm256_add_epi64(a3, _mm256_load_si256((const __m256i*)(p + i + 96)));
  }
  alignas(32) uint64_t t[4];
  _mm256_store_si256((__m256i*)t, _mm256_add_epi64(_mm256_add_epi64(a0, a1), _mm256_add_epi64(a2, a3)));
  return t[0] + t[1] + t[2] + t[3];
}

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

int main(int argc, char** argv) {
  const int threads = argc > 1 ? atoi(argv[1]) : 2;
  const size_t seg_mib = argc > 2 ? atoi(argv[2]) : 32;
  const int passes = argc > 3 ? atoi(argv[3]) : 5;
  const bool huge = argc > 4 ? atoi(argv[4]) : 1;
  ThreadPool pool(threads);
  const size_t bytes = 1ull << 30, H = 2u << 20;
  uint8_t* buf = (uint8_t*)aligned_alloc(H, bytes);
  if (huge) madvise(buf, bytes, MADV_HUGEPAGE);
  const size_t P = threads, seg = seg_mib << 20, n_seg = bytes / seg, part = seg / P;
  for (size_t s = 0; s < n_seg; s++) pool.parallel_for(P, [&](int i) { memset(buf + s * seg + part * i, 1 + i, part); });
  struct V { const char* name; Loop f; };
  std::vector<V> vs = {{"sum4", v1_sum4},           {"pf1k_t0", v_pf<1024, _MM_HINT_T0>}, {"pf4k_t0", v_pf<4096, _MM_HINT_T0>},
                       {"pf8k_t0", v_pf<8192, _MM_HINT_T0>}, {"pf2k_nta", v_pf<2048, _MM_HINT_NTA>}, {"pf4k_t1", v_pf<4096, _MM_HINT_T1>},
                       {"streams2", v_streams<2>},   {"streams4", v_streams<4>},    {"ntload", v_ntload},
                       {"avx2", v_avx2}};
  std::vector<uint64_t> sink(P);
  for (int round = 0; round < 3; round++) {
    for (auto& v : vs) {
      double best = 0, total_t = 0;
      std::vector<double> segs;
      for (int pass = 0; pass < passes; pass++) {
        for (size_t s = 0; s < n_seg; s++) {
          const uint8_t* base = buf + s * seg;
          double t0 = now();
          pool.parallel_for(P, [&](int i) { sink[i] += v.f(base + part * i, part); });
          double dt = now() - t0;
          total_t += dt;
          segs.push_back(seg / dt / 1e9);
        }
      }
      std::sort(segs.begin(), segs.end());
      best = segs.back();
      printf("%-10s best %.2f  p90 %.2f  median %.2f  whole %.2f GB/s\n", v.name, best, segs[segs.size() * 9 / 10],
             segs[segs.size() / 2], passes * (double)bytes / total_t / 1e9);
    }
    printf("--\n");
  }
  uint64_t k = 0;
  for (auto s : sink) k += s;
  return (int)(k & 1) * 0;
}
