// Token embedding lookup: out (M, D) = table[ids[m]] with 16-byte copies; D must be a multiple of 8.
#pragma once
#include "common.cuh"

namespace q3::cuda::dev {

__global__ void embedding_kernel(const __half* __restrict__ table, const int32_t* __restrict__ ids, int D,
                                 __half* __restrict__ out) {
  const long long row = blockIdx.x;
  const uint4* src = reinterpret_cast<const uint4*>(table + (long long)ids[row] * D);
  uint4* dst = reinterpret_cast<uint4*>(out + row * D);
  for (int i = threadIdx.x; i < D / 8; i += blockDim.x) dst[i] = __ldg(src + i);
}

}  // namespace q3::cuda::dev
