// The decode attention's passes as its SIMD paths share them (attention_cpu_avx512.cpp, attention_cpu_avx2.cpp): each
// path includes this under its own ISA flags and instantiates attention_group_rows with its vector operations.
#pragma once
#include <immintrin.h>

#include <algorithm>

#include "ops_cpu.h"

namespace q3 {

// K (v = false) or V row j of kv_head's rows in one layer, found through the sequence's block table.
inline auto kv_rows(const KvPool& kv, int layer, int kv_head, const int32_t* block_table, int head_dim) {
  return [&kv, layer, kv_head, block_table, head_dim, bs = kv.block_size()](bool v, int j) {
    const int32_t b = block_table[j / bs];
    return (v ? kv.v(b, layer) : kv.k(b, layer)) + ((size_t)kv_head * bs + j % bs) * head_dim;
  };
}

// What follows the K pass: each head's softmax over its n scores, then the V pass.
template <class V>
inline void attention_after_scores(int n_q, const KvPool& kv, int layer, int kv_head, const int32_t* block_table, int n,
                                   int head_dim, float* scores, float* out) {
  const int chunks = head_dim / V::kLanes;
  const auto row = kv_rows(kv, layer, kv_head, block_table, head_dim);
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

// The K pass block by block: each block's rows of this KV head lie together (bs x head_dim fp16, kv_cache.h), so the
// rows come as one piece per block, V::kRows at a time (V::score_rows<NQ> scores them against NQ <= 4 query heads,
// each row widened once for all of them), with no division per row. While a block's rows are scored, the next
// block's K piece and this block's V piece (read after the softmax) are asked for, into L2 both, spread over the
// block's groups of rows. The block size must be a multiple of V::kRows: a group's rows past the sequence's end are
// read (they lie inside the block) and their scores dropped.
template <class V>
inline void k_pass_blocks(const float* q, int n_q, const KvPool& kv, int layer, int kv_head,
                          const int32_t* block_table, int n, int D, float scale, float* scores) {
  const int bs = kv.block_size(), blocks = (n + bs - 1) / bs, groups = bs / V::kRows;
  const size_t piece = (size_t)bs * D;  // fp16 values of one block's rows of this head
  const int lines = (int)(piece * sizeof(uint16_t) / 64), lines_per_group = (lines + groups - 1) / groups;
  auto k_piece = [&](int b) { return kv.k(block_table[b], layer) + (size_t)kv_head * piece; };
  auto v_piece = [&](int b) { return kv.v(block_table[b], layer) + (size_t)kv_head * piece; };
  for (int i = 0; i < lines; i++) _mm_prefetch((const char*)k_piece(0) + 64 * i, _MM_HINT_T1);
  for (int b = 0; b < blocks; b++) {
    const uint16_t* kb = k_piece(b);
    const char* next_k = b + 1 < blocks ? (const char*)k_piece(b + 1) : nullptr;
    const char* this_v = (const char*)v_piece(b);
    const int rows = std::min(bs, n - b * bs);
    for (int r = 0, gi = 0; r < rows; r += V::kRows, gi++) {
      for (int i = gi * lines_per_group, e = std::min(lines, i + lines_per_group); i < e; i++) {
        if (next_k) _mm_prefetch(next_k + 64 * i, _MM_HINT_T1);
        _mm_prefetch(this_v + 64 * i, _MM_HINT_T1);
      }
      const int j = b * bs + r, take = std::min(V::kRows, rows - r);
      for (int g0 = 0; g0 < n_q; g0 += 4) {
        float* s[4];
        for (int g = 0; g < 4; g++) s[g] = scores + (size_t)(g0 + g) * n + j;
        const float* qg = q + (size_t)g0 * D;
        const uint16_t* k = kb + (size_t)r * D;
        switch (std::min(4, n_q - g0)) {
          case 4: V::template score_rows<4>(qg, D, k, scale, take, s); break;
          case 3: V::template score_rows<3>(qg, D, k, scale, take, s); break;
          case 2: V::template score_rows<2>(qg, D, k, scale, take, s); break;
          default: V::template score_rows<1>(qg, D, k, scale, take, s); break;
        }
      }
    }
  }
}

// V: the path's vector type and operations on it: Vec, kLanes, load(const float*), widen(const uint16_t*) (kLanes
// fp16 values as fp32), mul, fmadd(a, b, c) = a * b + c, sum (across lanes), set1, zero, store(float*, Vec); and its
// softmax(float* scores, int n) and v_pass_4x128(scores, n, row, out) (Qwen3's 4 query heads x head_dim 128); and
// for k_pass_blocks, kRows and score_rows<NQ>.
// The K pass reads each K row once for every query head, kAttentionAhead rows behind the prefetch of the K row (into
// L1) and the V row (into L2, read after the softmax); the V pass reads each V row once too.
template <class V>
inline void attention_group_simd(const float* q, int n_q, const KvPool& kv, int layer, int kv_head,
                                 const int32_t* block_table, int pos, int head_dim, float scale, float* scores,
                                 float* out) {
  const int n = pos + 1, chunks = head_dim / V::kLanes;
  const auto row = kv_rows(kv, layer, kv_head, block_table, head_dim);
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

// A path's attention_group: the block-by-block K pass where the block size is a multiple of V::kRows, else the row
// by row one; the same softmax and V pass after either.
template <class V>
inline void attention_group_rows(const float* q, int n_q, const KvPool& kv, int layer, int kv_head,
                                 const int32_t* block_table, int pos, int head_dim, float scale, float* scores,
                                 float* out) {
  if (kv.block_size() % V::kRows != 0)
    return attention_group_simd<V>(q, n_q, kv, layer, kv_head, block_table, pos, head_dim, scale, scores, out);
  const int n = pos + 1;
  k_pass_blocks<V>(q, n_q, kv, layer, kv_head, block_table, n, head_dim, scale, scores);
  attention_after_scores<V>(n_q, kv, layer, kv_head, block_table, n, head_dim, scores, out);
}

}  // namespace q3
