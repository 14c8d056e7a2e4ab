// Plain-loop CPU references (double precision) for every CUDA kernel, on the published layouts. Used by the
// kernel experiments, gpu_check and gpu_check --cpu-selftest. The sampler's reference is sampling_check.h.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "../../src/awq_format.h"
#include "../../src/half.h"

namespace q3ref {

// One AutoAWQ linear as published: qweight (K, N/8), qzeros (K/128, N/8), scales (K/128, N) fp16 bits.
struct AwqHost {
  int K = 0, N = 0;
  std::vector<int32_t> qweight, qzeros;
  std::vector<uint16_t> scales;
};

template <class Rng>
AwqHost random_awq(int K, int N, Rng& rng) {
  AwqHost w;
  w.K = K;
  w.N = N;
  const int G = K / 128;
  std::uniform_int_distribution<int> q(0, 15);
  std::uniform_real_distribution<float> s(0.002f, 0.02f);
  std::vector<uint8_t> row(N);
  w.qweight.resize((size_t)K * N / 8);
  for (int k = 0; k < K; k++) {
    for (auto& v : row) v = (uint8_t)q(rng);
    q3::awq::pack_row(row.data(), N, &w.qweight[(size_t)k * N / 8]);
  }
  w.qzeros.resize((size_t)G * N / 8);
  for (int g = 0; g < G; g++) {
    for (auto& v : row) v = (uint8_t)q(rng);
    q3::awq::pack_row(row.data(), N, &w.qzeros[(size_t)g * N / 8]);
  }
  w.scales.resize((size_t)G * N);
  for (auto& v : w.scales) v = q3::f32_to_f16(s(rng));
  return w;
}

inline double awq_weight(const AwqHost& w, int k, int n) {
  int q = q3::awq::unpack(&w.qweight[(size_t)k * w.N / 8], n);
  int z = q3::awq::unpack(&w.qzeros[(size_t)(k / 128) * w.N / 8], n);
  return (double)(q - z) * q3::f16_to_f32(w.scales[(size_t)(k / 128) * w.N + n]);
}

// y (M, N) = x (M, K) . W
inline std::vector<double> awq_matmul(const AwqHost& w, const std::vector<float>& x, int M) {
  std::vector<double> y((size_t)M * w.N, 0.0), col(w.K);
  for (int n = 0; n < w.N; n++) {
    for (int k = 0; k < w.K; k++) col[k] = awq_weight(w, k, n);
    for (int m = 0; m < M; m++) {
      double s = 0;
      const float* xr = &x[(size_t)m * w.K];
      for (int k = 0; k < w.K; k++) s += xr[k] * col[k];
      y[(size_t)m * w.N + n] = s;
    }
  }
  return y;
}

// Dequantised weight read back from the repacked layout (qwen3_cuda.h), for the repack round-trip test.
inline double repacked_weight(const uint32_t* qw, const uint32_t* sz, int K, int k, int n) {
  const int K8 = K / 8, G = K / 128;
  uint32_t word = qw[((size_t)(n / 4) * K8 + k / 8) * 4 + n % 4];
  int r = k % 8;
  int q = (word >> (4 * ((r >> 1) + 4 * (r & 1)))) & 0xF;
  uint32_t s = sz[((size_t)(n / 4) * G + k / 128) * 4 + n % 4];
  double scale = q3::f16_to_f32((uint16_t)(s & 0xFFFF));
  double zb = q3::f16_to_f32((uint16_t)(s >> 16));  // 1024 + zero
  return ((1024.0 + q) - zb) * scale;
}

// residual (optional) += x; y = rmsnorm(residual or x) * w. Residual is rounded to fp16 as the GPU stores it.
inline std::vector<double> add_rmsnorm(std::vector<float>* residual, const std::vector<float>& x,
                                       const std::vector<float>& w, int M, int D, double eps) {
  std::vector<double> y((size_t)M * D);
  for (int m = 0; m < M; m++) {
    std::vector<double> r(D);
    for (int d = 0; d < D; d++) {
      float v = x[(size_t)m * D + d];
      if (residual) {
        v = q3::f16_to_f32(q3::f32_to_f16((*residual)[(size_t)m * D + d] + v));
        (*residual)[(size_t)m * D + d] = v;
      }
      r[d] = v;
    }
    double ss = 0;
    for (double v : r) ss += v * v;
    double inv = 1.0 / std::sqrt(ss / D + eps);
    for (int d = 0; d < D; d++) y[(size_t)m * D + d] = r[d] * inv * w[d];
  }
  return y;
}

inline std::vector<double> swiglu(const std::vector<float>& gu, int M, int I) {
  std::vector<double> o((size_t)M * I);
  for (int m = 0; m < M; m++)
    for (int i = 0; i < I; i++) {
      double g = gu[(size_t)m * 2 * I + i], u = gu[(size_t)m * 2 * I + I + i];
      o[(size_t)m * I + i] = g / (1 + std::exp(-g)) * u;
    }
  return o;
}

// Default RoPE table: inv_freq[i] = theta^(-2i/128) (fp32, as HF builds it).
inline std::vector<float> rope_inv_freq(double theta) {
  std::vector<float> f(64);
  for (int i = 0; i < 64; i++) f[i] = (float)(1.0 / std::pow(theta, (double)(2 * i) / 128.0));
  return f;
}

// One head (128) of q or k: RMSNorm with weight w, then NeoX RoPE at `pos`; angle pos*inv_freq in fp32 as in HF.
inline void norm_rope_head(const float* x, const std::vector<float>& w, const std::vector<float>& inv_freq, int pos,
                           double attn_factor, double eps, double* out) {
  double ss = 0;
  for (int d = 0; d < 128; d++) ss += (double)x[d] * x[d];
  double inv = 1.0 / std::sqrt(ss / 128 + eps);
  double n[128];
  for (int d = 0; d < 128; d++) n[d] = x[d] * inv * w[d];
  for (int d = 0; d < 64; d++) {
    float ang = (float)pos * inv_freq[d];
    double c = std::cos((double)ang) * attn_factor, s = std::sin((double)ang) * attn_factor;
    out[d] = n[d] * c - n[d + 64] * s;
    out[d + 64] = n[d + 64] * c + n[d] * s;
  }
}

// Causal attention of one query (H heads) at position qpos over keys 0..qpos of one sequence.
// k, v: (ctx, KV, 128) gathered from the cache. GQA: head h uses KV head h / (H/KV).
inline void attention_one(const float* q, const std::vector<float>& k, const std::vector<float>& v, int qpos, int H,
                          int KV, double scale, double* out) {
  for (int h = 0; h < H; h++) {
    int g = h / (H / KV);
    std::vector<double> s(qpos + 1);
    double mx = -1e300;
    for (int t = 0; t <= qpos; t++) {
      double d = 0;
      for (int e = 0; e < 128; e++) d += (double)q[h * 128 + e] * k[((size_t)t * KV + g) * 128 + e];
      s[t] = d * scale;
      mx = std::max(mx, s[t]);
    }
    double l = 0;
    for (auto& x : s) l += (x = std::exp(x - mx));
    for (int e = 0; e < 128; e++) {
      double o = 0;
      for (int t = 0; t <= qpos; t++) o += s[t] * v[((size_t)t * KV + g) * 128 + e];
      out[h * 128 + e] = o / l;
    }
  }
}

}  // namespace q3ref
