// The CPU backend's forward pass over one batch: any mix of prefill chunks and decode tokens of many sequences,
// one weight read per step for all of them.
#pragma once
#include <vector>

#include "../config.h"
#include "../kv_cache.h"
#include "../model.h"
#include "../rope.h"
#include "../threadpool.h"
#include "qwen3.h"

namespace q3 {

// Scratch activations, grown to the largest batch seen.
struct CpuRunState {
  int capacity = 0;           // tokens
  std::vector<float> x;       // (T, hidden) residual stream
  std::vector<float> xn;      // (max(T, 8), hidden) normalised input of a sub-layer (decode: 4 slots of 2 rows)
  std::vector<float> qkv;     // (T, (n_heads + 2*n_kv_heads)*head_dim)
  std::vector<float> att;     // (T, n_heads*head_dim)
  std::vector<float> att_parts;  // (parts, n_heads*head_dim) a decode attention split by position: each part's sums
  std::vector<float> att_max;    // (parts, n_heads) each part's largest score per head
  std::vector<double> att_sum;   // (parts, n_heads) each part's sum of exp(score - max) per head
  std::vector<float> proj;    // (T, hidden) output of o_proj / down_proj
  std::vector<float> gate_up; // (T, 2*intermediate)
  std::vector<float> act;     // (T, intermediate)
  std::vector<float> last;    // (R, hidden) normalised rows that need logits
  std::vector<ScreenNorms> last_norms;  // (R) after a screened pass: ||x|| and ||x − x̂|| of each row of `last`
  std::vector<float> rope_cos, rope_sin;  // (T, head_dim/2) each: every token's RoPE rotation, for all layers
};

// Runs the batch; items must already be validated. logit_rows lists flat token indices (0..T-1, items' tokens in
// order) whose logits are written to `logits` as (logit_rows.size(), vocab): exact ones from the fp16 head, or with
// `screened`, approximate ones from w.screened (head_screen.h; s.last and s.last_norms keep what screen_row needs).
void forward_cpu(const Qwen3Config& cfg, const Qwen3Weights& w, const RopeTable& rope, KvPool& kv, ThreadPool& pool,
                 CpuRunState& s, const q3_batch_item* items, int n_items, const std::vector<int>& logit_rows,
                 float* logits, bool screened = false);

}  // namespace q3
