// The C ABI (include/qwen3.h): loading, the KV block allocator, sampler state, batched steps and one-sequence
// generation; the forward pass itself runs in a backend (backend.h) chosen at load time. Every entry point catches
// exceptions and turns them into a status plus a thread-local message.
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <chrono>
#include <cstring>
#include <limits>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <unordered_map>

#include "backend.h"
#include "config.h"
#include "cpu/bandwidth_cpu.h"
#include "cpu/head_screen.h"
#include "kv_cache.h"
#include "model.h"
#include "qwen3.h"
#include "rope.h"
#include "safetensors.h"
#include "sampler.h"
#include "threadpool.h"

namespace {

thread_local std::string g_error;

struct Error : std::runtime_error {
  q3_status status;
  Error(q3_status s, const std::string& m) : std::runtime_error(m), status(s) {}
};

template <typename F>
q3_status guarded(F&& f) {
  try {
    f();
    g_error.clear();
    return Q3_OK;
  } catch (const Error& e) {
    g_error = e.what();
    return e.status;
  } catch (const q3::DeviceError& e) {
    g_error = e.what();
    return Q3_ERR_DEVICE;
  } catch (const std::bad_alloc&) {
    g_error = "out of memory";
    return Q3_ERR_INTERNAL;
  } catch (const std::exception& e) {
    g_error = e.what();
    return Q3_ERR_FORMAT;
  }
}

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

}  // namespace

struct q3_engine {
  q3::Qwen3Config cfg;
  std::unique_ptr<q3::Checkpoint> ckpt;
  q3::RopeTable rope;
  std::unique_ptr<q3::Backend> backend;  // weights, KV storage and the forward pass
  std::unique_ptr<q3::KvPool> kv;        // block allocator only (refcounts); built with no layers, so no storage
  std::unordered_map<int64_t, q3::SeqSampler> seqs;
  int max_context = 0;
  std::string device;
  mutable std::mutex mu;  // one forward pass at a time; guards everything above
  q3_stats stats{};
  std::vector<float> logits;  // (rows, vocab) scratch
  // What the last q3_forward left in `logits` for q3_sample: the batch size and, per row, the item index and sequence
  // (empty once sampled or overwritten).
  int32_t forward_items = 0;
  std::vector<std::pair<int, int64_t>> forward_rows;
  bool forward_prefill = false;  // the last forward fed more than one token for some item (counted as prefill time)
  bool forward_deferred = false; // the backend samples on its device: the pass runs in q3_sample, with the masks
  bool forward_screened = false; // `logits` holds the screened head's approximate logits (backend.h)
};

namespace q3 {
ThreadPool* engine_cpu_thread_pool(q3_engine* e) { return e->backend->cpu_thread_pool(); }
}  // namespace q3

namespace {

void validate_item(const q3_engine* e, const q3_batch_item& it) {
  const int bs = e->kv->block_size();
  if (it.n_tokens <= 0) throw Error(Q3_ERR_ARGUMENT, "batch item has no tokens");
  if (it.pos < 0) throw Error(Q3_ERR_ARGUMENT, "negative position");
  if ((int64_t)it.pos + it.n_tokens > e->max_context)
    throw Error(Q3_ERR_ARGUMENT, "sequence of " + std::to_string((int64_t)it.pos + it.n_tokens) +
                                     " tokens exceeds the context of " + std::to_string(e->max_context) + " tokens");
  for (int j = 0; j < it.n_tokens; j++)
    if (it.tokens[j] < 0 || it.tokens[j] >= e->cfg.vocab_size)
      throw Error(Q3_ERR_ARGUMENT, "token id " + std::to_string(it.tokens[j]) + " at index " + std::to_string(j) +
                                       " is outside the vocabulary (0.." + std::to_string(e->cfg.vocab_size - 1) + ")");
  const int64_t needed = ((int64_t)it.pos + it.n_tokens + bs - 1) / bs;
  if (it.n_blocks < needed)
    throw Error(Q3_ERR_ARGUMENT, "block table has " + std::to_string(it.n_blocks) + " blocks, positions need " +
                                     std::to_string(needed));
  for (int64_t b = 0; b < needed; b++)
    if (!e->kv->is_live(it.block_table[b]))
      throw Error(Q3_ERR_ARGUMENT, "block table entry " + std::to_string(b) + " (" + std::to_string(it.block_table[b]) +
                                       ") is not an allocated KV block");
  if (it.sample && !e->seqs.count(it.seq_id))
    throw Error(Q3_ERR_ARGUMENT, "sequence " + std::to_string(it.seq_id) + " was not begun (q3_seq_begin)");
}

// Runs items through one forward pass; `wanted` lists (item, token index) of the rows whose logits go to e->logits,
// approximate ones from the screened head when `screened`.
void run_forward(q3_engine* e, const q3_batch_item* items, int n, const std::vector<std::pair<int, int>>& wanted,
                 bool screened = false) {
  e->forward_rows.clear();
  std::vector<int> logit_rows;
  std::vector<int> first(n);
  int t = 0;
  for (int i = 0; i < n; i++) {
    first[i] = t;
    t += items[i].n_tokens;
  }
  for (auto [item, j] : wanted) logit_rows.push_back(first[item] + j);
  e->logits.resize(logit_rows.size() * (size_t)e->cfg.vocab_size);
  e->forward_screened = screened;
  if (screened) e->backend->forward_screened(items, n, logit_rows, e->logits.data());
  else e->backend->forward(items, n, logit_rows, e->logits.data());
}

// One forward pass sampled on the backend's device, each row under its item's token mask; the results go into the
// sequences' histories here.
void sample_on_device(q3_engine* e, const q3_batch_item* items, int n, const std::vector<std::pair<int, int>>& wanted,
                      q3_sample_out* out) {
  std::vector<int> first(n), logit_rows;
  for (int i = 0, t = 0; i < n; t += items[i].n_tokens, i++) first[i] = t;
  std::vector<q3::SampleRequest> req;
  for (auto [item, j] : wanted) {
    logit_rows.push_back(first[item] + j);
    req.push_back({items[item].seq_id, &e->seqs.at(items[item].seq_id), items[item].token_mask});
  }
  std::vector<q3_sample_out> got(wanted.size());
  e->backend->forward_sample(items, n, logit_rows, req.data(), got.data());
  for (size_t r = 0; r < wanted.size(); r++) {
    q3::SeqSampler& s = e->seqs.at(items[wanted[r].first].seq_id);
    if (got[r].forced) s.forced.pop_front();
    q3::record_token(s, got[r].token);
    out[wanted[r].first] = got[r];
  }
}

}  // namespace

extern "C" {

const char* q3_last_error(void) { return g_error.c_str(); }

q3_status q3_engine_load(const char* model_dir, const q3_load_options* opts, q3_engine** out) {
  *out = nullptr;
  q3_load_options o{};
  if (opts) o = *opts;
  return guarded([&] {
    auto e = std::make_unique<q3_engine>();
    auto progress = [&](const char* stage, double f) {
      if (o.progress) o.progress(o.progress_user, stage, f);
    };
    if (o.device == Q3_DEVICE_CUDA) {  // fail before reading gigabytes
      std::string why;
      if (q3::cuda_device_count(&why) <= 0) throw Error(Q3_ERR_DEVICE, why);
    }
    progress("reading config", 0);
    try {
      e->cfg = q3::load_config(model_dir);
    } catch (const std::runtime_error& err) {
      throw Error(std::string(err.what()).find("missing or unreadable") != std::string::npos ? Q3_ERR_IO : Q3_ERR_FORMAT,
                  err.what());
    }
    if (o.yarn_factor > 0) q3::override_yarn(e->cfg, o.yarn_factor, o.yarn_original_max);
    e->rope = q3::build_rope_table(e->cfg);
    progress("mapping checkpoint", 0);
    try {
      e->ckpt = std::make_unique<q3::Checkpoint>(model_dir);
    } catch (const std::runtime_error& err) {
      throw Error(Q3_ERR_IO, err.what());
    }
    const int bs = o.kv_block_size > 0 ? o.kv_block_size : 16;
    // AUTO takes CUDA when this build has it, a device is visible and the kernels fit the model; else the CPU.
    bool cuda = o.device == Q3_DEVICE_CUDA;
    if (o.device == Q3_DEVICE_AUTO)
      cuda = q3::cuda_device_count() > 0 && q3::cuda_unsupported_reason(e->cfg, bs).empty();
    if (cuda) {
      const std::string why = q3::cuda_unsupported_reason(e->cfg, bs);
      if (!why.empty()) throw Error(Q3_ERR_DEVICE, why);
      if (o.cuda_gemv_max < -1 || o.cuda_gemv_max > 16)
        throw Error(Q3_ERR_ARGUMENT, "cuda_gemv_max must be -1 (never), 0 (default) or 1..16, got " +
                                         std::to_string(o.cuda_gemv_max));
      q3::CudaOptions co;
      co.gemv_max = o.cuda_gemv_max == 0 ? 4 : std::max(o.cuda_gemv_max, 0);
      co.graphs = !o.cuda_no_graphs;
      co.device_sampling = !o.cuda_host_sampling;
      e->backend = q3::make_cuda_backend(*e->ckpt, e->cfg, e->rope, co, progress);
    } else {
      if (o.cpu_head < 0 || o.cpu_head > 2)
        throw Error(Q3_ERR_ARGUMENT, "cpu_head must be 0 (auto), 1 (full) or 2 (screened), got " +
                                         std::to_string(o.cpu_head));
      const bool screened = o.cpu_head == 2 || (o.cpu_head == 0 && q3::screened_head_fast());
      e->backend = q3::make_cpu_backend(*e->ckpt, e->cfg, e->rope, o.n_threads, screened, progress);
    }

    int ctx = e->cfg.max_position_embeddings;
    if (e->cfg.rope.yarn && o.yarn_factor > 0)
      ctx = std::max(ctx, (int)(e->cfg.rope.original_max_position * e->cfg.rope.factor));
    e->max_context = o.max_context > 0 ? o.max_context : ctx;
    const size_t per_token = e->backend->kv_bytes_per_token();
    int blocks = o.kv_blocks;
    if (blocks <= 0) {
      size_t bytes = o.kv_cache_mib > 0 ? (size_t)o.kv_cache_mib << 20
                                        : std::min<size_t>((size_t)4 * e->max_context * per_token, (size_t)2 << 30);
      blocks = (int)std::max<size_t>(1, bytes / (per_token * bs));
    }
    progress("allocating KV cache", 0);
    e->backend->allocate_kv(bs, blocks);
    e->kv = std::make_unique<q3::KvPool>(/*n_layers=*/0, e->cfg.n_kv_heads, e->cfg.head_dim, bs, blocks);
    e->device = e->backend->name();
    progress("ready", 1);
    *out = e.release();
  });
}

void q3_engine_free(q3_engine* e) { delete e; }

void q3_engine_info(const q3_engine* e, q3_info* out) {
  std::lock_guard<std::mutex> lock(e->mu);
  const q3::Qwen3Config& c = e->cfg;
  *out = q3_info{};
  out->hidden_size = c.hidden_size;
  out->intermediate_size = c.intermediate_size;
  out->n_layers = c.n_layers;
  out->n_heads = c.n_heads;
  out->n_kv_heads = c.n_kv_heads;
  out->head_dim = c.head_dim;
  out->vocab_size = c.vocab_size;
  out->group_size = c.group_size;
  out->max_context = e->max_context;
  out->rope_theta = c.rope_theta;
  out->rms_norm_eps = c.rms_norm_eps;
  out->tie_word_embeddings = c.tie_word_embeddings;
  out->yarn_enabled = c.rope.yarn;
  out->yarn_factor = c.rope.yarn ? c.rope.factor : 1.0;
  out->yarn_attention_factor = e->rope.attention_factor;
  out->kv_block_size = e->kv->block_size();
  out->kv_blocks = e->kv->n_blocks();
  out->n_eos = (int32_t)std::min<size_t>(8, c.eos_ids.size());
  for (int i = 0; i < out->n_eos; i++) out->eos_ids[i] = c.eos_ids[i];
  out->weight_bytes_per_token = e->backend->weight_bytes_per_token();
  out->full_head_bytes_per_token = e->backend->full_head_bytes_per_token();
  out->kv_bytes_per_token = (int64_t)e->backend->kv_bytes_per_token();  // as stored by the backend (fp16 on both)
  std::snprintf(out->device, sizeof out->device, "%s", e->device.c_str());
}

q3_status q3_kv_alloc(q3_engine* e, int32_t n, int32_t* out_ids) {
  std::lock_guard<std::mutex> lock(e->mu);
  return guarded([&] {
    if (n < 0) throw Error(Q3_ERR_ARGUMENT, "negative block count");
    if (!e->kv->alloc(n, out_ids))
      throw Error(Q3_ERR_CAPACITY, "out of KV blocks: " + std::to_string(n) + " requested, " +
                                       std::to_string(e->kv->free_blocks()) + " free");
  });
}

void q3_kv_retain(q3_engine* e, const int32_t* ids, int32_t n) {
  std::lock_guard<std::mutex> lock(e->mu);
  e->kv->retain(ids, n);
}

void q3_kv_release(q3_engine* e, const int32_t* ids, int32_t n) {
  std::lock_guard<std::mutex> lock(e->mu);
  e->kv->release(ids, n);
}

int32_t q3_kv_free_blocks(const q3_engine* e) {
  std::lock_guard<std::mutex> lock(e->mu);
  return e->kv->free_blocks();
}

q3_status q3_seq_begin(q3_engine* e, int64_t seq_id, const int32_t* prompt, int32_t n_prompt, const q3_sampling* s) {
  std::lock_guard<std::mutex> lock(e->mu);
  return guarded([&] {
    if (e->seqs.count(seq_id)) throw Error(Q3_ERR_ARGUMENT, "sequence " + std::to_string(seq_id) + " already exists");
    if (s->n_logprobs < 0 || s->n_logprobs > Q3_MAX_LOGPROBS)
      throw Error(Q3_ERR_ARGUMENT, "logprobs must be between 0 and " + std::to_string(Q3_MAX_LOGPROBS));
    e->seqs.emplace(seq_id, q3::SeqSampler(*s, prompt, n_prompt));
  });
}

q3_status q3_seq_force(q3_engine* e, int64_t seq_id, const int32_t* tokens, int32_t n) {
  std::lock_guard<std::mutex> lock(e->mu);
  return guarded([&] {
    auto it = e->seqs.find(seq_id);
    if (it == e->seqs.end()) throw Error(Q3_ERR_ARGUMENT, "unknown sequence " + std::to_string(seq_id));
    for (int i = 0; i < n; i++) {
      if (tokens[i] < 0 || tokens[i] >= e->cfg.vocab_size)
        throw Error(Q3_ERR_ARGUMENT, "forced token id " + std::to_string(tokens[i]) + " is outside the vocabulary");
    }
    it->second.forced.insert(it->second.forced.end(), tokens, tokens + n);
  });
}

void q3_seq_end(q3_engine* e, int64_t seq_id) {
  std::lock_guard<std::mutex> lock(e->mu);
  if (e->seqs.erase(seq_id)) e->backend->forget_sequence(seq_id);
}

}  // extern "C"

namespace {

// Validates a batch and runs its forward pass, keeping the sampled rows' logits for sample_batch (caller holds mu).
// A backend that samples on its device needs the masks in the same pass: then only the checks run here, and the
// pass itself in sample_batch.
void forward_batch(q3_engine* e, const q3_batch_item* items, int32_t n_items) {
  std::vector<std::pair<int, int>> wanted;
  int64_t tokens = 0;
  for (int i = 0; i < n_items; i++) {
    try {
      validate_item(e, items[i]);
    } catch (const Error& err) {  // nothing has run yet: name the item so the caller can drop just that sequence
      throw Error(err.status, "batch item " + std::to_string(i) + " (sequence " + std::to_string(items[i].seq_id) +
                                  "): " + err.what());
    }
    tokens += items[i].n_tokens;
    if (items[i].sample) wanted.push_back({i, items[i].n_tokens - 1});
  }
  e->forward_deferred = e->backend->samples_on_device() && !wanted.empty();
  // The screened head when every sampled row can take it (one pass over one copy of the head for the batch)
  e->forward_screened = !e->forward_deferred && !wanted.empty() && e->backend->has_screened_head();
  for (auto [i, _] : wanted)
    e->forward_screened = e->forward_screened && q3::screen_needs(e->seqs.at(items[i].seq_id), nullptr);
  auto t0 = Clock::now();
  if (e->forward_deferred) e->forward_rows.clear();
  else run_forward(e, items, n_items, wanted, e->forward_screened);
  for (auto [i, _] : wanted) e->forward_rows.push_back({i, items[i].seq_id});
  e->forward_items = n_items;
  double dt = seconds_since(t0);
  e->stats.steps++;
  e->forward_prefill = tokens > n_items;
  if (e->forward_prefill) {
    e->stats.prefill_tokens += tokens;
    e->stats.prefill_seconds += dt;
  } else {
    e->stats.decode_tokens += tokens;
    e->stats.decode_seconds += dt;
  }
}

// Samples every row of the last forward_batch for the same items, with their token masks (caller holds mu).
void sample_batch(q3_engine* e, const q3_batch_item* items, int32_t n_items, q3_sample_out* out) {
  size_t rows = 0;
  for (int i = 0; i < n_items; i++) rows += items[i].sample ? 1 : 0;
  bool same = n_items == e->forward_items && rows == e->forward_rows.size();
  for (size_t r = 0; same && r < rows; r++) {
    const auto [i, seq] = e->forward_rows[r];
    same = items[i].sample && items[i].seq_id == seq;
  }
  if (!same) throw Error(Q3_ERR_ARGUMENT, "q3_sample: the items are not those of the last q3_forward");
  const int vocab = e->cfg.vocab_size;
  for (size_t r = 0; r < rows; r++) {  // every check before the first draw: a failed call samples nothing
    const int i = e->forward_rows[r].first;
    if (!e->seqs.count(items[i].seq_id))
      throw Error(Q3_ERR_ARGUMENT, "batch item " + std::to_string(i) + ": sequence " + std::to_string(items[i].seq_id) +
                                       " ended before sampling");
    if (items[i].token_mask && !q3::mask_allows_any(items[i].token_mask, vocab))
      throw Error(Q3_ERR_ARGUMENT, "batch item " + std::to_string(i) + " (sequence " + std::to_string(items[i].seq_id) +
                                       "): token mask allows no token");
  }
  auto t0 = Clock::now();
  if (e->forward_deferred) {
    std::vector<std::pair<int, int>> wanted;
    for (auto [i, _] : e->forward_rows) wanted.push_back({i, items[i].n_tokens - 1});
    sample_on_device(e, items, n_items, wanted, out);
  } else {
    q3::ScreenNeeds needs;
    std::vector<int32_t> candidates;  // a screened row's exact tokens: its sample reads only those
    for (size_t r = 0; r < rows; r++) {
      const int i = e->forward_rows[r].first;
      q3::SeqSampler& s = e->seqs.at(items[i].seq_id);
      float* logits = &e->logits[r * (size_t)vocab];
      bool screened = false;
      candidates.clear();
      if (e->forward_screened) {
        // A sequence ended and begun again (same id, other sampling) since the pass gets its whole row.
        screened = q3::screen_needs(s, &needs);
        if (!screened) needs.top_k = 0;
        e->stats.head_exact_rows +=
            e->backend->finish_screened_row((int)r, needs, items[i].token_mask, logits, candidates);
        e->stats.head_screened_rows += screened ? 1 : 0;
      }
      q3::sample_token(s, logits, vocab, items[i].token_mask, &out[i], screened ? candidates.data() : nullptr,
                       screened ? (int)candidates.size() : 0);
      if (screened) out[i].logprob = std::numeric_limits<float>::quiet_NaN();  // the caller said it ignores it
    }
  }
  e->forward_rows.clear();
  e->forward_deferred = false;
  e->forward_screened = false;
  (e->forward_prefill ? e->stats.prefill_seconds : e->stats.decode_seconds) += seconds_since(t0);
}

}  // namespace

extern "C" {

q3_status q3_step(q3_engine* e, const q3_batch_item* items, int32_t n_items, q3_sample_out* out) {
  std::lock_guard<std::mutex> lock(e->mu);
  return guarded([&] {
    forward_batch(e, items, n_items);
    sample_batch(e, items, n_items, out);
  });
}

q3_status q3_forward(q3_engine* e, const q3_batch_item* items, int32_t n_items) {
  std::lock_guard<std::mutex> lock(e->mu);
  return guarded([&] { forward_batch(e, items, n_items); });
}

q3_status q3_sample(q3_engine* e, const q3_batch_item* items, int32_t n_items, q3_sample_out* out) {
  std::lock_guard<std::mutex> lock(e->mu);
  return guarded([&] { sample_batch(e, items, n_items, out); });
}

q3_status q3_logits(q3_engine* e, const q3_batch_item* item, int32_t all_positions, float* out) {
  std::lock_guard<std::mutex> lock(e->mu);
  return guarded([&] {
    q3_batch_item it = *item;
    it.sample = 0;
    validate_item(e, it);
    std::vector<std::pair<int, int>> wanted;
    for (int j = all_positions ? 0 : it.n_tokens - 1; j < it.n_tokens; j++) wanted.push_back({0, j});
    run_forward(e, &it, 1, wanted);
    std::memcpy(out, e->logits.data(), e->logits.size() * sizeof(float));
  });
}

}  // extern "C"

namespace {

// The one check of a whole prompt against the engine (empty, or longer than the context); sets the error message.
q3_status check_prompt(const q3_engine* e, int32_t n_prompt) {
  int max_context;
  {
    std::lock_guard<std::mutex> lock(e->mu);
    max_context = e->max_context;
  }
  if (n_prompt <= 0) {
    g_error = "empty prompt";
    return Q3_ERR_ARGUMENT;
  }
  if (n_prompt > max_context) {
    g_error = "prompt of " + std::to_string(n_prompt) + " tokens exceeds the context of " + std::to_string(max_context) + " tokens";
    return Q3_ERR_ARGUMENT;
  }
  return Q3_OK;
}

}  // namespace

extern "C" {

q3_status q3_prompt_logits(q3_engine* e, const int32_t* prompt, int32_t n_prompt, int32_t all_positions, float* out) {
  q3_status st = check_prompt(e, n_prompt);
  if (st != Q3_OK) return st;
  int bs;
  {
    std::lock_guard<std::mutex> lock(e->mu);
    bs = e->kv->block_size();
  }
  std::vector<int32_t> blocks((n_prompt + bs - 1) / bs);
  if ((st = q3_kv_alloc(e, (int32_t)blocks.size(), blocks.data())) != Q3_OK) return st;
  q3_batch_item it{-1, prompt, n_prompt, 0, blocks.data(), (int32_t)blocks.size(), 0, nullptr};
  st = q3_logits(e, &it, all_positions, out);
  std::string err = g_error;
  q3_kv_release(e, blocks.data(), (int32_t)blocks.size());
  g_error = err;
  return st;
}

q3_status q3_generate(q3_engine* e, const int32_t* prompt, int32_t n_prompt, const q3_generate_params* p,
                      q3_token_fn on_token, void* user, q3_finish* finish) {
  *finish = Q3_FINISH_NONE;
  q3_status st = check_prompt(e, n_prompt);
  if (st != Q3_OK) return st;
  // One sequence id per call, outside the range callers of q3_seq_begin are expected to use.
  static std::atomic<int64_t> next_id{INT64_C(1) << 62};
  const int64_t seq_id = next_id++;
  int bs;
  int max_context;
  {
    std::lock_guard<std::mutex> lock(e->mu);
    bs = e->kv->block_size();
    max_context = e->max_context;
  }
  std::vector<int32_t> blocks;
  auto release = [&] {
    q3_kv_release(e, blocks.data(), (int32_t)blocks.size());
    q3_seq_end(e, seq_id);
  };
  auto grow = [&](int64_t tokens) -> q3_status {
    int64_t need = (tokens + bs - 1) / bs - (int64_t)blocks.size();
    if (need <= 0) return Q3_OK;
    std::vector<int32_t> fresh(need);
    q3_status st = q3_kv_alloc(e, (int32_t)need, fresh.data());
    if (st == Q3_OK) blocks.insert(blocks.end(), fresh.begin(), fresh.end());
    return st;
  };
  if ((st = q3_seq_begin(e, seq_id, prompt, n_prompt, &p->sampling)) != Q3_OK) return st;
  std::vector<int32_t> eos;
  {
    std::lock_guard<std::mutex> lock(e->mu);
    eos = e->cfg.eos_ids;
  }
  eos.insert(eos.end(), p->stop_ids, p->stop_ids + p->n_stop);

  std::vector<int32_t> feed(prompt, prompt + n_prompt);
  int32_t pos = 0;
  for (int32_t produced = 0;; produced++) {
    if (produced >= p->max_tokens) {
      *finish = Q3_FINISH_LENGTH;
      break;
    }
    if (pos + (int64_t)feed.size() > max_context) {
      *finish = Q3_FINISH_LENGTH;
      break;
    }
    if ((st = grow(pos + (int64_t)feed.size())) != Q3_OK) break;
    q3_batch_item it{seq_id, feed.data(), (int32_t)feed.size(), pos, blocks.data(), (int32_t)blocks.size(), 1, nullptr};
    q3_sample_out out{};
    if ((st = q3_step(e, &it, 1, &out)) != Q3_OK) break;
    pos += (int32_t)feed.size();
    if (on_token(user, &out)) {
      *finish = Q3_FINISH_CANCELLED;
      break;
    }
    if (std::find(eos.begin(), eos.end(), out.token) != eos.end()) {
      *finish = Q3_FINISH_STOP;
      break;
    }
    if (pos + 1 >= max_context) {  // prompt + output never exceed the context (vLLM's max_model_len semantics)
      *finish = Q3_FINISH_LENGTH;
      break;
    }
    feed.assign(1, out.token);
  }
  std::string err = g_error;
  release();
  g_error = err;
  return st;
}

void q3_engine_stats(const q3_engine* e, q3_stats* out) {
  std::lock_guard<std::mutex> lock(e->mu);
  *out = e->stats;
  out->kv_blocks_total = e->kv->n_blocks();
  out->kv_blocks_used = e->kv->n_blocks() - e->kv->free_blocks();
  out->sequences = (int32_t)e->seqs.size();
}

int32_t q3_cuda_device_count(void) { return q3::cuda_device_count(); }

double q3_measure_read_bandwidth(int32_t n_threads, int64_t bytes) {
  try {
    q3::ThreadPool pool(n_threads);
    return q3::measure_read_bandwidth_cpu(pool, (size_t)bytes).best_gbs;
  } catch (const std::exception& ex) {
    g_error = ex.what();
    return 0;
  }
}

}  // extern "C"
