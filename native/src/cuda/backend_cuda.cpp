// The CUDA backend behind the C ABI: device weights, a paged fp16 KV cache on the device, and batches cut into
// passes of bounded size, each described by one metadata upload (token ids, positions, block tables, sampling rows),
// run through forward_cuda and then sampled on the device (native/kernels/cuda/sampling.cuh), so only token ids and the
// requested logprobs come back; q3_logits (and the host-sampling option) copy logits instead. Decode-only passes
// replay a CUDA graph per (batch, context) bucket that holds the whole step: forward, sampling and the copy back.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "../backend.h"
#include "forward_cuda.h"
#include "sample_row.h"
#include "weights_cuda.h"

namespace q3 {
namespace {

constexpr int kMaxPassTokens = 2048;  // rows per forward pass (activation buffers are sized for it)
constexpr int kMaxLogitRows = 256;    // rows of logits per pass (device and pinned host buffers)
constexpr int kMaxGraphBatch = 256;   // decode batches up to this size replay a captured graph
constexpr int kKvBlock = 16;          // tokens per KV block, fixed by the kernels

int round_up_pow2(int x, int lo) {
  int r = lo;
  while (r < x) r *= 2;
  return r;
}

// Pinned host memory of `count` T, freed on destruction.
template <class T>
class PinnedArray {
 public:
  ~PinnedArray() { reset(); }
  void resize(size_t count) {
    if (count <= n_ && p_) return;
    reset();
    void* p = nullptr;
    Q3_CK(cudaHostAlloc(&p, std::max<size_t>(count, 1) * sizeof(T), cudaHostAllocDefault));
    p_ = static_cast<T*>(p);
    n_ = count;
  }
  void reset() {
    if (p_) cudaFreeHost(p_);
    p_ = nullptr;
    n_ = 0;
  }
  T* get() const { return p_; }
  size_t size() const { return n_; }

 private:
  T* p_ = nullptr;
  size_t n_ = 0;
};

// Tokens [first, first + n) of items[item].
struct Piece {
  int item, first, n;
};

// Host side of one pass: the metadata arrays in upload order and, per logits row, where it goes in the output.
struct PassPlan {
  CudaPass dims;                // sizes; pointers filled once the metadata sits on the device
  std::vector<int32_t> meta;    // ids | pos | slots | block_tables | ctx_lens | cu_q | logit_rows, then when
                                // sampling: rows (cuda::SampleRow) | bitmasks | penalty-history seeds
  size_t off_ids = 0, off_pos = 0, off_slots = 0, off_bt = 0, off_ctx = 0, off_cu = 0, off_rows = 0;
  std::vector<int> row_out;     // (R) output row (index into the engine's logit_rows) of each logits row, -1: none
  int real_rows = 0;            // logits rows that belong to real tokens (a graph pads the rest)
  // sampling
  size_t off_params = 0;
  std::vector<size_t> off_mask;                 // (R) word offset of the row's bitmask, 0: none
  std::vector<std::pair<int, size_t>> seeds;    // (history slot, word offset of its (token, value) pairs)
  std::vector<int> seed_pairs;                  // pairs per seed
};

// The metadata words of one array, 16-byte aligned.
void put(std::vector<int32_t>& meta, const int32_t* v, size_t n, size_t& off) {
  off = meta.size();
  meta.insert(meta.end(), v, v + n);
  meta.resize((meta.size() + 3) / 4 * 4);
}

class CudaBackend final : public Backend {
 public:
  CudaBackend(const Checkpoint& ckpt, const Qwen3Config& cfg, const RopeTable& rope, const CudaOptions& opt,
              const ProgressFn& progress)
      : cfg_(cfg), opt_(opt) {
    Q3_CK(cudaSetDevice(device_));
    cudaDeviceProp prop{};
    Q3_CK(cudaGetDeviceProperties(&prop, device_));
    device_name_ = prop.name;
    num_sms_ = prop.multiProcessorCount;
    Q3_CK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    opt_.gemv_max = std::clamp(opt_.gemv_max, 0, 16);
    try {
      load_weights_cuda(ckpt, cfg, rope, w_, progress, stream_);
    } catch (...) {
      cudaStreamDestroy(stream_);  // the destructor does not run for a half-built object
      throw;
    }
  }

  ~CudaBackend() override {
    clear_graphs();
    if (stream_) cudaStreamDestroy(stream_);
  }

  std::string name() const override { return "cuda (" + device_name_ + ")"; }
  int64_t weight_bytes_per_token() const override { return w_.bytes_per_token; }
  size_t kv_bytes_per_token() const override {
    return (size_t)cfg_.n_layers * 2 * cfg_.n_kv_heads * cfg_.head_dim * sizeof(__half);
  }

  void allocate_kv(int block_size, int n_blocks) override {
    if (block_size != kKvBlock) throw DeviceError("the CUDA kernels need a KV block size of 16 tokens");
    const int H = cfg_.hidden_size, I = cfg_.intermediate_size, D = cfg_.head_dim;
    const size_t T = kMaxPassTokens, R = kMaxLogitRows;
    const size_t qkv_dim = (size_t)(cfg_.n_heads + 2 * cfg_.n_kv_heads) * D, q_dim = (size_t)cfg_.n_heads * D;
    kv_.n_blocks = n_blocks;
    kv_.layer_elems = (size_t)(n_blocks + 1) * cfg_.n_kv_heads * kKvBlock * D;
    kv_.data.resize((size_t)cfg_.n_layers * 2 * kv_.layer_elems);
    s_.capacity = (int)T;
    s_.resid.resize(T * H);
    s_.xn.resize(T * H);
    s_.qkv.resize(T * qkv_dim);
    s_.q.resize(T * q_dim);
    s_.att.resize(T * q_dim);
    s_.proj.resize(T * H);
    s_.gate_up.resize(T * 2 * I);
    s_.act.resize(T * I);
    s_.mlp.resize(T * H);
    s_.last_res.resize(R * H);
    s_.last_mlp.resize(R * H);
    s_.last.resize(R * H);
    s_.logits.resize(R * cfg_.vocab_size);
    s_.max_logit_rows = (int)R;
    s_.gemm_ws.resize((size_t)32 << 20);  // 128 MiB of split-K partials; larger needs fall back to split 1
    logits_host_.resize(R * cfg_.vocab_size);
    if (opt_.device_sampling) {
      work_.resize(R * cfg_.vocab_size);
      results_dev_.resize(R);
      tops_dev_.resize(R);
      results_host_.resize(R);
      tops_host_.resize(R);
    }
    Q3_CK(cudaStreamSynchronize(stream_));
  }

  void forward(const q3_batch_item* items, int n_items, const std::vector<int>& logit_rows,
               float* logits_host) override {
    guard([&] { run(items, n_items, logit_rows, Output{logits_host, nullptr, nullptr}); });
  }

  bool samples_on_device() const override { return opt_.device_sampling; }

  void forward_sample(const q3_batch_item* items, int n_items, const std::vector<int>& logit_rows,
                      const SampleRequest* requests, q3_sample_out* out) override {
    guard([&] { run(items, n_items, logit_rows, Output{nullptr, requests, out}); });
  }

  void forget_sequence(int64_t seq_id) override {
    auto it = history_slot_.find(seq_id);
    if (it == history_slot_.end()) return;
    free_history_slots_.push_back(it->second);
    history_slot_.erase(it);
  }

 private:
  struct Graph {
    cudaGraphExec_t exec = nullptr;  // captured after the bucket's first (eager) run
  };
  // Where a pass's results go: logits to the host, or sampled tokens for the requests.
  struct Output {
    float* logits_host;                // (logit_rows, vocab), or null when sampling
    const SampleRequest* requests;     // (logit_rows) when sampling
    q3_sample_out* out;                // (logit_rows) when sampling
    bool sampling() const { return requests != nullptr; }
  };

  template <class F>
  void guard(F&& f) {
    try {
      Q3_CK(cudaSetDevice(device_));
      f();
    } catch (const DeviceError&) {
      throw;
    } catch (const std::bad_alloc&) {
      throw;
    } catch (const std::exception& e) {  // launcher errors (q3::cuda::CudaError, shape checks) carry file:line
      throw DeviceError(e.what());
    }
  }

  // Cuts the batch into passes of at most kMaxPassTokens rows and kMaxLogitRows logits rows, in item order (a
  // long prompt becomes consecutive chunks, each attending over the cache its predecessors filled).
  void run(const q3_batch_item* items, int n_items, const std::vector<int>& logit_rows, const Output& o) {
    std::vector<int> first(n_items + 1, 0);
    for (int i = 0; i < n_items; i++) first[i + 1] = first[i] + items[i].n_tokens;
    std::vector<int> out_of_flat(first[n_items], -1);  // flat token -> output row
    for (size_t r = 0; r < logit_rows.size(); r++) out_of_flat[logit_rows[r]] = (int)r;

    std::vector<Piece> pieces;
    int T = 0, R = 0;
    auto flush = [&] {
      if (!pieces.empty()) run_pass(items, pieces, first, out_of_flat, o);
      pieces.clear();
      T = R = 0;
    };
    for (int i = 0; i < n_items; i++) {
      for (int j = 0; j < items[i].n_tokens;) {
        int take = 0, wanted = 0;
        while (j + take < items[i].n_tokens && T + take < kMaxPassTokens) {
          const bool w = out_of_flat[first[i] + j + take] >= 0;
          if (w && R + wanted == kMaxLogitRows) break;
          wanted += w;
          take++;
        }
        if (take == 0) {
          flush();
          continue;
        }
        pieces.push_back({i, j, take});
        j += take;
        T += take;
        R += wanted;
      }
    }
    flush();
  }

  // Lays out one pass: decode pieces (one token) first, then prefill chunks. `pad_to` > 0 pads the decode batch to
  // a captured graph's size with rows that write and read only the scratch block, and fixes the block-table stride
  // and the decode context bound to the bucket's.
  PassPlan plan(const q3_batch_item* items, const std::vector<Piece>& in, const std::vector<int>& first,
                const std::vector<int>& out_of_flat, int pad_to, int ctx_bucket) {
    std::vector<Piece> seqs;
    for (const Piece& p : in)
      if (p.n == 1) seqs.push_back(p);
    const int B_real = (int)seqs.size();
    for (const Piece& p : in)
      if (p.n > 1) seqs.push_back(p);
    PassPlan pl;
    CudaPass& d = pl.dims;
    d.B = pad_to > 0 ? pad_to : B_real;
    d.P = (int)seqs.size() - B_real;
    d.gemv_max = opt_.gemv_max;
    const int S = d.B + d.P;
    const int scratch = kv_.n_blocks;

    // rows in order: real decode rows, padding rows, prefill rows
    std::vector<int32_t> ids, pos, slots, ctx, cu{0}, rows;
    std::vector<const Piece*> seq_of(S, nullptr);
    for (int s = 0, k = 0; s < S; s++) seq_of[s] = (s < B_real || s >= d.B) ? &seqs[k++] : nullptr;
    int max_ctx = 0, decode_ctx = 0;
    for (int s = 0; s < S; s++) {
      const Piece* p = seq_of[s];
      if (!p) {  // padding row
        ids.push_back(0);
        pos.push_back(0);
        slots.push_back(scratch * kKvBlock);
        ctx.push_back(1);
        if (pad_to > 0) pl.row_out.push_back(-1);
        continue;
      }
      const q3_batch_item& it = items[p->item];
      for (int j = 0; j < p->n; j++) {
        const int ps = it.pos + p->first + j;
        const int out = out_of_flat[first[p->item] + p->first + j];
        if (pad_to > 0) pl.row_out.push_back(out);  // a graph computes logits for every (decode) row
        else if (out >= 0) {
          rows.push_back((int32_t)ids.size());
          pl.row_out.push_back(out);
        }
        ids.push_back(it.tokens[p->first + j]);
        pos.push_back(ps);
        slots.push_back(it.block_table[ps / kKvBlock] * kKvBlock + ps % kKvBlock);
      }
      const int c = it.pos + p->first + p->n;
      ctx.push_back(c);
      max_ctx = std::max(max_ctx, c);
      if (s < d.B) decode_ctx = std::max(decode_ctx, c);
      else {
        cu.push_back(cu.back() + p->n);
        d.max_q = std::max(d.max_q, p->n);
      }
    }
    d.T = (int)ids.size();
    d.max_blocks = (std::max(max_ctx, ctx_bucket) + kKvBlock - 1) / kKvBlock;
    if (pad_to > 0)
      for (int b = 0; b < d.B; b++) rows.push_back(b);
    d.R = (int)rows.size();
    pl.real_rows = pad_to > 0 ? B_real : d.R;
    if (d.B > 0) {
      d.decode_max_ctx = std::max(decode_ctx, ctx_bucket);
      d.decode_splits = cuda::decode_attention_splits(d.B, cfg_.n_kv_heads, d.decode_max_ctx, num_sms_);
    }
    std::vector<int32_t> bt((size_t)S * d.max_blocks, scratch);
    for (int s = 0; s < S; s++) {
      const Piece* p = seq_of[s];
      if (!p) continue;
      const q3_batch_item& it = items[p->item];
      const int nb = (ctx[s] + kKvBlock - 1) / kKvBlock;
      std::copy(it.block_table, it.block_table + nb, bt.begin() + (size_t)s * d.max_blocks);
    }
    put(pl.meta, ids.data(), ids.size(), pl.off_ids);
    put(pl.meta, pos.data(), pos.size(), pl.off_pos);
    put(pl.meta, slots.data(), slots.size(), pl.off_slots);
    put(pl.meta, bt.data(), bt.size(), pl.off_bt);
    put(pl.meta, ctx.data(), ctx.size(), pl.off_ctx);
    put(pl.meta, cu.data(), cu.size(), pl.off_cu);
    put(pl.meta, rows.data(), rows.size(), pl.off_rows);
    return pl;
  }

  // Appends the sampling part of a pass to its metadata: room for one cuda::SampleRow per logits row (filled by
  // fill_sample_rows once the metadata's device address is known), the rows' bitmasks, and the (token, value) pairs
  // that seed the penalty history of sequences sampled here for the first time.
  void plan_sampling(PassPlan& pl, const SampleRequest* req) {
    const int R = pl.dims.R, V = cfg_.vocab_size, mask_words = (V + 31) / 32;
    std::vector<int32_t> none((size_t)R * sizeof(cuda::SampleRow) / 4, 0);
    put(pl.meta, none.data(), none.size(), pl.off_params);
    pl.off_mask.assign(R, 0);
    for (int r = 0; r < R; r++) {
      if (pl.row_out[r] < 0) continue;
      const SampleRequest& q = req[pl.row_out[r]];
      if (q.allowed) put(pl.meta, reinterpret_cast<const int32_t*>(q.allowed), mask_words, pl.off_mask[r]);
      if (!uses_history(q.seq->params) || history_slot_.count(q.seq_id)) continue;
      const int slot = take_history_slot(q.seq_id);
      std::vector<int32_t> pairs;  // 2 * (times in the output) + 1: every token seen so far is "seen"
      for (int32_t t : q.seq->seen) {
        auto g = q.seq->generated.find(t);
        pairs.push_back(t);
        pairs.push_back(2 * (g == q.seq->generated.end() ? 0 : g->second) + 1);
      }
      size_t off;
      put(pl.meta, pairs.data(), pairs.size(), off);
      pl.seeds.push_back({slot, off});
      pl.seed_pairs.push_back((int)pairs.size() / 2);
    }
  }

  // The sampling rows, written into the staged metadata once the device buffer it lands in is known.
  void fill_sample_rows(PassPlan& pl, const SampleRequest* req, const int32_t* meta_dev) {
    const int V = cfg_.vocab_size;
    auto* rows = reinterpret_cast<cuda::SampleRow*>(pl.meta.data() + pl.off_params);
    for (int r = 0; r < pl.dims.R; r++) {
      cuda::SampleRow row{};  // inactive: a padding row or a row nobody samples
      if (pl.row_out[r] >= 0) {
        const SampleRequest& q = req[pl.row_out[r]];
        const SeqSampler& s = *q.seq;
        const q3_sampling& p = s.params;
        row = sample_row(p, V);
        row.forced = s.forced.empty() ? -1 : s.forced.front();
        row.seed = s.seed;
        row.offset = s.draws;
        if (uses_history(p)) row.history = history_.get() + (size_t)history_slot_.at(q.seq_id) * V;
        if (q.allowed) row.allowed = reinterpret_cast<const uint32_t*>(meta_dev + pl.off_mask[r]);
      }
      std::memcpy(&rows[r], &row, sizeof row);
    }
  }

  // A (vocab) int32 history row for the sequence, zeroed; the pool grows by doubling (rows keep their contents).
  int take_history_slot(int64_t seq_id) {
    const size_t V = cfg_.vocab_size;
    if (free_history_slots_.empty()) {
      const int old = history_slots_, grown = std::max(8, 2 * old);
      DeviceArray<int32_t> pool((size_t)grown * V);
      if (old > 0)
        Q3_CK(cudaMemcpyAsync(pool.get(), history_.get(), (size_t)old * V * sizeof(int32_t),
                              cudaMemcpyDeviceToDevice, stream_));
      Q3_CK(cudaStreamSynchronize(stream_));
      history_ = std::move(pool);
      history_slots_ = grown;
      for (int i = grown - 1; i >= old; i--) free_history_slots_.push_back(i);
    }
    const int slot = free_history_slots_.back();
    free_history_slots_.pop_back();
    history_slot_[seq_id] = slot;
    Q3_CK(cudaMemsetAsync(history_.get() + (size_t)slot * V, 0, V * sizeof(int32_t), stream_));
    return slot;
  }

  // The sampling kernels of a pass and the copy of their results to pinned host memory (captured into graphs too).
  void sample_pass(const CudaPass& d, const cuda::SampleRow* rows) {
    const int V = cfg_.vocab_size;
    cuda::sample_prepare(s_.logits.get(), work_.get(), d.R, V, rows, stream_);
    cuda::sample(s_.logits.get(), work_.get(), d.R, V, rows, results_dev_.get(), tops_dev_.get(), stream_);
    Q3_CK(cudaMemcpyAsync(results_host_.get(), results_dev_.get(), d.R * sizeof(cuda::SampleResult),
                          cudaMemcpyDeviceToHost, stream_));
  }

  void run_pass(const q3_batch_item* items, const std::vector<Piece>& pieces, const std::vector<int>& first,
                const std::vector<int>& out_of_flat, const Output& o) {
    // Decode-only passes up to kMaxGraphBatch replay a graph captured for their (batch, context, output) bucket.
    bool decode_only = true;
    int max_ctx = 0;
    for (const Piece& p : pieces) {
      decode_only &= p.n == 1;
      max_ctx = std::max(max_ctx, items[p.item].pos + p.first + p.n);
    }
    const int B = (int)pieces.size();
    int pad_to = 0, ctx_bucket = 0;
    if (opt_.graphs && decode_only && B <= kMaxGraphBatch) {
      pad_to = round_up_pow2(B, 1);
      ctx_bucket = round_up_pow2(max_ctx, 256);
    }
    PassPlan pl = plan(items, pieces, first, out_of_flat, pad_to, ctx_bucket);
    CudaPass& d = pl.dims;
    if (o.sampling()) plan_sampling(pl, o.requests);

    // Buffers a graph bakes in: growing one invalidates every captured graph.
    const size_t attn_floats =
        d.B > 0 ? cuda::decode_attention_workspace_floats(d.B, cfg_.n_heads, d.decode_splits) : 0;
    if (attn_floats > s_.attn_ws.size() || pl.meta.size() > meta_dev_.size()) {
      clear_graphs();
      s_.attn_ws.resize(std::max(attn_floats, s_.attn_ws.size()));
      meta_dev_.resize(std::max(pl.meta.size() * 2, meta_dev_.size()));
      meta_host_.resize(meta_dev_.size());
    }
    Graph* graph = pad_to > 0 ? &graphs_by_bucket_[{pad_to, ctx_bucket, o.sampling()}] : nullptr;
    int32_t* m = meta_dev_.get();
    d.ids = m + pl.off_ids;
    d.pos = m + pl.off_pos;
    d.slots = m + pl.off_slots;
    d.block_tables = m + pl.off_bt;
    d.ctx_lens = m + pl.off_ctx;
    d.cu_q = m + pl.off_cu;
    d.logit_rows = m + pl.off_rows;
    const auto* rows = reinterpret_cast<const cuda::SampleRow*>(m + pl.off_params);
    if (o.sampling()) fill_sample_rows(pl, o.requests, m);

    // one metadata upload, penalty histories seeded, then the pass (graph replay, or eager and captured after)
    std::memcpy(meta_host_.get(), pl.meta.data(), pl.meta.size() * sizeof(int32_t));
    Q3_CK(cudaMemcpyAsync(meta_dev_.get(), meta_host_.get(), pl.meta.size() * sizeof(int32_t),
                          cudaMemcpyHostToDevice, stream_));
    for (size_t k = 0; k < pl.seeds.size(); k++)
      cuda::scatter_set(history_.get() + (size_t)pl.seeds[k].first * cfg_.vocab_size, m + pl.seeds[k].second,
                        pl.seed_pairs[k], stream_);
    if (graph && graph->exec) {
      Q3_CK(cudaGraphLaunch(graph->exec, stream_));
    } else {
      forward_cuda(cfg_, w_, kv_, s_, d, num_sms_, stream_);
      if (o.sampling()) sample_pass(d, rows);
    }
    const size_t V = cfg_.vocab_size;
    bool tops = false;
    if (o.sampling()) {
      for (int r = 0; r < pl.real_rows; r++)
        tops |= pl.row_out[r] >= 0 && o.requests[pl.row_out[r]].seq->params.n_logprobs > 0;
      if (tops)
        Q3_CK(cudaMemcpyAsync(tops_host_.get(), tops_dev_.get(), pl.real_rows * sizeof(cuda::SampleTop),
                              cudaMemcpyDeviceToHost, stream_));
    } else if (pl.real_rows > 0) {  // logits of the real rows back to the host
      Q3_CK(cudaMemcpyAsync(logits_host_.get(), s_.logits.get(), pl.real_rows * V * sizeof(float),
                            cudaMemcpyDeviceToHost, stream_));
    }
    Q3_CK(cudaStreamSynchronize(stream_));
    for (int r = 0; r < pl.real_rows; r++) {
      const int out = pl.row_out[r];
      if (out < 0) continue;
      if (!o.sampling()) {
        std::memcpy(o.logits_host + out * V, logits_host_.get() + r * V, V * sizeof(float));
        continue;
      }
      const cuda::SampleResult& res = results_host_.get()[r];
      if (res.token < 0 || res.token >= (int)V)
        throw DeviceError("the device sampler returned token " + std::to_string(res.token) + " for a vocabulary of " +
                          std::to_string(V));
      const SeqSampler& s = *o.requests[out].seq;
      q3_sample_out& so = o.out[out];
      so = q3_sample_out{};
      so.token = res.token;
      so.logprob = res.logprob;
      so.forced = !s.forced.empty();
      if (s.params.n_logprobs > 0) {
        const cuda::SampleTop& t = tops_host_.get()[r];
        so.n_top = std::clamp(t.n, 0, cuda::kMaxLogprobs);
        std::copy(t.tokens, t.tokens + so.n_top, so.top_tokens);
        std::copy(t.logprobs, t.logprobs + so.n_top, so.top_logprobs);
      }
    }
    // A new bucket ran eagerly (which also set the kernels' attributes); capture it now, off the timed path of the
    // next step, which replays it.
    if (graph && !graph->exec) capture(*graph, d, o.sampling() ? rows : nullptr);
  }

  // Records the pass (and, with rows, its sampling and the copy of the results) into a graph without running it.
  void capture(Graph& g, const CudaPass& d, const cuda::SampleRow* rows) {
    cudaGraph_t graph = nullptr;
    Q3_CK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
    try {
      forward_cuda(cfg_, w_, kv_, s_, d, num_sms_, stream_);
      if (rows) sample_pass(d, rows);
    } catch (...) {
      cudaStreamEndCapture(stream_, &graph);
      if (graph) cudaGraphDestroy(graph);
      throw;
    }
    Q3_CK(cudaStreamEndCapture(stream_, &graph));
    cudaError_t e = cudaGraphInstantiate(&g.exec, graph, 0);
    cudaGraphDestroy(graph);
    if (e != cudaSuccess) g.exec = nullptr;
    Q3_CK(e);
  }

  void clear_graphs() {
    for (auto& [key, g] : graphs_by_bucket_)
      if (g.exec) cudaGraphExecDestroy(g.exec);
    graphs_by_bucket_.clear();
  }

  const Qwen3Config& cfg_;
  CudaOptions opt_;
  int device_ = 0;
  std::string device_name_;
  int num_sms_ = 0;
  cudaStream_t stream_ = nullptr;
  Qwen3WeightsCuda w_;
  KvCacheCuda kv_;
  CudaRunState s_;
  DeviceArray<int32_t> meta_dev_;    // the pass's metadata (CudaPass pointers and sampling rows point here)
  PinnedArray<int32_t> meta_host_;   // staging for its upload
  PinnedArray<float> logits_host_;   // (kMaxLogitRows, vocab) staging for the logits copy
  // device sampling
  DeviceArray<float> work_;                        // (kMaxLogitRows, vocab) penalised / bitmasked logits
  DeviceArray<cuda::SampleResult> results_dev_;    // (kMaxLogitRows)
  DeviceArray<cuda::SampleTop> tops_dev_;          // (kMaxLogitRows)
  PinnedArray<cuda::SampleResult> results_host_;   // graphs copy into it: allocated once
  PinnedArray<cuda::SampleTop> tops_host_;
  DeviceArray<int32_t> history_;                   // (history_slots_, vocab) penalty histories, see cuda::SampleRow
  int history_slots_ = 0;
  std::unordered_map<int64_t, int> history_slot_;  // sequence -> its row of history_
  std::vector<int> free_history_slots_;
  std::map<std::tuple<int, int, bool>, Graph> graphs_by_bucket_;  // (padded batch, context bound, sampling) -> graph
};

}  // namespace

int cuda_device_count(std::string* why) {
  int n = 0;
  cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    cudaGetLastError();  // not sticky; leave no trace for later calls
    if (why) *why = std::string("no CUDA device: ") + cudaGetErrorString(e);
    return 0;
  }
  if (n == 0 && why) *why = "no CUDA device: none visible";
  return n;
}

std::unique_ptr<Backend> make_cuda_backend(const Checkpoint& ckpt, const Qwen3Config& cfg, const RopeTable& rope,
                                           const CudaOptions& opts, const ProgressFn& progress) {
  std::string why;
  if (cuda_device_count(&why) <= 0) throw DeviceError(why);
  return std::make_unique<CudaBackend>(ckpt, cfg, rope, opts, progress);
}

}  // namespace q3
