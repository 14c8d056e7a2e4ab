// Memory read bandwidth probe: each pool thread sums its own contiguous share of a large buffer with the widest
// vector loads the CPU has, several read loops take turns, and the best segment of a few passes is reported; timed
// reads of a given size with one loop pair the probe with a decode step (qwen3 bench). The SIMD
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

const ReadLoop& loop_named(const std::vector<ReadLoop>& loops, const std::string& name) {
  for (const ReadLoop& l : loops)
    if (name == l.name) return l;
  return loops[0];
}

constexpr size_t kUnit = 1024;  // bytes: 256 bytes x 4 streams, the loops' step

}  // namespace

ReadProbe::ReadProbe(ThreadPool& pool, size_t bytes) : pool_(pool) {
  const size_t huge = 2u << 20, P = (size_t)pool.size();
  // Segments of ~32 MiB: timing segments rather than whole passes lets the best-of statistic skip the moments when
  // another process held a core, and a segment split P ways is about the work of one large matmul of a decode step.
  n_seg_ = std::max<size_t>(1, bytes / (32u << 20));
  part_ = std::max<size_t>(bytes / n_seg_ / P / kUnit * kUnit, kUnit);
  seg_ = part_ * P;
  const size_t total = (seg_ * n_seg_ + huge - 1) / huge * huge;
  buf_ = (uint8_t*)std::aligned_alloc(huge, total);
  if (!buf_) throw std::runtime_error("ReadProbe: cannot allocate " + std::to_string(total) + " bytes");
  advise_huge_pages(buf_, total);
  sink_.assign(P, 0);
  // First touch by the thread that will read each part (matters on NUMA machines).
  for (size_t s = 0; s < n_seg_; s++)
    pool_.parallel_for((int)P, [&](int i) { std::memset(buf_ + s * seg_ + part_ * i, 1 + i, part_); });
}

ReadProbe::~ReadProbe() {
  volatile uint64_t keep = 0;
  for (uint64_t v : sink_) keep = keep + v;
  std::free(buf_);
}

ReadBandwidth ReadProbe::measure(int passes) {
  const std::vector<ReadLoop> loops = read_loops();
  std::vector<double> best(loops.size(), 0.0), seconds(loops.size(), 0.0), read(loops.size(), 0.0);
  for (int pass = 0; pass < std::max(1, passes); pass++) {
    for (size_t s = 0; s < n_seg_; s++) {
      const size_t m = (s + (size_t)pass) % loops.size();  // the loops take turns, so each sees every segment
      const uint8_t* base = buf_ + s * seg_;
      auto t0 = std::chrono::steady_clock::now();
      pool_.parallel_for(pool_.size(), [&](int i) { sink_[i] += loops[m].sum(base + part_ * i, part_); });
      double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      best[m] = std::max(best[m], (double)seg_ / sec / 1e9);
      seconds[m] += sec, read[m] += (double)seg_;
    }
  }
  ReadBandwidth r;
  for (size_t m = 0; m < loops.size(); m++) {
    r.per_method.emplace_back(loops[m].name, best[m]);
    if (best[m] > r.best_gbs) r.best_gbs = best[m], r.method = loops[m].name;
    if (seconds[m] > 0) r.sustained_gbs = std::max(r.sustained_gbs, read[m] / seconds[m] / 1e9);
  }
  return r;
}

double ReadProbe::timed_read_gbs(size_t bytes, const std::string& method) {
  const std::vector<ReadLoop> loops = read_loops();
  const ReadLoop& loop = loop_named(loops, method);
  const size_t P = (size_t)pool_.size();
  // Split like a decode step's matmuls: ~8 chunks per thread per segment, each thread taking the next unclaimed one,
  // so a thread another process delays leaves its chunks to the others, as it does in the decode.
  const size_t chunk = std::max(seg_ / (8 * P) / kUnit * kUnit, kUnit);
  const size_t total = std::max(bytes / kUnit * kUnit, kUnit);
  auto t0 = std::chrono::steady_clock::now();
  for (size_t done = 0; done < total;) {
    const size_t n = std::min(seg_, total - done);
    const uint8_t* base = buf_ + next_seg_ * seg_;
    next_seg_ = (next_seg_ + 1) % n_seg_;
    pool_.parallel_dynamic((int)((n + chunk - 1) / chunk), [&](int c) {
      const size_t at = (size_t)c * chunk;
      sink_[ThreadPool::this_thread_index()] += loop.sum(base + at, std::min(chunk, n - at));
    });
    done += n;
  }
  const double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return (double)total / sec / 1e9;
}

ReadBandwidth measure_read_bandwidth_cpu(ThreadPool& pool, size_t bytes, int passes) {
  ReadProbe probe(pool, bytes);
  return probe.measure(passes);
}

std::string cpu_model_name() {
  std::ifstream f("/proc/cpuinfo");
  std::string line, name = "unknown", family, model;
  const auto value = [&] {
    const size_t c = line.find(':');
    return c == std::string::npos || c + 2 > line.size() ? std::string() : line.substr(c + 2);
  };
  while (std::getline(f, line) && line.find_first_not_of(" \t") != std::string::npos) {  // the first CPU's lines
    if (line.rfind("model name", 0) == 0) name = value();
    else if (line.rfind("cpu family", 0) == 0) family = value();
    else if (line.rfind("model\t", 0) == 0) model = value();
  }
  // A virtual machine's name can hide the generation ("AMD EPYC"): family and model tell it (26 is AMD's Zen 5).
  return family.empty() ? name : name + " (family " + family + " model " + model + ")";
}

}  // namespace q3
