// The CUDA backend behind the C ABI: device weights, a paged fp16 KV cache on the device, and batches cut into
// passes of bounded size, each described by one metadata upload, run through forward_cuda, with the needed logits
// copied back for the engine's sampler. Decode-only passes replay a CUDA graph per (batch, context) bucket.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "../backend.h"
#include "forward_cuda.h"
#include "weights_cuda.h"

namespace q3 {
namespace {

constexpr int kMaxPassTokens = 2048;  // rows per forward pass (activation buffers are sized for it)
constexpr int kMaxLogitRows = 256;    // rows of logits per pass (device and pinned host buffers)
constexpr int kMaxGraphBatch = 256;   // decode batches up to this size replay a captured graph
constexpr int kKvBlock = 16;          // tokens per KV block, fixed by the kernels

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::atoi(v) : fallback;
}

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
  std::vector<int32_t> meta;    // ids | pos | slots | block_tables | ctx_lens | cu_q | logit_rows
  size_t off_ids = 0, off_pos = 0, off_slots = 0, off_bt = 0, off_ctx = 0, off_cu = 0, off_rows = 0;
  std::vector<int> out_rows;    // (R) output row (index into logit_rows of the engine) of each logits row
};

class CudaBackend final : public Backend {
 public:
  CudaBackend(const Checkpoint& ckpt, const Qwen3Config& cfg, const RopeTable& rope, const ProgressFn& progress)
      : cfg_(cfg) {
    Q3_CK(cudaSetDevice(device_));
    cudaDeviceProp prop{};
    Q3_CK(cudaGetDeviceProperties(&prop, device_));
    device_name_ = prop.name;
    num_sms_ = prop.multiProcessorCount;
    Q3_CK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    gemv_max_ = std::clamp(env_int("Q3_CUDA_GEMV_MAX", 4), 0, 16);
    graphs_ = env_int("Q3_CUDA_GRAPHS", 1) != 0;
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
    Q3_CK(cudaStreamSynchronize(stream_));
  }

  void forward(const q3_batch_item* items, int n_items, const std::vector<int>& logit_rows,
               float* logits_host) override {
    try {
      Q3_CK(cudaSetDevice(device_));
      run(items, n_items, logit_rows, logits_host);
    } catch (const DeviceError&) {
      throw;
    } catch (const std::bad_alloc&) {
      throw;
    } catch (const std::exception& e) {  // launcher errors (q3::cuda::CudaError, shape checks) carry file:line
      throw DeviceError(e.what());
    }
  }

 private:
  struct Graph {
    cudaGraphExec_t exec = nullptr;  // captured after the bucket's first (eager) run
  };

  // Cuts the batch into passes of at most kMaxPassTokens rows and kMaxLogitRows logits rows, in item order (a
  // long prompt becomes consecutive chunks, each attending over the cache its predecessors filled).
  void run(const q3_batch_item* items, int n_items, const std::vector<int>& logit_rows, float* logits_host) {
    std::vector<int> first(n_items + 1, 0);
    for (int i = 0; i < n_items; i++) first[i + 1] = first[i] + items[i].n_tokens;
    std::vector<int> out_of_flat(first[n_items], -1);  // flat token -> output row
    for (size_t r = 0; r < logit_rows.size(); r++) out_of_flat[logit_rows[r]] = (int)r;

    std::vector<Piece> pieces;
    int T = 0, R = 0;
    auto flush = [&] {
      if (!pieces.empty()) run_pass(items, pieces, first, out_of_flat, logits_host);
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
    d.gemv_max = gemv_max_;
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
        continue;
      }
      const q3_batch_item& it = items[p->item];
      for (int j = 0; j < p->n; j++) {
        const int ps = it.pos + p->first + j;
        if (out_of_flat[first[p->item] + p->first + j] >= 0) {
          rows.push_back((int32_t)ids.size());
          pl.out_rows.push_back(out_of_flat[first[p->item] + p->first + j]);
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
    if (pad_to > 0) {  // a graph computes logits for every row; the caller copies out the wanted ones
      rows.clear();
      for (int b = 0; b < d.B; b++) rows.push_back(b);
    }
    d.R = (int)rows.size();
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
    auto put = [&](const std::vector<int32_t>& v, size_t& off) {
      off = pl.meta.size();
      pl.meta.insert(pl.meta.end(), v.begin(), v.end());
      pl.meta.resize((pl.meta.size() + 3) / 4 * 4);  // 16-byte aligned arrays
    };
    put(ids, pl.off_ids);
    put(pos, pl.off_pos);
    put(slots, pl.off_slots);
    put(bt, pl.off_bt);
    put(ctx, pl.off_ctx);
    put(cu, pl.off_cu);
    put(rows, pl.off_rows);
    return pl;
  }

  void run_pass(const q3_batch_item* items, const std::vector<Piece>& pieces, const std::vector<int>& first,
                const std::vector<int>& out_of_flat, float* logits_host) {
    // Decode-only passes up to kMaxGraphBatch replay a graph captured for their (batch, context) bucket.
    bool decode_only = true;
    int max_ctx = 0;
    for (const Piece& p : pieces) {
      decode_only &= p.n == 1;
      max_ctx = std::max(max_ctx, items[p.item].pos + p.first + p.n);
    }
    const int B = (int)pieces.size();
    int pad_to = 0, ctx_bucket = 0;
    if (graphs_ && decode_only && B <= kMaxGraphBatch) {
      pad_to = round_up_pow2(B, 1);
      ctx_bucket = round_up_pow2(max_ctx, 256);
    }
    PassPlan pl = plan(items, pieces, first, out_of_flat, pad_to, ctx_bucket);
    CudaPass& d = pl.dims;

    // Buffers a graph bakes in: growing one invalidates every captured graph.
    const size_t attn_floats =
        d.B > 0 ? cuda::decode_attention_workspace_floats(d.B, cfg_.n_heads, d.decode_splits) : 0;
    if (attn_floats > s_.attn_ws.size() || pl.meta.size() > meta_dev_.size()) {
      clear_graphs();
      s_.attn_ws.resize(std::max(attn_floats, s_.attn_ws.size()));
      meta_dev_.resize(std::max(pl.meta.size() * 2, meta_dev_.size()));
      meta_host_.resize(meta_dev_.size());
    }
    Graph* graph = pad_to > 0 ? &graphs_by_bucket_[{pad_to, ctx_bucket}] : nullptr;
    int32_t* m = meta_dev_.get();
    d.ids = m + pl.off_ids;
    d.pos = m + pl.off_pos;
    d.slots = m + pl.off_slots;
    d.block_tables = m + pl.off_bt;
    d.ctx_lens = m + pl.off_ctx;
    d.cu_q = m + pl.off_cu;
    d.logit_rows = m + pl.off_rows;

    // one metadata upload, then the pass (graph replay, capture, or eager)
    std::memcpy(meta_host_.get(), pl.meta.data(), pl.meta.size() * sizeof(int32_t));
    Q3_CK(cudaMemcpyAsync(meta_dev_.get(), meta_host_.get(), pl.meta.size() * sizeof(int32_t),
                          cudaMemcpyHostToDevice, stream_));
    if (graph && graph->exec) Q3_CK(cudaGraphLaunch(graph->exec, stream_));
    else forward_cuda(cfg_, w_, kv_, s_, d, num_sms_, stream_);

    // logits of the wanted rows back to the host, in the engine's order
    const size_t V = cfg_.vocab_size;
    const int rows_back = pad_to > 0 ? (int)pieces.size() : d.R;
    if (rows_back > 0)
      Q3_CK(cudaMemcpyAsync(logits_host_.get(), s_.logits.get(), rows_back * V * sizeof(float),
                            cudaMemcpyDeviceToHost, stream_));
    Q3_CK(cudaStreamSynchronize(stream_));
    if (pad_to > 0) {  // row b is decode piece b; its output row comes from out_of_flat
      for (int b = 0; b < rows_back; b++) {
        const Piece& p = pieces[b];
        const int out = out_of_flat[first[p.item] + p.first];
        if (out >= 0) std::memcpy(logits_host + out * V, logits_host_.get() + b * V, V * sizeof(float));
      }
    } else {
      for (int r = 0; r < d.R; r++)
        std::memcpy(logits_host + pl.out_rows[r] * V, logits_host_.get() + r * V, V * sizeof(float));
    }
    // A new bucket ran eagerly (which also set the kernels' attributes); capture it now, off the timed path of the
    // next step, which replays it.
    if (graph && !graph->exec) capture(*graph, d);
  }

  void capture(Graph& g, const CudaPass& d) {
    cudaGraph_t graph = nullptr;
    Q3_CK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
    try {
      forward_cuda(cfg_, w_, kv_, s_, d, num_sms_, stream_);
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
  int device_ = 0;
  std::string device_name_;
  int num_sms_ = 0;
  int gemv_max_ = 4;    // Q3_CUDA_GEMV_MAX: matmuls with at most this many rows use the GEMV
  bool graphs_ = true;  // Q3_CUDA_GRAPHS=0 turns decode graphs off
  cudaStream_t stream_ = nullptr;
  Qwen3WeightsCuda w_;
  KvCacheCuda kv_;
  CudaRunState s_;
  DeviceArray<int32_t> meta_dev_;    // the pass's metadata (CudaPass pointers point here)
  PinnedArray<int32_t> meta_host_;   // staging for its upload
  PinnedArray<float> logits_host_;   // (kMaxLogitRows, vocab) staging for the logits copy
  std::map<std::pair<int, int>, Graph> graphs_by_bucket_;  // (padded batch, context bound) -> decode graph
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
                                           const ProgressFn& progress) {
  std::string why;
  if (cuda_device_count(&why) <= 0) throw DeviceError(why);
  return std::make_unique<CudaBackend>(ckpt, cfg, rope, progress);
}

}  // namespace q3
