// Tensor-core W4A16 GEMM (mma.sync m16n8k16, sm_80+) on the repacked AWQ layout shared with awq_gemv.cuh.
// A (activations, fp16) and B (int4 tiles + per-group scale/zero) stream through a STAGES-deep cp.async pipeline;
// B is dequantised in registers straight into the mma B-fragment: lane (g = lane/4, t = lane%4) of an n8 x k16
// fragment needs column g at k = 2t, 2t+1 and 2t+8, 2t+9, which are nibble pair t of two repacked words.
// Split-K (grid.z) writes fp32 partials that awq_gemm_reduce sums, for skinny M where tiles alone can't fill the GPU.
// Not done: a wgmma/TMA sm_90a path (stretch goal of issue 8); Hopper runs this mma.sync kernel.
#pragma once
#include "common.cuh"

namespace q3::cuda::dev {

template <int BM_, int BN_, int WM_, int WN_, int STAGES_>
struct GemmTile {
  static constexpr int BM = BM_, BN = BN_, WM = WM_, WN = WN_, STAGES = STAGES_;
  static constexpr int BK = 64;  // half a quantisation group: a k-tile never straddles two groups
  static constexpr int WARPS_M = BM / WM, WARPS_N = BN / WN, THREADS = WARPS_M * WARPS_N * 32;
  static constexpr int MI = WM / 16, NI = WN / 8;
  static constexpr int B_ROW = BK / 8 + 1;  // uint4 per quad row, +1 pad: the 8 columns of a fragment hit 8 banks
  static constexpr int A_HALVES = BM * BK;
  static constexpr int B_U4 = (BN / 4) * B_ROW;
  static constexpr int S_U4 = BN / 4;
  static constexpr int STAGE_BYTES = A_HALVES * 2 + B_U4 * 16 + S_U4 * 16;
  static constexpr int SMEM = STAGES * STAGE_BYTES;
};

using GemmSmall = GemmTile<16, 128, 16, 32, 4>;   // M <= 16: 4 warps side by side along N
using GemmMid = GemmTile<64, 128, 32, 64, 4>;     // M <= 64
using GemmLarge = GemmTile<128, 128, 64, 32, 3>;  // M > 64: 8 warps

template <class C>
__global__ void __launch_bounds__(C::THREADS)
    awq_gemm_kernel(const uint4* __restrict__ qw, const uint4* __restrict__ sz, const __half* __restrict__ x,
                    __half* __restrict__ y, float* __restrict__ partial, int M, int K, int N, int ktiles_per_split) {
  extern __shared__ __align__(16) uint8_t smem[];
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int wm = warp / C::WARPS_N, wn = warp % C::WARPS_N;
  const int m0 = blockIdx.y * C::BM, n0 = blockIdx.x * C::BN, n4_0 = n0 / 4;
  const int K8 = K / 8, G = K / kGroup, N4 = N / 4;
  const int kt_begin = blockIdx.z * ktiles_per_split;
  const int kt_end = min(K / C::BK, kt_begin + ktiles_per_split);
  const int ktiles = max(kt_end - kt_begin, 0);

  auto a_s = [&](int st) { return reinterpret_cast<__half*>(smem + st * C::STAGE_BYTES); };
  auto b_s = [&](int st) { return reinterpret_cast<uint4*>(smem + st * C::STAGE_BYTES + C::A_HALVES * 2); };
  auto s_s = [&](int st) {
    return reinterpret_cast<uint4*>(smem + st * C::STAGE_BYTES + C::A_HALVES * 2 + C::B_U4 * 16);
  };

  auto load_stage = [&](int st, int kt) {
    const int k0 = kt * C::BK;
    __half* as = a_s(st);
    for (int i = tid; i < C::BM * 8; i += C::THREADS) {  // A: BM rows x 8 chunks of 16 B, XOR-swizzled
      int r = i >> 3, c = i & 7;
      bool ok = m0 + r < M;
      const __half* src = x + (long long)(ok ? m0 + r : 0) * K + k0 + c * 8;
      cp_async16(as + r * C::BK + ((c ^ (r & 7)) * 8), src, ok);
    }
    uint4* bs = b_s(st);
    for (int i = tid; i < (C::BN / 4) * 8; i += C::THREADS) {  // B: BN/4 quad rows x 8 tiles of 16 B
      int q = i >> 3, c = i & 7;
      bool ok = n4_0 + q < N4;
      const uint4* src = qw + (long long)(ok ? n4_0 + q : 0) * K8 + k0 / 8 + c;
      cp_async16(bs + q * C::B_ROW + c, src, ok);
    }
    uint4* ss = s_s(st);
    for (int q = tid; q < C::BN / 4; q += C::THREADS) {
      bool ok = n4_0 + q < N4;
      const uint4* src = sz + (long long)(ok ? n4_0 + q : 0) * G + k0 / kGroup;
      cp_async16(ss + q, src, ok);
    }
  };

  float acc[C::MI][C::NI][4];
#pragma unroll
  for (int i = 0; i < C::MI; i++)
#pragma unroll
    for (int j = 0; j < C::NI; j++)
#pragma unroll
      for (int e = 0; e < 4; e++) acc[i][j][e] = 0.f;

#pragma unroll
  for (int s = 0; s < C::STAGES - 1; s++) {
    if (s < ktiles) load_stage(s, kt_begin + s);
    cp_async_commit();
  }

  const int g = lane >> 2, t = lane & 3;
  for (int it = 0; it < ktiles; it++) {
    cp_async_wait<C::STAGES - 2>();
    __syncthreads();
    {
      int nt = it + C::STAGES - 1;
      if (nt < ktiles) load_stage(nt % C::STAGES, kt_begin + nt);
      cp_async_commit();
    }
    const int st = it % C::STAGES;
    const __half* as = a_s(st);
    const uint32_t* bs = reinterpret_cast<const uint32_t*>(b_s(st));
    const uint32_t* ss = reinterpret_cast<const uint32_t*>(s_s(st));

    half2 s2[C::NI], z2[C::NI];
#pragma unroll
    for (int ni = 0; ni < C::NI; ni++) {
      int nl = wn * C::WN + ni * 8 + g;  // column inside the block tile
      uint32_t w = ss[(nl >> 2) * 4 + (nl & 3)];
      s2[ni] = __low2half2(u32_as_h2(w));
      z2[ni] = __high2half2(u32_as_h2(w));
    }
#pragma unroll
    for (int ks = 0; ks < C::BK / 16; ks++) {
      uint32_t af[C::MI][4];
#pragma unroll
      for (int mi = 0; mi < C::MI; mi++) {
        int r = wm * C::WM + mi * 16 + (lane & 15);
        int c = ks * 2 + (lane >> 4);
        ldmatrix_x4(af[mi], as + r * C::BK + ((c ^ (r & 7)) * 8));
      }
#pragma unroll
      for (int ni = 0; ni < C::NI; ni++) {
        int nl = wn * C::WN + ni * 8 + g;
        int base = ((nl >> 2) * C::B_ROW + ks * 2) * 4 + (nl & 3);
        uint32_t w0 = bs[base], w1 = bs[base + 4];
        half2 b0 = __hmul2(__hsub2(nibbles_to_half2_biased(w0, 4 * t), z2[ni]), s2[ni]);
        half2 b1 = __hmul2(__hsub2(nibbles_to_half2_biased(w1, 4 * t), z2[ni]), s2[ni]);
#pragma unroll
        for (int mi = 0; mi < C::MI; mi++) mma_16816(acc[mi][ni], af[mi], h2_as_u32(b0), h2_as_u32(b1));
      }
    }
  }
  cp_async_wait<0>();

  // Epilogue: c0,c1 -> (row g, cols 2t, 2t+1); c2,c3 -> (row g+8, same cols).
#pragma unroll
  for (int mi = 0; mi < C::MI; mi++) {
#pragma unroll
    for (int ni = 0; ni < C::NI; ni++) {
      int n = n0 + wn * C::WN + ni * 8 + 2 * t;
      if (n >= N) continue;
#pragma unroll
      for (int h = 0; h < 2; h++) {
        int m = m0 + wm * C::WM + mi * 16 + g + 8 * h;
        if (m >= M) continue;
        float v0 = acc[mi][ni][2 * h], v1 = acc[mi][ni][2 * h + 1];
        if (partial) {
          *reinterpret_cast<float2*>(partial + ((long long)blockIdx.z * M + m) * N + n) = make_float2(v0, v1);
        } else {
          *reinterpret_cast<half2*>(y + (long long)m * N + n) = __floats2half2_rn(v0, v1);
        }
      }
    }
  }
}

// y (M, N) = sum over splits of partial (splits, M, N); pairs of columns per thread.
__global__ void awq_gemm_reduce_kernel(const float* __restrict__ partial, int splits, int M, int N,
                                       __half* __restrict__ y) {
  long long pairs = (long long)M * N / 2;
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < pairs; i += (long long)gridDim.x * blockDim.x) {
    float2 s = make_float2(0.f, 0.f);
    for (int k = 0; k < splits; k++) {
      float2 v = reinterpret_cast<const float2*>(partial + (long long)k * M * N)[i];
      s.x += v.x;
      s.y += v.y;
    }
    reinterpret_cast<half2*>(y)[i] = __floats2half2_rn(s.x, s.y);
  }
}

}  // namespace q3::cuda::dev
