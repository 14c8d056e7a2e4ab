// Experiment: the decode attention's own speed, apart from DRAM: one thread runs attention_group_cpu for the 8 KV
// heads of one layer in turn (4 query heads each, head_dim 128, blocks of 16 positions), over and over, so the rows
// stay in the caches (a layer's K/V at 1023 positions is 4 MiB; at 80, 320 KiB). Prints ns per K/V row (one K and one
// V row of one KV head), the best of 5 passes of ~20M rows. Results: bench/results/cpu-attention-rows4.md.
// Build: g++ -O3 -march=native -I native/src -I native/include native/dev/cpu/attention_rows.cpp native/build/libq3core.a -lpthread -o /tmp/attention_rows
// Usage: /tmp/attention_rows [position (80)] [plain|avx2|avx512 (the widest the CPU has)]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "cpu/ops_cpu.h"
#include "half.h"
#include "kv_cache.h"

using namespace q3;

int main(int argc, char** argv) {
  const int pos = argc > 1 ? std::atoi(argv[1]) : 80, n = pos + 1;
  if (argc > 2 && !attention_cpu_force_isa(argv[2])) {
    std::printf("no %s attention path on this CPU\n", argv[2]);
    return 1;
  }
  const int KVH = 8, G = 4, D = 128, bs = 16, blocks = n / bs + 1;
  KvPool kv(1, KVH, D, bs, blocks);
  std::vector<int32_t> table(blocks);
  kv.alloc(blocks, table.data());
  std::mt19937 rng(1);
  std::normal_distribution<float> nd(0.f, 1.f);
  for (int b = 0; b < blocks; b++)
    for (int i = 0; i < KVH * bs * D; i++) kv.k(table[b], 0)[i] = f32_to_f16(nd(rng)), kv.v(table[b], 0)[i] = f32_to_f16(nd(rng));
  std::vector<float> q((size_t)KVH * G * D), scores((size_t)G * n), out((size_t)G * D);
  for (float& v : q) v = nd(rng);
  const float scale = 1.0f / std::sqrt((float)D);
  const int reps = 20000000 / n;
  double best = 1e30;
  for (int pass = 0; pass < 5; pass++) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < reps; i++)
      attention_group_cpu(&q[(size_t)(i % KVH) * G * D], G, kv, 0, i % KVH, table.data(), pos, D, scale, scores.data(),
                          out.data());
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::min(best, s / reps / n * 1e9);
  }
  std::printf("attention path %s, position %d: %.1f ns per K/V row\n", attention_cpu_isa(), pos, best);
  return 0;
}
