// Memory read bandwidth probe: each pool thread sums its own contiguous share of a large buffer with the widest
// vector loads the CPU has, several read loops take turns, and the best segment of a few passes is reported. The SIMD
// loops use target attributes instead of a separate *_avx512.cpp file because they are only loads and adds.
#include "bandwidth_cpu.h"

#include <fstream>
#include <string>

// GCC 12 reports its own _mm512_undefined_* placeholders as uninitialized once inlined: a false positive.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <vector>


namespace q3 {
namespace {

// The read loops: S interleaved streams over the part (each 256 bytes per turn) and, when PF > 0, a software
// prefetch into L2 PF bytes ahead of each stream. One stream per core leaves the memory system idle between the
// hardware prefetcher's bursts on some machines; several streams or a far prefetch keep more lines in flight.
// n is a multiple of 256 * S.
template <int S, int PF>
__attribute__((target("avx512f"))) uint64_t sum_avx512(const uint8_t* p, size_t n) {
  const size_t sub = n / S;
  __m512i a[S][2];
  for (int s = 0; s < S; s++) a[s][0] = a[s][1] = _mm512_setzero_si512();
  for (size_t i = 0; i < sub; i += 256) {
    for (int s = 0; s < S; s++) {
      const uint8_t* q = p + s * sub + i;
      if (PF > 0)
        for (int l = 0; l < 4; l++) _mm_prefetch((const char*)q + PF + 64 * l, _MM_HINT_T1);
      a[s][0] = _mm512_add_epi64(a[s][0], _mm512_add_epi64(_mm512_load_si512(q), _mm512_load_si512(q + 64)));
      a[s][1] = _mm512_add_epi64(a[s][1], _mm512_add_epi64(_mm512_load_si512(q + 128), _mm512_load_si512(q + 192)));
    }
  }
  __m512i t = _mm512_setzero_si512();
  for (int s = 0; s < S; s++) t = _mm512_add_epi64(t, _mm512_add_epi64(a[s][0], a[s][1]));
  return (uint64_t)_mm512_reduce_add_epi64(t);
}

template <int S, int PF>
__attribute__((target("avx2"))) uint64_t sum_avx2(const uint8_t* p, size_t n) {
  const size_t sub = n / S;
  __m256i a[S][2];
  for (int s = 0; s < S; s++) a[s][0] = a[s][1] = _mm256_setzero_si256();
  for (size_t i = 0; i < sub; i += 256) {
    for (int s = 0; s < S; s++) {
      const uint8_t* q = p + s * sub + i;
      if (PF > 0)
        for (int l = 0; l < 4; l++) _mm_prefetch((const char*)q + PF + 64 * l, _MM_HINT_T1);
      for (int j = 0; j < 256; j += 64) {
        a[s][0] = _mm256_add_epi64(a[s][0], _mm256_load_si256((const __m256i*)(q + j)));
        a[s][1] = _mm256_add_epi64(a[s][1], _mm256_load_si256((const __m256i*)(q + j + 32)));
      }
    }
  }
  __m256i t = _mm256_setzero_si256();
  for (int s = 0; s < S; s++) t = _mm256_add_epi64(t, _mm256_add_epi64(a[s][0], a[s][1]));
  alignas(32) uint64_t v[4];
  _mm256_store_si256((__m256i*)v, t);
  return v[0] + v[1] + v[2] + v[3];
}

uint64_t sum_scalar(const uint8_t* p, size_t n) {
  uint64_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
  for (size_t i = 0; i + 32 <= n; i += 32) {
    uint64_t v[4];
    std::memcpy(v, p + i, 32);
    a0 += v[0], a1 += v[1], a2 += v[2], a3 += v[3];
  }
  return a0 + a1 + a2 + a3;
}

struct ReadLoop {
  const char* name;
  uint64_t (*sum)(const uint8_t*, size_t);
};

std::vector<ReadLoop> read_loops() {
  if (__builtin_cpu_supports("avx512f"))
    return {{"1 stream/thread", sum_avx512<1, 0>},
            {"1 stream/thread, L2 prefetch 4 KiB ahead", sum_avx512<1, 4096>},
            {"4 streams/thread", sum_avx512<4, 0>},
            {"4 streams/thread, L2 prefetch 2 KiB ahead", sum_avx512<4, 2048>}};
  if (__builtin_cpu_supports("avx2"))
    return {{"1 stream/thread (AVX2)", sum_avx2<1, 0>},
            {"1 stream/thread, L2 prefetch 4 KiB ahead (AVX2)", sum_avx2<1, 4096>},
            {"4 streams/thread (AVX2)", sum_avx2<4, 0>},
            {"4 streams/thread, L2 prefetch 2 KiB ahead (AVX2)", sum_avx2<4, 2048>}};
  return {{"1 stream/thread (scalar)", sum_scalar}};
}

}  // namespace

ReadBandwidth measure_read_bandwidth_cpu(ThreadPool& pool, size_t bytes, int passes) {
  const size_t huge = 2u << 20, P = (size_t)pool.size(), unit = 1024;  // unit: 256 bytes x 4 streams
  // The buffer is read in segments of ~32 MiB, each split into P contiguous parts. Timing segments rather than whole
  // passes lets the best-of statistic skip the moments when another process held a core; every segment still comes
  // from DRAM because the passes rotate through a buffer far larger than the cache.
  const size_t n_seg = std::max<size_t>(1, bytes / (32u << 20));
  const size_t part = std::max<size_t>(bytes / n_seg / P / unit * unit, unit);
  const size_t seg = part * P, total = (seg * n_seg + huge - 1) / huge * huge;
  uint8_t* buf = (uint8_t*)std::aligned_alloc(huge, total);
  if (!buf) throw std::runtime_error("measure_read_bandwidth_cpu: cannot allocate " + std::to_string(total) + " bytes");
  advise_huge_pages(buf, total);
  // First touch by the thread that will read each part (matters on NUMA machines).
  for (size_t s = 0; s < n_seg; s++)
    pool.parallel_for((int)P, [&](int i) { std::memset(buf + s * seg + part * i, 1 + i, part); });

  const std::vector<ReadLoop> loops = read_loops();
  std::vector<double> best(loops.size(), 0.0), seconds(loops.size(), 0.0), read(loops.size(), 0.0);
  std::vector<uint64_t> sink(P);
  for (int pass = 0; pass < std::max(1, passes); pass++) {
    for (size_t s = 0; s < n_seg; s++) {
      const size_t m = (s + (size_t)pass) % loops.size();  // the loops take turns, so each sees every segment
      const uint8_t* base = buf + s * seg;
      auto t0 = std::chrono::steady_clock::now();
      pool.parallel_for((int)P, [&](int i) { sink[i] += loops[m].sum(base + part * i, part); });
      double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      best[m] = std::max(best[m], (double)seg / sec / 1e9);
      seconds[m] += sec, read[m] += (double)seg;
    }
  }
  volatile uint64_t keep = 0;
  for (uint64_t v : sink) keep = keep + v;
  std::free(buf);
  ReadBandwidth r;
  for (size_t m = 0; m < loops.size(); m++) {
    r.per_method.emplace_back(loops[m].name, best[m]);
    if (best[m] > r.best_gbs) r.best_gbs = best[m], r.method = loops[m].name;
    if (seconds[m] > 0) r.sustained_gbs = std::max(r.sustained_gbs, read[m] / seconds[m] / 1e9);
  }
  return r;
}

std::string cpu_model_name() {
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("model name", 0) == 0) {
      size_t c = line.find(':');
      return c == std::string::npos ? line : line.substr(c + 2);
    }
  }
  return "unknown";
}

}  // namespace q3
