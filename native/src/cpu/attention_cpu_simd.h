// The decode attention's passes as its SIMD paths share them (attention_cpu_avx512.cpp, attention_cpu_avx2.cpp): each
// path includes this under its own ISA flags and instantiates attention_group_rows with its vector operations.
#pragma once
#include <immintrin.h>

#include <algorithm>

#include "ops_cpu.h"

namespace q3 {

// What the softmax's first half leaves: the largest score and the sum of exp(score - max).
struct ExpSums {
  float max;
  double sum;
};

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
  if (n_q == 4 && head_dim == 128) return V::v_pass_4x128(scores, n, n, row, out, false);
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

// Scores of n_q query heads (q: (n_q, D)) against `take` <= V::kRows consecutive K rows, V::score_rows<NQ> for 4 heads
// at a time: head g's score of row r goes to s[g * stride + r].
template <class V>
inline void score_group(const float* q, int n_q, const uint16_t* k, int take, int D, float scale, float* s, int stride) {
  for (int g0 = 0; g0 < n_q; g0 += 4) {
    float* sg[4];
    for (int g = 0; g < 4; g++) sg[g] = s + (size_t)(g0 + g) * stride;
    const float* qg = q + (size_t)g0 * D;
    switch (std::min(4, n_q - g0)) {
      case 4: V::template score_rows<4>(qg, D, k, scale, take, sg); break;
      case 3: V::template score_rows<3>(qg, D, k, scale, take, sg); break;
      case 2: V::template score_rows<2>(qg, D, k, scale, take, sg); break;
      default: V::template score_rows<1>(qg, D, k, scale, take, sg); break;
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
      score_group<V>(q, n_q, kb + (size_t)r * D, std::min(V::kRows, rows - r), D, scale, scores + b * bs + r, n);
    }
  }
}

// V: the path's vector type and operations on it: Vec, kLanes, load(const float*), widen(const uint16_t*) (kLanes
// fp16 values as fp32), mul, fmadd(a, b, c) = a * b + c, sum (across lanes), set1, zero, store(float*, Vec); and its
// softmax(float* scores, int n), exp_shifted(scores, n) (the softmax without its division: ExpSums) and
// v_pass_4x128(scores, stride, n, row, out, accumulate) (Qwen3's 4 query heads x head_dim 128); and for k_pass_blocks,
// kRows and score_rows<NQ>.
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

// Scores of n_q query heads against a piece of consecutive K rows, V::kRows at a time; head g's score of row r goes
// to s[g * stride + r].
template <class V>
inline void score_piece(const float* q, int n_q, const uint16_t* k, int rows, int D, float scale, float* s,
                        int stride) {
  for (int r = 0; r < rows; r += V::kRows)
    score_group<V>(q, n_q, k + (size_t)r * D, std::min(V::kRows, rows - r), D, scale, s + r, stride);
}

// Asks for lines [i0, i1) of a piece of memory (64 bytes each) into L2; nothing for a null piece.
inline void prefetch_lines(const char* piece, int i0, int i1) {
  if (piece)
    for (int i = i0; i < i1; i++) _mm_prefetch(piece + 64 * i, _MM_HINT_T1);
}

// One decode token's attention over blocks [b0, b1) of its sequence (positions 0..n-1), every KV head at once
// (attention_blocks_cpu in ops_cpu.h says what it returns). A layer's K rows of one block, for all KV heads, lie
// together (kv_cache.h), and so do its V rows: both passes go block by block, each block's K (then V) read as one
// contiguous piece while the next block's piece is asked for into L2 (the K pass's last block asks for the first
// block's V). Reading by KV head instead, as attention_group_rows does, takes each head's rows of a block as a
// separate piece far from the next; as bare loads that read the same bytes ~1.36x slower at 4,095 positions
// (bench/results/cpu-attention-pattern.md).
template <class V>
inline void attention_blocks(const float* q, int n_heads, int group, const KvPool& kv, int layer,
                             const int32_t* block_table, int b0, int b1, int n, int D, float scale, float* scores,
                             float* out, float* head_max, double* head_sum) {
  const int bs = kv.block_size(), n_kv = n_heads / group;
  const int j0 = b0 * bs, m = std::min(n, b1 * bs) - j0;  // positions in these blocks, scores' stride
  const size_t head_piece = (size_t)bs * D;               // one KV head's rows of a block (fp16 values)
  const int lines = (int)(n_kv * head_piece * sizeof(uint16_t) / 64);
  auto k_block = [&](int b) { return kv.k(block_table[b], layer); };
  auto v_block = [&](int b) { return kv.v(block_table[b], layer); };
  const int per_head = (lines + n_kv - 1) / n_kv;  // lines of the next piece asked for per KV head's rows
  prefetch_lines((const char*)k_block(b0), 0, lines);
  for (int b = b0; b < b1; b++) {
    const uint16_t* kb = k_block(b);
    const char* next = (const char*)(b + 1 < b1 ? k_block(b + 1) : v_block(b0));
    const int rows = std::min(bs, n - b * bs);
    for (int h = 0; h < n_kv; h++) {
      prefetch_lines(next, h * per_head, std::min(lines, (h + 1) * per_head));
      score_piece<V>(q + (size_t)h * group * D, group, kb + h * head_piece, rows, D, scale,
                     scores + (size_t)h * group * m + (b - b0) * bs, m);
    }
  }
  for (int g = 0; g < n_heads; g++) {
    float* sg = scores + (size_t)g * m;
    if (!head_max) {
      V::softmax(sg, m);
    } else {
      const ExpSums e = V::exp_shifted(sg, m);
      head_max[g] = e.max, head_sum[g] = e.sum;
    }
  }
  const bool regs = group == 4 && D == 128;  // V::v_pass_4x128's shape
  if (!regs)
    for (int i = 0; i < n_heads * D; i += V::kLanes) V::store(out + i, V::zero());
  for (int b = b0; b < b1; b++) {
    const uint16_t* vb = v_block(b);
    const char* next = b + 1 < b1 ? (const char*)v_block(b + 1) : nullptr;
    const int rows = std::min(bs, n - b * bs);
    for (int h = 0; h < n_kv; h++) {
      prefetch_lines(next, h * per_head, std::min(lines, (h + 1) * per_head));
      const uint16_t* vh = vb + h * head_piece;
      const float* p = scores + (size_t)h * group * m + (b - b0) * bs;
      float* o = out + (size_t)h * group * D;
      if (regs) {
        V::v_pass_4x128(p, m, rows, [vh, D](bool, int j) { return vh + (size_t)j * D; }, o, b > b0);
        continue;
      }
      for (int j = 0; j < rows; j++)
        for (int g = 0; g < group; g++) {
          const auto w = V::set1(p[(size_t)g * m + j]);
          float* og = o + (size_t)g * D;
          for (int c = 0; c < D; c += V::kLanes)
            V::store(og + c, V::fmadd(w, V::widen(vh + (size_t)j * D + c), V::load(og + c)));
        }
    }
  }
}

}  // namespace q3
