// Experiment: GQA attention of one decode token as a decode step meets it, its K/V rows cold (between two layers'
// attention the step streams ~135 MB of weights, so each layer's cache rows were last touched 4.9 GB of reads ago).
// Per layer: a ~135 MB read of a 1 GiB buffer (the probe's loop), then the layer's attention timed alone, 8 KV-head
// tasks over the 2-thread pool as forward_cpu runs them. Versions take turns by round (a round = the 36 layers of one
// step), the order rotating; per version the median and best step, and each round's time over version 0's in the
// same rotation.
//   v0: attention_group_cpu as it was before this experiment: each K row's dot product with each query head, summed
//       lane by lane; no software prefetch
//   v1: v0 + prefetch: the K row 8 rows on (into L1) and the V row as many on (into L2) while the K pass runs
//   lib: the library's attention_group_cpu (v1 since this experiment)
// Earlier runs also had 4, 16 and 32 rows on (0.80-0.84, 0.83, 0.85-0.95 of v0 against 0.75-0.87 for 8) and v1 with
// each dot product's 16 lanes summed as a tree (0.81-0.88: no gain). Results: bench/results/cpu-attention-cold.md.
// Build: g++ -O3 -march=native -I native/src -I native/include native/dev/cpu/attention_cold.cpp native/build/libq3core.a -lpthread -o /tmp/attention_cold
// Usage: /tmp/attention_cold [rounds] [position] [warm] [lib] [split] [plain|avx2|avx512]
// "split" (session 32): the library's attention split by position (attention_blocks_cpu over ranges of 4-32 blocks,
// merged by attention_merge_cpu, as forward_cpu runs it from 512 positions on) against the library's per-head
// attention; results: bench/results/cpu-attention-split.md.
// Since the KV cache holds fp16 (kv_cache.h), every version reads fp16 rows: v0-v4 widen each row to fp32 first, as
// the library's plain loops do; the loads-only versions read the same bytes (half what they were with fp32 rows).
#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "cpu/bandwidth_cpu.h"
#include "cpu/ops_cpu.h"
#include "half.h"
#include "kv_cache.h"
#include "threadpool.h"

using namespace q3;

namespace {

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

constexpr int kLanes = 16;

// exp as ops_cpu.cpp computes it (its exp_approx is internal there).
inline float exp_approx(float x) {
  const bool overflow = x > 88.72f;
  x = x < -87.0f ? -87.0f : x > 88.0f ? 88.0f : x;
  const float n = std::floor(x * 1.44269504f + 0.5f);
  const float r = (x - n * 0.693145751953125f) - n * 1.428606765330187e-06f;
  float p = 1.0f / 720;
  p = p * r + 1.0f / 120;
  p = p * r + 1.0f / 24;
  p = p * r + 1.0f / 6;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const int32_t bits = ((int32_t)n + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, 4);
  return overflow ? INFINITY : p * scale;
}

// VPASS: the V pass prefetches its own rows AHEAD on (into L1); VINK: the K pass also prefetches the V rows (into L2).
// v3 and v4 (bench/results/cpu-attention-avx512.md) measured no better than v1.
template <int AHEAD, bool TREE, bool VPASS = false, bool VINK = true>
void attention(const float* q, int n_q, const KvPool& kv, int layer, int kv_head, const int32_t* block_table, int pos,
               int head_dim, float scale, float* scores, float* out) {
  const int bs = kv.block_size(), n = pos + 1;
  auto krow = [&](int j) { return kv.k(block_table[j / bs], layer) + ((size_t)kv_head * bs + j % bs) * head_dim; };
  auto vrow = [&](int j) { return kv.v(block_table[j / bs], layer) + ((size_t)kv_head * bs + j % bs) * head_dim; };
  const int row_bytes = head_dim * (int)sizeof(uint16_t);
  float wide[512];  // the fp16 row widened (head_dim <= 512 here)
  auto widen = [&](const uint16_t* h) {
    for (int d = 0; d < head_dim; d++) wide[d] = f16_to_f32(h[d]);
    return (const float*)wide;
  };
  if (AHEAD > 0)
    for (int j = 0; j < std::min(AHEAD, n); j++)
      for (int o = 0; o < row_bytes; o += 64) {
        __builtin_prefetch((const char*)krow(j) + o, 0, 3);
        if (VINK) __builtin_prefetch((const char*)vrow(j) + o, 0, 2);
      }
  for (int j = 0; j < n; j++) {
    if (AHEAD > 0 && j + AHEAD < n)
      for (int o = 0; o < row_bytes; o += 64) {
        __builtin_prefetch((const char*)krow(j + AHEAD) + o, 0, 3);
        if (VINK) __builtin_prefetch((const char*)vrow(j + AHEAD) + o, 0, 2);
      }
    const float* k = widen(krow(j));
    for (int g = 0; g < n_q; g++) {
      const float* qg = q + (size_t)g * head_dim;
      float acc[kLanes] = {};
      int d = 0;
      for (; d + kLanes <= head_dim; d += kLanes)
        for (int l = 0; l < kLanes; l++) acc[l] += qg[d + l] * k[d + l];
      float dot = 0;
      for (; d < head_dim; d++) dot += qg[d] * k[d];
      if (TREE) {
        for (int w = kLanes / 2; w > 0; w /= 2)
          for (int l = 0; l < w; l++) acc[l] += acc[l + w];
        dot += acc[0];
      } else {
        for (int l = 0; l < kLanes; l++) dot += acc[l];
      }
      scores[(size_t)g * n + j] = dot * scale;
    }
  }
  for (int g = 0; g < n_q; g++) {
    float* sg = scores + (size_t)g * n;
    float max_score = -INFINITY;
    for (int j = 0; j < n; j++) max_score = sg[j] > max_score ? sg[j] : max_score;
    double sum = 0;
    for (int j = 0; j < n; j++) {
      sg[j] = exp_approx(sg[j] - max_score);
      sum += sg[j];
    }
    const float inv = (float)(1.0 / sum);
    for (int j = 0; j < n; j++) sg[j] *= inv;
  }
  for (int i = 0; i < n_q * head_dim; i++) out[i] = 0;
  for (int j = 0; j < n; j++) {
    if (VPASS && AHEAD > 0 && j + AHEAD < n)
      for (int o = 0; o < row_bytes; o += 64) __builtin_prefetch((const char*)vrow(j + AHEAD) + o, 0, 3);
    const float* v = widen(vrow(j));
    for (int g = 0; g < n_q; g++) {
      const float p = scores[(size_t)g * n + j];
      float* o = out + (size_t)g * head_dim;
      for (int d = 0; d < head_dim; d++) o[d] += p * v[d];
    }
  }
}

// Timing only (not attention): the reads of the kernel's two passes and its prefetch (K rows 8 on into L1 with the V
// rows into L2 during the first pass; the V rows in the second, VPF rows on into L1 when VPF > 0), each row xor-ed
// into a register: how fast this access pattern can go with no arithmetic in the way.
template <int VPF>
void loads_only(const float* q, int n_q, const KvPool& kv, int layer, int kv_head, const int32_t* block_table, int pos,
                int head_dim, float scale, float* scores, float* out) {
  (void)q, (void)n_q, (void)scale, (void)scores;
  const int bs = kv.block_size(), n = pos + 1, row_bytes = head_dim * (int)sizeof(uint16_t);
  auto krow = [&](int j) { return kv.k(block_table[j / bs], layer) + ((size_t)kv_head * bs + j % bs) * head_dim; };
  auto vrow = [&](int j) { return kv.v(block_table[j / bs], layer) + ((size_t)kv_head * bs + j % bs) * head_dim; };
  __m512i acc = _mm512_setzero_si512();
  for (int j = -8; j < n; j++) {
    if (j + 8 < n)
      for (int o = 0; o < row_bytes; o += 64) {
        _mm_prefetch((const char*)krow(j + 8) + o, _MM_HINT_T0);
        _mm_prefetch((const char*)vrow(j + 8) + o, _MM_HINT_T1);
      }
    if (j < 0) continue;
    for (int o = 0; o < head_dim; o += 32) acc = _mm512_xor_si512(acc, _mm512_loadu_si512(krow(j) + o));
  }
  for (int j = 0; j < n; j++) {
    if (VPF > 0 && j + VPF < n)
      for (int o = 0; o < row_bytes; o += 64) _mm_prefetch((const char*)vrow(j + VPF) + o, _MM_HINT_T0);
    for (int o = 0; o < head_dim; o += 32) acc = _mm512_xor_si512(acc, _mm512_loadu_si512(vrow(j) + o));
  }
  _mm512_storeu_si512(out, acc);
}

// Timing only: the same bytes read the other way round, as a decode split by positions instead of by KV head would
// read them (each of the 8 tasks takes 1/8 of the sequence's blocks, and of each block the layer's K rows of all
// KV heads, one contiguous piece, then its V rows), with the next block's pieces prefetched: the pattern's ceiling.
void loads_by_block(const float* q, int n_q, const KvPool& kv, int layer, int task, const int32_t* block_table, int pos,
                    int head_dim, float scale, float* scores, float* out) {
  (void)q, (void)n_q, (void)scale, (void)scores;
  const int bs = kv.block_size(), blocks = pos / bs + 1, tasks = 8;
  const size_t piece = (size_t)8 * bs * head_dim;  // fp16 values: the K (or V) rows of all 8 KV heads in one block
  const int b0 = (int)((long)blocks * task / tasks), b1 = (int)((long)blocks * (task + 1) / tasks);
  __m512i acc = _mm512_setzero_si512();
  for (int b = b0; b < b1; b++) {
    if (b + 1 < b1)
      for (size_t o = 0; o < piece * sizeof(uint16_t); o += 64) {
        _mm_prefetch((const char*)kv.k(block_table[b + 1], layer) + o, _MM_HINT_T1);
        _mm_prefetch((const char*)kv.v(block_table[b + 1], layer) + o, _MM_HINT_T1);
      }
    for (const uint16_t* p : {kv.k(block_table[b], layer), kv.v(block_table[b], layer)})
      for (size_t o = 0; o < piece; o += 32) acc = _mm512_xor_si512(acc, _mm512_loadu_si512(p + o));
  }
  _mm512_storeu_si512(out, acc);
}

using Attention = void (*)(const float*, int, const KvPool&, int, int, const int32_t*, int, int, float, float*, float*);

}  // namespace

int main(int argc, char** argv) {
  const int rounds = argc > 1 ? atoi(argv[1]) : 24, pos = argc > 2 ? atoi(argv[2]) : 112;
  // Words after the position, in any order. "warm": no read between layers, so the K/V rows stay in the caches where
  // they fit (a layer's are 4.2 MB at 1023 positions): the attention's own speed, apart from DRAM's. "lib": time only
  // the library's attention and the loads-only patterns. "plain", "avx2", "avx512": the library's attention forced
  // onto that path (attention_cpu_force_isa), as a CPU with no wider one runs it.
  auto has = [&](const char* word) {
    for (int i = 3; i < argc; i++)
      if (std::string(argv[i]) == word) return true;
    return false;
  };
  const bool warm = has("warm"), lib_only = has("lib");
  for (const char* isa : {"plain", "avx2", "avx512"})
    if (has(isa) && !attention_cpu_force_isa(isa)) std::printf("no %s path on this CPU\n", isa);
  std::printf("library attention path: %s\n", attention_cpu_isa());
  const int L = 36, KVH = 8, D = 128, G = 4, bs = 16, n_blocks = pos / bs + 1;
  ThreadPool pool(2);
  // Other sequences' blocks between this one's, as in a pool that has served several.
  KvPool kv(L, KVH, D, bs, 3 * n_blocks);
  std::vector<int32_t> all(3 * n_blocks), table;
  kv.alloc(3 * n_blocks, all.data());
  for (int b = 0; b < n_blocks; b++) table.push_back(all[3 * b + 1]);
  std::mt19937 rng(1);
  std::normal_distribution<float> nd(0.f, 1.f);
  for (int b = 0; b < 3 * n_blocks; b++)
    for (int l = 0; l < L; l++)
      for (size_t i = 0; i < (size_t)KVH * bs * D; i++) kv.k(b, l)[i] = f32_to_f16(nd(rng)), kv.v(b, l)[i] = f32_to_f16(nd(rng));
  std::vector<float> q((size_t)L * KVH * G * D), out((size_t)KVH * G * D), ref(out.size());
  for (float& v : q) v = nd(rng);
  ReadProbe weights(pool, 1u << 30);
  const std::string loop = weights.measure(1).method;
  const float scale = 1.0f / std::sqrt((float)D);

  struct Version {
    const char* name;
    Attention f;
    bool timing_only = false;  // not attention: left out of the check below
    int part_blocks = 0;       // > 0: the library's attention split by position (attention_blocks_cpu), f unused
  };
  std::vector<Version> versions = {{"v0: before", attention<0, false>},
                                         {"v1: + prefetch 8 rows on", attention<8, false>},
                                         {"v3: v1, V pass prefetches its rows", attention<8, false, true, false>},
                                         {"v4: v1 + V pass prefetches its rows", attention<8, false, true, true>},
                                         {"lib: attention_group_cpu", attention_group_cpu},
                                         {"loads only, the kernel's pattern", loads_only<0>, true},
                                         {"loads only, V pass prefetching 8 on", loads_only<8>, true},
                                         {"loads only, by block: all KV heads' rows", loads_by_block, true}};
  if (lib_only) versions = {versions[4], versions[5], versions[7]};  // ratios below are then to the library's time
  if (has("split"))  // the library's split by position, in parts of 4-32 blocks, against the library by KV head
    versions = {versions[4 - (lib_only ? 4 : 0)], {"split, parts of 4 blocks", nullptr, false, 4},
                {"split, parts of 8 blocks", nullptr, false, 8}, {"split, parts of 16 blocks", nullptr, false, 16},
                {"split, parts of 32 blocks", nullptr, false, 32},
                {"loads only, by block: all KV heads' rows", loads_by_block, true}};
  // One layer's attention of the decode token with version v: per KV head over the pool, or split by position (the
  // parts over the pool, the last to finish merging them, as forward_cpu does).
  std::vector<float> part_out, part_max;
  std::vector<double> part_sum;
  std::atomic<int> left{0};
  auto run_layer = [&](const Version& ver, int l, float* o) {
    if (ver.part_blocks == 0)
      return pool.parallel_dynamic(KVH, [&](int h) {
        thread_local std::vector<float> scores;
        scores.resize((size_t)G * (pos + 1));
        ver.f(&q[((size_t)l * KVH + h) * G * D], G, kv, l, h, table.data(), pos, D, scale, scores.data(),
              o + (size_t)h * G * D);
      });
    const int P = ver.part_blocks, parts = (n_blocks + P - 1) / P, NH = KVH * G;
    part_out.resize((size_t)parts * NH * D), part_max.resize((size_t)parts * NH), part_sum.resize(part_max.size());
    left.store(parts);
    pool.parallel_dynamic(parts, [&](int p) {
      thread_local std::vector<float> scores;
      scores.resize((size_t)NH * P * bs);
      const float* ql = &q[(size_t)l * NH * D];
      const int b0 = p * P, b1 = std::min(n_blocks, b0 + P);
      if (parts == 1)
        return attention_blocks_cpu(ql, NH, G, kv, l, table.data(), b0, b1, pos, D, scale, scores.data(), o, nullptr,
                                    nullptr);
      attention_blocks_cpu(ql, NH, G, kv, l, table.data(), b0, b1, pos, D, scale, scores.data(),
                           &part_out[(size_t)p * NH * D], &part_max[(size_t)p * NH], &part_sum[(size_t)p * NH]);
      if (left.fetch_sub(1) == 1)
        attention_merge_cpu(parts, NH, D, part_out.data(), part_max.data(), part_sum.data(), o);
    });
  };
  const int nv = (int)versions.size();
  // Every version's output agrees with v0's (same products, at most a different summation order).
  double worst = 0;
  for (int v = 0; v < nv; v++) {
    if (versions[v].timing_only) continue;
    run_layer(versions[0], 0, ref.data());
    run_layer(versions[v], 0, out.data());
    for (size_t i = 0; i < out.size(); i++) worst = std::max(worst, (double)std::fabs(out[i] - ref[i]));
  }
  std::printf("largest difference from v0 over layer 0: %.3g\n", worst);

  std::vector<std::vector<double>> ms(nv), paired(nv);
  for (int r = 0; r < rounds; r++) {
    std::vector<double> round_ms(nv);
    for (int i = 0; i < nv; i++) {
      const int v = (i + r) % nv;
      double t = 0;
      for (int l = 0; l < L; l++) {
        if (!warm) weights.timed_read_gbs(135u << 20, loop);  // the layer's matmuls between two attentions
        const double t0 = now();
        run_layer(versions[v], l, out.data());
        t += now() - t0;
      }
      round_ms[v] = 1e3 * t;
      ms[v].push_back(1e3 * t);
    }
    for (int v = 0; v < nv; v++) paired[v].push_back(round_ms[v] / round_ms[0]);
    std::printf("round %2d:", r);
    for (int v = 0; v < nv; v++) std::printf(" %6.2f", round_ms[v]);
    std::printf(" ms\n");
    std::fflush(stdout);
  }
  std::printf("\nversion: attention ms per step (36 layers, position %d; median, best), / v0 in the same round "
              "(median, quartiles)\n", pos);
  for (int v = 0; v < nv; v++) {
    std::sort(ms[v].begin(), ms[v].end());
    std::sort(paired[v].begin(), paired[v].end());
    std::printf("%-40s %6.2f %6.2f  %.3f (%.3f-%.3f)\n", versions[v].name, ms[v][rounds / 2], ms[v][0],
                paired[v][rounds / 2], paired[v][rounds / 4], paired[v][rounds * 3 / 4]);
  }
  return 0;
}
