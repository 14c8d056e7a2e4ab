// The decode attention's passes as its SIMD paths share them (attention_cpu_avx512.cpp, attention_cpu_avx2.cpp): each
// path includes this under its own ISA flags and instantiates attention_group_simd with its vector operations.
#pragma once
#include <immintrin.h>

#include "ops_cpu.h"

namespace q3 {

// What follows the K pass: each head's softmax over its n scores, then the V pass.
template <class V>
inline void attention_after_scores(int n_q, const KvPool& kv, int layer, int kv_head, const int32_t* block_table, int n,
                                   int head_dim, float* scores, float* out) {
  const int bs = kv.block_size(), chunks = head_dim / V::kLanes;
  auto row = [&](bool v, int j) {
    const int32_t b = block_table[j / bs];
    return (v ? kv.v(b, layer) : kv.k(b, layer)) + ((size_t)kv_head * bs + j % bs) * head_dim;
  };
  for (int g = 0; g < n_q; g++) V::softmax(scores + (size_t)g * n, n);
  if (n_q == 4 && head_dim == 128) return V::v_pass_4x128(scores, n, row, out);
  for (int i = 0; i < n_q * head_dim; i += V::kLanes) V::store(out + i, V::zero());
  for (int j = 0; j < n; j++) {
    const uint16_t* v = row(true, j);
    for (int g = 0; g < n_q; g++) {
      const auto p = V::set1(scores[(size_t)g * n + j]);
      float* o = out + (size_t)g * head_dim;
      for (int c = 0; c < chunks; c++)
        V::store(o + V::kLanes * c, V::fmadd(p, V::widen(v + V::kLanes * c), V::load(o + V::kLanes * c)));
    }
  }
}

// V: the path's vector type and operations on it: Vec, kLanes, load(const float*), widen(const uint16_t*) (kLanes
// fp16 values as fp32), mul, fmadd(a, b, c) = a * b + c, sum (across lanes), set1, zero, store(float*, Vec); and its
// softmax(float* scores, int n) and v_pass_4x128(scores, n, row, out) (Qwen3's 4 query heads x head_dim 128).
// The K pass reads each K row once for every query head, kAttentionAhead rows behind the prefetch of the K row (into
// L1) and the V row (into L2, read after the softmax); the V pass reads each V row once too.
template <class V>
inline void attention_group_simd(const float* q, int n_q, const KvPool& kv, int layer, int kv_head,
                                 const int32_t* block_table, int pos, int head_dim, float scale, float* scores,
                                 float* out) {
  const int bs = kv.block_size(), n = pos + 1, chunks = head_dim / V::kLanes;
  auto row = [&](bool v, int j) {
    const int32_t b = block_table[j / bs];
    return (v ? kv.v(b, layer) : kv.k(b, layer)) + ((size_t)kv_head * bs + j % bs) * head_dim;
  };
  const int row_bytes = head_dim * (int)sizeof(uint16_t);
  for (int j = -kAttentionAhead; j < n; j++) {
    if (j + kAttentionAhead < n) {
      const char* kp = (const char*)row(false, j + kAttentionAhead);
      const char* vp = (const char*)row(true, j + kAttentionAhead);
      for (int o = 0; o < row_bytes; o += 64) _mm_prefetch(kp + o, _MM_HINT_T0), _mm_prefetch(vp + o, _MM_HINT_T1);
    }
    if (j < 0) continue;
    const uint16_t* k = row(false, j);
    for (int g = 0; g < n_q; g++) {
      const float* qg = q + (size_t)g * head_dim;
      auto acc = V::mul(V::load(qg), V::widen(k));
      for (int c = 1; c < chunks; c++) acc = V::fmadd(V::load(qg + V::kLanes * c), V::widen(k + V::kLanes * c), acc);
      scores[(size_t)g * n + j] = V::sum(acc) * scale;
    }
  }
  attention_after_scores<V>(n_q, kv, layer, kv_head, block_table, n, head_dim, scores, out);
}

}  // namespace q3
