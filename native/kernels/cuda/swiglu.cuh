// SwiGLU for the fused gate|up matmul output: out (M, I) = silu(gate) * up with gate_up (M, 2I); fp32 math,
// one rounding. 16-byte vectors; I must be a multiple of 8.
#pragma once
#include "common.cuh"

namespace q3::cuda::dev {

__global__ void swiglu_kernel(const __half* __restrict__ gate_up, int M, int I, __half* __restrict__ out) {
  const int I8 = I / 8;
  long long total = (long long)M * I8;
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (long long)gridDim.x * blockDim.x) {
    long long m = i / I8;
    int c = (int)(i % I8);
    const uint4* row = reinterpret_cast<const uint4*>(gate_up + m * 2 * I);
    uint4 gv = row[c], uv = row[I8 + c], o;
    const half2* gh = reinterpret_cast<const half2*>(&gv);
    const half2* uh = reinterpret_cast<const half2*>(&uv);
    half2* oh = reinterpret_cast<half2*>(&o);
#pragma unroll
    for (int k = 0; k < 4; k++) {
      float2 gf = __half22float2(gh[k]), uf = __half22float2(uh[k]);
      float a = gf.x / (1.f + __expf(-gf.x)) * uf.x;
      float b = gf.y / (1.f + __expf(-gf.y)) * uf.y;
      oh[k] = __floats2half2_rn(a, b);
    }
    reinterpret_cast<uint4*>(out + m * I)[c] = o;
  }
}

}  // namespace q3::cuda::dev
