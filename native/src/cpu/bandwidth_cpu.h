// Memory read bandwidth probe: the yardstick the CPU GEMV kernels are judged against (a memory-bound kernel can at
// best stream its weights at this rate).
#pragma once
#include <cstddef>
#include <string>

#include "../threadpool.h"

namespace q3 {

// GB/s (1e9 bytes per second) of read-only passes over a freshly allocated buffer of `bytes`, read in ~32 MiB
// segments that are each split into pool.size() contiguous parts (one per thread); the best segment of 5 passes.
// Pick bytes well above the last-level cache (callers use >= 512 MB) or this measures the cache. Throws
// std::runtime_error if the buffer cannot be allocated.
double measure_read_bandwidth_cpu(ThreadPool& pool, size_t bytes);

// Asks the kernel to back [p, p + bytes) with transparent huge pages (Linux; a no-op elsewhere). Call it on large
// streamed buffers before first touch: 4 KiB pages stop the hardware prefetcher at every page boundary.
void advise_huge_pages(void* p, size_t bytes);

// The CPU's model name from /proc/cpuinfo ("unknown" elsewhere), for the machine line of benchmark results.
std::string cpu_model_name();

}  // namespace q3
