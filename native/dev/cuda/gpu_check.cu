// The one GPU check of the CUDA backend (issues 7/8), run by native/scripts/gpu-check.sh on an H200:
//  (1) every kernel against its CPU reference on fresh random inputs (outputs poisoned, odd sizes),
//  (2) the engine's CUDA backend against its CPU backend lives in engine_check.cpp (run by gpu-check.sh),
//  (3) device read bandwidth (read-only kernel) and D2D copy bandwidth,
//  (4) benchmarks on the 8B shapes with weights generated on the device: GEMV GB/s, GEMM TFLOP/s, a synthetic
//      36-layer decode step under CUDA graphs, chunked prefill,
//  (6) a short table last plus .md/.json results (peers (5) come in through --peers FILE from gpu_peers.py).
// --cpu-selftest runs the CPU references against each other without a GPU.
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>

#include "../../cuda/philox.h"
#include "../../cuda/qwen3_cuda.h"
#include "common.h"
#include "cpu_ref.h"

using namespace q3dev;
namespace qc = q3::cuda;

// ---------------------------------------------------------------- results
struct Row {
  std::string section, name;
  double value;
  std::string unit;
};
static std::vector<Row> g_rows;
static void record(const std::string& sec, const std::string& name, double v, const std::string& unit) {
  g_rows.push_back({sec, name, v, unit});
  std::printf("  %-44s %12.3f %s\n", name.c_str(), v, unit.c_str());
  std::fflush(stdout);
}

static std::vector<double> f2d(const std::vector<float>& v) { return std::vector<double>(v.begin(), v.end()); }
static std::vector<double> h2d(const std::vector<uint16_t>& v) { return f2d(from_f16(v)); }
static __half* dev_f16(const std::vector<float>& v) { return reinterpret_cast<__half*>(to_device(to_f16(v))); }

// ---------------------------------------------------------------- device-side random data
__device__ inline uint32_t hash32(uint64_t x) {
  x ^= x >> 33; x *= 0xff51afd7ed558ccdULL; x ^= x >> 33; x *= 0xc4ceb9fe1a85ec53ULL; x ^= x >> 33;
  return (uint32_t)x;
}
__global__ void fill_u32(uint32_t* p, size_t n, uint64_t seed) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
    p[i] = hash32(seed * 0x9E3779B97F4A7C15ULL + i);
}
__global__ void fill_f16(__half* p, size_t n, uint64_t seed, float lo, float hi) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
    p[i] = __float2half(lo + (hi - lo) * (hash32(seed * 0x9E3779B97F4A7C15ULL + i) >> 8) * (1.f / 16777216.f));
}
// Scale/zero words: scale in [0.002, 0.02), zero 0..15 stored as 1024 + zero.
__global__ void fill_sz(uint32_t* p, size_t n, uint64_t seed) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
    uint32_t h = hash32(seed * 0x9E3779B97F4A7C15ULL + i);
    float s = 0.002f + 0.018f * ((h >> 8) & 0xFFFF) / 65536.f;
    p[i] = (uint32_t)__half_as_ushort(__float2half(s)) | ((0x6400u | (h & 15)) << 16);
  }
}
static void dfill_u32(void* p, size_t n, uint64_t seed) {
  fill_u32<<<4096, 256>>>((uint32_t*)p, n, seed);
  Q3_CUDA_CHECK_LAUNCH();
}
static void dfill_f16(void* p, size_t n, uint64_t seed, float lo = -1, float hi = 1) {
  fill_f16<<<4096, 256>>>((__half*)p, n, seed, lo, hi);
  Q3_CUDA_CHECK_LAUNCH();
}
static void* dalloc(size_t bytes) {
  void* p = nullptr;
  Q3_CUDA_CHECK(cudaMalloc(&p, bytes + 256));
  return p;
}

struct DevAwq {
  qc::AwqWeight w;
  void* qw;
  void* sz;
};
static DevAwq random_dev_awq(int K, int N, uint64_t seed) {
  DevAwq d;
  d.qw = dalloc(qc::awq_qw_bytes(K, N));
  d.sz = dalloc(qc::awq_sz_bytes(K, N));
  dfill_u32(d.qw, qc::awq_qw_bytes(K, N) / 4, seed);
  fill_sz<<<1024, 256>>>((uint32_t*)d.sz, qc::awq_sz_bytes(K, N) / 4, seed + 1);
  Q3_CUDA_CHECK_LAUNCH();
  d.w = {(const uint4*)d.qw, (const uint4*)d.sz, K, N};
  return d;
}

// ---------------------------------------------------------------- (1) correctness
static void check_awq(std::mt19937& rng) {
  std::printf("[awq] repack + GEMV + GEMM vs double reference on the published layout\n");
  const int K = 768, N = 1000;  // N: not a multiple of 16 or 128; K: 6 groups, not a multiple of the GEMV K step
  auto w = q3ref::random_awq(K, N, rng);
  std::vector<uint32_t> qw(qc::awq_qw_bytes(K, N) / 4), sz(qc::awq_sz_bytes(K, N) / 4);
  qc::awq_repack_host(w.qweight.data(), w.qzeros.data(), w.scales.data(), K, N, 0, N, qw.data(), sz.data());
  // device repack must produce the same bytes
  auto* dq = to_device(w.qweight);
  auto* dz = to_device(w.qzeros);
  auto* ds = to_device(w.scales);
  uint4 *dqw = (uint4*)dalloc(qw.size() * 4), *dsz = (uint4*)dalloc(sz.size() * 4);
  poison(dqw, qw.size() * 4);
  poison(dsz, sz.size() * 4);
  qc::awq_repack_device(dq, dz, (const __half*)ds, K, N, 0, N, dqw, dsz, 0);
  Q3_CUDA_CHECK(cudaDeviceSynchronize());
  bool same = to_host((uint32_t*)dqw, qw.size()) == qw && to_host((uint32_t*)dsz, sz.size()) == sz;
  validate_flag("awq_repack_device == awq_repack_host", same);
  qc::AwqWeight aw{dqw, dsz, K, N};
  float* ws = (float*)dalloc(sizeof(float) * 16 * 300 * N);
  for (int M : {1, 2, 3, 5, 8, 13, 16, 17, 64, 100, 300}) {
    auto x = rand_f16_values((size_t)M * K, rng);
    auto ref = q3ref::awq_matmul(w, x, M);
    __half* dx = dev_f16(x);
    __half* dy = (__half*)dalloc((size_t)M * N * 2);
    if (M <= 16) {
      poison(dy, (size_t)M * N * 2);
      qc::awq_gemv(aw, dx, M, dy, 0);
      validate_result("awq_gemv M=" + std::to_string(M), h2d(to_host((uint16_t*)dy, (size_t)M * N)), ref);
    }
    for (int split : {1, 0, 3}) {
      poison(dy, (size_t)M * N * 2);
      int sp = split == 0 ? qc::awq_gemm_split_k(M, N, K, qc::device_sm_count()) : split;
      qc::awq_gemm(aw, dx, M, dy, ws, sp, 0);
      validate_result("awq_gemm M=" + std::to_string(M) + " split=" + std::to_string(sp),
                      h2d(to_host((uint16_t*)dy, (size_t)M * N)), ref);
    }
    cudaFree(dx);
    cudaFree(dy);
  }
  cudaFree(ws);
}

static void check_norm_swiglu_embed(std::mt19937& rng) {
  std::printf("[norm/swiglu/embedding]\n");
  const int M = 3, D = 1000, I = 1000, V = 77;
  auto x = rand_f16_values((size_t)M * D, rng, -3, 3), r = rand_f16_values((size_t)M * D, rng, -3, 3);
  auto w = rand_f16_values(D, rng, 0.5, 1.5);
  __half *dx = dev_f16(x), *dr = dev_f16(r), *dw = dev_f16(w), *dy = (__half*)dalloc(M * D * 2);
  poison(dy, M * D * 2);
  qc::rmsnorm(dx, dw, M, D, 1e-6f, dy, 0);
  validate_result("rmsnorm", h2d(to_host((uint16_t*)dy, M * D)), q3ref::add_rmsnorm(nullptr, x, w, M, D, 1e-6));
  poison(dy, M * D * 2);
  qc::add_rmsnorm(dr, dx, dw, M, D, 1e-6f, dy, 0);
  auto rr = r;
  auto ref = q3ref::add_rmsnorm(&rr, x, w, M, D, 1e-6);
  validate_result("add_rmsnorm (y)", h2d(to_host((uint16_t*)dy, M * D)), ref);
  validate_result("add_rmsnorm (residual)", h2d(to_host((uint16_t*)dr, M * D)), f2d(rr), 1e-6);
  auto gu = rand_f16_values((size_t)M * 2 * I, rng, -4, 4);
  __half *dgu = dev_f16(gu), *dout = (__half*)dalloc(M * I * 2);
  poison(dout, M * I * 2);
  qc::swiglu(dgu, M, I, dout, 0);
  validate_result("swiglu", h2d(to_host((uint16_t*)dout, M * I)), q3ref::swiglu(gu, M, I));
  auto table = rand_f16_values((size_t)V * D, rng);
  std::vector<int32_t> ids = {5, 76, 0};
  __half* dt = dev_f16(table);
  int32_t* di = to_device(ids);
  poison(dy, M * D * 2);
  qc::embedding(dt, di, M, D, dy, 0);
  std::vector<double> eref;
  for (int id : ids) eref.insert(eref.end(), table.begin() + (size_t)id * D, table.begin() + (size_t)(id + 1) * D);
  validate_result("embedding", h2d(to_host((uint16_t*)dy, M * D)), eref, 0);
}

static void check_rope(std::mt19937& rng) {
  std::printf("[q/k norm + RoPE + paged KV write]\n");
  const int T = 7, H = 8, KV = 2, D = 128, NB = 40;
  const int W = (H + 2 * KV) * D;
  auto qkv = rand_f16_values((size_t)T * W, rng, -2, 2);
  auto qn = rand_f16_values(D, rng, 0.5, 1.5), kn = rand_f16_values(D, rng, 0.5, 1.5);
  std::vector<int32_t> pos = {0, 1, 17, 1000, 32767, 100000, 131071}, slots;
  std::vector<int> perm(NB * 16);
  for (int i = 0; i < NB * 16; i++) perm[i] = i;
  std::shuffle(perm.begin(), perm.end(), rng);
  for (int t = 0; t < T; t++) slots.push_back(perm[t]);
  auto inv = q3ref::rope_inv_freq(1e6);
  const float af = 1.1386294f;  // YaRN factor 4 attention factor: exercises the scaling path
  __half *dqkv = dev_f16(qkv), *dqn = dev_f16(qn), *dkn = dev_f16(kn);
  int32_t *dpos = to_device(pos), *dsl = to_device(slots);
  float* dinv = to_device(inv);
  size_t cache = (size_t)NB * KV * 16 * D;
  __half *dq = (__half*)dalloc(T * H * D * 2), *dk = (__half*)dalloc(cache * 2), *dv = (__half*)dalloc(cache * 2);
  poison(dq, T * H * D * 2);
  poison(dk, cache * 2);
  poison(dv, cache * 2);
  qc::qk_norm_rope_cache(dqkv, T, H, KV, dpos, dsl, dinv, af, dqn, dkn, 1e-6f, dq, dk, dv, 0);
  auto hq = h2d(to_host((uint16_t*)dq, T * H * D));
  auto hk = h2d(to_host((uint16_t*)dk, cache)), hv = h2d(to_host((uint16_t*)dv, cache));
  std::vector<double> rq, rk, gk, rv, gv;
  for (int t = 0; t < T; t++) {
    double out[128];
    for (int h = 0; h < H; h++) {
      q3ref::norm_rope_head(&qkv[(size_t)t * W + h * D], qn, inv, pos[t], af, 1e-6, out);
      rq.insert(rq.end(), out, out + 128);
    }
    for (int g = 0; g < KV; g++) {
      q3ref::norm_rope_head(&qkv[(size_t)t * W + (H + g) * D], kn, inv, pos[t], af, 1e-6, out);
      rk.insert(rk.end(), out, out + 128);
      size_t base = (((size_t)(slots[t] / 16) * KV + g) * 16 + slots[t] % 16) * D;
      gk.insert(gk.end(), hk.begin() + base, hk.begin() + base + D);
      gv.insert(gv.end(), hv.begin() + base, hv.begin() + base + D);
      for (int d = 0; d < D; d++) rv.push_back(qkv[(size_t)t * W + (H + KV + g) * D + d]);
    }
  }
  validate_result("qk_norm_rope q", hq, rq);
  validate_result("qk_norm_rope k (cache)", gk, rk);
  validate_result("v (cache)", gv, rv, 0);
}

// Paged cache filled with random K/V; block tables are a random permutation of the pool.
struct TestCache {
  int KV, NB, max_blocks;
  std::vector<float> k, v;  // (NB, KV, 16, 128)
  std::vector<int32_t> bt;  // (S, max_blocks)
  std::vector<float> gather(const std::vector<float>& c, int s, int ctx) const {
    std::vector<float> o((size_t)ctx * KV * 128);
    for (int t = 0; t < ctx; t++)
      for (int g = 0; g < KV; g++)
        for (int d = 0; d < 128; d++)
          o[((size_t)t * KV + g) * 128 + d] = c[(((size_t)bt[s * max_blocks + t / 16] * KV + g) * 16 + t % 16) * 128 + d];
    return o;
  }
};
static TestCache make_cache(int S, int KV, int max_ctx, std::mt19937& rng) {
  TestCache c;
  c.KV = KV;
  c.max_blocks = (max_ctx + 15) / 16;
  c.NB = S * c.max_blocks + 3;
  c.k = rand_f16_values((size_t)c.NB * KV * 16 * 128, rng, -1, 1);
  c.v = rand_f16_values((size_t)c.NB * KV * 16 * 128, rng, -1, 1);
  std::vector<int> perm(c.NB);
  for (int i = 0; i < c.NB; i++) perm[i] = i;
  std::shuffle(perm.begin(), perm.end(), rng);
  c.bt.assign(perm.begin(), perm.begin() + S * c.max_blocks);
  return c;
}

static void check_attention(std::mt19937& rng) {
  std::printf("[attention: paged decode (flash-decoding) and causal prefill]\n");
  const int H = 8, KV = 2, D = 128;
  const double scale = 1.0 / std::sqrt(128.0);
  {
    std::vector<int32_t> ctx = {1, 37, 1500, 800};
    const int B = (int)ctx.size(), max_ctx = 1600;
    auto c = make_cache(B, KV, max_ctx, rng);
    for (auto& x : c.k) x *= 3;  // peakier softmax
    auto q = rand_f16_values((size_t)B * H * D, rng, -1, 1);
    std::vector<double> ref;
    for (int b = 0; b < B; b++) {
      std::vector<double> o(H * D);
      q3ref::attention_one(&q[(size_t)b * H * D], c.gather(c.k, b, ctx[b]), c.gather(c.v, b, ctx[b]), ctx[b] - 1, H,
                           KV, scale, o.data());
      ref.insert(ref.end(), o.begin(), o.end());
    }
    __half *dq = dev_f16(q), *dk = dev_f16(c.k), *dv = dev_f16(c.v), *dout = (__half*)dalloc(B * H * D * 2);
    int32_t *dbt = to_device(c.bt), *dctx = to_device(ctx);
    for (int splits : {qc::decode_attention_splits(B, KV, max_ctx, qc::device_sm_count()), 1, 7}) {
      float* ws = (float*)dalloc(qc::decode_attention_workspace_floats(B, H, splits) * 4);
      poison(dout, B * H * D * 2);
      poison(ws, qc::decode_attention_workspace_floats(B, H, splits) * 4);
      qc::decode_attention(dq, dk, dv, dbt, c.max_blocks, dctx, B, H, KV, max_ctx, (float)scale, splits, ws, dout, 0);
      validate_result("decode_attention splits=" + std::to_string(splits), h2d(to_host((uint16_t*)dout, B * H * D)),
                      ref);
      cudaFree(ws);
    }
  }
  {
    std::vector<int32_t> ctx = {300, 77, 1000}, len = {100, 77, 33}, cu = {0};
    for (int l : len) cu.push_back(cu.back() + l);
    const int S = 3, total = cu.back();
    auto c = make_cache(S, KV, 1000, rng);
    for (auto& x : c.k) x *= 3;
    auto q = rand_f16_values((size_t)total * H * D, rng, -1, 1);
    std::vector<double> ref;
    for (int s = 0; s < S; s++) {
      auto gk = c.gather(c.k, s, ctx[s]), gv = c.gather(c.v, s, ctx[s]);
      for (int i = 0; i < len[s]; i++) {
        std::vector<double> o(H * D);
        q3ref::attention_one(&q[(size_t)(cu[s] + i) * H * D], gk, gv, ctx[s] - len[s] + i, H, KV, scale, o.data());
        ref.insert(ref.end(), o.begin(), o.end());
      }
    }
    __half *dq = dev_f16(q), *dk = dev_f16(c.k), *dv = dev_f16(c.v), *dout = (__half*)dalloc((size_t)total * H * D * 2);
    int32_t *dbt = to_device(c.bt), *dctx = to_device(ctx), *dcu = to_device(cu);
    poison(dout, (size_t)total * H * D * 2);
    qc::prefill_attention(dq, dcu, dctx, dbt, c.max_blocks, S, 100, H, KV, (float)scale, dk, dv, dout, 0);
    validate_result("prefill_attention (3 seqs, cached + chunk)", h2d(to_host((uint16_t*)dout, (size_t)total * H * D)),
                    ref);
  }
}

static void check_lm_head(std::mt19937& rng) {
  std::printf("[lm_head fp16 GEMV]\n");
  const int V = 1003, K = 1024;
  auto W = rand_f16_values((size_t)V * K, rng, -0.05f, 0.05f);
  __half* dW = dev_f16(W);
  for (int M : {1, 5, 19}) {
    auto x = rand_f16_values((size_t)M * K, rng);
    std::vector<double> ref((size_t)M * V);
    for (int m = 0; m < M; m++)
      for (int v = 0; v < V; v++) {
        double s = 0;
        for (int k = 0; k < K; k++) s += (double)x[(size_t)m * K + k] * W[(size_t)v * K + k];
        ref[(size_t)m * V + v] = s;
      }
    __half* dx = dev_f16(x);
    float* dl = (float*)dalloc((size_t)M * V * 4);
    poison(dl, (size_t)M * V * 4);
    qc::lm_head(dW, dx, M, V, K, dl, 0);
    validate_result("lm_head M=" + std::to_string(M), f2d(to_host(dl, (size_t)M * V)), ref);
  }
}

static void check_sampling(std::mt19937& rng) {
  std::printf("[sampling: penalties, greedy, temperature/top-k/top-p/min-p with Philox]\n");
  const int V = 151936, B = 6;
  std::normal_distribution<float> nd(0.f, 2.5f);
  std::vector<float> lg((size_t)B * V);
  for (auto& x : lg) x = nd(rng);
  lg[3 * V + 4242] = lg[3 * V + 4241] = 30.f;  // tie at the max: greedy must pick the lower id
  std::vector<qc::SamplingParams> P(B);
  P[0] = {0.f, 0, 1.f, 0.f, 1.f, 0.f, 0.f, 0, 1, 0};
  P[1] = {0.6f, 20, 0.95f, 0.f, 1.f, 0.f, 0.f, 0, 2, 0};
  P[2] = {0.7f, 20, 0.8f, 0.f, 1.f, 1.5f, 0.f, 0, 3, 0};
  P[3] = {0.f, 0, 1.f, 0.f, 1.f, 0.f, 0.f, 0, 4, 0};
  P[4] = {1.0f, 0, 0.9f, 0.05f, 1.f, 0.f, 0.f, 0, 5, 0};
  P[5] = {1.3f, 1000, 1.f, 0.f, 1.1f, 0.5f, 0.2f, 0, 6, 0};
  // penalties: history of 50 tokens with repeats
  const int L = 50;
  std::vector<int32_t> hist((size_t)B * L), hl(B, L);
  std::uniform_int_distribution<int> tok(0, V - 1);
  for (int b = 0; b < B; b++)
    for (int i = 0; i < L; i++) hist[(size_t)b * L + i] = i % 3 == 0 && i ? hist[(size_t)b * L + i - 1] : tok(rng);
  auto pen = lg;
  for (int b = 0; b < B; b++) {
    std::map<int, int> cnt;
    for (int i = 0; i < L; i++) cnt[hist[(size_t)b * L + i]]++;
    for (auto [t, c] : cnt) {
      float& l = pen[(size_t)b * V + t];
      if (P[b].repetition_penalty != 1.f) l = l > 0 ? l / P[b].repetition_penalty : l * P[b].repetition_penalty;
      l -= P[b].frequency_penalty * c + P[b].presence_penalty;
    }
  }
  float* dl = to_device(lg);
  int32_t *dh = to_device(hist), *dhl = to_device(hl), *dcnt = (int32_t*)dalloc((size_t)B * V * 4), *dtok = (int32_t*)dalloc(B * 4);
  Q3_CUDA_CHECK(cudaMemset(dcnt, 0, (size_t)B * V * 4));
  auto* dP = to_device(P);
  qc::apply_penalties(dl, B, V, dh, L, dhl, dP, dcnt, 0);
  validate_result("apply_penalties", f2d(to_host(dl, (size_t)B * V)), f2d(pen), 1e-7);
  auto cnt_after = to_host(dcnt, (size_t)B * V);
  validate_flag("apply_penalties leaves counts zeroed",
                std::all_of(cnt_after.begin(), cnt_after.end(), [](int32_t c) { return c == 0; }));
  int trials = 40, match = 0, in_set = 0, total = 0;
  bool greedy_ok = true;
  for (int tr = 0; tr < trials; tr++) {
    for (auto& p : P) p.offset = tr;
    Q3_CUDA_CHECK(cudaMemcpy(dP, P.data(), B * sizeof(P[0]), cudaMemcpyHostToDevice));
    poison(dtok, B * 4);
    qc::sample(dl, B, V, dP, dtok, 0);
    auto got = to_host(dtok, B);
    for (int b = 0; b < B; b++) {
      float u = qc::philox_uniform(P[b].seed, P[b].offset);
      auto r = q3ref::sample(&pen[(size_t)b * V], V, P[b].temperature, P[b].top_k, P[b].top_p, P[b].min_p, u);
      if (!(P[b].temperature > 0)) {
        greedy_ok &= got[b] == r.token;
        continue;
      }
      total++;
      match += got[b] == r.token;
      if (got[b] >= 0 && got[b] < V) {
        const float* row = &pen[(size_t)b * V];
        double p = std::exp(((double)row[got[b]] - row[r.argmax]) / P[b].temperature);
        in_set += p >= r.theta * (1 - 1e-3);
      }
    }
  }
  validate_flag("sample greedy == argmax (lowest id on ties)", greedy_ok);
  validate_flag("sampled token inside the reference kept set", in_set == total, (double)in_set / total);
  validate_flag("sampled token == reference draw (>= 95%)", match >= 0.95 * total, (double)match / total);
}

// ---------------------------------------------------------------- (3) bandwidth
__global__ void read_kernel(const uint4* __restrict__ p, size_t n, uint32_t* out) {
  uint32_t acc = 0;
  size_t stride = (size_t)gridDim.x * blockDim.x;
  size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
  for (; i + 3 * stride < n; i += 4 * stride) {
    uint4 a = __ldcs(p + i), b = __ldcs(p + i + stride), c = __ldcs(p + i + 2 * stride), d = __ldcs(p + i + 3 * stride);
    acc ^= a.x ^ a.y ^ a.z ^ a.w ^ b.x ^ b.y ^ b.z ^ b.w ^ c.x ^ c.y ^ c.z ^ c.w ^ d.x ^ d.y ^ d.z ^ d.w;
  }
  for (; i < n; i += stride) {
    uint4 a = __ldcs(p + i);
    acc ^= a.x ^ a.y ^ a.z ^ a.w;
  }
  if (acc == 0x9E3779B9u) out[0] = acc;  // keeps the loads alive
}
static double g_read_bw = 0;  // GB/s
static void bench_bandwidth(bool quick) {
  std::printf("[bandwidth]\n");
  size_t bytes = quick ? (2ull << 30) : (4ull << 30);
  void *a = dalloc(bytes), *b = dalloc(bytes);
  dfill_u32(a, bytes / 4, 7);
  uint32_t* o = (uint32_t*)dalloc(4);
  int sms = qc::device_sm_count();
  float t = benchmark_kernel(10, [&] { read_kernel<<<sms * 8, 512>>>((const uint4*)a, bytes / 16, o); });
  g_read_bw = bytes / (t * 1e-3) / 1e9;
  record("bandwidth", "read-only kernel", g_read_bw, "GB/s");
  float tc = benchmark_kernel(10, [&] { Q3_CUDA_CHECK(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice)); });
  record("bandwidth", "D2D copy (read+write)", 2.0 * bytes / (tc * 1e-3) / 1e9, "GB/s");
  cudaFree(a);
  cudaFree(b);
  cudaFree(o);
}

// ---------------------------------------------------------------- (4) kernel benchmarks
// Mean time of `fn(i)` over reps calls (i cycles weight copies so L2 can't hold the weights), no flush.
template <class F>
static float time_loop(int reps, F&& fn) {
  cudaEvent_t a, b;
  Q3_CUDA_CHECK(cudaEventCreate(&a));
  Q3_CUDA_CHECK(cudaEventCreate(&b));
  for (int i = 0; i < 3; i++) fn(i);
  Q3_CUDA_CHECK(cudaEventRecord(a));
  for (int i = 0; i < reps; i++) fn(i);
  Q3_CUDA_CHECK(cudaEventRecord(b));
  Q3_CUDA_CHECK(cudaEventSynchronize(b));
  float ms;
  Q3_CUDA_CHECK(cudaEventElapsedTime(&ms, a, b));
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  return ms / reps;
}

static void bench_gemv_gemm(bool quick) {
  std::printf("[GEMV / GEMM on the 8B shapes, weights generated on the device]\n");
  struct Shape { int K, N; const char* name; };
  std::vector<Shape> shapes = {{4096, 12288, "4096->12288 (gate/up)"}, {12288, 4096, "12288->4096 (down)"},
                               {4096, 6144, "4096->6144 (qkv)"}, {4096, 4096, "4096->4096 (o_proj)"}};
  int l2 = 0;
  Q3_CUDA_CHECK(cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, 0));
  int sms = qc::device_sm_count();
  float* ws = (float*)dalloc(64ull << 22);
  __half* x = (__half*)dalloc(4096ull * 12288 * 2);
  __half* y = (__half*)dalloc(4096ull * 12288 * 2);
  dfill_f16(x, 4096ull * 12288, 3);
  for (auto& s : shapes) {
    size_t wbytes = qc::awq_qw_bytes(s.K, s.N) + qc::awq_sz_bytes(s.K, s.N);
    int copies = std::max(2, (int)((4ull * l2) / wbytes + 1));
    std::vector<DevAwq> w;
    for (int c = 0; c < copies; c++) w.push_back(random_dev_awq(s.K, s.N, 100 + c));
    for (int M : {1, 2, 4, 8, 16}) {
      float t = time_loop(quick ? 30 : 100, [&](int i) { qc::awq_gemv(w[i % copies].w, x, M, y, 0); });
      double gbs = (wbytes + (double)M * s.K * 2 + (double)M * s.N * 2) / (t * 1e-3) / 1e9;
      record("gemv", std::string("gemv ") + s.name + " M=" + std::to_string(M) + " GB/s", gbs, "GB/s");
      if (M == 1 && g_read_bw > 0)
        record("gemv", std::string("gemv ") + s.name + " M=1 fraction of read BW", gbs / g_read_bw, "");
      if (M == 1) record("gemv", std::string("gemv ") + s.name + " M=1 time", t * 1e3, "us");
    }
    for (int M : {1, 16, 64, 256, 1024, 4096}) {
      if (quick && M == 4096) continue;
      int split = qc::awq_gemm_split_k(M, s.N, s.K, sms);
      if (qc::awq_gemm_workspace_floats(M, s.N, split) > (64ull << 20)) split = 1;
      float t = time_loop(quick ? 10 : 30, [&](int i) { qc::awq_gemm(w[i % copies].w, x, M, y, ws, split, 0); });
      double tf = 2.0 * M * s.N * s.K / (t * 1e-3) / 1e12;
      if (M <= 16) {
        double gbs = (wbytes + (double)M * s.K * 2 + (double)M * s.N * 2) / (t * 1e-3) / 1e9;
        record("gemm", std::string("gemm ") + s.name + " M=" + std::to_string(M) + " GB/s", gbs, "GB/s");
      } else {
        record("gemm", std::string("gemm ") + s.name + " M=" + std::to_string(M) + " TFLOP/s", tf, "TFLOP/s");
      }
    }
    for (auto& d : w) {
      cudaFree(d.qw);
      cudaFree(d.sz);
    }
  }
  // lm_head fp16 GEMV 4096 -> 151936
  {
    const int V = 151936, K = 4096;
    size_t bytes = (size_t)V * K * 2;
    __half* W = (__half*)dalloc(bytes);
    dfill_f16(W, (size_t)V * K, 11, -0.05f, 0.05f);
    float* lg = (float*)dalloc((size_t)16 * V * 4);
    for (int M : {1, 8, 16}) {
      float t = time_loop(quick ? 10 : 30, [&](int) { qc::lm_head(W, x, M, V, K, lg, 0); });
      double gbs = bytes / (t * 1e-3) / 1e9;
      record("gemv", "lm_head 4096->151936 M=" + std::to_string(M) + " GB/s", gbs, "GB/s");
      if (M == 1 && g_read_bw > 0) record("gemv", "lm_head 4096->151936 M=1 fraction of read BW", gbs / g_read_bw, "");
    }
    cudaFree(W);
    cudaFree(lg);
  }
  cudaFree(ws);
  cudaFree(x);
  cudaFree(y);
}

// ---------------------------------------------------------------- (4) synthetic 8B decode step and prefill
struct Model8B {
  static constexpr int L = 36, D = 4096, I = 12288, H = 32, KV = 8, V = 151936, QKV = (32 + 16) * 128;
  std::vector<DevAwq> qkv, o, gu, down;
  std::vector<__half*> n1, n2, qn, kn;
  __half *final_w, *lm;
  float* inv_freq;
  __half *kc, *vc;          // per layer: kc + l * layer_elems
  size_t layer_elems;       // NB * KV * 16 * 128
  int NB;
};

static void build_model(Model8B& m, size_t max_tokens) {
  for (int l = 0; l < Model8B::L; l++) {
    m.qkv.push_back(random_dev_awq(4096, Model8B::QKV, 1000 + l * 8));
    m.o.push_back(random_dev_awq(4096, 4096, 1001 + l * 8));
    m.gu.push_back(random_dev_awq(4096, 2 * Model8B::I, 1002 + l * 8));
    m.down.push_back(random_dev_awq(Model8B::I, 4096, 1003 + l * 8));
    for (auto* v : {&m.n1, &m.n2}) {
      v->push_back((__half*)dalloc(4096 * 2));
      dfill_f16(v->back(), 4096, 5000 + l, 0.5f, 1.5f);
    }
    for (auto* v : {&m.qn, &m.kn}) {
      v->push_back((__half*)dalloc(128 * 2));
      dfill_f16(v->back(), 128, 6000 + l, 0.5f, 1.5f);
    }
  }
  m.final_w = (__half*)dalloc(4096 * 2);
  dfill_f16(m.final_w, 4096, 77, 0.5f, 1.5f);
  m.lm = (__half*)dalloc((size_t)Model8B::V * 4096 * 2);
  dfill_f16(m.lm, (size_t)Model8B::V * 4096, 78, -0.05f, 0.05f);
  m.inv_freq = to_device(q3ref::rope_inv_freq(1e6));
  m.NB = (int)(max_tokens / 16);
  m.layer_elems = (size_t)m.NB * Model8B::KV * 16 * 128;
  m.kc = (__half*)dalloc(m.layer_elems * Model8B::L * 2);
  m.vc = (__half*)dalloc(m.layer_elems * Model8B::L * 2);
  dfill_f16(m.kc, m.layer_elems * Model8B::L, 90, -1, 1);
  dfill_f16(m.vc, m.layer_elems * Model8B::L, 91, -1, 1);
  Q3_CUDA_CHECK(cudaDeviceSynchronize());
}

struct Acts {
  __half *resid, *xn, *qkv, *q, *attn, *o, *gu, *act, *mlp;
  float *logits, *ws, *attn_ws;
  int32_t *ids, *pos, *slots, *bt, *ctx, *cu, *tok;
  qc::SamplingParams* params;
};
static Acts alloc_acts(int T) {
  Acts a;
  auto h = [&](size_t n) { return (__half*)dalloc(n * 2); };
  a.resid = h((size_t)T * 4096); a.xn = h((size_t)T * 4096); a.qkv = h((size_t)T * Model8B::QKV);
  a.q = h((size_t)T * 4096); a.attn = h((size_t)T * 4096); a.o = h((size_t)T * 4096);
  a.gu = h((size_t)T * 2 * Model8B::I); a.act = h((size_t)T * Model8B::I); a.mlp = h((size_t)T * 4096);
  a.logits = (float*)dalloc((size_t)64 * Model8B::V * 4);
  a.ws = (float*)dalloc(64ull << 22);
  a.attn_ws = (float*)dalloc(64ull << 22);
  return a;
}

static void matmul(const qc::AwqWeight& w, const __half* x, int M, __half* y, float* ws, int gemv_max, int sms,
                   cudaStream_t s) {
  if (M <= gemv_max) return qc::awq_gemv(w, x, M, y, s);
  int split = qc::awq_gemm_split_k(M, w.N, w.K, sms);
  if (qc::awq_gemm_workspace_floats(M, w.N, split) > (64ull << 20)) split = 1;
  qc::awq_gemm(w, x, M, y, ws, split, s);
}

// One forward step over T tokens: decode (S = T sequences of one token) or prefill (S = 1 sequence, T tokens).
static void forward(Model8B& m, Acts& a, int T, bool decode, int S, int max_ctx, int max_blocks, int max_q,
                    int gemv_max, int sms, cudaStream_t s) {
  const float scale = 1.f / std::sqrt(128.f), eps = 1e-6f;
  int splits = decode ? qc::decode_attention_splits(S, Model8B::KV, max_ctx, sms) : 0;
  qc::embedding(m.lm, a.ids, T, 4096, a.resid, s);
  for (int l = 0; l < Model8B::L; l++) {
    // rmsnorm (the previous layer's MLP output joins the residual here)
    if (l == 0) qc::rmsnorm(a.resid, m.n1[l], T, 4096, eps, a.xn, s);
    else qc::add_rmsnorm(a.resid, a.mlp, m.n1[l], T, 4096, eps, a.xn, s);
    // qkv -> q/k norm -> RoPE -> paged KV write
    matmul(m.qkv[l].w, a.xn, T, a.qkv, a.ws, gemv_max, sms, s);
    __half *kc = m.kc + l * m.layer_elems, *vc = m.vc + l * m.layer_elems;
    qc::qk_norm_rope_cache(a.qkv, T, Model8B::H, Model8B::KV, a.pos, a.slots, m.inv_freq, 1.f, m.qn[l], m.kn[l], eps,
                           a.q, kc, vc, s);
    // GQA attention
    if (decode)
      qc::decode_attention(a.q, kc, vc, a.bt, max_blocks, a.ctx, S, Model8B::H, Model8B::KV, max_ctx, scale, splits,
                           a.attn_ws, a.attn, s);
    else
      qc::prefill_attention(a.q, a.cu, a.ctx, a.bt, max_blocks, S, max_q, Model8B::H, Model8B::KV, scale, kc, vc,
                            a.attn, s);
    // o_proj, residual, rmsnorm
    matmul(m.o[l].w, a.attn, T, a.o, a.ws, gemv_max, sms, s);
    qc::add_rmsnorm(a.resid, a.o, m.n2[l], T, 4096, eps, a.xn, s);
    // gate|up -> SwiGLU -> down
    matmul(m.gu[l].w, a.xn, T, a.gu, a.ws, gemv_max, sms, s);
    qc::swiglu(a.gu, T, Model8B::I, a.act, s);
    matmul(m.down[l].w, a.act, T, a.mlp, a.ws, gemv_max, sms, s);
  }
  // final norm + lm_head + sampling (decode: every row; prefill: last row only)
  int rows = decode ? T : 1;
  const __half* last_mlp = a.mlp + (size_t)(T - rows) * 4096;
  __half* last_res = a.resid + (size_t)(T - rows) * 4096;
  qc::add_rmsnorm(last_res, last_mlp, m.final_w, rows, 4096, eps, a.xn, s);
  qc::lm_head(m.lm, a.xn, rows, Model8B::V, 4096, a.logits, s);
  qc::sample(a.logits, rows, Model8B::V, a.params, a.tok, s);
}

static void bench_model(bool quick, int gemv_max) {
  std::printf("[synthetic Qwen3-8B decode step (36 layers, CUDA graph) and prefill]\n");
  std::vector<int> batches = quick ? std::vector<int>{1, 8} : std::vector<int>{1, 8, 32, 64};
  std::vector<int> ctxs = quick ? std::vector<int>{1024} : std::vector<int>{1024, 8192};
  std::vector<int> prompts = quick ? std::vector<int>{1024, 8192} : std::vector<int>{1024, 8192, 32768};
  size_t max_tokens = std::max((size_t)batches.back() * ctxs.back(), (size_t)prompts.back());
  Model8B m;
  build_model(m, max_tokens);
  const int chunk = 2048;
  Acts a = alloc_acts(std::max(chunk, 64));
  int sms = qc::device_sm_count();
  cudaStream_t s;
  Q3_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  std::vector<qc::SamplingParams> P(64, qc::SamplingParams{0.6f, 20, 0.95f, 0.f, 1.f, 0.f, 0.f, 0, 1, 0});
  a.params = to_device(P);
  a.tok = (int32_t*)dalloc(64 * 4 * 2048);

  for (int ctx : ctxs)
    for (int B : batches) {
      int max_blocks = ctx / 16;
      unsigned total_blocks = (unsigned)B * max_blocks;  // a power of two: odd multiplier permutes
      std::vector<int32_t> bt((size_t)B * max_blocks), ids(B, 1234), pos(B, ctx - 1), slots(B), ctxv(B, ctx);
      for (size_t i = 0; i < bt.size(); i++) bt[i] = (int32_t)((i * 2654435761u) % total_blocks);
      for (int b = 0; b < B; b++) slots[b] = bt[(size_t)b * max_blocks + (ctx - 1) / 16] * 16 + (ctx - 1) % 16;
      a.bt = to_device(bt); a.ids = to_device(ids); a.pos = to_device(pos); a.slots = to_device(slots);
      a.ctx = to_device(ctxv);
      forward(m, a, B, true, B, ctx, max_blocks, 1, gemv_max, sms, s);  // eager warm-up (sets kernel attributes)
      Q3_CUDA_CHECK(cudaStreamSynchronize(s));
      cudaGraph_t g;
      cudaGraphExec_t ge;
      Q3_CUDA_CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
      forward(m, a, B, true, B, ctx, max_blocks, 1, gemv_max, sms, s);
      Q3_CUDA_CHECK(cudaStreamEndCapture(s, &g));
      Q3_CUDA_CHECK(cudaGraphInstantiate(&ge, g, 0));
      for (int i = 0; i < 3; i++) Q3_CUDA_CHECK(cudaGraphLaunch(ge, s));
      cudaEvent_t e0, e1;
      Q3_CUDA_CHECK(cudaEventCreate(&e0));
      Q3_CUDA_CHECK(cudaEventCreate(&e1));
      const int reps = quick ? 10 : 30;
      Q3_CUDA_CHECK(cudaEventRecord(e0, s));
      for (int i = 0; i < reps; i++) Q3_CUDA_CHECK(cudaGraphLaunch(ge, s));
      Q3_CUDA_CHECK(cudaEventRecord(e1, s));
      Q3_CUDA_CHECK(cudaEventSynchronize(e1));
      float ms;
      Q3_CUDA_CHECK(cudaEventElapsedTime(&ms, e0, e1));
      ms /= reps;
      std::string tag = "decode B=" + std::to_string(B) + " ctx=" + std::to_string(ctx);
      record("decode", tag + " step", ms * 1e3, "us");
      record("decode", tag + " tok/s", B / (ms * 1e-3), "tok/s");
      if (B == 1) {
        double bytes = 4854435328.0 + (double)ctx * 147456;  // docs/gpu-floor.md#bytes-per-decode-step
        record("decode", tag + " fraction of read-BW floor", bytes / (ms * 1e-3) / 1e9 / std::max(g_read_bw, 1.0), "");
      }
      cudaGraphExecDestroy(ge);
      cudaGraphDestroy(g);
      cudaEventDestroy(e0);
      cudaEventDestroy(e1);
      for (void* p : {(void*)a.bt, (void*)a.ids, (void*)a.pos, (void*)a.slots, (void*)a.ctx}) cudaFree(p);
    }

  for (int P_len : prompts) {
    int max_blocks = P_len / 16;
    std::vector<int32_t> bt(max_blocks);
    for (int i = 0; i < max_blocks; i++) bt[i] = i;
    a.bt = to_device(bt);
    int C = std::min(chunk, P_len), nch = P_len / C;
    std::vector<int32_t*> dpos, dsl, dctx, dcu;
    for (int c = 0; c < nch; c++) {
      std::vector<int32_t> pos(C), ctxv = {(c + 1) * C}, cu = {0, C};
      for (int i = 0; i < C; i++) pos[i] = c * C + i;
      dpos.push_back(to_device(pos));
      dsl.push_back(to_device(pos));  // identity block table: slot == position
      dctx.push_back(to_device(ctxv));
      dcu.push_back(to_device(cu));
    }
    a.ids = to_device(std::vector<int32_t>(C, 4321));
    auto run = [&] {
      for (int c = 0; c < nch; c++) {
        a.pos = dpos[c]; a.slots = dsl[c]; a.ctx = dctx[c]; a.cu = dcu[c];
        forward(m, a, C, false, 1, P_len, max_blocks, C, gemv_max, sms, s);
      }
    };
    run();  // warm-up
    Q3_CUDA_CHECK(cudaStreamSynchronize(s));
    cudaEvent_t e0, e1;
    Q3_CUDA_CHECK(cudaEventCreate(&e0));
    Q3_CUDA_CHECK(cudaEventCreate(&e1));
    int reps = P_len >= 32768 ? 1 : (quick ? 1 : 3);
    Q3_CUDA_CHECK(cudaEventRecord(e0, s));
    for (int r = 0; r < reps; r++) run();
    Q3_CUDA_CHECK(cudaEventRecord(e1, s));
    Q3_CUDA_CHECK(cudaEventSynchronize(e1));
    float ms;
    Q3_CUDA_CHECK(cudaEventElapsedTime(&ms, e0, e1));
    ms /= reps;
    std::string tag = "prefill " + std::to_string(P_len) + " (chunks of " + std::to_string(C) + ")";
    record("prefill", tag + " time", ms, "ms");
    record("prefill", tag + " tok/s", P_len / (ms * 1e-3), "tok/s");
    double flop = 2.0 * 6.95e9 * P_len + 4.0 * 36 * 4096 * (double)P_len * P_len / 2;
    record("prefill", tag + " TFLOP/s", flop / (ms * 1e-3) / 1e12, "TFLOP/s");
    for (auto* v : {&dpos, &dsl, &dctx, &dcu})
      for (auto* p : *v) cudaFree(p);
    cudaFree(a.bt);
    cudaFree(a.ids);
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
  }
  Q3_CUDA_CHECK(cudaStreamDestroy(s));
}

// ---------------------------------------------------------------- CPU self-test (no GPU)
static int cpu_selftest() {
  std::printf("[cpu-selftest] references against each other, no GPU\n");
  std::mt19937 rng(1);
  bool ok = true;
  // Philox known-answer vectors (Random123 kat_vectors, philox4x32 10 rounds)
  {
    uint32_t c0[4] = {0, 0, 0, 0};
    qc::philox4x32_10(c0, 0, 0);
    uint32_t c1[4] = {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344};
    qc::philox4x32_10(c1, 0xa4093822, 0x299f31d0);
    ok &= validate_flag("philox4x32-10 KAT (zero)", c0[0] == 0x6627e8d5 && c0[1] == 0xe169c58d && c0[2] == 0xbc57ac4c && c0[3] == 0x9b00dbd8);
    ok &= validate_flag("philox4x32-10 KAT (pi)", c1[0] == 0xd16cfe09 && c1[1] == 0x94fdcceb && c1[2] == 0x5001e420 && c1[3] == 0x24126ea1);
  }
  // AWQ: repacked layout decodes to the same weights as the published one, also when fused at a column offset.
  {
    const int K = 384, N1 = 136, N2 = 64, N = N1 + N2;
    auto w1 = q3ref::random_awq(K, N1, rng), w2 = q3ref::random_awq(K, N2, rng);
    std::vector<uint32_t> qw(qc::awq_qw_bytes(K, N) / 4), sz(qc::awq_sz_bytes(K, N) / 4);
    qc::awq_repack_host(w1.qweight.data(), w1.qzeros.data(), w1.scales.data(), K, N1, 0, N, qw.data(), sz.data());
    qc::awq_repack_host(w2.qweight.data(), w2.qzeros.data(), w2.scales.data(), K, N2, N1, N, qw.data(), sz.data());
    double maxd = 0;
    for (int k = 0; k < K; k++)
      for (int n = 0; n < N; n++) {
        double a = n < N1 ? q3ref::awq_weight(w1, k, n) : q3ref::awq_weight(w2, k, n - N1);
        maxd = std::max(maxd, std::fabs(a - q3ref::repacked_weight(qw.data(), sz.data(), K, k, n)));
      }
    ok &= validate_flag("awq repack round trip (fused q|k style)", maxd == 0);
    // published nibble order: packing 0..7 gives 0x75316420 (docs/model.md#awq-nibble-order)
    uint8_t v[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    int32_t packed;
    q3::awq::pack_row(v, 8, &packed);
    ok &= validate_flag("awq pack_row 0..7 == 0x75316420", (uint32_t)packed == 0x75316420u);
  }
  // Attention reference: softmax weights sum to one -> constant V gives that constant back.
  {
    int H = 8, KV = 2, ctx = 50;
    auto q = rand_f16_values(H * 128, rng);
    auto k = rand_f16_values((size_t)ctx * KV * 128, rng);
    std::vector<float> v((size_t)ctx * KV * 128, 0.25f);
    std::vector<double> o(H * 128);
    q3ref::attention_one(q.data(), k, v, ctx - 1, H, KV, 0.088, o.data());
    ok &= validate_result("attention_ref with constant V", o, std::vector<double>(H * 128, 0.25), 1e-12);
  }
  // RoPE reference: rotation keeps the norm (times attn_factor) of the normalised head.
  {
    auto x = rand_f16_values(128, rng);
    std::vector<float> w(128, 1.f);
    double out[128], n2 = 0;
    q3ref::norm_rope_head(x.data(), w, q3ref::rope_inv_freq(1e6), 12345, 1.5, 0.0, out);
    for (double d : out) n2 += d * d;
    ok &= validate_result("rope_ref preserves norm", {std::sqrt(n2 / 128)}, {1.5}, 1e-9);
  }
  // Sampling reference: top_k=1 is greedy; u=0 picks the first kept id; min_p=1 keeps only the max.
  {
    std::vector<float> lg(1000);
    for (auto& x : lg) x = std::uniform_real_distribution<float>(-3, 3)(rng);
    auto r1 = q3ref::sample(lg.data(), 1000, 0.7f, 1, 1.f, 0.f, 0.9f);
    auto r2 = q3ref::sample(lg.data(), 1000, 0.7f, 0, 1.f, 1.f, 0.3f);
    auto r3 = q3ref::sample(lg.data(), 1000, 1.0f, 50, 0.5f, 0.f, 0.999f);
    ok &= validate_flag("sample_ref top_k=1 == argmax", r1.token == r1.argmax);
    ok &= validate_flag("sample_ref min_p=1 == argmax", r2.token == r2.argmax);
    double p = std::exp((double)lg[r3.token] - lg[r3.argmax]);
    ok &= validate_flag("sample_ref draw inside kept set", p >= r3.theta);
  }
  // Normalised error helper: NaN fails, exact passes.
  ok &= validate_flag("rel_error(NaN) fails", !(rel_error({NAN}, {1.0}) <= 5e-3));
  std::printf("cpu-selftest: %s\n", ok ? "PASS" : "FAIL");
  return ok ? 0 : 1;
}

// ---------------------------------------------------------------- output
static std::string json_escape(const std::string& s) {
  std::string o;
  for (char c : s) o += (c == '"' || c == '\\') ? std::string("\\") + c : std::string(1, c);
  return o;
}
static void write_results(const std::string& json_path, const std::string& md_path, const std::string& device,
                          const std::string& cmd, double secs) {
  std::time_t now = std::time(nullptr);
  char date[64];
  std::strftime(date, sizeof date, "%Y-%m-%d %H:%M:%S UTC", std::gmtime(&now));
  if (!json_path.empty()) {
    std::ofstream f(json_path);
    f << "{\n  \"date\": \"" << date << "\",\n  \"device\": \"" << json_escape(device) << "\",\n  \"command\": \""
      << json_escape(cmd) << "\",\n  \"seconds\": " << secs << ",\n  \"checks\": [\n";
    auto& cl = check_log();
    for (size_t i = 0; i < cl.size(); i++)
      f << "    {\"name\": \"" << json_escape(cl[i].name) << "\", \"metric\": " << (std::isfinite(cl[i].err) ? cl[i].err : -1)
        << ", \"pass\": " << (cl[i].pass ? "true" : "false") << "}" << (i + 1 < cl.size() ? "," : "") << "\n";
    f << "  ],\n  \"results\": [\n";
    for (size_t i = 0; i < g_rows.size(); i++)
      f << "    {\"section\": \"" << g_rows[i].section << "\", \"name\": \"" << json_escape(g_rows[i].name)
        << "\", \"value\": " << g_rows[i].value << ", \"unit\": \"" << g_rows[i].unit << "\"}"
        << (i + 1 < g_rows.size() ? "," : "") << "\n";
    f << "  ]\n}\n";
  }
  if (!md_path.empty()) {
    std::ofstream f(md_path);
    int pass = 0;
    for (auto& c : check_log()) pass += c.pass;
    f << "# gpu-check " << date << "\n\n- device: " << device << "\n- command: `" << cmd << "`\n- wall: " << secs
      << " s\n- checks: " << pass << "/" << check_log().size() << " pass\n\n| check | metric | result |\n|---|---|---|\n";
    for (auto& c : check_log()) f << "| " << c.name << " | " << c.err << " | " << (c.pass ? "PASS" : "FAIL") << " |\n";
    f << "\n| section | measurement | value | unit |\n|---|---|---|---|\n";
    for (auto& r : g_rows) f << "| " << r.section << " | " << r.name << " | " << r.value << " | " << r.unit << " |\n";
  }
}

static void print_summary() {
  int pass = 0;
  for (auto& c : check_log()) pass += c.pass;
  std::printf("\n================ gpu-check summary ================\n");
  std::printf("checks: %d/%zu pass\n", pass, check_log().size());
  for (auto& c : check_log())
    if (!c.pass) std::printf("  FAIL %s (%.3e)\n", c.name.c_str(), c.err);
  auto show = [](const char* sec, const char* contains) {
    for (auto& r : g_rows)
      if (r.section == sec && r.name.find(contains) != std::string::npos)
        std::printf("%-58s %12.3f %s\n", r.name.c_str(), r.value, r.unit.c_str());
  };
  show("bandwidth", "");
  show("gemv", "M=1 ");
  show("gemm", "M=16 ");
  show("gemm", "M=4096");
  show("gemm", "M=1024");
  show("decode", "tok/s");
  show("prefill", "tok/s");
  show("peer", "");
}

int main(int argc, char** argv) {
  bool quick = false, selftest = false, checks = true, bench = true;
  int gemv_max = 4;
  std::string json, md, peers, cmd;
  for (int i = 0; i < argc; i++) cmd += std::string(i ? " " : "") + argv[i];
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    auto next = [&] { return i + 1 < argc ? std::string(argv[++i]) : std::string(); };
    if (a == "--quick") quick = true;
    else if (a == "--cpu-selftest") selftest = true;
    else if (a == "--checks-only") bench = false;
    else if (a == "--bench-only") checks = false;
    else if (a == "--json") json = next();
    else if (a == "--md") md = next();
    else if (a == "--peers") peers = next();
    else if (a == "--gemv-max") gemv_max = std::atoi(next().c_str());
    else {
      std::fprintf(stderr,
                   "usage: gpu_check [--cpu-selftest] [--quick] [--checks-only|--bench-only] [--json F] [--md F] "
                   "[--peers F] [--gemv-max M]\n");
      return 2;
    }
  }
  if (selftest) return cpu_selftest();
  auto t0 = std::chrono::steady_clock::now();
  std::string device = "?";
  try {
    cudaDeviceProp p;
    Q3_CUDA_CHECK(cudaGetDeviceProperties(&p, 0));
    device = std::string(p.name) + ", " + std::to_string(p.multiProcessorCount) + " SMs, L2 " +
             std::to_string(p.l2CacheSize >> 20) + " MiB, cc " + std::to_string(p.major) + "." + std::to_string(p.minor);
    std::printf("device: %s\n", device.c_str());
    if (checks) {
      std::printf("== (1) kernels vs CPU references ==\n");
      std::mt19937 rng((unsigned)std::time(nullptr));  // fresh inputs every run
      check_awq(rng);
      check_norm_swiglu_embed(rng);
      check_rope(rng);
      check_attention(rng);
      check_lm_head(rng);
      check_sampling(rng);
      std::printf("== (2) engine CUDA vs CPU: engine_check, run by native/scripts/gpu-check.sh ==\n");
    }
    if (bench) {
      std::printf("== (3) bandwidth ==\n");
      bench_bandwidth(quick);
      std::printf("== (4) benchmarks ==\n");
      bench_gemv_gemm(quick);
      bench_model(quick, gemv_max);
    }
  } catch (const std::exception& e) {
    std::printf("ERROR: %s\n", e.what());
    check_log().push_back({std::string("exception: ") + e.what(), INFINITY, false});
  }
  if (!peers.empty()) {
    std::ifstream f(peers);
    std::string line;
    while (std::getline(f, line)) {
      // "value<TAB>unit<TAB>name"
      std::istringstream ls(line);
      std::string v, unit, name;
      if (std::getline(ls, v, '\t') && std::getline(ls, unit, '\t') && std::getline(ls, name))
        g_rows.push_back({"peer", name, std::atof(v.c_str()), unit});
    }
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  write_results(json, md, device, cmd, secs);
  print_summary();
  for (auto& c : check_log())
    if (!c.pass) return 1;
  return 0;
}
