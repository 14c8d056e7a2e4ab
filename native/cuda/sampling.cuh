// Token sampling on the GPU, one block per request: penalties (repetition / presence / frequency), temperature,
// top-k, top-p and min-p as thresholds on p = exp((logit - max) / T), then one draw from the kept mass with a
// per-request Philox4x32-10 stream (key = seed, counter = offset), so a request replays identically; greedy argmax
// when temperature <= 0 (ties -> lowest id). Thresholds come from a 4-pass radix select over the float bits of p
// (positive floats order like their bit patterns): by count for top-k, by probability mass for top-p.
// Ties at a threshold are all kept. The top-p mass histogram uses float atomics, so a threshold sitting within
// rounding of a bin edge can differ between runs.
#pragma once
#include "common.cuh"
#include "philox.h"
#include "qwen3_cuda.h"

namespace q3::cuda::dev {

constexpr int kSampleThreads = 1024;

__global__ void __launch_bounds__(256)
    apply_penalties_kernel(float* __restrict__ logits, int V, const int32_t* __restrict__ history, int hist_stride,
                           const int32_t* __restrict__ hist_lens, const SamplingParams* __restrict__ params,
                           int32_t* __restrict__ counts) {
  const int b = blockIdx.x;
  const SamplingParams P = params[b];
  const int n = hist_lens[b];
  const int32_t* hist = history + (long long)b * hist_stride;
  int32_t* cnt = counts + (long long)b * V;
  float* lg = logits + (long long)b * V;
  for (int i = threadIdx.x; i < n; i += blockDim.x) atomicAdd(&cnt[hist[i]], 1);
  __syncthreads();
  // The one thread that takes a non-zero count applies the penalty once per distinct token and re-zeroes it.
  for (int i = threadIdx.x; i < n; i += blockDim.x) {
    int tok = hist[i];
    int c = atomicExch(&cnt[tok], 0);
    if (c > 0) {
      float l = lg[tok];
      if (P.repetition_penalty != 1.f) l = l > 0.f ? l / P.repetition_penalty : l * P.repetition_penalty;
      l -= P.frequency_penalty * (float)c + P.presence_penalty;
      lg[tok] = l;
    }
  }
}

struct SampleShared {
  float red[32];
  int redi[32];
  float bins[256];
  uint32_t prefix;
  float rem;
  int found;
  int tok;
};

// Highest threshold value `prefix` such that the (count | mass) of candidates with p >= prefix reaches `target`.
// Candidates: p >= floor_theta. Returns floor_theta if the target can't be reached (rounding).
template <bool kMass>
__device__ float radix_threshold(const float* lg, int V, float mx, float invT, float floor_theta, float target,
                                 SampleShared& sh) {
  const int tid = threadIdx.x, lane = tid & 31;
  uint32_t prefix = 0, mask = 0;
  float rem = target;
  for (int shift = 24; shift >= 0; shift -= 8) {
    if (tid < 256) sh.bins[tid] = 0.f;
    __syncthreads();
    for (int i = tid; i < V; i += blockDim.x) {
      float p = __expf((lg[i] - mx) * invT);
      uint32_t u = __float_as_uint(p);
      if (p >= floor_theta && (u & mask) == prefix) atomicAdd(&sh.bins[(u >> shift) & 255], kMass ? p : 1.f);
    }
    __syncthreads();
    if (tid < 32) {  // lane l owns bins 255-8l .. 248-8l, scanned from the top
      float v[8], s = 0.f;
#pragma unroll
      for (int j = 0; j < 8; j++) {
        v[j] = sh.bins[255 - 8 * lane - j];
        s += v[j];
      }
      float incl = s;
#pragma unroll
      for (int o = 1; o < 32; o <<= 1) {
        float y = __shfl_up_sync(0xffffffffu, incl, o);
        if (lane >= o) incl += y;
      }
      float excl = incl - s;
      bool mine = excl < rem && rem <= incl;
      unsigned who = __ballot_sync(0xffffffffu, mine);
      if (who == 0) {
        if (lane == 0) sh.found = 0;
      } else if (lane == __ffs(who) - 1) {
        float cum = excl;
        int d = 255 - 8 * lane - 7;
#pragma unroll
        for (int j = 0; j < 8; j++) {
          if (cum + v[j] >= rem) {
            d = 255 - 8 * lane - j;
            break;
          }
          cum += v[j];
        }
        sh.prefix = prefix | ((uint32_t)d << shift);
        sh.rem = rem - cum;
        sh.found = 1;
      }
    }
    __syncthreads();
    if (!sh.found) return floor_theta;
    prefix = sh.prefix;
    rem = sh.rem;
    mask |= 255u << shift;
    __syncthreads();
  }
  return fmaxf(__uint_as_float(prefix), floor_theta);
}

__global__ void __launch_bounds__(kSampleThreads)
    sample_kernel(const float* __restrict__ logits, int V, const SamplingParams* __restrict__ params,
                  int32_t* __restrict__ tokens) {
  __shared__ SampleShared sh;
  const int b = blockIdx.x, tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const float* lg = logits + (long long)b * V;
  const SamplingParams P = params[b];

  // Argmax, lowest index on ties.
  float best = -INFINITY;
  int bi = 0x7fffffff;
  for (int i = tid; i < V; i += blockDim.x) {
    float v = lg[i];
    if (v > best) { best = v; bi = i; }
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    float ov = __shfl_xor_sync(0xffffffffu, best, o);
    int oi = __shfl_xor_sync(0xffffffffu, bi, o);
    if (ov > best || (ov == best && oi < bi)) { best = ov; bi = oi; }
  }
  if (lane == 0) { sh.red[warp] = best; sh.redi[warp] = bi; }
  __syncthreads();
  if (tid < 32) {
    best = sh.red[lane];
    bi = sh.redi[lane];
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
      float ov = __shfl_xor_sync(0xffffffffu, best, o);
      int oi = __shfl_xor_sync(0xffffffffu, bi, o);
      if (ov > best || (ov == best && oi < bi)) { best = ov; bi = oi; }
    }
    if (lane == 0) { sh.red[0] = best; sh.tok = bi; }
  }
  __syncthreads();
  const float mx = sh.red[0];
  const int argmax = sh.tok;
  __syncthreads();
  if (!(P.temperature > 0.f)) {
    if (tid == 0) tokens[b] = argmax;
    return;
  }
  const float invT = 1.f / P.temperature;

  float theta = 0.f;
  if (P.top_k > 0 && P.top_k < V) theta = radix_threshold<false>(lg, V, mx, invT, 0.f, (float)P.top_k, sh);
  if (P.top_p < 1.f) {
    float z = 0.f;
    for (int i = tid; i < V; i += blockDim.x) {
      float p = __expf((lg[i] - mx) * invT);
      if (p >= theta) z += p;
    }
    z = block_sum(z, sh.red);
    theta = radix_threshold<true>(lg, V, mx, invT, theta, P.top_p * z, sh);
  }
  if (P.min_p > 0.f) theta = fmaxf(theta, P.min_p);  // p of the argmax is exactly 1

  // Kept mass of this thread's contiguous slice, block-wide exclusive scan, then the owning slice walks to u.
  const int chunk = (V + blockDim.x - 1) / blockDim.x;
  const int i0 = tid * chunk, i1 = min(V, i0 + chunk);
  float s = 0.f;
  for (int i = i0; i < i1; i++) {
    float p = __expf((lg[i] - mx) * invT);
    if (p >= theta) s += p;
  }
  float incl = s;
#pragma unroll
  for (int o = 1; o < 32; o <<= 1) {
    float y = __shfl_up_sync(0xffffffffu, incl, o);
    if (lane >= o) incl += y;
  }
  if (lane == 31) sh.red[warp] = incl;
  if (tid == 0) sh.tok = argmax;
  __syncthreads();
  if (tid < 32) {
    float w = sh.red[lane], wi = w;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
      float y = __shfl_up_sync(0xffffffffu, wi, o);
      if (lane >= o) wi += y;
    }
    sh.bins[lane] = wi - w;  // exclusive prefix of warp totals
    if (lane == 31) sh.rem = wi;
  }
  __syncthreads();
  const float excl = sh.bins[warp] + incl - s;
  const float u = philox_uniform(P.seed, P.offset) * sh.rem;
  if (s > 0.f && excl <= u && u < excl + s) {
    float acc = excl;
    int pick = -1;
    for (int i = i0; i < i1; i++) {
      float p = __expf((lg[i] - mx) * invT);
      if (p >= theta) {
        pick = i;
        acc += p;
        if (u < acc) break;
      }
    }
    if (pick >= 0) sh.tok = pick;  // at most one slice owns u
  }
  __syncthreads();
  if (tid == 0) tokens[b] = sh.tok;
}

}  // namespace q3::cuda::dev
