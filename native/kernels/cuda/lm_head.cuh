// fp16 GEMV for the untied lm_head: logits (M, V) fp32 = x (M, K) . W^T with W (V, K) row-major as published.
// Each warp owns ROWS vocabulary rows and streams them with 16-byte loads along K; x comes through L1.
// M is handled in chunks of MT <= 16 rows of x (each chunk re-reads W, so batches > 16 pay one read per chunk).
#pragma once
#include "common.cuh"

namespace q3::cuda::dev {

constexpr int kLmWarps = 8, kLmRows = 2;

template <int MT>
__global__ void __launch_bounds__(kLmWarps * 32)
    lm_head_kernel(const __half* __restrict__ W, const __half* __restrict__ x, int M, int V, int K,
                   float* __restrict__ logits) {
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int v0 = (blockIdx.x * kLmWarps + warp) * kLmRows;
  const int K8 = K / 8;
  float acc[kLmRows][MT];
#pragma unroll
  for (int r = 0; r < kLmRows; r++)
#pragma unroll
    for (int m = 0; m < MT; m++) acc[r][m] = 0.f;
  const uint4* wr[kLmRows];
#pragma unroll
  for (int r = 0; r < kLmRows; r++) wr[r] = reinterpret_cast<const uint4*>(W + (long long)min(v0 + r, V - 1) * K);

#pragma unroll 2
  for (int k8 = lane; k8 < K8; k8 += 32) {
    uint4 wv[kLmRows];
#pragma unroll
    for (int r = 0; r < kLmRows; r++) wv[r] = ld_stream(wr[r] + k8);
#pragma unroll
    for (int m = 0; m < MT; m++) {
      if (m >= M) break;
      uint4 xv = __ldg(reinterpret_cast<const uint4*>(x + (long long)m * K) + k8);
      const half2* xh = reinterpret_cast<const half2*>(&xv);
#pragma unroll
      for (int r = 0; r < kLmRows; r++) {
        const half2* wh = reinterpret_cast<const half2*>(&wv[r]);
#pragma unroll
        for (int i = 0; i < 4; i++) {
          float2 a = __half22float2(wh[i]), b = __half22float2(xh[i]);
          acc[r][m] = fmaf(a.x, b.x, fmaf(a.y, b.y, acc[r][m]));
        }
      }
    }
  }
#pragma unroll
  for (int r = 0; r < kLmRows; r++)
#pragma unroll
    for (int m = 0; m < MT; m++) {
      float s = warp_sum(acc[r][m]);
      if (lane == 0 && m < M && v0 + r < V) logits[(long long)m * V + v0 + r] = s;
    }
}

}  // namespace q3::cuda::dev
