// The CUDA backend's forward pass over one pass of a batch (decode rows first, then prefill chunks), fp16
// activations with fp32 accumulation, every op a launcher of the q3cuda library on one stream.
#pragma once
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

#include "../config.h"
#include "device_buffer.h"
#include "weights_cuda.h"

namespace q3 {

// Paged KV cache on the device, the kernels' layout: per layer K and V of (n_blocks + 1, n_kv_heads, 16, head_dim).
// Block n_blocks is scratch: padding rows of a captured decode graph write there.
struct KvCacheCuda {
  DeviceArray<__half> data;  // (n_layers, 2, n_blocks + 1, n_kv_heads, 16, head_dim)
  int n_blocks = 0;
  size_t layer_elems = 0;    // (n_blocks + 1) * n_kv_heads * 16 * head_dim
  __half* k(int layer) const { return data.get() + (size_t)(2 * layer) * layer_elems; }
  __half* v(int layer) const { return data.get() + (size_t)(2 * layer + 1) * layer_elems; }
};

// Activations for up to `capacity` rows.
struct CudaRunState {
  int capacity = 0;              // rows (tokens)
  DeviceArray<__half> resid;     // (T, hidden) residual stream
  DeviceArray<__half> xn;        // (T, hidden) normalised input of a sub-layer
  DeviceArray<__half> qkv;       // (T, (n_heads + 2*n_kv_heads)*head_dim)
  DeviceArray<__half> q;         // (T, n_heads, head_dim) q after norm and RoPE
  DeviceArray<__half> att;       // (T, n_heads*head_dim) attention output
  DeviceArray<__half> proj;      // (T, hidden) o_proj output
  DeviceArray<__half> gate_up;   // (T, 2*intermediate)
  DeviceArray<__half> act;       // (T, intermediate)
  DeviceArray<__half> mlp;       // (T, hidden) down_proj output, joins the residual at the next norm
  DeviceArray<__half> last_res;  // (R, hidden) gathered residual rows that need logits
  DeviceArray<__half> last_mlp;  // (R, hidden)
  DeviceArray<__half> last;      // (R, hidden) final-normed rows
  DeviceArray<float> logits;     // (R, vocab)
  DeviceArray<float> gemm_ws;    // split-K partial sums, gemm_ws_floats
  DeviceArray<float> attn_ws;    // flash-decoding partials, grown to the largest need
  int max_logit_rows = 0;        // R capacity
};

// One pass: decode rows 0..B-1 (one token per sequence), then prefill chunk rows B..T-1. Device pointers point
// into one uploaded metadata buffer.
struct CudaPass {
  int T = 0;               // rows
  int B = 0;               // decode sequences (rows 0..B-1; sequence b = row b)
  int P = 0;               // prefill chunks (sequences B..B+P-1)
  int max_q = 0;           // longest prefill chunk, tokens
  int max_blocks = 0;      // block table stride
  int decode_max_ctx = 0;  // bound on decode ctx lens: fixes the flash-decoding grid
  int decode_splits = 0;   // from cuda::decode_attention_splits
  int R = 0;               // rows that need logits
  int gemv_max = 4;        // matmuls with at most this many rows use the GEMV
  const int32_t* ids = nullptr;           // (T) token ids
  const int32_t* pos = nullptr;           // (T) absolute positions
  const int32_t* slots = nullptr;         // (T) cache slot: block * 16 + pos % 16
  const int32_t* block_tables = nullptr;  // (B + P, max_blocks)
  const int32_t* ctx_lens = nullptr;      // (B + P) tokens in the cache once this pass wrote its K/V
  const int32_t* cu_q = nullptr;          // (P + 1) prefill row offsets, relative to row B
  const int32_t* logit_rows = nullptr;    // (R) rows whose logits are computed
};

// Writes s.logits (p.R, vocab) fp32; asynchronous on `stream`.
void forward_cuda(const Qwen3Config& cfg, const Qwen3WeightsCuda& w, const KvCacheCuda& kv, CudaRunState& s,
                  const CudaPass& p, int num_sms, cudaStream_t stream);

}  // namespace q3
