// Per-head q/k RMSNorm (weight of 128 shared by all heads) + NeoX RoPE + write of k and v into the paged cache,
// fused into one pass over the qkv matmul output. The host supplies inv_freq (64 fp32, YaRN already folded in) and
// the attention factor that scales cos and sin; angles are pos * inv_freq in fp32 as in HF.
// One warp per (token, head); lane l holds dims 2l, 2l+1 and their rotation partners 64+2l, 64+2l+1.
// Cache layout: (num_blocks, KV, 16, 128) fp16; slot = block * 16 + offset.
#pragma once
#include "common.cuh"

namespace q3::cuda::dev {

constexpr int kRopeWarps = 8;

__global__ void __launch_bounds__(kRopeWarps * 32)
    qk_norm_rope_cache_kernel(const __half* __restrict__ qkv, int H, int KV, const int32_t* __restrict__ positions,
                              const int32_t* __restrict__ slot_mapping, const float* __restrict__ inv_freq,
                              float attn_factor, const __half* __restrict__ q_norm_w,
                              const __half* __restrict__ k_norm_w, float eps, __half* __restrict__ q_out,
                              __half* __restrict__ k_cache, __half* __restrict__ v_cache) {
  const int tok = blockIdx.x;
  const int head = blockIdx.y * kRopeWarps + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  if (head >= H + 2 * KV) return;
  const int D = kHeadDim;
  const __half* src = qkv + (long long)tok * (H + 2 * KV) * D + (long long)head * D;
  half2 lo = reinterpret_cast<const half2*>(src)[lane];
  half2 hi = reinterpret_cast<const half2*>(src + 64)[lane];
  const int slot = slot_mapping[tok];
  const long long blk = slot / kKvBlock, off = slot % kKvBlock;

  if (head >= H + KV) {  // v: copied as is
    int kvh = head - H - KV;
    __half* dst = v_cache + ((blk * KV + kvh) * kKvBlock + off) * D;
    reinterpret_cast<half2*>(dst)[lane] = lo;
    reinterpret_cast<half2*>(dst + 64)[lane] = hi;
    return;
  }
  float2 a = __half22float2(lo), b = __half22float2(hi);
  float ss = warp_sum(a.x * a.x + a.y * a.y + b.x * b.x + b.y * b.y);
  float inv = rsqrtf(ss / (float)D + eps);
  const __half* nw = head < H ? q_norm_w : k_norm_w;
  float2 wa = __half22float2(reinterpret_cast<const half2*>(nw)[lane]);
  float2 wb = __half22float2(reinterpret_cast<const half2*>(nw + 64)[lane]);
  a.x *= inv * wa.x; a.y *= inv * wa.y; b.x *= inv * wb.x; b.y *= inv * wb.y;

  const float pos = (float)positions[tok];
  float s0, c0, s1, c1;
  sincosf(pos * inv_freq[2 * lane], &s0, &c0);
  sincosf(pos * inv_freq[2 * lane + 1], &s1, &c1);
  c0 *= attn_factor; s0 *= attn_factor; c1 *= attn_factor; s1 *= attn_factor;
  // x' = x*cos + rotate_half(x)*sin, rotate_half(x) = (-x[64:], x[:64])
  half2 olo = __floats2half2_rn(a.x * c0 - b.x * s0, a.y * c1 - b.y * s1);
  half2 ohi = __floats2half2_rn(b.x * c0 + a.x * s0, b.y * c1 + a.y * s1);
  __half* dst;
  if (head < H) {
    dst = q_out + ((long long)tok * H + head) * D;
  } else {
    dst = k_cache + ((blk * KV + (head - H)) * kKvBlock + off) * D;
  }
  reinterpret_cast<half2*>(dst)[lane] = olo;
  reinterpret_cast<half2*>(dst + 64)[lane] = ohi;
}

}  // namespace q3::cuda::dev
