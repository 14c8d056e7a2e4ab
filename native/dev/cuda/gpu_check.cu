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

#include "../../kernels/cuda/philox.h"
#include "../../kernels/cuda/qwen3_cuda.h"
#include "../../src/cuda/sample_row.h"
#include "common.h"
#include "cpu_ref.h"
#include "sampling_check.h"

using namespace q3dev;
namespace qc = q3::cuda;

// ---------------------------------------------------------------- results
struct Row {
  std::string section, name;
  double value;
  std::string unit;
};
static std::vector<Row> g_rows;

// --budget-s: benchmark sections that would not finish before the deadline are skipped (and listed) instead of
// being cut off by the caller's timeout, so the results files are always written.
static std::chrono::steady_clock::time_point g_deadline = std::chrono::steady_clock::time_point::max();
static std::vector<std::string> g_skipped;
static bool time_for(const std::string& what, double seconds) {
  if (std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds) <= g_deadline) return true;
  std::printf("  skipped for time: %s\n", what.c_str());
  g_skipped.push_back(what);
  g_rows.push_back({"skipped", what + " (skipped for time)", 0, ""});
  return false;
}
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

// Device sampling, row by row as the engine launches it: R copies of one row of logits, draw i at Philox counter i.
struct SampleBench {
  static constexpr int kRows = 512;
  int V = 0;
  float *logits = nullptr, *work = nullptr;
  qc::SampleRow* rows = nullptr;
  qc::SampleResult* results = nullptr;
  qc::SampleTop* tops = nullptr;
  int32_t* history = nullptr;  // (V) one shared history (re-seeded before every launch)
  uint32_t* mask = nullptr;
  explicit SampleBench(int vocab) : V(vocab) {
    logits = (float*)dalloc((size_t)kRows * V * 4);
    work = (float*)dalloc((size_t)kRows * V * 4);
    rows = (qc::SampleRow*)dalloc(kRows * sizeof(qc::SampleRow));
    results = (qc::SampleResult*)dalloc(kRows * sizeof(qc::SampleResult));
    tops = (qc::SampleTop*)dalloc(kRows * sizeof(qc::SampleTop));
    history = (int32_t*)dalloc((size_t)V * 4);
    mask = (uint32_t*)dalloc((size_t)(V + 31) / 32 * 4);
  }
  ~SampleBench() {
    for (void* p : {(void*)logits, (void*)work, (void*)rows, (void*)results, (void*)tops, (void*)history, (void*)mask})
      cudaFree(p);
  }
  void set_logits(const std::vector<float>& l, int R) {
    Q3_CUDA_CHECK(cudaMemcpy(logits, l.data(), (size_t)V * 4, cudaMemcpyHostToDevice));
    for (int r = 1; r < R; r++)
      Q3_CUDA_CHECK(cudaMemcpy(logits + (size_t)r * V, logits, (size_t)V * 4, cudaMemcpyDeviceToDevice));
  }
  // The device copy of a history: 2 * (times in the output) + 1 for every token seen.
  std::vector<int32_t> history_words(const q3check::History& h) const {
    std::vector<int32_t> w(V, 0);
    for (int32_t t : h.seen) w[t] |= 1;
    for (auto [t, n] : h.generated) w[t] = 2 * n + 1;
    return w;
  }
  // n draws of one case (counters offset0 ..), R rows per launch; results and (optionally) tops of every draw.
  std::vector<qc::SampleResult> draw(const std::vector<float>& l, const q3_sampling& p, const q3check::History* h,
                                     const std::vector<uint32_t>* m, int n, uint64_t seed, int forced = -1,
                                     std::vector<qc::SampleTop>* top_out = nullptr) {
    const int R = std::min(n, kRows);
    set_logits(l, R);
    std::vector<int32_t> hw;
    if (h) hw = history_words(*h);
    if (m) Q3_CUDA_CHECK(cudaMemcpy(mask, m->data(), m->size() * 4, cudaMemcpyHostToDevice));
    std::vector<qc::SampleResult> out;
    for (int i0 = 0; i0 < n; i0 += R) {
      const int nr = std::min(R, n - i0);
      std::vector<qc::SampleRow> rs(nr);
      for (int r = 0; r < nr; r++) {
        rs[r] = q3::sample_row(p, V);
        rs[r].forced = forced;
        rs[r].seed = seed;
        rs[r].offset = (uint64_t)(i0 + r);
        rs[r].history = h ? history : nullptr;
        rs[r].allowed = m ? mask : nullptr;
      }
      if (h) Q3_CUDA_CHECK(cudaMemcpy(history, hw.data(), (size_t)V * 4, cudaMemcpyHostToDevice));
      Q3_CUDA_CHECK(cudaMemcpy(rows, rs.data(), nr * sizeof(qc::SampleRow), cudaMemcpyHostToDevice));
      poison(results, nr * sizeof(qc::SampleResult));
      qc::sample_prepare(logits, work, nr, V, rows, 0);
      qc::sample(logits, work, nr, V, rows, results, tops, 0);
      auto got = to_host(results, nr);
      out.insert(out.end(), got.begin(), got.end());
      if (top_out) {
        auto t = to_host(tops, nr);
        top_out->insert(top_out->end(), t.begin(), t.end());
      }
    }
    return out;
  }
};

// Which order the device walks the kept tokens in for a row (sampling.cuh): the sorted list (the CPU sampler's
// order) when it holds the kept set, else token ids. Mirrors the kernel's choice with double-precision weights.
static bool device_walks_sorted(const std::vector<float>& lp, const q3_sampling& p) {
  const qc::SampleRow row = q3::sample_row(p, (int)lp.size());
  if (!(row.temperature > 0) || (row.top_k == 0 && row.top_p >= 1)) return false;
  const double mx = *std::max_element(lp.begin(), lp.end());
  long c40 = 0, c16 = 0;
  double m16 = 0, z = 0;
  for (float l : lp) {
    const double w = std::exp(((double)l - mx) / row.temperature);
    z += w;
    c40 += w >= std::ldexp(1.0, -40);
    if (w >= std::ldexp(1.0, -16)) c16++, m16 += w;
  }
  const long cap = 2 * 1024;
  if (c40 <= cap) return true;
  if (c16 <= cap && (row.top_k ? c16 >= row.top_k : m16 >= row.top_p * z)) return true;
  return row.top_k > 0 && row.top_k <= cap;
}

static void check_sampling(std::mt19937& rng, bool quick) {
  std::printf("[sampling: kernels against the CPU sampler's rules (sampling_check.h), exact parts and draws]\n");
  const int V = 151936, draws = quick ? 4096 : 8192;
  SampleBench sb(V);
  const std::vector<std::vector<float>> rows = {q3check::synthetic_logits(V, rng(), 2.5f, 14.f),
                                                q3check::synthetic_logits(V, rng(), 1.0f, 4.f)};
  for (size_t ri = 0; ri < rows.size(); ri++) {
    const std::vector<float>& l = rows[ri];
    const std::string shape = ri ? "flat row" : "peaked row";
    for (const q3check::Case& c : q3check::cases()) {
      const q3check::History h = c.history ? q3check::history_for(l, 5) : q3check::History{};
      const std::vector<uint32_t> m = c.mask ? q3check::mask_for(l) : std::vector<uint32_t>{};
      const uint32_t* allowed = c.mask ? m.data() : nullptr;
      std::vector<int> kept;
      const std::vector<double> q = q3check::expected_distribution(l.data(), V, c.p, h, allowed, &kept);
      const std::string tag = shape + ", " + c.name;
      const uint64_t seed = rng();
      const auto got = sb.draw(l, c.p, c.history ? &h : nullptr, c.mask ? &m : nullptr, draws, seed);
      // the penalised / masked logits the kernel sampled from, exactly the CPU sampler's
      if (c.history || c.mask) {
        const std::vector<float> want = q3check::penalised(l.data(), V, c.p, h, allowed);
        const auto work = to_host(sb.work, V);
        long diff = 0;
        for (int i = 0; i < V; i++) diff += !(work[i] == want[i]);
        validate_flag("sample_prepare == CPU penalties/bitmask bit for bit: " + tag, diff == 0, (double)diff);
      }
      // every draw: inside the kept set, equal to the reference draw with the same Philox u (walking the kept tokens
      // in the kernel's order), and the counts fit the expected distribution
      const std::vector<float> lp = q3check::penalised(l.data(), V, c.p, h, allowed);
      std::vector<int> walk = kept;
      if (!device_walks_sorted(lp, c.p)) std::sort(walk.begin(), walk.end());
      std::vector<long> counts(V, 0);
      long same = 0, bad = 0;
      for (int i = 0; i < draws; i++) {
        const int t = got[i].token;
        if (t < 0 || t >= V) {
          bad++;
          continue;
        }
        counts[t]++;
        same += t == q3check::draw_with(q, walk, qc::philox_uniform(seed, (uint64_t)i));
      }
      validate_flag("sampled token ids in range: " + tag, bad == 0, (double)bad);
      validate_flag("draw == reference draw with the same u (>= 99%): " + tag, same >= 0.99 * draws,
                    (double)same / draws);
      const q3check::Fit f = q3check::fit(counts, q, draws / 1000);
      std::printf("    %s\n", f.summary().c_str());
      validate_flag("draws fit the CPU sampler's distribution: " + tag, f.pass, f.chi2);
    }
  }
  // exact parts on the peaked row: logprob of the drawn token, top-20, history update, forced token, padding row,
  // a bitmask that allows nothing
  const std::vector<float>& l = rows[0];
  double mx = *std::max_element(l.begin(), l.end()), z = 0;
  for (float x : l) z += std::exp((double)x - mx);
  const double lse = mx + std::log(z);
  std::vector<double> w(l.begin(), l.end());
  const std::vector<int> order = q3check::by_weight(w);
  std::vector<qc::SampleTop> tops;
  const auto lp = sb.draw(l, q3check::params(0.8f, 20, 1, 0, 0, 0, 1, 20), nullptr, nullptr, 64, 9, -1, &tops);
  double worst = 0;
  bool ids = true;
  for (int i = 0; i < 64; i++) {
    worst = std::max(worst, std::fabs(lp[i].logprob - ((double)l[lp[i].token] - lse)));
    ids &= tops[i].n == 20;
    for (int j = 0; j < 20 && ids; j++) {
      ids &= tops[i].tokens[j] == order[j];
      worst = std::max(worst, std::fabs(tops[i].logprobs[j] - ((double)l[order[j]] - lse)));
    }
  }
  validate_flag("top-20 logprobs: the reference's tokens in order (ties: lower id)", ids);
  validate_flag("logprobs within 1e-4 of the double log-softmax", worst <= 1e-4, worst);
  const q3check::History h = q3check::history_for(l, 5);
  const q3_sampling pen = q3check::params(0.8f, 50, 1, 0, 0.5f, 0.3f, 1.3f);
  const auto one = sb.draw(l, pen, &h, nullptr, 1, 3);
  const auto hist_after = to_host(sb.history, V);
  const auto hist_before = sb.history_words(h);
  long changed = 0;
  for (int i = 0; i < V; i++) changed += hist_after[i] != hist_before[i] + (i == one[0].token ? 2 : 0);
  validate_flag("history: +2 at the emitted token, nothing else", changed == 0, (double)changed);
  const int forced_tok = order[5000];
  const auto f1 = sb.draw(l, q3check::params(0.7f, 20, 0.8f, 0), nullptr, nullptr, 1, 4, forced_tok);
  validate_flag("forced token emitted with its logprob",
                f1[0].token == forced_tok && std::fabs(f1[0].logprob - ((double)l[forced_tok] - lse)) <= 1e-4);
  qc::SampleRow idle{};
  Q3_CUDA_CHECK(cudaMemcpy(sb.rows, &idle, sizeof idle, cudaMemcpyHostToDevice));
  poison(sb.results, sizeof(qc::SampleResult));
  qc::sample_prepare(sb.logits, sb.work, 1, V, sb.rows, 0);
  qc::sample(sb.logits, sb.work, 1, V, sb.rows, sb.results, sb.tops, 0);
  validate_flag("padding row (active 0) writes nothing", to_host(sb.results, 1)[0].token == -1);
  const std::vector<uint32_t> none((V + 31) / 32, 0);
  const auto nothing = sb.draw(l, q3check::params(1.0f, 40, 1, 0), nullptr, &none, 1, 5);
  validate_flag("a bitmask that allows nothing gives the raw argmax", nothing[0].token == order[0]);
  // under a bitmask, logprobs describe the allowed tokens (the CPU sampler's rule), unless a forced token lies
  // outside it: then the raw distribution
  const std::vector<uint32_t> m = q3check::mask_for(l);
  double zm = 0;
  std::vector<int> allowed_order;
  for (int t : order)
    if (q3check::allowed_bit(m.data(), t)) allowed_order.push_back(t), zm += std::exp((double)l[t] - mx);
  const double lse_m = mx + std::log(zm);
  std::vector<qc::SampleTop> mt;
  const auto masked = sb.draw(l, q3check::params(0.8f, 20, 1, 0, 0, 0, 1, 20), nullptr, &m, 16, 11, -1, &mt);
  double worst_m = 0;
  bool ids_m = true;
  for (int i = 0; i < 16; i++) {
    ids_m &= q3check::allowed_bit(m.data(), masked[i].token) && mt[i].n == 20;
    worst_m = std::max(worst_m, std::fabs(masked[i].logprob - ((double)l[masked[i].token] - lse_m)));
    for (int j = 0; j < 20 && ids_m; j++) {
      ids_m &= mt[i].tokens[j] == allowed_order[j];
      worst_m = std::max(worst_m, std::fabs(mt[i].logprobs[j] - ((double)l[allowed_order[j]] - lse_m)));
    }
  }
  validate_flag("bitmask: draws allowed, top-20 = the best allowed tokens", ids_m);
  validate_flag("bitmask: logprobs of the allowed tokens' distribution within 1e-4", worst_m <= 1e-4, worst_m);
  const int outside = order[0];  // mask_for disallows the best token
  const auto fo = sb.draw(l, q3check::params(0.8f, 20, 1, 0), nullptr, &m, 1, 12, outside);
  validate_flag("forced token outside the bitmask: emitted, raw logprob",
                fo[0].token == outside && std::fabs(fo[0].logprob - ((double)l[outside] - lse)) <= 1e-4);
}

// Microseconds per launch of sample_prepare + sample for R rows.
static void bench_sampling(bool quick) {
  std::printf("[sampling kernels: time per step]\n");
  const int V = 151936;
  SampleBench sb(V);
  const std::vector<float> peaked = q3check::synthetic_logits(V, 21, 2.5f, 14.f),
                           flat = q3check::synthetic_logits(V, 22, 1.0f, 4.f);
  const q3check::History h = q3check::history_for(peaked, 5);
  struct B {
    const char* name;
    q3_sampling p;
    const std::vector<float>* l;
    bool history;
  };
  const std::vector<B> cases = {
      {"greedy", q3check::params(0, 0, 1, 0), &peaked, false},
      {"T 0.6 top-k 20 top-p 0.95", q3check::params(0.6f, 20, 0.95f, 0), &peaked, false},
      {"T 0.6 top-k 20 top-p 0.95 + 20 logprobs", q3check::params(0.6f, 20, 0.95f, 0, 0, 0, 1, 20), &peaked, false},
      {"T 0.8 top-k 50 + penalties", q3check::params(0.8f, 50, 1, 0, 0.5f, 0.3f, 1.3f), &peaked, true},
      {"T 1.0 top-p 0.9, flat row (radix path)", q3check::params(1.0f, 0, 0.9f, 0), &flat, false},
  };
  for (int R : quick ? std::vector<int>{1, 64} : std::vector<int>{1, 8, 64, 256})
    for (const B& c : cases) {
      sb.set_logits(*c.l, R);
      std::vector<qc::SampleRow> rs(R, q3::sample_row(c.p, V));
      for (auto& r : rs) r.seed = 1, r.history = c.history ? sb.history : nullptr;
      if (c.history) {
        const auto hw = sb.history_words(h);
        Q3_CUDA_CHECK(cudaMemcpy(sb.history, hw.data(), (size_t)V * 4, cudaMemcpyHostToDevice));
      }
      Q3_CUDA_CHECK(cudaMemcpy(sb.rows, rs.data(), R * sizeof(qc::SampleRow), cudaMemcpyHostToDevice));
      const float ms = benchmark_kernel(quick ? 10 : 30, [&] {
        qc::sample_prepare(sb.logits, sb.work, R, V, sb.rows, 0);
        qc::sample(sb.logits, sb.work, R, V, sb.rows, sb.results, sb.tops, 0);
      });
      record("sampling", std::string("sample ") + c.name + " R=" + std::to_string(R), ms * 1e3, "us");
    }
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
    if (!time_for(std::string("GEMV/GEMM ") + s.name, quick ? 6 : 15)) continue;
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
  float *logits, *work, *ws, *attn_ws;
  int32_t *ids, *pos, *slots, *bt, *ctx, *cu;
  qc::SampleRow* rows;
  qc::SampleResult* results;
  qc::SampleTop* tops;
};
static Acts alloc_acts(int T) {
  Acts a;
  auto h = [&](size_t n) { return (__half*)dalloc(n * 2); };
  a.resid = h((size_t)T * 4096); a.xn = h((size_t)T * 4096); a.qkv = h((size_t)T * Model8B::QKV);
  a.q = h((size_t)T * 4096); a.attn = h((size_t)T * 4096); a.o = h((size_t)T * 4096);
  a.gu = h((size_t)T * 2 * Model8B::I); a.act = h((size_t)T * Model8B::I); a.mlp = h((size_t)T * 4096);
  a.logits = (float*)dalloc((size_t)64 * Model8B::V * 4);
  a.work = (float*)dalloc((size_t)64 * Model8B::V * 4);
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
  qc::sample_prepare(a.logits, a.work, rows, Model8B::V, a.rows, s);
  qc::sample(a.logits, a.work, rows, Model8B::V, a.rows, a.results, a.tops, s);
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
  std::vector<qc::SampleRow> P(64, q3::sample_row(q3check::params(0.6f, 20, 0.95f, 0), Model8B::V));  // Qwen's thinking defaults
  for (size_t i = 0; i < P.size(); i++) P[i].seed = i;
  a.rows = to_device(P);
  a.results = (qc::SampleResult*)dalloc(64 * sizeof(qc::SampleResult));
  a.tops = (qc::SampleTop*)dalloc(64 * sizeof(qc::SampleTop));

  for (int ctx : ctxs)
    for (int B : batches) {
      if (!time_for("decode B=" + std::to_string(B) + " ctx=" + std::to_string(ctx), 4)) continue;
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
    if (!time_for("prefill " + std::to_string(P_len), P_len >= 32768 ? 10 : 4)) continue;
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
  // Sampling reference (sampling_check.h): top-k 1 and min-p 1 keep only the best token; u = 0 draws the first kept
  // token of the walk; the fit passes exact expected counts and fails a draw outside the kept set.
  {
    std::vector<float> lg(1000);
    for (auto& x : lg) x = std::uniform_real_distribution<float>(-3, 3)(rng);
    const int am = (int)(std::max_element(lg.begin(), lg.end()) - lg.begin());
    std::vector<int> kept;
    auto q1 = q3check::expected_distribution(lg.data(), 1000, q3check::params(0.7f, 1, 1, 0), {});
    auto q2 = q3check::expected_distribution(lg.data(), 1000, q3check::params(0.7f, 0, 1, 1.f), {});
    auto q3 = q3check::expected_distribution(lg.data(), 1000, q3check::params(1.0f, 50, 0.5f, 0), {}, nullptr, &kept);
    ok &= validate_flag("expected: top_k=1 == argmax", q1[am] == 1);
    ok &= validate_flag("expected: min_p=1 == argmax", q2[am] == 1);
    ok &= validate_flag("draw_with(u=0) = the first kept token", q3check::draw_with(q3, kept, 0.0) == kept[0]);
    std::vector<long> counts(1000, 0);
    for (int i = 0; i < 1000; i++) counts[i] = std::lround(q3[i] * 10000);
    ok &= validate_flag("fit passes the expected counts", q3check::fit(counts, q3).pass);
    std::vector<long> outside(1000, 0);
    outside[std::find(q3.begin(), q3.end(), 0.0) - q3.begin()] = 1;
    ok &= validate_flag("fit fails a draw outside the kept set", !q3check::fit(outside, q3).pass);
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
  show("sampling", "R=1");
  show("peer", "");
  for (auto& w : g_skipped) std::printf("skipped for time: %s\n", w.c_str());
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
    else if (a == "--budget-s")
      g_deadline = std::chrono::steady_clock::now() + std::chrono::seconds(std::atoi(next().c_str()));
    else {
      std::fprintf(stderr,
                   "usage: gpu_check [--cpu-selftest] [--quick] [--checks-only|--bench-only] [--json F] [--md F] "
                   "[--peers F] [--gemv-max M] [--budget-s S]\n");
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
      check_sampling(rng, quick);
      std::printf("== (2) engine CUDA vs CPU: engine_check, run by native/scripts/gpu-check.sh ==\n");
    }
    if (bench) {
      std::printf("== (3) bandwidth ==\n");
      if (time_for("bandwidth", 10)) bench_bandwidth(quick);
      std::printf("== (4) benchmarks ==\n");
      bench_gemv_gemm(quick);
      if (time_for("sampling kernels", quick ? 5 : 15)) bench_sampling(quick);
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
