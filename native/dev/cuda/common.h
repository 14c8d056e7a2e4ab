// Helpers for the kernel experiments and the GPU check (llm.c dev/cuda style): error checks, random fills,
// output poisoning, validation by normalised error, and timing with an L2 flush and CUDA events.
#pragma once
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "../../kernels/cuda/common.cuh"  // Q3_CUDA_CHECK (throws with file:line)
#include "../../src/half.h"

namespace q3dev {

inline std::vector<uint16_t> to_f16(const std::vector<float>& v) {
  std::vector<uint16_t> o(v.size());
  for (size_t i = 0; i < v.size(); i++) o[i] = q3::f32_to_f16(v[i]);
  return o;
}
inline std::vector<float> from_f16(const std::vector<uint16_t>& v) {
  std::vector<float> o(v.size());
  for (size_t i = 0; i < v.size(); i++) o[i] = q3::f16_to_f32(v[i]);
  return o;
}
// Random floats rounded to fp16 (so CPU references see exactly what the GPU sees).
inline std::vector<float> rand_f16_values(size_t n, std::mt19937& rng, float lo = -1.f, float hi = 1.f) {
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = q3::f16_to_f32(q3::f32_to_f16(d(rng)));
  return v;
}

template <class T>
T* to_device(const std::vector<T>& h) {
  T* d = nullptr;
  Q3_CUDA_CHECK(cudaMalloc(&d, h.size() * sizeof(T) + 16));
  Q3_CUDA_CHECK(cudaMemcpy(d, h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice));
  return d;
}
template <class T>
std::vector<T> to_host(const T* d, size_t n) {
  std::vector<T> h(n);
  Q3_CUDA_CHECK(cudaMemcpy(h.data(), d, n * sizeof(T), cudaMemcpyDeviceToHost));
  return h;
}
// Fill with 0xFF bytes: NaN in fp16 and fp32, -1 in ints, so an unwritten element can't pass validation.
inline void poison(void* d, size_t bytes) { Q3_CUDA_CHECK(cudaMemset(d, 0xFF, bytes)); }

// ||out - ref|| / ||ref||; NaN or Inf anywhere in out fails.
inline double rel_error(const std::vector<double>& out, const std::vector<double>& ref) {
  double num = 0, den = 0;
  for (size_t i = 0; i < ref.size(); i++) {
    if (!std::isfinite(out[i])) return INFINITY;
    num += (out[i] - ref[i]) * (out[i] - ref[i]);
    den += ref[i] * ref[i];
  }
  return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

struct CheckResult {
  std::string name;
  double err;
  bool pass;
};
inline std::vector<CheckResult>& check_log() {
  static std::vector<CheckResult> v;
  return v;
}
// Records and prints one validation; tol defaults to the project's 5e-3.
inline bool validate_result(const std::string& name, const std::vector<double>& out, const std::vector<double>& ref,
                            double tol = 5e-3) {
  double e = rel_error(out, ref);
  bool ok = e <= tol;
  std::printf("  %-48s rel_err %.3e  %s\n", name.c_str(), e, ok ? "PASS" : "FAIL");
  check_log().push_back({name, e, ok});
  return ok;
}
inline bool validate_flag(const std::string& name, bool ok, double metric = 0) {
  std::printf("  %-48s %-18s %s\n", name.c_str(), metric != 0 ? std::to_string(metric).c_str() : "", ok ? "PASS" : "FAIL");
  check_log().push_back({name, metric, ok});
  return ok;
}

// Evicts L2 by writing a buffer twice its size.
struct L2Flusher {
  void* buf = nullptr;
  size_t bytes = 0;
  L2Flusher() {
    int dev = 0, l2 = 0;
    Q3_CUDA_CHECK(cudaGetDevice(&dev));
    Q3_CUDA_CHECK(cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, dev));
    bytes = (size_t)std::max(l2, 1 << 20) * 2;
    Q3_CUDA_CHECK(cudaMalloc(&buf, bytes));
  }
  ~L2Flusher() { cudaFree(buf); }
  void flush(cudaStream_t s) { Q3_CUDA_CHECK(cudaMemsetAsync(buf, 0, bytes, s)); }
};

// Median time in ms of `fn` over `reps` runs, each preceded by an L2 flush (flush not timed).
template <class F>
float benchmark_kernel(int reps, F&& fn, cudaStream_t s = 0, bool flush_l2 = true) {
  static L2Flusher flusher;
  cudaEvent_t a, b;
  Q3_CUDA_CHECK(cudaEventCreate(&a));
  Q3_CUDA_CHECK(cudaEventCreate(&b));
  fn();  // warm-up
  Q3_CUDA_CHECK(cudaStreamSynchronize(s));
  std::vector<float> ts;
  for (int i = 0; i < reps; i++) {
    if (flush_l2) flusher.flush(s);
    Q3_CUDA_CHECK(cudaEventRecord(a, s));
    fn();
    Q3_CUDA_CHECK(cudaEventRecord(b, s));
    Q3_CUDA_CHECK(cudaEventSynchronize(b));
    float ms = 0;
    Q3_CUDA_CHECK(cudaEventElapsedTime(&ms, a, b));
    ts.push_back(ms);
  }
  Q3_CUDA_CHECK(cudaEventDestroy(a));
  Q3_CUDA_CHECK(cudaEventDestroy(b));
  std::sort(ts.begin(), ts.end());
  return ts[ts.size() / 2];
}

}  // namespace q3dev
