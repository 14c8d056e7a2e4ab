// Memory read bandwidth probe: the yardstick the CPU GEMV kernels are judged against (a memory-bound kernel can at
// best stream its weights at this rate).
#pragma once
#include <cstddef>
#include <cstdint>
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

// A large read-only buffer (huge pages, each thread's part first touched by that thread) and the loops that time
// reads of it. The buffer is read in ~32 MiB segments, each split into pool.size() contiguous parts (one per thread,
// one parallel_for per segment); keep it far larger than the last-level cache (callers use >= 512 MB) or the reads
// come from the cache. Throws std::runtime_error if the buffer cannot be allocated.
class ReadProbe {
 public:
  ReadProbe(ThreadPool& pool, size_t bytes);
  ~ReadProbe();
  ReadProbe(const ReadProbe&) = delete;
  ReadProbe& operator=(const ReadProbe&) = delete;

  // How fast this machine can stream memory into the cores: `passes` passes over the whole buffer, segment by
  // segment. Several read loops take turns on the segments (widest vector loads, with and without software prefetch
  // into L2, one or four interleaved streams per thread), since which one is fastest depends on the machine; the best
  // segment is reported, and the fastest loop's rate over all its segments as the sustained rate.
  ReadBandwidth measure(int passes = 5);

  // One timed read of `bytes` (rounded down to whole KiB) with the loop named `method` (a name from measure(); the
  // first loop if none matches), continuing round-robin from where the last read stopped, so consecutive reads never
  // find their bytes in the cache. Each segment is one parallel job of ~8 chunks per thread that the threads claim in
  // turn, as a decode step's matmuls split their weights; the time includes each segment's fork and join. GB/s.
  double timed_read_gbs(size_t bytes, const std::string& method);

 private:
  ThreadPool& pool_;
  uint8_t* buf_ = nullptr;
  size_t part_ = 0, seg_ = 0, n_seg_ = 0;  // bytes per thread per segment, bytes per segment, segments
  size_t next_seg_ = 0;                    // where the next timed read starts
  std::vector<uint64_t> sink_;             // per thread, so the sums are not optimised away
};

// A ReadProbe of `bytes` measured once: the denominator of the CPU benchmarks.
ReadBandwidth measure_read_bandwidth_cpu(ThreadPool& pool, size_t bytes, int passes = 5);

// The CPU's model name from /proc/cpuinfo with its family and model numbers ("unknown" elsewhere), for the machine
// line of benchmark results.
std::string cpu_model_name();

}  // namespace q3
