// The forward pass behind the C ABI, one implementation per device (CPU here, CUDA in cuda/): the engine keeps the
// ABI, validation, the KV block allocator and the samplers' state; a backend owns the weights in its own layout, the
// KV storage those block ids index, and runs batches to logits on the host, or (CUDA) to sampled tokens.
#pragma once
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "config.h"
#include "load_progress.h"
#include "qwen3.h"
#include "rope.h"
#include "safetensors.h"
#include "sampler.h"

namespace q3 {

class ThreadPool;

// A device call failed or the device cannot run this model: becomes Q3_ERR_DEVICE with the message (file:line).
struct DeviceError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// One row a backend samples on its device: the sequence's sampler state (read only: the engine records the result).
struct SampleRequest {
  int64_t seq_id;
  const SeqSampler* seq;     // params, seed, draw index, forced-token queue, token history
  const uint32_t* allowed;   // (ceil(vocab / 32)) bit i % 32 of word i / 32 = token i allowed; null: all allowed
};

class Backend {
 public:
  virtual ~Backend() = default;

  // "cpu (avx512-vnni, 2 threads)" or "cuda (NVIDIA H200)".
  virtual std::string name() const = 0;
  // Weight bytes one decode step reads (q3_info.weight_bytes_per_token): with the screened head, its int8 pass
  // (without the exact rows); full_head_bytes_per_token() with the fp16 head.
  virtual int64_t weight_bytes_per_token() const = 0;
  virtual int64_t full_head_bytes_per_token() const { return weight_bytes_per_token(); }
  // Bytes of KV storage one token occupies in this backend's cache (sizes the pool), bytes.
  virtual size_t kv_bytes_per_token() const = 0;
  // Allocates KV storage for n_blocks blocks of block_size tokens; block ids 0..n_blocks-1 come from the engine.
  virtual void allocate_kv(int block_size, int n_blocks) = 0;

  // One forward pass over validated items (any mix of prefill chunks and decode tokens). logit_rows lists flat token
  // indices (0..T-1, items' tokens in order) whose logits are written to logits_host as (logit_rows.size(), vocab).
  virtual void forward(const q3_batch_item* items, int n_items, const std::vector<int>& logit_rows,
                       float* logits_host) = 0;

  // Screened lm_head (CPU, docs/cpu-head-screen.md): forward_screened() is forward() leaving approximate logits of
  // every row in logits_host; each row then becomes exact where a sample needs it through finish_screened_row().
  virtual bool has_screened_head() const { return false; }
  virtual void forward_screened(const q3_batch_item* items, int n_items, const std::vector<int>& logit_rows,
                                float* logits_host) {
    throw DeviceError("this backend has no screened head");
  }
  // Row r of the last forward_screened(): the exact logits `needs` asks for (under the token mask `allowed`, may be
  // null), -inf elsewhere; or every exact logit when that is cheaper. Returns the number of rows of the fp16 head it
  // computed; `candidates` receives the tokens of the first kind (ascending), and is emptied for a whole row.
  virtual int finish_screened_row(int r, const ScreenNeeds& needs, const uint32_t* allowed, float* logits_row,
                                  std::vector<int32_t>& candidates) {
    throw DeviceError("this backend has no screened head");
  }

  // True when forward_sample() samples on the device; otherwise the engine samples host logits.
  virtual bool samples_on_device() const { return false; }
  // forward() followed by sampling on the device, in the CPU sampler's order and distribution: out[r] (token,
  // logprob, top-n, forced) for logit_rows[r] with requests[r]. Only the results come back to the host.
  virtual void forward_sample(const q3_batch_item* items, int n_items, const std::vector<int>& logit_rows,
                              const SampleRequest* requests, q3_sample_out* out) {
    throw DeviceError("this backend does not sample on its device");
  }
  // Drops the device copy of a sequence's sampler state (its penalty history): the sequence ended, or a token was
  // recorded without the device (host sampling), so the copy is rebuilt from the engine's state when next needed.
  virtual void forget_sequence(int64_t seq_id) {}
  // The threads the CPU backend runs its forward pass on (null on other devices): `qwen3 bench` times its probe reads
  // on them, so a decode step and the read it is compared with run on the same threads.
  virtual ThreadPool* cpu_thread_pool() { return nullptr; }
};

// The engine's CPU thread pool (Backend::cpu_thread_pool), for benchmarks that link the engine's internals.
ThreadPool* engine_cpu_thread_pool(q3_engine* e);

// screened_head: also build the int8 copy of lm_head (forward_screened).
std::unique_ptr<Backend> make_cpu_backend(const Checkpoint& ckpt, const Qwen3Config& cfg, const RopeTable& rope,
                                          int n_threads, bool screened_head, const ProgressFn& progress);

// Empty when this model (shapes, KV block size) runs on the CUDA kernels; otherwise why not.
std::string cuda_unsupported_reason(const Qwen3Config& cfg, int kv_block_size);
// Visible CUDA devices: 0 without a CUDA build, a driver or a device. `why` (optional) gets the runtime's message.
int cuda_device_count(std::string* why = nullptr);
// The CUDA backend's load options (q3_load_options.cuda_*).
struct CudaOptions {
  int gemv_max = 4;            // matmuls with at most this many rows use the GEMV (0: always the GEMM)
  bool graphs = true;          // decode passes replay a CUDA graph per (batch, context) bucket
  bool device_sampling = true; // sample on the device; false: copy logits back for the engine's host sampler
};
// Throws DeviceError when built without CUDA or when no device can be used.
std::unique_ptr<Backend> make_cuda_backend(const Checkpoint& ckpt, const Qwen3Config& cfg, const RopeTable& rope,
                                           const CudaOptions& opts, const ProgressFn& progress);

}  // namespace q3
