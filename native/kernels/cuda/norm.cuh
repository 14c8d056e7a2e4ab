// RMSNorm over rows of fp16 with fp32 statistics, optionally fused with the residual add that precedes it
// (residual += x; y = norm(residual) * w), so the hidden state is read once and written once per norm.
// One block per row, 16-byte vectors; D must be a multiple of 8.
#pragma once
#include "common.cuh"

namespace q3::cuda::dev {

constexpr int kNormThreads = 256;

// residual may be null (plain norm of x). With a residual, the rounded fp16 sum is what gets normalised, as in HF.
__global__ void __launch_bounds__(kNormThreads)
    add_rmsnorm_kernel(__half* __restrict__ residual, const __half* __restrict__ x, const __half* __restrict__ w,
                       int D, float eps, __half* __restrict__ y) {
  __shared__ float red[32];
  const long long row = blockIdx.x;
  const int D8 = D / 8;
  const uint4* xr = reinterpret_cast<const uint4*>(x + row * D);
  uint4* rr = residual ? reinterpret_cast<uint4*>(residual + row * D) : nullptr;
  float ss = 0.f;
  for (int i = threadIdx.x; i < D8; i += blockDim.x) {
    uint4 v = xr[i];
    if (rr) {
      uint4 r = rr[i];
      half2* vh = reinterpret_cast<half2*>(&v);
      const half2* rh = reinterpret_cast<const half2*>(&r);
#pragma unroll
      for (int k = 0; k < 4; k++) vh[k] = __hadd2(vh[k], rh[k]);
      rr[i] = v;
    }
    const half2* vh = reinterpret_cast<const half2*>(&v);
#pragma unroll
    for (int k = 0; k < 4; k++) {
      float2 f = __half22float2(vh[k]);
      ss += f.x * f.x + f.y * f.y;
    }
  }
  ss = block_sum(ss, red);
  const float inv = rsqrtf(ss / (float)D + eps);
  const uint4* src = rr ? rr : xr;  // this thread re-reads only what it wrote itself
  const uint4* wr = reinterpret_cast<const uint4*>(w);
  uint4* yr = reinterpret_cast<uint4*>(y + row * D);
  for (int i = threadIdx.x; i < D8; i += blockDim.x) {
    uint4 v = src[i], wv = __ldg(wr + i), o;
    const half2* vh = reinterpret_cast<const half2*>(&v);
    const half2* wh = reinterpret_cast<const half2*>(&wv);
    half2* oh = reinterpret_cast<half2*>(&o);
#pragma unroll
    for (int k = 0; k < 4; k++) {
      float2 f = __half22float2(vh[k]), g = __half22float2(wh[k]);
      oh[k] = __floats2half2_rn(f.x * inv * g.x, f.y * inv * g.y);
    }
    yr[i] = o;
  }
}

}  // namespace q3::cuda::dev
