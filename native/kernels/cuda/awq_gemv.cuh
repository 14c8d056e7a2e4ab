// W4A16 GEMV / skinny GEMM for M = 1..16 on CUDA cores, reading AWQ int4 weights repacked at load time
// (layout in qwen3_cuda.h): each lane streams 16-byte tiles (4 columns x 8 k), dequantises them in fp16 with a
// mask-and-OR trick ((1024+q) - (1024+z) is exact, then one rounding for * scale), forms 8-term fp16 products and
// accumulates them in fp32. A block's 8 warps split K and share the same column quads; partial sums meet in shared
// memory. Memory-bound up to M ~ 2-4 on H200; above that the tensor-core awq_gemm wins (measured by gpu_check).
#pragma once
#include "common.cuh"

namespace q3::cuda::dev {

// One thread per repacked 32-bit word (n4, k8, j) and one per scale word (n4, g, j).
__global__ void awq_repack_kernel(const int32_t* __restrict__ qweight, const int32_t* __restrict__ qzeros,
                                  const __half* __restrict__ scales, int K, int N, int col0, int total_N,
                                  uint32_t* __restrict__ qw, uint32_t* __restrict__ sz) {
  const int K8 = K / 8, G = K / kGroup, N8 = N / 8;
  long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  long long nw = (long long)N * K8;
  if (i < nw) {
    int n = (int)(i / K8), k8 = (int)(i % K8);
    uint32_t word = 0;
#pragma unroll
    for (int r = 0; r < 8; r++) {
      int k = 8 * k8 + r;
      uint32_t q = ((uint32_t)qweight[(long long)k * N8 + n / 8] >> (4 * ((n % 8) / 2 + 4 * (n % 2)))) & 0xF;
      word |= q << (4 * ((r >> 1) + 4 * (r & 1)));
    }
    int gn = col0 + n;
    qw[((long long)(gn / 4) * K8 + k8) * 4 + gn % 4] = word;
  }
  long long ns = (long long)N * G;
  if (i < ns) {
    int n = (int)(i / G), g = (int)(i % G);
    uint32_t z = ((uint32_t)qzeros[(long long)g * N8 + n / 8] >> (4 * ((n % 8) / 2 + 4 * (n % 2)))) & 0xF;
    uint16_t s = __half_as_ushort(scales[(long long)g * N + n]);
    int gn = col0 + n;
    sz[((long long)(gn / 4) * G + g) * 4 + gn % 4] = (uint32_t)s | ((0x6400u | z) << 16);
  }
}

// Sum V values over the 32 lanes with a reduce-scatter: each halving step exchanges half of the values, so the
// whole reduction costs ~V shuffles instead of 5V. Afterwards lane l holds, for V >= 32, values l*(V/32) + i in
// v[0..V/32); for V < 32, value l / (32/V) in v[0] (duplicated across neighbouring lanes).
template <int V>
__device__ __forceinline__ void warp_reduce_scatter(float (&v)[V], int lane) {
  int n = V;
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    if (n > 1) {
      const int h = n / 2;
      const bool upper = (lane & o) != 0;
#pragma unroll
      for (int i = 0; i < V / 2; i++) {
        if (i < h) {
          float send = upper ? v[i] : v[i + h];
          float keep = upper ? v[i + h] : v[i];
          v[i] = keep + __shfl_xor_sync(0xffffffffu, send, o);
        }
      }
      n = h;
    } else {
      v[0] += __shfl_xor_sync(0xffffffffu, v[0], o);
    }
  }
}

constexpr int kGemvWarps = 8;

// MT: rows of x the template is built for (M <= MT, rows >= M are skipped). CQ: column quads per block.
template <int MT, int CQ>
__global__ void __launch_bounds__(kGemvWarps * 32)
    awq_gemv_kernel(const uint4* __restrict__ qw, const uint4* __restrict__ sz, const __half* __restrict__ x,
                    __half* __restrict__ y, int M, int K, int N) {
  constexpr int V = MT * CQ * 4;  // accumulators per lane: (row, column)
  __shared__ float red[kGemvWarps][V];
  const int K8 = K / 8, G = K / kGroup, N4 = N / 4;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int n4_0 = blockIdx.x * CQ;

  float acc[V];
#pragma unroll
  for (int i = 0; i < V; i++) acc[i] = 0.f;

  const uint4* wrow[CQ];
  const uint4* srow[CQ];
#pragma unroll
  for (int c = 0; c < CQ; c++) {
    int n4 = min(n4_0 + c, N4 - 1);  // a clamped quad recomputes the last one; its result is never stored
    wrow[c] = qw + (long long)n4 * K8;
    srow[c] = sz + (long long)n4 * G;
  }

#pragma unroll 2
  for (int k8 = warp * 32 + lane; k8 < K8; k8 += kGemvWarps * 32) {
    uint4 wv[CQ], sv[CQ], xv[MT];
#pragma unroll
    for (int c = 0; c < CQ; c++) wv[c] = ld_stream(wrow[c] + k8);
#pragma unroll
    for (int c = 0; c < CQ; c++) sv[c] = __ldg(srow[c] + (k8 >> 4));
#pragma unroll
    for (int m = 0; m < MT; m++)
      xv[m] = m < M ? __ldg(reinterpret_cast<const uint4*>(x + (long long)m * K) + k8) : make_uint4(0, 0, 0, 0);
#pragma unroll
    for (int c = 0; c < CQ; c++) {
      const uint32_t ws[4] = {wv[c].x, wv[c].y, wv[c].z, wv[c].w};
      const uint32_t ss[4] = {sv[c].x, sv[c].y, sv[c].z, sv[c].w};
#pragma unroll
      for (int j = 0; j < 4; j++) {
        half2 s2 = __low2half2(u32_as_h2(ss[j]));
        half2 z2 = __high2half2(u32_as_h2(ss[j]));
        half2 wd[4];
#pragma unroll
        for (int i = 0; i < 4; i++) wd[i] = __hmul2(__hsub2(nibbles_to_half2_biased(ws[j], 4 * i), z2), s2);
#pragma unroll
        for (int m = 0; m < MT; m++) {
          const uint32_t xs[4] = {xv[m].x, xv[m].y, xv[m].z, xv[m].w};
          half2 p = __hmul2(wd[0], u32_as_h2(xs[0]));
#pragma unroll
          for (int i = 1; i < 4; i++) p = __hfma2(wd[i], u32_as_h2(xs[i]), p);
          float2 f = __half22float2(p);
          acc[m * CQ * 4 + c * 4 + j] += f.x + f.y;
        }
      }
    }
  }

  warp_reduce_scatter<V>(acc, lane);
  if constexpr (V >= 32) {
#pragma unroll
    for (int i = 0; i < V / 32; i++) red[warp][lane * (V / 32) + i] = acc[i];
  } else {
    if (lane % (32 / V) == 0) red[warp][lane / (32 / V)] = acc[0];
  }
  __syncthreads();
  for (int t = threadIdx.x; t < V; t += blockDim.x) {
    int m = t / (CQ * 4), col = t % (CQ * 4);
    int n = n4_0 * 4 + col;
    if (m < M && n < N) {
      float s = 0.f;
#pragma unroll
      for (int w = 0; w < kGemvWarps; w++) s += red[w][t];
      y[(long long)m * N + n] = __float2half_rn(s);
    }
  }
}

template <int MT, int CQ>
inline void launch_awq_gemv(const uint4* qw, const uint4* sz, const __half* x, __half* y, int M, int K, int N,
                            cudaStream_t stream) {
  int blocks = (N / 4 + CQ - 1) / CQ;
  awq_gemv_kernel<MT, CQ><<<blocks, kGemvWarps * 32, 0, stream>>>(qw, sz, x, y, M, K, N);
}

}  // namespace q3::cuda::dev
