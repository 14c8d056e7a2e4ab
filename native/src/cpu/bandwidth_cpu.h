// Memory read bandwidth probe: the yardstick the CPU GEMV kernels are judged against (a memory-bound kernel can at
// best stream its weights at this rate).
#pragma once
#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "../threadpool.h"
#include "huge_pages.h"

namespace q3 {

// The result of the probe: the fastest rate any of its read loops reached, and which loop that was.
struct ReadBandwidth {
  double best_gbs = 0;  // GB/s (1e9 bytes per second)
  std::string method;   // the loop that reached best_gbs, e.g. "4 streams/thread"
  std::vector<std::pair<std::string, double>> per_method;  // each loop's best GB/s
  // The fastest loop's rate over all its segments together (bytes / time, every segment counts): what a long read
  // sustains, the moments another process takes included. A decode step averages over ~0.2 s the same way, while
  // best_gbs is the best ~1 ms segment.
  double sustained_gbs = 0;
};

// How fast this machine can stream memory into the cores: read-only passes over a freshly allocated buffer of
// `bytes` (huge pages, first touched by the thread that reads it), in ~32 MiB segments that are each split into
// pool.size() contiguous parts (one per thread). Several read loops take turns on the segments (widest vector loads,
// with and without software prefetch into L2, one or four interleaved streams per thread), since which one is fastest
// depends on the machine; the best segment of `passes` passes over the whole buffer is reported. Pick bytes well
// above the last-level cache (callers use >= 512 MB) or this measures the cache. Throws std::runtime_error if the
// buffer cannot be allocated.
ReadBandwidth measure_read_bandwidth_cpu(ThreadPool& pool, size_t bytes, int passes = 5);

// The CPU's model name from /proc/cpuinfo ("unknown" elsewhere), for the machine line of benchmark results.
std::string cpu_model_name();

}  // namespace q3
