// Experiment: how the "memory modes" of a small VM behave over time, inside one process. Every ~0.3 s, for `samples`
// samples, two threads (one per vCPU, pinned) each read their own 256 MiB buffer on huge pages once (the read: GB/s of
// the two together), then each runs 2.4e8 independent vpdpbusd on registers (the compute: G instructions per second
// of the two). If the slow mode came from the two vCPUs sharing one core (SMT siblings or time slices), the compute
// would drop with the read; if it came from the memory side, only the read drops. Prints the series, the runs of
// samples in each mode (< 45 or >= 45 GB/s) and both rates per mode, and writes them as a results file.
// Build: g++ -O2 -march=native -pthread native/dev/cpu/memory_modes.cpp -o /tmp/memory_modes
// Usage: /tmp/memory_modes [samples = 400] [results file to write]
// GCC 12 reports its own _mm512_undefined_* placeholders (inside the reduce intrinsics) as maybe-uninitialized.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#include <pthread.h>
#include <sched.h>
#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <thread>
#include <vector>

namespace {

constexpr size_t kBytes = 256ul << 20;  // per thread
constexpr long kComputeIters = 20000000;  // x 12 vpdpbusd per thread
constexpr double kFastGbs = 45;           // the benchmarks' split between the modes

using Clock = std::chrono::steady_clock;
double seconds(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

// A two-thread rendezvous: the caller posts a task number, both workers run it and report back.
struct Crew {
  std::atomic<int> task{0}, done{0};
  uint8_t* buf[2] = {nullptr, nullptr};
};

void read_once(const uint8_t* p) {
  __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
  for (size_t i = 0; i < kBytes; i += 256) {
    a0 = _mm512_xor_si512(a0, _mm512_load_si512(p + i));
    a1 = _mm512_xor_si512(a1, _mm512_load_si512(p + i + 64));
    a2 = _mm512_xor_si512(a2, _mm512_load_si512(p + i + 128));
    a3 = _mm512_xor_si512(a3, _mm512_load_si512(p + i + 192));
  }
  volatile int sink = _mm512_reduce_add_epi32(_mm512_xor_si512(_mm512_xor_si512(a0, a1), _mm512_xor_si512(a2, a3)));
  (void)sink;
}

// 12 independent dot-product chains on registers: bound by the vector ports, not by latency or memory.
void compute_once() {
  for (long it = 0; it < kComputeIters; it++)
    asm volatile(
        "vpdpbusd %%zmm30, %%zmm31, %%zmm0\n vpdpbusd %%zmm30, %%zmm31, %%zmm1\n vpdpbusd %%zmm30, %%zmm31, %%zmm2\n"
        "vpdpbusd %%zmm30, %%zmm31, %%zmm3\n vpdpbusd %%zmm30, %%zmm31, %%zmm4\n vpdpbusd %%zmm30, %%zmm31, %%zmm5\n"
        "vpdpbusd %%zmm30, %%zmm31, %%zmm6\n vpdpbusd %%zmm30, %%zmm31, %%zmm7\n vpdpbusd %%zmm30, %%zmm31, %%zmm8\n"
        "vpdpbusd %%zmm30, %%zmm31, %%zmm9\n vpdpbusd %%zmm30, %%zmm31, %%zmm10\n vpdpbusd %%zmm30, %%zmm31, %%zmm11\n" ::
            : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11");
}

void worker(Crew* c, int id, int samples) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(id, &set);
  pthread_setaffinity_np(pthread_self(), sizeof set, &set);
  for (int s = 0; s < samples; s++) {
    while (c->task.load() != 2 * s + 1) {}
    read_once(c->buf[id]);
    c->done++;
    while (c->task.load() != 2 * s + 2) {}
    compute_once();
    c->done++;
  }
}

// The caller sleeps while the workers run (a third spinning thread on 2 vCPUs would take turns with them).
void wait_done(Crew& c, int n) {
  while (c.done.load() < n) std::this_thread::sleep_for(std::chrono::microseconds(50));
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

}  // namespace

int main(int argc, char** argv) {
  const int samples = argc > 1 ? atoi(argv[1]) : 400;
  const char* out = argc > 2 ? argv[2] : nullptr;
  Crew crew;
  for (auto& b : crew.buf) {
    b = (uint8_t*)aligned_alloc(2u << 20, kBytes);
    madvise(b, kBytes, MADV_HUGEPAGE);
    memset(b, 1, kBytes);
  }
  std::thread t0(worker, &crew, 0, samples), t1(worker, &crew, 1, samples);
  std::vector<double> at, read, comp;
  const auto start = Clock::now();
  for (int s = 0; s < samples; s++) {
    const auto a = Clock::now();
    crew.task = 2 * s + 1;
    wait_done(crew, 4 * s + 2);
    const auto b = Clock::now();
    crew.task = 2 * s + 2;
    wait_done(crew, 4 * s + 4);
    const auto e = Clock::now();
    at.push_back(seconds(start, a));
    read.push_back(2.0 * kBytes / seconds(a, b) / 1e9);
    comp.push_back(2.0 * 12 * kComputeIters / seconds(b, e) / 1e9);
    std::this_thread::sleep_for(std::chrono::milliseconds(150));
  }
  t0.join();
  t1.join();

  // Runs of consecutive samples in one mode.
  std::vector<std::pair<bool, double>> runs;  // (fast, seconds)
  for (int s = 0; s < samples; s++) {
    const bool fast = read[s] >= kFastGbs;
    const double end = s + 1 < samples ? at[s + 1] : at[s] + (at[s] - at[std::max(0, s - 1)]);
    if (runs.empty() || runs.back().first != fast) runs.push_back({fast, 0});
    runs.back().second += end - at[s];
  }
  std::string md;
  char line[512];
  time_t now = time(nullptr);
  strftime(line, sizeof line, "%Y-%m-%d %H:%M:%S UTC", gmtime(&now));
  md += "# Memory modes inside one process (native/dev/cpu/memory_modes.cpp)\n\n- date: " + std::string(line) + "\n";
  snprintf(line, sizeof line,
           "- %d samples over %.0f s; each: 2 pinned threads read their own 256 MiB once (GB/s of both), then run "
           "2.4e8 vpdpbusd each on registers (G/s of both)\n\n",
           samples, at.back());
  md += line;
  md += "| mode | samples | share of the time | read GB/s (median) | compute G vpdpbusd/s (median) |\n|---|---:|---:|---:|---:|\n";
  for (int f = 0; f < 2; f++) {
    std::vector<double> r, c;
    for (int s = 0; s < samples; s++)
      if ((read[s] >= kFastGbs) == (f == 1)) r.push_back(read[s]), c.push_back(comp[s]);
    double t = 0, total = 0;
    for (auto& run : runs) total += run.second, t += run.first == (f == 1) ? run.second : 0;
    snprintf(line, sizeof line, "| %s | %zu | %.0f%% | %.1f | %.2f |\n", f ? "fast (>= 45 GB/s)" : "slow (< 45 GB/s)",
             r.size(), total > 0 ? 100 * t / total : 0, median(r), median(c));
    md += line;
  }
  md += "\nRuns of consecutive samples in one mode, in order (mode: seconds):\n\n";
  for (size_t i = 0; i < runs.size(); i++) {
    snprintf(line, sizeof line, "%s%s %.1f", i ? ", " : "", runs[i].first ? "fast" : "slow", runs[i].second);
    md += line;
  }
  md += "\n\nSeries (s: read GB/s / compute G/s):\n\n";
  for (int s = 0; s < samples; s++) {
    snprintf(line, sizeof line, "%s%.1f: %.1f / %.2f", s % 8 ? "; " : (s ? "\n" : ""), at[s], read[s], comp[s]);
    md += line;
  }
  md += "\n";
  fputs(md.c_str(), stdout);
  if (out) {
    FILE* f = fopen(out, "w");
    if (!f) return perror(out), 1;
    fputs(md.c_str(), f);
    fclose(f);
  }
}
