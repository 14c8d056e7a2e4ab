// Qwen3 forward pass on the CPU, read top to bottom: embed → per layer [rmsnorm → qkv → q/k-norm → RoPE → KV write →
// GQA attention → o_proj → residual → rmsnorm → gate/up → SwiGLU → down → residual] → final norm → lm_head.
#include "forward_cpu.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "awq_cpu.h"
#include "f16_matmul_cpu.h"
#include "ops_cpu.h"
#include "phases_cpu.h"

namespace q3 {
namespace {

constexpr size_t kSwigluChunk = 2048;  // values per SwiGLU task: a few microseconds
constexpr int kNormRing = 4;            // places a decode step writes its normalised rows to in turn

// A decode token's attention split by position (attention_blocks_cpu), from kSplitMinPositions positions on where a
// SIMD path runs: parts of about a quarter of the longest sequence per thread pair (so that each thread has two to
// take), kept within kPartPositions. native/dev/cpu/attention_cold.cpp on a 2-core Zen 4, a step's attention with its
// K/V rows cold: 0.94-0.96x the time of one task per KV head at 511 and 1,023 positions, 0.81-0.91x at 4,095, and
// 1.43x at 255 with one range for two threads (bench/results/cpu-attention-split.md; docs/cpu-work-split.md).
// Q3_ATTENTION=heads or =positions forces either, for benchmarks (read once).
constexpr int kSplitMinPositions = 512;
constexpr int kPartPositions[2] = {128, 512};

int split_min_positions() {
  static const int min = [] {
    const char* e = std::getenv("Q3_ATTENTION");
    if (e && std::strcmp(e, "heads") == 0) return 1 << 30;
    if (e && std::strcmp(e, "positions") == 0) return 0;
    return kSplitMinPositions;
  }();
  return min;
}

struct TokenRef {
  int item;  // index into items
  int pos;   // absolute position in its sequence
};

void ensure_capacity(CpuRunState& s, const Qwen3Config& c, int T) {
  if (T <= s.capacity) return;
  const size_t qkv_dim = (size_t)(c.n_heads + 2 * c.n_kv_heads) * c.head_dim;
  s.x.resize((size_t)T * c.hidden_size);
  s.xn.resize((size_t)std::max(T, 2 * kNormRing) * c.hidden_size);
  s.qkv.resize((size_t)T * qkv_dim);
  s.att.resize((size_t)T * c.n_heads * c.head_dim);
  s.proj.resize((size_t)T * c.hidden_size);
  s.gate_up.resize((size_t)T * 2 * c.intermediate_size);
  s.act.resize((size_t)T * c.intermediate_size);
  s.rope_cos.resize((size_t)T * c.head_dim / 2);
  s.rope_sin.resize((size_t)T * c.head_dim / 2);
  s.capacity = T;
}

}  // namespace

void forward_cpu(const Qwen3Config& c, const Qwen3Weights& w, const RopeTable& rope, KvPool& kv, ThreadPool& pool,
                 CpuRunState& s, const q3_batch_item* items, int n_items, const std::vector<int>& logit_rows,
                 float* logits, bool screened) {
  const int H = c.hidden_size, I = c.intermediate_size, D = c.head_dim;
  const int NH = c.n_heads, NKV = c.n_kv_heads, group = NH / NKV;
  const int q_dim = NH * D, kv_dim = NKV * D, qkv_dim = q_dim + 2 * kv_dim;
  const int bs = kv.block_size();
  const float eps = (float)c.rms_norm_eps, scale = 1.0f / std::sqrt((float)D);

  std::vector<TokenRef> toks;
  for (int i = 0; i < n_items; i++)
    for (int j = 0; j < items[i].n_tokens; j++) toks.push_back({i, items[i].pos + j});
  const int T = (int)toks.size();
  ensure_capacity(s, c, T);
  int max_pos = 0;
  for (const TokenRef& t : toks) max_pos = std::max(max_pos, t.pos);

  // embed, and each token's RoPE cos/sin (shared by every head of every layer)
  phases::Scope phase(phases::kEmbed);  // time per phase when profiling (qwen3 bench --phases)
  for (int t = 0, i = 0; i < n_items; i++)
    for (int j = 0; j < items[i].n_tokens; j++, t++) embed_row_cpu(w.embed, H, items[i].tokens[j], &s.x[(size_t)t * H]);
  for (int t = 0; t < T; t++)
    rope_cos_sin_cpu(toks[t].pos, rope, D, &s.rope_cos[(size_t)t * D / 2], &s.rope_sin[(size_t)t * D / 2]);

  // A decode step's normalised rows go to kNormRing places in turn. Every thread reads them (each quantises them for
  // itself), and rewriting rows that the other core read a moment ago costs a round trip per line to take them back:
  // in the fast memory mode the two RMSNorms took 0.40 ms of a step with one place, 0.21 with four
  // (bench/results/cpu-zen4-between-matmuls.md).
  int norms = 0;
  auto next_xn = [&]() { return T > 2 ? s.xn.data() : &s.xn[(size_t)(norms++ % kNormRing) * 2 * H]; };

  // In a decode step (one token per sequence) each attention task, one per token and kv head, first does its head's
  // q/k norm, RoPE and K/V write: no other task reads those rows, and it saves a pass on one thread (a token is one
  // task) and a fork and join per layer. With more tokens per sequence, a token's attention reads the rows of the
  // tokens before it, so they are all written first, in a pass of their own.
  const bool decode = std::all_of(items, items + n_items, [](const q3_batch_item& it) { return it.n_tokens == 1; });

  // A decode step's attention split by position (kSplitMinPositions): token t's parts are tasks parts_first[t] ..
  // parts_first[t + 1] - 1; parts_left[t] counts those not yet done, per layer.
  const bool split = decode && max_pos + 1 >= split_min_positions() && attention_blocks_available(D, bs);
  const int part_positions = std::clamp((max_pos + 1 + 2 * pool.size() - 1) / (2 * pool.size()), kPartPositions[0],
                                        kPartPositions[1]);
  const int part_blocks = (part_positions + bs - 1) / bs;
  std::vector<int> parts_first(T + 1, 0);
  std::unique_ptr<std::atomic<int>[]> parts_left;
  if (split) {
    for (int t = 0; t < T; t++) parts_first[t + 1] = parts_first[t] + (toks[t].pos / bs + part_blocks) / part_blocks;
    parts_left.reset(new std::atomic<int>[T]);
    s.att_parts.resize((size_t)parts_first[T] * q_dim);
    s.att_max.resize((size_t)parts_first[T] * NH);
    s.att_sum.resize((size_t)parts_first[T] * NH);
  }

  for (int l = 0; l < c.n_layers; l++) {
    const LayerWeights& L = w.layers[l];

    // rmsnorm → qkv (q | k | v fused along N)
    phase.next(phases::kNorm);
    float* xn = next_xn();
    for (int t = 0; t < T; t++) rmsnorm_cpu(&s.x[(size_t)t * H], L.input_norm.data(), H, eps, &xn[(size_t)t * H]);
    phase.next(phases::kQkv, L.qkv.bytes_read());
    awq_matmul_cpu(L.qkv, xn, T, s.qkv.data(), pool);

    // Per-head q/k RMSNorm over head_dim, then RoPE, then K and V into the sequence's blocks: token t's kv heads
    // [h0, h1) and the query heads that read them.
    auto norm_rope_write = [&](int t, int h0, int h1) {
      float* q = &s.qkv[(size_t)t * qkv_dim];
      float* k = q + q_dim;
      const float* v = k + kv_dim;
      const int pos = toks[t].pos;
      const float* cos = &s.rope_cos[(size_t)t * D / 2];
      const float* sin = &s.rope_sin[(size_t)t * D / 2];
      for (int h = h0 * group; h < h1 * group; h++) {
        rmsnorm_cpu(q + h * D, L.q_norm.data(), D, eps, q + h * D);
        rope_rotate_cpu(q + h * D, D, cos, sin);
      }
      const int32_t block = items[toks[t].item].block_table[pos / bs];
      for (int h = h0; h < h1; h++) {
        rmsnorm_cpu(k + h * D, L.k_norm.data(), D, eps, k + h * D);
        rope_rotate_cpu(k + h * D, D, cos, sin);
        narrow_f16(k + h * D, D, kv.k(block, l) + ((size_t)h * bs + pos % bs) * D);  // stored in fp16 (kv_cache.h)
        narrow_f16(v + h * D, D, kv.v(block, l) + ((size_t)h * bs + pos % bs) * D);
      }
    };
    // In a decode step the attention task of a kv head does that head's part first (see `decode` above), unless the
    // attention is split by position: then each token's heads first, as with more tokens per sequence.
    if (!decode || split) {
      phase.next(phases::kQkRopeKv);
      pool.parallel_for(T, [&](int t) { norm_rope_write(t, 0, NKV); });
    }

    // GQA attention: the `group` query heads of kv head h read it together, straight from the cache (each K/V row
    // once per token, no copies). One task per token and kv head, claimed in turn: when another process holds a
    // core, the thread that runs takes what the other has not started instead of waiting for it (so does SwiGLU).
    phase.next(phases::kAttention);
    if (split) {
      // By position: token t's tasks are parts_first[t] .. parts_first[t + 1] - 1, each over part_blocks of its
      // blocks and all its heads; the part that finishes last merges them. A token of one part writes its attention.
      for (int t = 0; t < T; t++) parts_left[t].store(parts_first[t + 1] - parts_first[t], std::memory_order_relaxed);
      phases::Region region;
      pool.parallel_dynamic(parts_first[T], [&](int task) {
        phases::Chunk timed;
        const int t = (int)(std::upper_bound(parts_first.begin(), parts_first.end(), task) - parts_first.begin()) - 1;
        const int p = task - parts_first[t], parts = parts_first[t + 1] - parts_first[t];
        const int blocks = toks[t].pos / bs + 1, b0 = p * part_blocks, b1 = std::min(blocks, b0 + part_blocks);
        const int32_t* table = items[toks[t].item].block_table;
        const float* q = &s.qkv[(size_t)t * qkv_dim];
        float* att = &s.att[(size_t)t * q_dim];
        thread_local std::vector<float> scores;
        scores.resize((size_t)NH * part_blocks * bs);
        if (parts == 1)
          return attention_blocks_cpu(q, NH, group, kv, l, table, b0, b1, toks[t].pos, D, scale, scores.data(), att,
                                      nullptr, nullptr);
        const size_t at = (size_t)parts_first[t] + p;
        attention_blocks_cpu(q, NH, group, kv, l, table, b0, b1, toks[t].pos, D, scale, scores.data(),
                             &s.att_parts[at * q_dim], &s.att_max[at * NH], &s.att_sum[at * NH]);
        if (parts_left[t].fetch_sub(1, std::memory_order_acq_rel) == 1) {
          const size_t first = parts_first[t];
          attention_merge_cpu(parts, NH, D, &s.att_parts[first * q_dim], &s.att_max[first * NH],
                              &s.att_sum[first * NH], att);
        }
      });
    } else {
      phases::Region region;
      pool.parallel_dynamic(T * NKV, [&](int task) {
        phases::Chunk timed;
        thread_local std::vector<float> scores;
        scores.resize((size_t)group * (max_pos + 1));
        const int t = task / NKV, h = task % NKV;
        if (decode) norm_rope_write(t, h, h + 1);
        attention_group_cpu(&s.qkv[(size_t)t * qkv_dim + h * group * D], group, kv, l, h,
                            items[toks[t].item].block_table, toks[t].pos, D, scale, scores.data(),
                            &s.att[(size_t)t * q_dim + h * group * D]);
      });
    }

    // o_proj → residual
    phase.next(phases::kO, L.o.bytes_read());
    awq_matmul_cpu(L.o, s.att.data(), T, s.proj.data(), pool);
    phase.next(phases::kResidual);
    for (size_t i = 0; i < (size_t)T * H; i++) s.x[i] += s.proj[i];

    // rmsnorm → gate|up → SwiGLU → down → residual
    phase.next(phases::kNorm);
    xn = next_xn();
    for (int t = 0; t < T; t++) rmsnorm_cpu(&s.x[(size_t)t * H], L.post_norm.data(), H, eps, &xn[(size_t)t * H]);
    phase.next(phases::kGateUp, L.gate_up.bytes_read());
    awq_matmul_cpu(L.gate_up, xn, T, s.gate_up.data(), pool);
    phase.next(phases::kSwiglu);
    // SwiGLU split across the threads (exp is the costliest per-element step between the matmuls), in chunks of
    // kSwigluChunk values claimed in turn
    {
      phases::Region region;
      const size_t n_values = (size_t)T * I;
      pool.parallel_dynamic((int)((n_values + kSwigluChunk - 1) / kSwigluChunk), [&](int c) {
        phases::Chunk timed;
        const size_t e0 = (size_t)c * kSwigluChunk, e1 = std::min(n_values, e0 + kSwigluChunk);
        for (size_t e = e0; e < e1;) {
          const size_t t = e / I, i = e % I, n = std::min(e1 - e, (size_t)I - i);
          const float* g = &s.gate_up[t * 2 * I + i];
          silu_mul_cpu(g, g + I, (int)n, &s.act[t * I + i]);
          e += n;
        }
      });
    }
    phase.next(phases::kDown, L.down.bytes_read());
    awq_matmul_cpu(L.down, s.act.data(), T, s.proj.data(), pool);
    phase.next(phases::kResidual);
    for (size_t i = 0; i < (size_t)T * H; i++) s.x[i] += s.proj[i];
  }

  // final norm and lm_head, only for the rows whose logits are needed
  const int R = (int)logit_rows.size();
  if (R == 0) return;
  phase.next(phases::kLmHead, screened ? (double)w.screened.bytes_read() : (double)c.vocab_size * H * sizeof(uint16_t));
  s.last.resize((size_t)R * H);
  for (int r = 0; r < R; r++)
    rmsnorm_cpu(&s.x[(size_t)logit_rows[r] * H], w.final_norm.data(), H, eps, &s.last[(size_t)r * H]);
  if (screened) {
    s.last_norms.resize(R);
    screened_head_approx(w.screened, s.last.data(), R, logits, s.last_norms.data(), pool);
  } else {
    f16_matmul_cpu(w.lm_head, c.vocab_size, H, s.last.data(), R, logits, pool);
  }
}

}  // namespace q3
