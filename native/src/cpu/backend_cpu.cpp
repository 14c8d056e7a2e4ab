// The CPU backend: weights repacked for the AVX kernels, an fp32 paged KV cache and the forward pass of
// forward_cpu.cpp, parallel over a thread pool.
#include <memory>

#include "../backend.h"
#include "../kv_cache.h"
#include "../threadpool.h"
#include "awq_cpu.h"
#include "forward_cpu.h"

namespace q3 {
namespace {

class CpuBackend final : public Backend {
 public:
  CpuBackend(const Checkpoint& ckpt, const Qwen3Config& cfg, const RopeTable& rope, int n_threads,
             const ProgressFn& progress)
      : cfg_(cfg), rope_(rope), pool_(n_threads) {
    load_weights_cpu(ckpt, cfg, weights_, progress);
  }

  std::string name() const override {
    return std::string("cpu (") + awq_cpu_isa() + ", " + std::to_string(pool_.size()) + " threads)";
  }
  int64_t weight_bytes_per_token() const override { return weights_.bytes_per_token; }
  size_t kv_bytes_per_token() const override {
    return (size_t)cfg_.n_layers * 2 * cfg_.n_kv_heads * cfg_.head_dim * sizeof(float);
  }
  void allocate_kv(int block_size, int n_blocks) override {
    kv_ = std::make_unique<KvPool>(cfg_.n_layers, cfg_.n_kv_heads, cfg_.head_dim, block_size, n_blocks);
  }
  void forward(const q3_batch_item* items, int n_items, const std::vector<int>& logit_rows,
               float* logits_host) override {
    forward_cpu(cfg_, weights_, rope_, *kv_, pool_, run_, items, n_items, logit_rows, logits_host);
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
                                          int n_threads, const ProgressFn& progress) {
  return std::make_unique<CpuBackend>(ckpt, cfg, rope, n_threads, progress);
}

}  // namespace q3
