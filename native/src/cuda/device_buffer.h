// Checked CUDA runtime calls for the engine's CUDA backend and an owning device allocation. Failures throw
// q3::DeviceError carrying file:line and the runtime's message, which the C ABI turns into Q3_ERR_DEVICE.
#pragma once
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstddef>
#include <string>
#include <utility>

#include "../backend.h"

namespace q3 {

inline void cuda_check(cudaError_t e, const char* what, const char* file, int line) {
  if (e != cudaSuccess)
    throw DeviceError(std::string(file) + ":" + std::to_string(line) + ": " + what + ": " + cudaGetErrorString(e));
}
#define Q3_CK(call) ::q3::cuda_check((call), #call, __FILE__, __LINE__)

// Device memory of `count` elements of T (uninitialised), freed on destruction.
template <class T>
class DeviceArray {
 public:
  DeviceArray() = default;
  explicit DeviceArray(size_t count) { resize(count); }
  ~DeviceArray() { reset(); }
  DeviceArray(DeviceArray&& o) noexcept : p_(std::exchange(o.p_, nullptr)), n_(std::exchange(o.n_, 0)) {}
  DeviceArray& operator=(DeviceArray&& o) noexcept {
    if (this != &o) {
      reset();
      p_ = std::exchange(o.p_, nullptr);
      n_ = std::exchange(o.n_, 0);
    }
    return *this;
  }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;

  // Drops the contents; no-op when count fits already.
  void resize(size_t count) {
    if (count <= n_ && p_) return;
    reset();
    void* p = nullptr;
    Q3_CK(cudaMalloc(&p, std::max<size_t>(count, 1) * sizeof(T)));
    p_ = static_cast<T*>(p);
    n_ = count;
  }
  void reset() {
    if (p_) cudaFree(p_);  // errors here can only repeat an earlier one
    p_ = nullptr;
    n_ = 0;
  }
  T* get() const { return p_; }
  size_t size() const { return n_; }
  size_t bytes() const { return n_ * sizeof(T); }

 private:
  T* p_ = nullptr;
  size_t n_ = 0;
};

}  // namespace q3
