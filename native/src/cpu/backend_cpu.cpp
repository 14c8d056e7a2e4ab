// The CPU backend: weights repacked for the AVX kernels, an fp32 paged KV cache and the forward pass of
// forward_cpu.cpp, parallel over a thread pool.
#include <memory>

#include "../backend.h"
#include "../kv_cache.h"
#include "../threadpool.h"
#include "awq_cpu.h"
#include "f16_matmul_cpu.h"
#include "forward_cpu.h"
#include "head_screen.h"

namespace q3 {
namespace {

// Beyond this many candidates a screened row computes its whole row on the fp16 head instead (the candidates are
// read one row at a time on one thread: a few thousand cost about what the pool's full pass does).
constexpr int kMaxScreenCandidates = 4096;

class CpuBackend final : public Backend {
 public:
  CpuBackend(const Checkpoint& ckpt, const Qwen3Config& cfg, const RopeTable& rope, int n_threads,
             bool screened_head, const ProgressFn& progress)
      : cfg_(cfg), rope_(rope), pool_(n_threads) {
    load_weights_cpu(ckpt, cfg, weights_, progress);
    if (screened_head) {
      if (progress) progress("building the screened lm_head", 0);
      build_screened_head(weights_.lm_head, cfg.vocab_size, cfg.hidden_size, weights_.screened, pool_);
    }
  }

  std::string name() const override {
    return std::string("cpu (") + awq_cpu_isa() + ", " + std::to_string(pool_.size()) + " threads)";
  }
  int64_t weight_bytes_per_token() const override {
    if (!has_screened_head()) return weights_.bytes_per_token;
    return weights_.bytes_per_token - (int64_t)cfg_.vocab_size * cfg_.hidden_size * 2 + weights_.screened.bytes_read();
  }
  int64_t full_head_bytes_per_token() const override { return weights_.bytes_per_token; }
  size_t kv_bytes_per_token() const override {
    return KvPool::bytes_per_token(cfg_.n_layers, cfg_.n_kv_heads, cfg_.head_dim);
  }
  void allocate_kv(int block_size, int n_blocks) override {
    kv_ = std::make_unique<KvPool>(cfg_.n_layers, cfg_.n_kv_heads, cfg_.head_dim, block_size, n_blocks);
  }
  void forward(const q3_batch_item* items, int n_items, const std::vector<int>& logit_rows,
               float* logits_host) override {
    forward_cpu(cfg_, weights_, rope_, *kv_, pool_, run_, items, n_items, logit_rows, logits_host);
  }
  bool has_screened_head() const override { return weights_.screened.rows > 0; }
  void forward_screened(const q3_batch_item* items, int n_items, const std::vector<int>& logit_rows,
                        float* logits_host) override {
    forward_cpu(cfg_, weights_, rope_, *kv_, pool_, run_, items, n_items, logit_rows, logits_host, true);
  }
  int finish_screened_row(int r, const ScreenNeeds& needs, const uint32_t* allowed, float* logits_row,
                          std::vector<int32_t>& candidates) override {
    const int V = cfg_.vocab_size, H = cfg_.hidden_size;
    const float* x = &run_.last[(size_t)r * H];
    ScreenQuery q;
    q.top_k = needs.top_k;
    q.margin = needs.margin;
    q.allowed = allowed;
    q.exact = needs.exact.data();
    q.n_exact = (int)needs.exact.size();
    q.max_candidates = kMaxScreenCandidates;
    const int n = screen_row(weights_.screened, weights_.lm_head, x, run_.last_norms[r], q, logits_row, &candidates);
    if (n >= 0) return n;
    f16_matmul_cpu(weights_.lm_head, V, H, x, 1, logits_row, pool_);  // the whole row, as the full head computes it
    return V;
  }
  ThreadPool* cpu_thread_pool() override { return &pool_; }

 private:
  const Qwen3Config& cfg_;
  const RopeTable& rope_;
  ThreadPool pool_;
  Qwen3Weights weights_;
  std::unique_ptr<KvPool> kv_;  // storage only: block ids come from the engine's allocator
  CpuRunState run_;
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend(const Checkpoint& ckpt, const Qwen3Config& cfg, const RopeTable& rope,
                                          int n_threads, bool screened_head, const ProgressFn& progress) {
  return std::make_unique<CpuBackend>(ckpt, cfg, rope, n_threads, screened_head, progress);
}

}  // namespace q3
