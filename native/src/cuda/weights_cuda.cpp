// Loads a mapped checkpoint onto the device: the published AutoAWQ tensors are copied to staging buffers and
// repacked there by the library's awq_repack_device (fused linears take consecutive column ranges); tables and norms
// become fp16. Every tensor's dtype and shape is checked against config.json first.
#include "weights_cuda.h"

#include <cstring>
#include <stdexcept>

#include "../checkpoint_layout.h"
#include "../checkpoint_tensors.h"
#include "../half.h"

namespace q3 {
namespace {

// (rows, cols) fp16/bf16/fp32 table -> fp16 on the device (converted on the host in slices when not fp16).
DeviceArray<__half> upload_table(const Checkpoint& ckpt, const std::string& name, int64_t rows, int64_t cols,
                                 cudaStream_t stream) {
  const TensorView& t = expect_tensor(ckpt, name, {rows, cols}, {DType::F16, DType::BF16, DType::F32});
  const size_t n = (size_t)rows * cols;
  DeviceArray<__half> d(n);
  if (t.dtype == DType::F16) {
    Q3_CK(cudaMemcpyAsync(d.get(), t.data, n * 2, cudaMemcpyHostToDevice, stream));
    return d;
  }
  std::vector<uint16_t> slice;
  const size_t step = (size_t)1 << 22;  // elements per slice
  for (size_t i0 = 0; i0 < n; i0 += step) {
    const size_t m = std::min(step, n - i0);
    slice.resize(m);
    for (size_t i = 0; i < m; i++) slice[i] = f32_to_f16(tensor_element_f32(t, i0 + i));
    Q3_CK(cudaMemcpyAsync(d.get() + i0, slice.data(), m * 2, cudaMemcpyHostToDevice, stream));
    Q3_CK(cudaStreamSynchronize(stream));  // `slice` is reused
  }
  return d;
}

DeviceArray<__half> upload_vector(const Checkpoint& ckpt, const std::string& name, int64_t n, cudaStream_t stream) {
  const TensorView& t = expect_tensor(ckpt, name, {n}, {DType::F16, DType::BF16, DType::F32});
  std::vector<uint16_t> h(n);
  for (int64_t i = 0; i < n; i++) h[i] = f32_to_f16(tensor_element_f32(t, i));
  DeviceArray<__half> d(n);
  Q3_CK(cudaMemcpyAsync(d.get(), h.data(), n * 2, cudaMemcpyHostToDevice, stream));
  Q3_CK(cudaStreamSynchronize(stream));  // `h` goes out of scope
  return d;
}

// Device copies of one published linear, reused for every linear (grown to the largest).
struct Staging {
  DeviceArray<int32_t> qweight, qzeros;
  DeviceArray<__half> scales;
};

// The published linears of `fused`, repacked into one (K -> sum N) device weight.
AwqDevice upload_awq(const Checkpoint& ckpt, const FusedLinearLayout& fused, int G, Staging& st, cudaStream_t stream) {
  const int K = fused.K(), total_N = fused.N();
  AwqDevice w;
  w.qw.resize(cuda::awq_qw_bytes(K, total_N) / sizeof(uint4));
  w.sz.resize(cuda::awq_sz_bytes(K, total_N) / sizeof(uint4));
  int col0 = 0;
  for (const AwqLinearLayout& part : fused.parts) {
    const int N = part.N;
    const AwqTensors t = expect_awq_linear(ckpt, part.prefix, K, N, G);
    const TensorView &q = *t.qweight, &z = *t.qzeros, &s = *t.scales;
    // Stream order keeps the staging buffers safe: the next upload runs after this repack.
    st.qweight.resize((size_t)K * N / 8);
    st.qzeros.resize((size_t)K / G * N / 8);
    st.scales.resize((size_t)K / G * N);
    Q3_CK(cudaMemcpyAsync(st.qweight.get(), q.data, q.nbytes, cudaMemcpyHostToDevice, stream));
    Q3_CK(cudaMemcpyAsync(st.qzeros.get(), z.data, z.nbytes, cudaMemcpyHostToDevice, stream));
    Q3_CK(cudaMemcpyAsync(st.scales.get(), s.data, s.nbytes, cudaMemcpyHostToDevice, stream));
    try {
      cuda::awq_repack_device(st.qweight.get(), st.qzeros.get(), st.scales.get(), K, N, col0, total_N, w.qw.get(),
                              w.sz.get(), stream);
    } catch (const std::exception& e) {  // q3::cuda::CudaError or a shape check, with file:line
      throw DeviceError(e.what());
    }
    col0 += N;
  }
  w.view = {w.qw.get(), w.sz.get(), K, total_N};
  return w;
}

}  // namespace

void load_weights_cuda(const Checkpoint& ckpt, const Qwen3Config& cfg, const RopeTable& rope, Qwen3WeightsCuda& w,
                       const ProgressFn& progress, cudaStream_t stream) {
  const int H = cfg.hidden_size, D = cfg.head_dim, G = cfg.group_size;

  w.embed = upload_table(ckpt, kEmbedTokensName, cfg.vocab_size, H, stream);
  if (cfg.tie_word_embeddings) {
    w.lm_head_ptr = w.embed.get();
  } else {
    w.lm_head = upload_table(ckpt, kLmHeadName, cfg.vocab_size, H, stream);
    w.lm_head_ptr = w.lm_head.get();
  }
  w.final_norm = upload_vector(ckpt, kFinalNormName, H, stream);
  w.inv_freq.resize(rope.inv_freq.size());
  Q3_CK(cudaMemcpyAsync(w.inv_freq.get(), rope.inv_freq.data(), rope.inv_freq.size() * sizeof(float),
                        cudaMemcpyHostToDevice, stream));
  w.attention_factor = rope.attention_factor;
  w.bytes_per_token = (int64_t)cfg.vocab_size * H * 2 + (int64_t)H * 2;

  Staging st;
  w.layers.resize(cfg.n_layers);
  for (int l = 0; l < cfg.n_layers; l++) {
    if (progress) progress("repacking layers", (double)l / cfg.n_layers);
    const LayerLayout t = layer_layout(cfg, l);
    LayerWeightsCuda& L = w.layers[l];
    L.input_norm = upload_vector(ckpt, t.input_norm, H, stream);
    L.post_norm = upload_vector(ckpt, t.post_norm, H, stream);
    L.q_norm = upload_vector(ckpt, t.q_norm, D, stream);
    L.k_norm = upload_vector(ckpt, t.k_norm, D, stream);
    L.qkv = upload_awq(ckpt, t.qkv, G, st, stream);
    L.o = upload_awq(ckpt, t.o, G, st, stream);
    L.gate_up = upload_awq(ckpt, t.gate_up, G, st, stream);
    L.down = upload_awq(ckpt, t.down, G, st, stream);
    for (const AwqDevice* a : {&L.qkv, &L.o, &L.gate_up, &L.down})
      w.bytes_per_token += (int64_t)(a->qw.bytes() + a->sz.bytes());
    w.bytes_per_token += (int64_t)(2 * H + 2 * D) * 2;
  }
  Q3_CK(cudaStreamSynchronize(stream));  // staging buffers are freed on return
  if (progress) progress("repacking layers", 1.0);
}

}  // namespace q3
