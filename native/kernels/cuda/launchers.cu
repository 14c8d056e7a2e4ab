// Host launchers of the CUDA kernels declared in qwen3_cuda.h: shape checks, grid choice, launch, error check.
#include <algorithm>
#include <vector>

#include "attention.cuh"
#include "awq_gemm.cuh"
#include "awq_gemv.cuh"
#include "embedding.cuh"
#include "lm_head.cuh"
#include "norm.cuh"
#include "qwen3_cuda.h"
#include "rope.cuh"
#include "sampling.cuh"
#include "swiglu.cuh"

namespace q3::cuda {

using namespace dev;

static inline int ceil_div(long long a, long long b) { return (int)((a + b - 1) / b); }

int device_sm_count() {
  int dev = 0, n = 0;
  Q3_CUDA_CHECK(cudaGetDevice(&dev));
  Q3_CUDA_CHECK(cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev));
  return n;
}

size_t awq_qw_bytes(int K, int N) { return (size_t)N / 4 * (K / 8) * 16; }
size_t awq_sz_bytes(int K, int N) { return (size_t)N / 4 * (K / kGroup) * 16; }

void awq_repack_host(const int32_t* qweight, const int32_t* qzeros, const uint16_t* scales, int K, int N,
                     int col0, int total_N, uint32_t* qw, uint32_t* sz) {
  Q3_REQUIRE(K % kGroup == 0 && N % 8 == 0 && col0 % 4 == 0 && col0 + N <= total_N);
  const int K8 = K / 8, G = K / kGroup, N8 = N / 8;
  const int rev[8] = {0, 4, 1, 5, 2, 6, 3, 7};
  for (int n = 0; n < N; n++) {
    const int gn = col0 + n;
    for (int k8 = 0; k8 < K8; k8++) {
      uint32_t word = 0;
      for (int r = 0; r < 8; r++) {
        uint32_t q = ((uint32_t)qweight[(size_t)(8 * k8 + r) * N8 + n / 8] >> (4 * rev[n % 8])) & 0xF;
        word |= q << (4 * ((r >> 1) + 4 * (r & 1)));
      }
      qw[((size_t)(gn / 4) * K8 + k8) * 4 + gn % 4] = word;
    }
    for (int g = 0; g < G; g++) {
      uint32_t z = ((uint32_t)qzeros[(size_t)g * N8 + n / 8] >> (4 * rev[n % 8])) & 0xF;
      sz[((size_t)(gn / 4) * G + g) * 4 + gn % 4] = (uint32_t)scales[(size_t)g * N + n] | ((0x6400u | z) << 16);
    }
  }
}

void awq_repack_device(const int32_t* qweight, const int32_t* qzeros, const __half* scales, int K, int N, int col0,
                       int total_N, uint4* qw, uint4* sz, cudaStream_t stream) {
  Q3_REQUIRE(K % kGroup == 0 && N % 8 == 0 && col0 % 4 == 0 && col0 + N <= total_N);
  long long n = (long long)N * (K / 8);
  awq_repack_kernel<<<ceil_div(n, 256), 256, 0, stream>>>(qweight, qzeros, scales, K, N, col0, total_N,
                                                          reinterpret_cast<uint32_t*>(qw),
                                                          reinterpret_cast<uint32_t*>(sz));
  Q3_CUDA_CHECK_LAUNCH();
}

void awq_gemv(const AwqWeight& w, const __half* x, int M, __half* y, cudaStream_t s) {
  Q3_REQUIRE(M >= 1 && M <= 16 && w.K % kGroup == 0 && w.N % 8 == 0);
  if (M == 1) launch_awq_gemv<1, 4>(w.qw, w.sz, x, y, M, w.K, w.N, s);
  else if (M == 2) launch_awq_gemv<2, 4>(w.qw, w.sz, x, y, M, w.K, w.N, s);
  else if (M <= 4) launch_awq_gemv<4, 2>(w.qw, w.sz, x, y, M, w.K, w.N, s);
  else if (M <= 8) launch_awq_gemv<8, 2>(w.qw, w.sz, x, y, M, w.K, w.N, s);
  else launch_awq_gemv<16, 1>(w.qw, w.sz, x, y, M, w.K, w.N, s);
  Q3_CUDA_CHECK_LAUNCH();
}

template <class C>
static int gemm_tiles(int M, int N) {
  return ceil_div(M, C::BM) * ceil_div(N, C::BN);
}

int awq_gemm_split_k(int M, int N, int K, int num_sms) {
  int tiles = M <= 16 ? gemm_tiles<GemmSmall>(M, N) : M <= 64 ? gemm_tiles<GemmMid>(M, N) : gemm_tiles<GemmLarge>(M, N);
  int ktiles = K / 64;
  int split = 1;
  while (tiles * split < num_sms && split * 2 <= 16 && ktiles / (split * 2) >= 4) split *= 2;
  return split;
}

size_t awq_gemm_workspace_floats(int M, int N, int split_k) { return split_k > 1 ? (size_t)split_k * M * N : 0; }

template <class C>
static void launch_gemm(const AwqWeight& w, const __half* x, int M, __half* y, float* ws, int split,
                        cudaStream_t s) {
  static bool configured = false;  // per template instance; the attribute is per kernel and device
  if (!configured) {
    Q3_CUDA_CHECK(cudaFuncSetAttribute(awq_gemm_kernel<C>, cudaFuncAttributeMaxDynamicSharedMemorySize, C::SMEM));
    configured = true;
  }
  const int ktiles = w.K / C::BK;
  const int per = ceil_div(ktiles, split);
  dim3 grid(ceil_div(w.N, C::BN), ceil_div(M, C::BM), split);
  awq_gemm_kernel<C><<<grid, C::THREADS, C::SMEM, s>>>(w.qw, w.sz, x, y, split > 1 ? ws : nullptr, M, w.K, w.N, per);
  Q3_CUDA_CHECK_LAUNCH();
  if (split > 1) {
    long long pairs = (long long)M * w.N / 2;
    awq_gemm_reduce_kernel<<<std::min(ceil_div(pairs, 256), 4096), 256, 0, s>>>(ws, split, M, w.N, y);
    Q3_CUDA_CHECK_LAUNCH();
  }
}

void awq_gemm(const AwqWeight& w, const __half* x, int M, __half* y, float* ws, int split, cudaStream_t s) {
  Q3_REQUIRE(M >= 1 && w.K % kGroup == 0 && w.N % 8 == 0);
  if (split <= 0) split = awq_gemm_split_k(M, w.N, w.K, device_sm_count());
  Q3_REQUIRE(split == 1 || ws != nullptr);
  if (M <= 16) launch_gemm<GemmSmall>(w, x, M, y, ws, split, s);
  else if (M <= 64) launch_gemm<GemmMid>(w, x, M, y, ws, split, s);
  else launch_gemm<GemmLarge>(w, x, M, y, ws, split, s);
}

void rmsnorm(const __half* x, const __half* w, int M, int D, float eps, __half* y, cudaStream_t s) {
  Q3_REQUIRE(D % 8 == 0);
  add_rmsnorm_kernel<<<M, kNormThreads, 0, s>>>(nullptr, x, w, D, eps, y);
  Q3_CUDA_CHECK_LAUNCH();
}

void add_rmsnorm(__half* residual, const __half* x, const __half* w, int M, int D, float eps, __half* y,
                 cudaStream_t s) {
  Q3_REQUIRE(D % 8 == 0);
  add_rmsnorm_kernel<<<M, kNormThreads, 0, s>>>(residual, x, w, D, eps, y);
  Q3_CUDA_CHECK_LAUNCH();
}

void embedding(const __half* table, const int32_t* ids, int M, int D, __half* out, cudaStream_t s) {
  Q3_REQUIRE(D % 8 == 0);
  embedding_kernel<<<M, 256, 0, s>>>(table, ids, D, out);
  Q3_CUDA_CHECK_LAUNCH();
}

void swiglu(const __half* gate_up, int M, int I, __half* out, cudaStream_t s) {
  Q3_REQUIRE(I % 8 == 0);
  long long n = (long long)M * I / 8;
  swiglu_kernel<<<std::min(ceil_div(n, 256), 65535), 256, 0, s>>>(gate_up, M, I, out);
  Q3_CUDA_CHECK_LAUNCH();
}

void qk_norm_rope_cache(const __half* qkv, int T, int H, int KV, const int32_t* pos, const int32_t* slots,
                        const float* inv_freq, float attn_factor, const __half* qn, const __half* kn, float eps,
                        __half* q_out, __half* kc, __half* vc, cudaStream_t s) {
  dim3 grid(T, ceil_div(H + 2 * KV, kRopeWarps));
  qk_norm_rope_cache_kernel<<<grid, kRopeWarps * 32, 0, s>>>(qkv, H, KV, pos, slots, inv_freq, attn_factor, qn, kn,
                                                              eps, q_out, kc, vc);
  Q3_CUDA_CHECK_LAUNCH();
}

static int decode_part(int max_ctx, int splits) { return ceil_div(ceil_div(max_ctx, splits), 16) * 16; }

int decode_attention_splits(int B, int KV, int max_ctx, int num_sms) {
  int splits = std::max(1, ceil_div(2 * num_sms, (long long)KV * B));
  int part = std::min(kDecMaxPart, std::max(32, decode_part(max_ctx, splits)));
  return ceil_div(max_ctx, part);
}

size_t decode_attention_workspace_floats(int B, int H, int splits) {
  return (size_t)B * H * splits * (kHeadDim + 2);
}

void decode_attention(const __half* q, const __half* kc, const __half* vc, const int32_t* bt, int max_blocks,
                      const int32_t* ctx_lens, int B, int H, int KV, int max_ctx, float scale, int splits,
                      float* ws, __half* out, cudaStream_t s) {
  Q3_REQUIRE(H == KV * kGqa && splits >= 1);
  const int part = decode_part(max_ctx, splits);
  Q3_REQUIRE(part <= kDecMaxPart);
  float* o_part = ws;
  float* ml = ws + (size_t)B * H * splits * kHeadDim;
  size_t smem = (size_t)(kGqa * kHeadDim + 4 * kGqa * kHeadDim + 8 + kGqa * part) * sizeof(float);
  decode_attention_split_kernel<<<dim3(KV, B, splits), kDecThreads, smem, s>>>(
      q, kc, vc, bt, max_blocks, ctx_lens, H, KV, part, splits, scale * kLog2e, o_part, ml);
  Q3_CUDA_CHECK_LAUNCH();
  decode_attention_combine_kernel<<<B * H, kHeadDim, 0, s>>>(o_part, ml, splits, out);
  Q3_CUDA_CHECK_LAUNCH();
}

void prefill_attention(const __half* q, const int32_t* cu_q, const int32_t* ctx_lens, const int32_t* bt,
                       int max_blocks, int S, int max_q, int H, int KV, float scale, const __half* kc,
                       const __half* vc, __half* out, cudaStream_t s) {
  Q3_REQUIRE(H == KV * kGqa);
  static bool configured = false;
  if (!configured) {
    Q3_CUDA_CHECK(
        cudaFuncSetAttribute(prefill_attention_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kPfSmem));
    configured = true;
  }
  dim3 grid(ceil_div(max_q, kPfTok), KV, S);
  prefill_attention_kernel<<<grid, kPfWarps * 32, kPfSmem, s>>>(q, cu_q, ctx_lens, bt, max_blocks, H, KV,
                                                                 scale * kLog2e, kc, vc, out);
  Q3_CUDA_CHECK_LAUNCH();
}

void lm_head(const __half* W, const __half* x, int M, int V, int K, float* logits, cudaStream_t s) {
  Q3_REQUIRE(K % 8 == 0);
  const int blocks = ceil_div(V, kLmWarps * kLmRows);
  for (int m0 = 0; m0 < M; m0 += 16) {
    int mt = std::min(16, M - m0);
    const __half* xm = x + (size_t)m0 * K;
    float* lm = logits + (size_t)m0 * V;
    if (mt == 1) lm_head_kernel<1><<<blocks, kLmWarps * 32, 0, s>>>(W, xm, mt, V, K, lm);
    else if (mt <= 4) lm_head_kernel<4><<<blocks, kLmWarps * 32, 0, s>>>(W, xm, mt, V, K, lm);
    else if (mt <= 8) lm_head_kernel<8><<<blocks, kLmWarps * 32, 0, s>>>(W, xm, mt, V, K, lm);
    else lm_head_kernel<16><<<blocks, kLmWarps * 32, 0, s>>>(W, xm, mt, V, K, lm);
    Q3_CUDA_CHECK_LAUNCH();
  }
}

void sample_prepare(const float* logits, float* work, int R, int V, const SampleRow* rows, cudaStream_t s) {
  if (R == 0) return;
  Q3_REQUIRE(R <= 65535);
  sample_prepare_kernel<<<dim3(kPrepBlocksPerRow, R), kPrepThreads, 0, s>>>(logits, work, V, rows);
  Q3_CUDA_CHECK_LAUNCH();
}

void sample(const float* logits, const float* work, int R, int V, const SampleRow* rows, SampleResult* results,
            SampleTop* tops, cudaStream_t s) {
  if (R == 0) return;
  sample_kernel<<<R, kSampleThreads, 0, s>>>(logits, work, V, rows, results, tops);
  Q3_CUDA_CHECK_LAUNCH();
}

void scatter_set(int32_t* dst, const int32_t* pairs, int n, cudaStream_t s) {
  if (n == 0) return;
  scatter_set_kernel<<<ceil_div(n, 256), 256, 0, s>>>(dst, pairs, n);
  Q3_CUDA_CHECK_LAUNCH();
}

}  // namespace q3::cuda
