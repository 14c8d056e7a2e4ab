// Memory read bandwidth probe: each pool thread sums its own contiguous share of a large buffer with the widest
// vector loads the CPU has, and the best of a few passes is reported. The SIMD loops use target attributes instead
// of a separate *_avx512.cpp file because they are a dozen lines and only loads and adds.
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

#ifdef __linux__
#include <sys/mman.h>
#endif

namespace q3 {
namespace {

__attribute__((target("avx512f"))) uint64_t sum_avx512(const uint8_t* p, size_t n) {
  __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
  for (size_t i = 0; i + 256 <= n; i += 256) {
    a0 = _mm512_add_epi64(a0, _mm512_load_si512(p + i));
    a1 = _mm512_add_epi64(a1, _mm512_load_si512(p + i + 64));
    a2 = _mm512_add_epi64(a2, _mm512_load_si512(p + i + 128));
    a3 = _mm512_add_epi64(a3, _mm512_load_si512(p + i + 192));
  }
  return (uint64_t)_mm512_reduce_add_epi64(_mm512_add_epi64(_mm512_add_epi64(a0, a1), _mm512_add_epi64(a2, a3)));
}

__attribute__((target("avx2"))) uint64_t sum_avx2(const uint8_t* p, size_t n) {
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

uint64_t sum_scalar(const uint8_t* p, size_t n) {
  uint64_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
  for (size_t i = 0; i + 32 <= n; i += 32) {
    uint64_t v[4];
    std::memcpy(v, p + i, 32);
    a0 += v[0], a1 += v[1], a2 += v[2], a3 += v[3];
  }
  return a0 + a1 + a2 + a3;
}

}  // namespace

void advise_huge_pages(void* p, size_t bytes) {
#ifdef __linux__
  const uintptr_t huge = 2u << 20;
  uintptr_t begin = ((uintptr_t)p + huge - 1) & ~(huge - 1), end = ((uintptr_t)p + bytes) & ~(huge - 1);
  if (end > begin) madvise((void*)begin, end - begin, MADV_HUGEPAGE);  // advisory: failure only costs speed
#else
  (void)p, (void)bytes;
#endif
}

double measure_read_bandwidth_cpu(ThreadPool& pool, size_t bytes) {
  const size_t huge = 2u << 20, P = (size_t)pool.size();
  // The buffer is read in segments of ~32 MiB, each split into P contiguous parts (multiples of 256 bytes, so the
  // SIMD loops need no tail). Timing segments rather than whole passes lets the best-of statistic skip the moments
  // when another process held a core; every segment still comes from DRAM because the passes rotate through a buffer
  // far larger than the cache.
  const size_t n_seg = std::max<size_t>(1, bytes / (32u << 20));
  const size_t part = std::max<size_t>(bytes / n_seg / P / 256 * 256, 256);
  const size_t seg = part * P, total = (seg * n_seg + huge - 1) / huge * huge;
  uint8_t* buf = (uint8_t*)std::aligned_alloc(huge, total);
  if (!buf) throw std::runtime_error("measure_read_bandwidth_cpu: cannot allocate " + std::to_string(total) + " bytes");
  advise_huge_pages(buf, total);
  uint64_t (*sum)(const uint8_t*, size_t) = sum_scalar;
  if (__builtin_cpu_supports("avx512f")) {
    sum = sum_avx512;
  } else if (__builtin_cpu_supports("avx2")) {
    sum = sum_avx2;
  }
  // First touch by the thread that will read each part (matters on NUMA machines).
  for (size_t s = 0; s < n_seg; s++)
    pool.parallel_for((int)P, [&](int i) { std::memset(buf + s * seg + part * i, 1 + i, part); });
  std::vector<uint64_t> sink(P);
  double best = 0;
  for (int pass = 0; pass < 5; pass++) {
    for (size_t s = 0; s < n_seg; s++) {
      const uint8_t* base = buf + s * seg;
      auto t0 = std::chrono::steady_clock::now();
      pool.parallel_for((int)P, [&](int i) { sink[i] += sum(base + part * i, part); });
      double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      best = std::max(best, (double)seg / sec / 1e9);
    }
  }
  volatile uint64_t keep = 0;
  for (uint64_t v : sink) keep = keep + v;
  std::free(buf);
  return best;
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
