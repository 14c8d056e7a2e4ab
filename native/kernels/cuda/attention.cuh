// Attention over the paged KV cache (num_blocks, KV, 16, 128) fp16, GQA group of 4 query heads per KV head.
// Decode: flash-decoding. Grid (KV head, sequence, split): one block reads each K/V row of its slice of the sequence
//   once and scores it against all 4 query heads of the group; splits are merged by a log-sum-exp combine kernel.
// Prefill: causal flash attention with mma.sync. A block takes 32 query tokens x the 4 heads of one KV group
//   (8 warps x 16 rows), so a K/V tile in shared memory (64 keys, cp.async double buffer, XOR swizzle for ldmatrix)
//   serves 128 query rows; online softmax in fp32, scores scaled into the log2 domain. The chunk's own K/V are in
//   the cache already, so "cached blocks plus the chunk" is one loop over the block table.
#pragma once
#include "common.cuh"

namespace q3::cuda::dev {

constexpr int kGqa = 4;
constexpr int kDecThreads = 128;  // 4 warps
constexpr int kDecMaxPart = 2048;  // tokens per split at most (scores of 4 heads stay in 32 KB of shared memory)

// Dynamic shared memory: q (4x128) | red (4 warps x 4 heads x 128) | m,l (8) | scores (4 x part).
__global__ void __launch_bounds__(kDecThreads)
    decode_attention_split_kernel(const __half* __restrict__ q, const __half* __restrict__ kc,
                                  const __half* __restrict__ vc, const int32_t* __restrict__ block_tables,
                                  int max_blocks, const int32_t* __restrict__ ctx_lens, int H, int KV, int part,
                                  int splits, float scale_log2, float* __restrict__ o_part, float* __restrict__ ml) {
  extern __shared__ float dsm[];
  float* q_s = dsm;                    // 4 x 128
  float* red = q_s + kGqa * kHeadDim;  // 4 x 4 x 128
  float* mls = red + 4 * kGqa * kHeadDim;
  float* sc = mls + 8;                 // 4 x part
  const int g = blockIdx.x, b = blockIdx.y, sp = blockIdx.z;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int ctx = ctx_lens[b];
  const int t0 = sp * part, t1 = min(ctx, t0 + part);
  const int h0 = g * kGqa;
  const int32_t* bt = block_tables + (long long)b * max_blocks;
  if (t0 >= ctx) {
    for (int i = tid; i < kGqa * kHeadDim; i += kDecThreads)
      o_part[((long long)(b * H + h0 + i / kHeadDim) * splits + sp) * kHeadDim + i % kHeadDim] = 0.f;
    if (tid < kGqa) {
      ml[((long long)(b * H + h0 + tid) * splits + sp) * 2] = -INFINITY;
      ml[((long long)(b * H + h0 + tid) * splits + sp) * 2 + 1] = 0.f;
    }
    return;
  }
  for (int i = tid; i < kGqa * kHeadDim; i += kDecThreads)
    q_s[i] = __half2float(q[((long long)b * H + h0) * kHeadDim + i]) * scale_log2;
  __syncthreads();

  // Scores: 8 lanes per token (16 dims each), 4 tokens per warp pass.
  const int sub = lane & 7, tl = lane >> 3;
  float qf[kGqa][16];
#pragma unroll
  for (int h = 0; h < kGqa; h++)
#pragma unroll
    for (int e = 0; e < 16; e++) qf[h][e] = q_s[h * kHeadDim + sub * 16 + e];
#pragma unroll 2
  for (int tb = t0 + warp * 4; tb < t1; tb += 16) {
    const int t = tb + tl;
    float p[kGqa] = {0.f, 0.f, 0.f, 0.f};
    if (t < t1) {
      const long long phys = bt[t / kKvBlock];
      const uint4* kp = reinterpret_cast<const uint4*>(
          kc + ((phys * KV + g) * kKvBlock + t % kKvBlock) * kHeadDim + sub * 16);
      uint4 kv[2] = {__ldg(kp), __ldg(kp + 1)};
      const half2* kh = reinterpret_cast<const half2*>(kv);
#pragma unroll
      for (int e = 0; e < 8; e++) {
        float2 f = __half22float2(kh[e]);
#pragma unroll
        for (int h = 0; h < kGqa; h++) p[h] = fmaf(qf[h][2 * e], f.x, fmaf(qf[h][2 * e + 1], f.y, p[h]));
      }
    }
#pragma unroll
    for (int h = 0; h < kGqa; h++) {
      p[h] += __shfl_xor_sync(0xffffffffu, p[h], 4);
      p[h] += __shfl_xor_sync(0xffffffffu, p[h], 2);
      p[h] += __shfl_xor_sync(0xffffffffu, p[h], 1);
    }
    if (sub == 0 && t < t1)
#pragma unroll
      for (int h = 0; h < kGqa; h++) sc[h * part + (t - t0)] = p[h];
  }
  __syncthreads();

  // Softmax statistics: warp h owns head h.
  {
    const int h = warp, n = t1 - t0;
    float mx = -INFINITY;
    for (int i = lane; i < n; i += 32) mx = fmaxf(mx, sc[h * part + i]);
    mx = warp_max(mx);
    float sum = 0.f;
    for (int i = lane; i < n; i += 32) {
      float e = exp2f(sc[h * part + i] - mx);
      sc[h * part + i] = e;
      sum += e;
    }
    sum = warp_sum(sum);
    if (lane == 0) {
      mls[2 * h] = mx;
      mls[2 * h + 1] = sum;
    }
  }
  __syncthreads();

  // P.V: warp w takes tokens t0+w, t0+w+4, ...; lane owns dims 4*lane..4*lane+3.
  float acc[kGqa][4];
#pragma unroll
  for (int h = 0; h < kGqa; h++)
#pragma unroll
    for (int e = 0; e < 4; e++) acc[h][e] = 0.f;
#pragma unroll 4
  for (int t = t0 + warp; t < t1; t += 4) {
    const long long phys = bt[t / kKvBlock];
    uint2 vv = __ldg(reinterpret_cast<const uint2*>(
        vc + ((phys * KV + g) * kKvBlock + t % kKvBlock) * kHeadDim + lane * 4));
    float2 f0 = __half22float2(u32_as_h2(vv.x)), f1 = __half22float2(u32_as_h2(vv.y));
#pragma unroll
    for (int h = 0; h < kGqa; h++) {
      float w = sc[h * part + (t - t0)];
      acc[h][0] = fmaf(w, f0.x, acc[h][0]);
      acc[h][1] = fmaf(w, f0.y, acc[h][1]);
      acc[h][2] = fmaf(w, f1.x, acc[h][2]);
      acc[h][3] = fmaf(w, f1.y, acc[h][3]);
    }
  }
#pragma unroll
  for (int h = 0; h < kGqa; h++)
    *reinterpret_cast<float4*>(red + (warp * kGqa + h) * kHeadDim + lane * 4) =
        make_float4(acc[h][0], acc[h][1], acc[h][2], acc[h][3]);
  __syncthreads();
  for (int i = tid; i < kGqa * kHeadDim; i += kDecThreads) {
    int h = i / kHeadDim, d = i % kHeadDim;
    float o = 0.f;
#pragma unroll
    for (int w = 0; w < 4; w++) o += red[(w * kGqa + h) * kHeadDim + d];
    o_part[((long long)(b * H + h0 + h) * splits + sp) * kHeadDim + d] = o;
  }
  if (tid < kGqa) {
    ml[((long long)(b * H + h0 + tid) * splits + sp) * 2] = mls[2 * tid];
    ml[((long long)(b * H + h0 + tid) * splits + sp) * 2 + 1] = mls[2 * tid + 1];
  }
}

// out (B, H, 128) = sum_s w_s o_s / sum_s w_s l_s with w_s = 2^(m_s - max m).
__global__ void __launch_bounds__(kHeadDim)
    decode_attention_combine_kernel(const float* __restrict__ o_part, const float* __restrict__ ml, int splits,
                                    __half* __restrict__ out) {
  const long long bh = blockIdx.x;
  const int d = threadIdx.x;
  float M = -INFINITY;
  for (int s = 0; s < splits; s++) M = fmaxf(M, ml[(bh * splits + s) * 2]);
  float L = 0.f, o = 0.f;
  for (int s = 0; s < splits; s++) {
    float m = ml[(bh * splits + s) * 2];
    if (m == -INFINITY) continue;
    float w = exp2f(m - M);
    L += w * ml[(bh * splits + s) * 2 + 1];
    o += w * o_part[(bh * splits + s) * kHeadDim + d];
  }
  out[bh * kHeadDim + d] = __float2half_rn(o / L);
}

constexpr int kPfWarps = 8, kPfTok = 32, kPfKeys = 64;
constexpr int kPfSmem = 2 * 2 * kPfKeys * kHeadDim * 2;  // K and V, two stages: 64 KB

__global__ void __launch_bounds__(kPfWarps * 32)
    prefill_attention_kernel(const __half* __restrict__ q, const int32_t* __restrict__ cu_q,
                             const int32_t* __restrict__ ctx_lens, const int32_t* __restrict__ block_tables,
                             int max_blocks, int H, int KV, float scale_log2, const __half* __restrict__ kc,
                             const __half* __restrict__ vc, __half* __restrict__ out) {
  extern __shared__ __align__(16) uint8_t psm[];
  __half* Ks = reinterpret_cast<__half*>(psm);              // 2 x 64 x 128
  __half* Vs = Ks + 2 * kPfKeys * kHeadDim;                 // 2 x 64 x 128
  const int s = blockIdx.z, g = blockIdx.y, qt = blockIdx.x;
  const int q_begin = cu_q[s], T = cu_q[s + 1] - q_begin;
  if (qt * kPfTok >= T) return;
  const int ctx = ctx_lens[s], pos0 = ctx - T;
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int h = g * kGqa + (warp & 3);
  const int tw = qt * kPfTok + (warp >> 2) * 16;
  const int gr = lane >> 2, t = lane & 3;
  const int32_t* bt = block_tables + (long long)s * max_blocks;

  uint32_t qf[8][4];
#pragma unroll
  for (int kk = 0; kk < 8; kk++)
#pragma unroll
    for (int i = 0; i < 4; i++) {
      int row = gr + ((i & 1) ? 8 : 0), col = kk * 16 + 2 * t + ((i & 2) ? 8 : 0);
      int tok = tw + row;
      qf[kk][i] = tok < T ? *reinterpret_cast<const uint32_t*>(q + ((long long)(q_begin + tok) * H + h) * kHeadDim + col)
                          : 0u;
    }

  const int last_tok = min(qt * kPfTok + kPfTok - 1, T - 1);
  const int n_tiles = (pos0 + last_tok) / kPfKeys + 1;
  const int qpos0 = pos0 + tw + gr, qpos1 = qpos0 + 8;

  auto load_tile = [&](int st, int tile) {
    for (int i = tid; i < kPfKeys * 16; i += kPfWarps * 32) {
      int row = i >> 4, c = i & 15;
      int key = tile * kPfKeys + row;
      bool ok = key < ctx;
      long long phys = ok ? bt[key / kKvBlock] : 0;
      long long off = ((phys * KV + g) * kKvBlock + (ok ? key % kKvBlock : 0)) * kHeadDim + c * 8;
      int so = st * kPfKeys * kHeadDim + row * kHeadDim + ((c ^ (row & 7)) * 8);
      cp_async16(Ks + so, kc + off, ok);
      cp_async16(Vs + so, vc + off, ok);
    }
  };

  float o[16][4];
#pragma unroll
  for (int i = 0; i < 16; i++)
#pragma unroll
    for (int e = 0; e < 4; e++) o[i][e] = 0.f;
  float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.f, l1 = 0.f;

  load_tile(0, 0);
  cp_async_commit();
  for (int tile = 0; tile < n_tiles; tile++) {
    if (tile + 1 < n_tiles) {
      load_tile((tile + 1) & 1, tile + 1);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    const __half* Kt = Ks + (tile & 1) * kPfKeys * kHeadDim;
    const __half* Vt = Vs + (tile & 1) * kPfKeys * kHeadDim;

    float sacc[8][4];
#pragma unroll
    for (int j = 0; j < 8; j++) {
#pragma unroll
      for (int e = 0; e < 4; e++) sacc[j][e] = 0.f;
#pragma unroll
      for (int kk2 = 0; kk2 < 4; kk2++) {
        int row = j * 8 + (lane & 7), chunk = kk2 * 4 + (lane >> 3);
        uint32_t r[4];
        ldmatrix_x4(r, Kt + row * kHeadDim + ((chunk ^ (row & 7)) * 8));
        mma_16816(sacc[j], qf[2 * kk2], r[0], r[1]);
        mma_16816(sacc[j], qf[2 * kk2 + 1], r[2], r[3]);
      }
    }
    // Mask (causal and past-the-end), then the online softmax update.
    const int key_base = tile * kPfKeys;
    float mx0 = -INFINITY, mx1 = -INFINITY;
#pragma unroll
    for (int j = 0; j < 8; j++)
#pragma unroll
      for (int e = 0; e < 4; e++) {
        int key = key_base + j * 8 + 2 * t + (e & 1);
        int qp = e < 2 ? qpos0 : qpos1;
        float v = sacc[j][e] * scale_log2;
        if (key > qp || key >= ctx) v = -INFINITY;
        sacc[j][e] = v;
        if (e < 2) mx0 = fmaxf(mx0, v); else mx1 = fmaxf(mx1, v);
      }
    mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 1));
    mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 2));
    mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 1));
    mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 2));
    const float mn0 = fmaxf(m0, mx0), mn1 = fmaxf(m1, mx1);
    const float ms0 = mn0 == -INFINITY ? 0.f : mn0, ms1 = mn1 == -INFINITY ? 0.f : mn1;
    const float al0 = exp2f(m0 - ms0), al1 = exp2f(m1 - ms1);
    m0 = mn0;
    m1 = mn1;
    float rs0 = 0.f, rs1 = 0.f;
#pragma unroll
    for (int j = 0; j < 8; j++) {
      sacc[j][0] = exp2f(sacc[j][0] - ms0);
      sacc[j][1] = exp2f(sacc[j][1] - ms0);
      sacc[j][2] = exp2f(sacc[j][2] - ms1);
      sacc[j][3] = exp2f(sacc[j][3] - ms1);
      rs0 += sacc[j][0] + sacc[j][1];
      rs1 += sacc[j][2] + sacc[j][3];
    }
    l0 = l0 * al0 + rs0;
    l1 = l1 * al1 + rs1;
#pragma unroll
    for (int dn = 0; dn < 16; dn++) {
      o[dn][0] *= al0;
      o[dn][1] *= al0;
      o[dn][2] *= al1;
      o[dn][3] *= al1;
    }
    // O += P . V, P re-used from the score accumulators as the A fragment.
#pragma unroll
    for (int kk = 0; kk < 4; kk++) {
      uint32_t a[4] = {pack_half2(sacc[2 * kk][0], sacc[2 * kk][1]), pack_half2(sacc[2 * kk][2], sacc[2 * kk][3]),
                       pack_half2(sacc[2 * kk + 1][0], sacc[2 * kk + 1][1]),
                       pack_half2(sacc[2 * kk + 1][2], sacc[2 * kk + 1][3])};
#pragma unroll
      for (int dn2 = 0; dn2 < 8; dn2++) {
        int row = kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8, chunk = dn2 * 2 + (lane >> 4);
        uint32_t r[4];
        ldmatrix_x4_trans(r, Vt + row * kHeadDim + ((chunk ^ (row & 7)) * 8));
        mma_16816(o[2 * dn2], a, r[0], r[1]);
        mma_16816(o[2 * dn2 + 1], a, r[2], r[3]);
      }
    }
    __syncthreads();  // the next iteration's cp.async overwrites the stage just read
  }

  l0 += __shfl_xor_sync(0xffffffffu, l0, 1);
  l0 += __shfl_xor_sync(0xffffffffu, l0, 2);
  l1 += __shfl_xor_sync(0xffffffffu, l1, 1);
  l1 += __shfl_xor_sync(0xffffffffu, l1, 2);
  const float i0 = 1.f / l0, i1 = 1.f / l1;
  const int tok0 = tw + gr, tok1 = tok0 + 8;
#pragma unroll
  for (int dn = 0; dn < 16; dn++) {
    int col = dn * 8 + 2 * t;
    if (tok0 < T)
      *reinterpret_cast<half2*>(out + ((long long)(q_begin + tok0) * H + h) * kHeadDim + col) =
          __floats2half2_rn(o[dn][0] * i0, o[dn][1] * i0);
    if (tok1 < T)
      *reinterpret_cast<half2*>(out + ((long long)(q_begin + tok1) * H + h) * kHeadDim + col) =
          __floats2half2_rn(o[dn][2] * i1, o[dn][3] * i1);
  }
}

}  // namespace q3::cuda::dev
