// Kernel experiment: W4A16 GEMV (M = 1) on the 8B shapes. Versions:
//   1: naive, one thread per output column on the published AutoAWQ layout (4-byte loads, fp32 math)
//   2: mainline awq_gemv (repacked layout, 16-byte loads, fp16 dequant + fp32 accumulation, split-K in the block)
// Usage: ./bin/awq_gemv [version] [K N]. Validates every version against the CPU reference, then benchmarks.
#include "../../kernels/cuda/qwen3_cuda.h"
#include "common.h"
#include "cpu_ref.h"

using namespace q3dev;
namespace qc = q3::cuda;

__global__ void awq_gemv_v1(const int32_t* qweight, const int32_t* qzeros, const __half* scales, const __half* x,
                            int K, int N, __half* y) {
  int n = blockIdx.x * blockDim.x + threadIdx.x;
  if (n >= N) return;
  int sh = 4 * ((n % 8) / 2 + 4 * (n % 2));  // AWQ_REVERSE_ORDER[n % 8] * 4
  float acc = 0.f;
  for (int k = 0; k < K; k++) {
    int g = k / 128;
    int q = ((uint32_t)qweight[(size_t)k * (N / 8) + n / 8] >> sh) & 0xF;
    int z = ((uint32_t)qzeros[(size_t)g * (N / 8) + n / 8] >> sh) & 0xF;
    acc += __half2float(x[k]) * (float)(q - z) * __half2float(scales[(size_t)g * N + n]);
  }
  y[n] = __float2half(acc);
}

int main(int argc, char** argv) {
  int version = argc > 1 ? std::atoi(argv[1]) : 2;
  int K = argc > 3 ? std::atoi(argv[2]) : 4096, N = argc > 3 ? std::atoi(argv[3]) : 12288;
  try {
    std::mt19937 rng(42);
    auto w = q3ref::random_awq(K, N, rng);
    auto x = rand_f16_values(K, rng);
    auto ref = q3ref::awq_matmul(w, x, 1);
    int32_t *dq = to_device(w.qweight), *dz = to_device(w.qzeros);
    __half* ds = (__half*)to_device(w.scales);
    __half* dx = (__half*)to_device(to_f16(x));
    __half* dy = nullptr;
    Q3_CUDA_CHECK(cudaMalloc(&dy, N * 2));
    uint4 *qw, *sz;
    Q3_CUDA_CHECK(cudaMalloc(&qw, qc::awq_qw_bytes(K, N)));
    Q3_CUDA_CHECK(cudaMalloc(&sz, qc::awq_sz_bytes(K, N)));
    qc::awq_repack_device(dq, dz, ds, K, N, 0, N, qw, sz, 0);
    qc::AwqWeight aw{qw, sz, K, N};
    auto run = [&](int v) {
      if (v == 1) awq_gemv_v1<<<(N + 127) / 128, 128>>>(dq, dz, ds, dx, K, N, dy);
      else qc::awq_gemv(aw, dx, 1, dy, 0);
      Q3_CUDA_CHECK_LAUNCH();
    };
    for (int v = 1; v <= 2; v++) {
      poison(dy, N * 2);
      run(v);
      std::vector<uint16_t> out = to_host((uint16_t*)dy, N);
      std::vector<double> o(N);
      for (int i = 0; i < N; i++) o[i] = q3::f16_to_f32(out[i]);
      validate_result("awq_gemv v" + std::to_string(v), o, ref);
    }
    float ms = benchmark_kernel(50, [&] { run(version); });
    double bytes = version == 1 ? (double)K * N / 2 + K / 128.0 * N * 2.5 : qc::awq_qw_bytes(K, N) + qc::awq_sz_bytes(K, N);
    std::printf("version %d  K=%d N=%d  %.2f us  %.0f GB/s\n", version, K, N, ms * 1e3, bytes / (ms * 1e-3) / 1e9);
  } catch (const std::exception& e) {
    std::printf("ERROR: %s\n", e.what());
    return 1;
  }
  return 0;
}
