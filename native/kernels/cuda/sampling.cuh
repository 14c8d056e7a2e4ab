// Token sampling on the GPU (contract in qwen3_cuda.h, launchers in launchers.cu), in the CPU sampler's order
// (native/src/sampler.cpp). sample_prepare_kernel writes the penalised, bitmasked copy of a row; sample_kernel runs
// one block per row:
//   pass 1   log-sum-exp of the logprob logits (raw; with a bitmask, disallowed ones at -inf unless a forced token
//            lies outside it), max, argmax and the mass sum of p = exp((l - max) / T) of the sampled logits;
//   select   greedy takes the argmax. Otherwise the tokens with p >= 2^-40 (or, when more than kSortCap, p >= 2^-16)
//            are gathered and sorted in shared memory by p, lowest id first on ties - the CPU sampler's order - and
//            top-k (exactly k), top-p on the renormalised top-k set, min-p and the draw run on that list as the CPU
//            does. Tokens below the cut-off carry less than 1e-7 of the best token's weight in all. When the list
//            does not hold the kept set, a 4-pass radix select over the float bits of p finds the top-k count and
//            the top-p mass thresholds (ties at a threshold are all kept) and the draw walks the vocabulary in id
//            order;
//   draw     u from Philox4x32-10 (key = the request's seed, counter = the sequence's draw index);
//   logprobs the top-n of the logprob logits the same way (gather and sort, radix select when needed).
// The radix path's mass histogram uses float atomics, so its threshold can move by rounding between runs; the sorted
// path (every request with top-k up to kSortCap, and top-p alone unless the distribution is very flat) is
// deterministic, so a seeded request replays token for token.
#pragma once
#include "common.cuh"
#include "philox.h"
#include "qwen3_cuda.h"

namespace q3::cuda::dev {

constexpr int kSampleThreads = 1024;
constexpr int kSortCap = 2 * kSampleThreads;   // candidates sorted in shared memory, two per thread
constexpr int kPrepThreads = 256, kPrepBlocksPerRow = 32;
constexpr uint32_t kKeyPow2m40 = (127u - 40u) << 23;  // float bits of 2^-40: the first gather's cut-off on p
constexpr uint32_t kKeyPow2m16 = (127u - 16u) << 23;  // 2^-16: the second one

__global__ void __launch_bounds__(kPrepThreads)
    sample_prepare_kernel(const float* __restrict__ logits, float* __restrict__ work, int V,
                          const SampleRow* __restrict__ rows) {
  const int r = blockIdx.y;
  const SampleRow& P = rows[r];
  const int32_t* hist = P.history;
  const uint32_t* allowed = P.allowed;
  if (!P.active || (!hist && !allowed)) return;
  const float rep = P.repetition_penalty, presence = P.presence_penalty, frequency = P.frequency_penalty;
  const float* lg = logits + (size_t)r * V;
  float* out = work + (size_t)r * V;
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < V; i += gridDim.x * blockDim.x) {
    float l = lg[i];
    const int32_t h = hist ? hist[i] : 0;
    if (h != 0) {  // the CPU sampler's arithmetic, rounding for rounding (no fused multiply-add)
      if (rep != 1.f) l = l > 0.f ? __fdiv_rn(l, rep) : __fmul_rn(l, rep);
      const int n = h >> 1;
      if (n > 0) l = __fsub_rn(l, __fadd_rn(__fmul_rn(frequency, (float)n), presence));
    }
    if (allowed && !((allowed[i >> 5] >> (i & 31)) & 1u)) l = -INFINITY;
    out[i] = l;
  }
}

__global__ void scatter_set_kernel(int32_t* __restrict__ dst, const int32_t* __restrict__ pairs, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) dst[pairs[2 * i]] = pairs[2 * i + 1];
}

// A row of logits as a stage reads it: `mask` (nullable, the allowed-token bitmask) turns disallowed tokens to -inf.
struct Logits {
  const float* __restrict__ l;
  const uint32_t* __restrict__ mask;
  __device__ __forceinline__ float operator[](int i) const {
    return mask && !((mask[i >> 5] >> (i & 31)) & 1u) ? -INFINITY : l[i];
  }
};

// Pass 1 of a row: online log-sum-exp of the logprob logits (the raw ones, masked when the row has a bitmask), the
// max, argmax (lowest id on ties) and total weight p = exp((l - m_src) / T) of the sampled logits, and the raw
// argmax (the pick when a bitmask allows nothing).
struct RowStats {
  float m_lp, s_lp, m_src, s_src, m_raw;
  int i_lp, i_src, i_raw;
};

__device__ __forceinline__ void lse_push(float& m, float& s, int& i, float v, int idx, float scale) {
  if (v > m) {
    s = s * __expf((m - v) * scale) + 1.f;
    m = v;
    i = idx;
  } else if (v != -INFINITY) {
    s += __expf((v - m) * scale);
  }
}

__device__ __forceinline__ void lse_merge(float& m, float& s, int& i, float m2, float s2, int i2, float scale) {
  if (m2 > m || (m2 == m && i2 < i)) {
    const float tm = m, ts = s;
    const int ti = i;
    m = m2, s = s2, i = i2;
    m2 = tm, s2 = ts, i2 = ti;
  }
  if (m2 != -INFINITY) s += s2 * __expf((m2 - m) * scale);
}

__device__ __forceinline__ void stats_merge(RowStats& a, const RowStats& b, float scale) {
  lse_merge(a.m_lp, a.s_lp, a.i_lp, b.m_lp, b.s_lp, b.i_lp, 1.f);
  lse_merge(a.m_src, a.s_src, a.i_src, b.m_src, b.s_src, b.i_src, scale);
  if (b.m_raw > a.m_raw || (b.m_raw == a.m_raw && b.i_raw < a.i_raw)) a.m_raw = b.m_raw, a.i_raw = b.i_raw;
}

__device__ __forceinline__ RowStats stats_shfl(const RowStats& a, int o) {
  RowStats b;
  b.m_lp = __shfl_xor_sync(0xffffffffu, a.m_lp, o);
  b.s_lp = __shfl_xor_sync(0xffffffffu, a.s_lp, o);
  b.m_src = __shfl_xor_sync(0xffffffffu, a.m_src, o);
  b.s_src = __shfl_xor_sync(0xffffffffu, a.s_src, o);
  b.m_raw = __shfl_xor_sync(0xffffffffu, a.m_raw, o);
  b.i_lp = __shfl_xor_sync(0xffffffffu, a.i_lp, o);
  b.i_src = __shfl_xor_sync(0xffffffffu, a.i_src, o);
  b.i_raw = __shfl_xor_sync(0xffffffffu, a.i_raw, o);
  return b;
}

struct SampleShared {
  unsigned long long keys[kSortCap];  // gathered candidates: (float bits of p) << 32 | ~id, sorted best first
  float cum[kSortCap];                // inclusive prefix sums of p over the sorted candidates
  float bins[256];                    // radix histogram
  float red[32];                      // per-warp partials of scans and sums
  RowStats stats[32];
  float total;
  uint32_t prefix;
  float rem;
  int found, count, keep, kept, pick;
};

// Inclusive prefix sum over the lanes of a warp; `excl` gets the exclusive one.
__device__ __forceinline__ float warp_scan(float v, float& excl) {
  const int lane = threadIdx.x & 31;
#pragma unroll
  for (int o = 1; o < 32; o <<= 1) {
    const float y = __shfl_up_sync(0xffffffffu, v, o);
    if (lane >= o) v += y;
  }
  excl = __shfl_up_sync(0xffffffffu, v, 1);
  if (lane == 0) excl = 0.f;
  return v;
}

// Exclusive prefix sum over the block (thread order); `total` gets the block's sum. Starts and ends with a barrier.
__device__ __forceinline__ float block_scan(float v, SampleShared& sh, float& total) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
  float excl;
  const float incl = warp_scan(v, excl);
  __syncthreads();
  if (lane == 31) sh.red[warp] = incl;
  __syncthreads();
  if (warp == 0) {
    float te;
    const float ti = warp_scan(lane < nw ? sh.red[lane] : 0.f, te);
    sh.red[lane] = te;
    if (lane == 31) sh.total = ti;
  }
  __syncthreads();
  total = sh.total;
  const float r = sh.red[warp] + excl;
  __syncthreads();
  return r;
}

__device__ RowStats row_stats(Logits lp, const float* __restrict__ src, int V, float scale, SampleShared& sh) {
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, nw = blockDim.x >> 5;
  constexpr RowStats kEmpty{-INFINITY, 0.f, -INFINITY, 0.f, -INFINITY, 0x7fffffff, 0x7fffffff, 0x7fffffff};
  RowStats st = kEmpty;
  for (int i = tid; i < V; i += blockDim.x) {
    const float r = lp.l[i];
    if (r > st.m_raw) st.m_raw = r, st.i_raw = i;
    lse_push(st.m_lp, st.s_lp, st.i_lp, lp[i], i, 1.f);
    lse_push(st.m_src, st.s_src, st.i_src, src == lp.l ? r : src[i], i, scale);
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) stats_merge(st, stats_shfl(st, o), scale);
  if (lane == 0) sh.stats[warp] = st;
  __syncthreads();
  if (warp == 0) {
    st = lane < nw ? sh.stats[lane] : kEmpty;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) stats_merge(st, stats_shfl(st, o), scale);
    if (lane == 0) sh.stats[0] = st;
  }
  __syncthreads();
  st = sh.stats[0];
  __syncthreads();
  return st;
}

__device__ __forceinline__ float weight(float l, float mx, float inv_t) { return __expf((l - mx) * inv_t); }
__device__ __forceinline__ float key_weight(unsigned long long k) { return __uint_as_float((uint32_t)(k >> 32)); }
__device__ __forceinline__ int key_id(unsigned long long k) { return (int)~(uint32_t)k; }

// Gathers the tokens whose weight p has float bits >= floor into sh.keys and sorts the first kSortCap of them, best
// first (p descending, id ascending). Returns how many there are; `mass` gets the sum of their p.
__device__ int gather_sorted(Logits lg, int V, float mx, float inv_t, uint32_t floor, SampleShared& sh, float& mass) {
  const int tid = threadIdx.x, lane = tid & 31;
  if (tid == 0) sh.count = 0;
  __syncthreads();
  float m = 0.f;
  for (int base = 0; base < V; base += blockDim.x) {  // every lane of a warp takes the same trips
    const int i = base + tid;
    const float p = i < V ? weight(lg[i], mx, inv_t) : 0.f;
    const uint32_t key = __float_as_uint(p);
    const bool take = i < V && key >= floor;
    const unsigned ballot = __ballot_sync(0xffffffffu, take);
    if (ballot == 0) continue;
    int slot = 0;
    if (lane == 0) slot = atomicAdd(&sh.count, __popc(ballot));
    slot = __shfl_sync(0xffffffffu, slot, 0) + __popc(ballot & ((1u << lane) - 1u));
    if (take) {
      m += p;
      if (slot < kSortCap) sh.keys[slot] = (unsigned long long)key << 32 | (uint32_t)~(uint32_t)i;
    }
  }
  mass = block_sum(m, sh.red);
  const int c = sh.count;
  const int n = min(c, kSortCap);
  int np = 1;
  while (np < n) np <<= 1;
  for (int i = n + tid; i < np; i += blockDim.x) sh.keys[i] = 0ull;  // below every candidate (floor >= 1)
  __syncthreads();
  // bitonic sort of np keys into descending order, one comparator per thread and stage
  for (int k = 2; k <= np; k <<= 1)
    for (int j = k >> 1; j > 0; j >>= 1) {
      for (int t = tid; t < np / 2; t += blockDim.x) {
        const int a = 2 * t - (t & (j - 1)), b = a + j;
        const unsigned long long x = sh.keys[a], y = sh.keys[b];
        if (((a & k) == 0) == (x < y)) {
          sh.keys[a] = y;
          sh.keys[b] = x;
        }
      }
      __syncthreads();
    }
  return c;
}

// The largest float-bits threshold t of p such that the candidates (bits >= floor) with bits >= t reach `want`:
// a count (kMass false) or a fraction of the candidates' total p (kMass true). Returns floor when the candidates
// fall short (a target above the total by rounding keeps them all). 4 passes of 8-bit digits; the count histogram
// adds once per distinct digit of a warp (hot bins would serialise per-element atomics).
template <bool kMass>
__device__ uint32_t radix_select(Logits lg, int V, float mx, float inv_t, uint32_t floor, float want,
                                 SampleShared& sh) {
  const int tid = threadIdx.x, lane = tid & 31;
  uint32_t prefix = 0, mask = 0;
  float rem = want;
  for (int shift = 24; shift >= 0; shift -= 8) {
    for (int i = tid; i < 256; i += blockDim.x) sh.bins[i] = 0.f;
    __syncthreads();
    for (int base = 0; base < V; base += blockDim.x) {
      const int i = base + tid;
      int bin = -1;
      float p = 0.f;
      if (i < V) {
        p = weight(lg[i], mx, inv_t);
        const uint32_t key = __float_as_uint(p);
        if (key >= floor && (key & mask) == prefix) bin = (int)((key >> shift) & 255u);
      }
      if (kMass) {
        if (bin >= 0) atomicAdd(&sh.bins[bin], p);
      } else {
        const unsigned peers = __match_any_sync(0xffffffffu, bin);
        if (bin >= 0 && lane == __ffs(peers) - 1) atomicAdd(&sh.bins[bin], (float)__popc(peers));
      }
    }
    __syncthreads();
    if (tid < 32) {  // lane l owns bins 255-8l .. 248-8l, scanned from the top
      float v[8], s = 0.f;
#pragma unroll
      for (int j = 0; j < 8; j++) {
        v[j] = sh.bins[255 - 8 * lane - j];
        s += v[j];
      }
      float excl;
      const float incl = warp_scan(s, excl);
      if (kMass && shift == 24) rem = want * __shfl_sync(0xffffffffu, incl, 31);
      const unsigned who = __ballot_sync(0xffffffffu, excl < rem && rem <= incl);
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
    if (!sh.found) return max(prefix, floor);
    prefix = sh.prefix;
    rem = sh.rem;
    mask |= 255u << shift;
    __syncthreads();
  }
  return max(prefix, floor);
}

// The draw over sorted candidates, as the CPU sampler does it: exactly top_k kept, top-p on their renormalised
// mass, min-p against the best (p = 1), then the first candidate whose running sum passes u times the kept mass.
__device__ int draw_sorted(int c, const SampleRow& P, float u, SampleShared& sh) {
  const int tid = threadIdx.x, j0 = 2 * tid, j1 = j0 + 1;
  const int n = P.top_k > 0 ? min(min(c, kSortCap), P.top_k) : min(c, kSortCap);
  const float p0 = j0 < n ? key_weight(sh.keys[j0]) : 0.f, p1 = j1 < n ? key_weight(sh.keys[j1]) : 0.f;
  float total;
  const float c0 = block_scan(p0 + p1, sh, total) + p0, c1 = c0 + p1;
  sh.cum[j0] = c0;
  sh.cum[j1] = c1;
  if (tid == 0) sh.keep = n;
  __syncthreads();
  if (P.top_p < 1.f) {  // keep up to the first candidate whose running sum reaches top_p of the top-k mass
    const float target = P.top_p * sh.cum[n - 1];
    if (j0 < n && c0 >= target) atomicMin(&sh.keep, j0 + 1);
    else if (j1 < n && c1 >= target) atomicMin(&sh.keep, j1 + 1);
    __syncthreads();
  }
  const int keep = sh.keep;
  if (tid == 0) sh.kept = keep;
  __syncthreads();
  if (P.min_p > 0.f) {  // the first candidate after the best one below min_p ends the kept list
    if (j0 >= 1 && j0 < keep && p0 < P.min_p) atomicMin(&sh.kept, j0);
    else if (j1 < keep && p1 < P.min_p) atomicMin(&sh.kept, j1);
    __syncthreads();
  }
  const int kept = sh.kept;
  if (tid == 0) sh.pick = kept - 1;
  __syncthreads();
  const float target = u * sh.cum[kept - 1];
  if (j0 < kept && c0 > target) atomicMin(&sh.pick, j0);
  else if (j1 < kept && c1 > target) atomicMin(&sh.pick, j1);
  __syncthreads();
  const int token = key_id(sh.keys[sh.pick]);
  __syncthreads();
  return token;
}

// The draw over the whole vocabulary in id order: kept = p bits >= theta and p >= min_p. Each thread sums its
// contiguous slice, a block scan places the slices, and the slice holding u walks to the token.
__device__ int draw_scan(const float* __restrict__ lg, int V, float mx, float inv_t, uint32_t theta, float min_p,
                         float u, int fallback, SampleShared& sh) {
  const int tid = threadIdx.x;
  const int chunk = (V + blockDim.x - 1) / blockDim.x;
  const int i0 = min(V, tid * chunk), i1 = min(V, i0 + chunk);
  float s = 0.f;
  for (int i = i0; i < i1; i++) {
    const float p = weight(lg[i], mx, inv_t);
    if (__float_as_uint(p) >= theta && p >= min_p) s += p;
  }
  float total;
  const float excl = block_scan(s, sh, total);
  const float target = u * total;
  if (tid == 0) sh.pick = 0x7fffffff;
  __syncthreads();
  if (s > 0.f && excl <= target && target < excl + s) {
    float acc = excl;
    int pick = -1;
    for (int i = i0; i < i1; i++) {
      const float p = weight(lg[i], mx, inv_t);
      if (__float_as_uint(p) >= theta && p >= min_p && p > 0.f) {
        pick = i;
        acc += p;
        if (target < acc) break;
      }
    }
    if (pick >= 0) atomicMin(&sh.pick, pick);
  }
  __syncthreads();
  const int token = sh.pick == 0x7fffffff ? fallback : sh.pick;
  __syncthreads();
  return token;
}

__device__ int draw(const float* __restrict__ src, int V, const RowStats& st, float inv_t, const SampleRow& P,
                    SampleShared& sh) {
  const Logits lg{src, nullptr};  // penalties and the bitmask are in the sampled logits already
  const float mx = st.m_src, u = philox_uniform(P.seed, P.offset);
  const bool top_k = P.top_k > 0, top_p = P.top_p < 1.f;
  if (!top_k && !top_p) return draw_scan(src, V, mx, inv_t, 1u, P.min_p, u, st.i_src, sh);
  float mass;
  int c = gather_sorted(lg, V, mx, inv_t, kKeyPow2m40, sh, mass);
  bool sorted = c <= kSortCap;
  if (!sorted) {
    c = gather_sorted(lg, V, mx, inv_t, kKeyPow2m16, sh, mass);
    sorted = c <= kSortCap && (top_k ? c >= P.top_k : mass >= P.top_p * st.s_src);
  }
  if (!sorted && top_k && P.top_k <= kSortCap) {  // the top-k threshold, then exactly those tokens (and ties)
    c = gather_sorted(lg, V, mx, inv_t, radix_select<false>(lg, V, mx, inv_t, 1u, (float)P.top_k, sh), sh, mass);
    sorted = c <= kSortCap;
  }
  if (sorted) return draw_sorted(c, P, u, sh);
  uint32_t theta = top_k ? radix_select<false>(lg, V, mx, inv_t, 1u, (float)P.top_k, sh) : 1u;
  if (top_p) theta = max(theta, radix_select<true>(lg, V, mx, inv_t, theta, P.top_p, sh));
  return draw_scan(src, V, mx, inv_t, theta, P.min_p, u, st.i_src, sh);
}

// The n best logprob logits (n <= kMaxLogprobs) as logprobs.
__device__ void top_logprobs(Logits lp, int V, float m_lp, float log_z, int n, SampleTop& out, SampleShared& sh) {
  n = min(n, kMaxLogprobs);
  float mass;
  int c = gather_sorted(lp, V, m_lp, 1.f, kKeyPow2m40, sh, mass);
  if (c > kSortCap) c = gather_sorted(lp, V, m_lp, 1.f, kKeyPow2m16, sh, mass);
  if (c > kSortCap || c < n)
    c = gather_sorted(lp, V, m_lp, 1.f, radix_select<false>(lp, V, m_lp, 1.f, 1u, (float)n, sh), sh, mass);
  const int have = min(min(c, kSortCap), n);
  if ((int)threadIdx.x < have) {
    const int id = key_id(sh.keys[threadIdx.x]);
    out.tokens[threadIdx.x] = id;
    out.logprobs[threadIdx.x] = lp.l[id] - log_z;
  }
  if (threadIdx.x == 0) out.n = have;
}

__global__ void __launch_bounds__(kSampleThreads, 1)
    sample_kernel(const float* __restrict__ logits, const float* __restrict__ work, int V,
                  const SampleRow* __restrict__ rows, SampleResult* __restrict__ results,
                  SampleTop* __restrict__ tops) {
  __shared__ SampleShared sh;
  const int r = blockIdx.x;
  const SampleRow P = rows[r];
  if (!P.active) return;
  const float* raw = logits + (size_t)r * V;
  const float* src = (P.history || P.allowed) ? work + (size_t)r * V : raw;
  // Logprobs describe the masked distribution, unless a forced token lies outside the bitmask.
  const bool forced_outside =
      P.allowed && P.forced >= 0 && !((P.allowed[P.forced >> 5] >> (P.forced & 31)) & 1u);
  const Logits lp{raw, forced_outside ? nullptr : P.allowed};
  const bool greedy = !(P.temperature > 0.f);
  const float inv_t = greedy ? 1.f : 1.f / P.temperature;
  const RowStats st = row_stats(lp, src, V, inv_t, sh);
  const float log_z = st.m_lp + logf(st.s_lp);
  int token;
  if (P.forced >= 0) token = P.forced;
  else if (st.m_src == -INFINITY) token = st.i_raw;  // the bitmask allows nothing (the engine refuses such masks)
  else if (greedy) token = st.i_src;
  else token = draw(src, V, st, inv_t, P, sh);
  if (threadIdx.x == 0) {
    results[r] = SampleResult{token, raw[token] - log_z};
    if (P.history) P.history[token] += 2;  // one more occurrence in the output
  }
  if (P.n_logprobs > 0) top_logprobs(lp, V, st.m_lp, log_z, P.n_logprobs, tops[r], sh);
}

}  // namespace q3::cuda::dev
