// Memory for tables the CPU kernels stream whole every step (repacked int4 matrices, the fp16 lm_head): backed by
// 2 MiB transparent huge pages, since 4 KiB pages stop the hardware prefetcher at every page boundary and cost a TLB
// miss every 4 KiB of a multi-gigabyte stream.
#pragma once
#include <cstddef>
#include <cstdlib>
#include <new>

namespace q3 {

// Asks the kernel to back the 2 MiB-aligned part of [p, p + bytes) with transparent huge pages (Linux; a no-op
// elsewhere). Call it on large streamed buffers before first touch.
void advise_huge_pages(void* p, size_t bytes);

// A std::allocator for large streamed buffers: blocks of 2 MiB or more start on a 2 MiB boundary and span whole huge
// pages (advised before first touch), so none of their bytes sit on 4 KiB pages at the edges.
template <typename T>
struct HugePageAllocator {
  using value_type = T;
  HugePageAllocator() = default;
  template <typename U>
  HugePageAllocator(const HugePageAllocator<U>&) {}

  T* allocate(size_t n) {
    constexpr size_t kHuge = 2u << 20;
    const size_t bytes = n * sizeof(T);
    if (bytes < kHuge) {
      void* p = std::malloc(bytes ? bytes : 1);
      if (!p) throw std::bad_alloc();
      return (T*)p;
    }
    const size_t rounded = (bytes + kHuge - 1) / kHuge * kHuge;
    void* p = std::aligned_alloc(kHuge, rounded);
    if (!p) throw std::bad_alloc();
    advise_huge_pages(p, rounded);
    return (T*)p;
  }
  void deallocate(T* p, size_t) { std::free(p); }

  template <typename U>
  bool operator==(const HugePageAllocator<U>&) const { return true; }
  template <typename U>
  bool operator!=(const HugePageAllocator<U>&) const { return false; }
};

}  // namespace q3
