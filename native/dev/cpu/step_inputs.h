// What the decode-step experiments (decode_step.cpp, matmul_split.cpp) share: the checkpoint's weights loaded for the
// CPU, a packed matrix's view and one random activation row per input width, quantised as awq_matmul_cpu would.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include <cstdio>

#include "awq_inputs.h"
#include "config.h"
#include "cpu/awq_cpu.h"
#include "cpu/awq_cpu_kernels.h"
#include "model.h"
#include "safetensors.h"

namespace q3::dev {

// A checkpoint's configuration and its weights repacked for the CPU kernels (tens of seconds for the 8B one).
struct LoadedModel {
  Qwen3Config cfg;
  Checkpoint ckpt;
  Qwen3Weights w;
  explicit LoadedModel(const char* dir) : cfg(load_config(dir)), ckpt(dir) {
    std::fprintf(stderr, "loading...\n");
    load_weights_cpu(ckpt, cfg, w, [](const char*, double) {});
  }
};

// One activation row quantised in blocks of 128 (the 8B checkpoint's group size).
struct Quantized {
  std::vector<int16_t> q;
  std::vector<int8_t> hi, lo;
  std::vector<float> s;
  std::vector<int32_t> sum;
  awq_cpu::QuantizedRows rows;
  explicit Quantized(const std::vector<float>& x) : q(x.size()), hi(x.size()), lo(x.size()), s(x.size() / 128), sum(x.size() / 128) {
    const int K = (int)x.size();
    awq_cpu::quantize_rows_avx512(x.data(), 1, K, 128, q.data(), hi.data(), lo.data(), s.data(), sum.data());
    rows = awq_cpu::QuantizedRows{1, K, 128, q.data(), hi.data(), lo.data(), s.data(), sum.data()};
  }
};

// Random inputs of a decode step: xh (hidden), xi (intermediate, down_proj's input), their quantised rows, xh again
// at a 64-byte boundary (xa, for the fp16 kernels' aligned loads), and an output buffer y wide enough for gate|up.
struct StepInputs {
  std::vector<float> xh, xi, y, x_aligned;
  Quantized qh, qi;
  float* xa;
  StepInputs(int H, int I) : xh(random(H, 1)), xi(random(I, 2)), y(2 * (size_t)I), x_aligned(H + 16), qh(xh), qi(xi) {
    xa = x_aligned.data() + (64 - (uintptr_t)x_aligned.data() % 64) % 64 / sizeof(float);
    std::copy(xh.begin(), xh.end(), xa);
  }
  static std::vector<float> random(int n, unsigned seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> nd(0.f, 1.f);
    std::vector<float> v(n);
    for (float& x : v) x = nd(rng);
    return v;
  }
};

}  // namespace q3::dev
