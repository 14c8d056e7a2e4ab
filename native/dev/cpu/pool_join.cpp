// Experiment: the thread pool's join under load. A decode-like step (150 jobs back to back, each streaming ~7 MB of
// a 1 GiB buffer in 16 chunks claimed with parallel_dynamic, a ~20 us serial stretch between jobs, as the norms and
// activation quantisation are) on the current pool and on the pool before the join change (its join waited for every
// worker to check in, even once the other threads had done all the tasks), in alternating rounds; optionally with a
// busy loop on one core beside it, as another process on this 2-core machine.
// Build (the old pool from git, in its own namespace):
//   mkdir -p /tmp/oldpool && git show 07f0014:native/src/threadpool.h | sed 's/namespace q3 {/namespace q3old {/' > /tmp/oldpool/threadpool_old.h
//   git show 07f0014:native/src/threadpool.cpp | sed 's/"threadpool.h"/"threadpool_old.h"/; s/^namespace q3 {/namespace q3old {/' > /tmp/oldpool/threadpool_old.cpp
//   g++ -O3 -march=native -I native/src -I /tmp/oldpool native/dev/cpu/pool_join.cpp /tmp/oldpool/threadpool_old.cpp native/src/threadpool.cpp -lpthread -o /tmp/pool_join
// Usage: /tmp/pool_join [rounds] [busy: 0|1]
#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#include "threadpool.h"
#include "threadpool_old.h"

namespace {

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

uint64_t stream(const uint8_t* p, size_t n) {
  __m512i a = _mm512_setzero_si512(), b = _mm512_setzero_si512();
  for (size_t i = 0; i < n; i += 128) {
    _mm_prefetch((const char*)p + i + 4096, _MM_HINT_T0);
    a = _mm512_add_epi64(a, _mm512_load_si512(p + i));
    b = _mm512_add_epi64(b, _mm512_load_si512(p + i + 64));
  }
  return (uint64_t)_mm512_reduce_add_epi64(_mm512_add_epi64(a, b));
}

template <typename Pool>
double step(Pool& pool, const uint8_t* buf, size_t bytes, std::vector<uint64_t>& sink) {
  constexpr int kJobs = 150, kChunks = 16;
  const size_t job_bytes = bytes / kJobs / (kChunks * 4096) * (kChunks * 4096), chunk = job_bytes / kChunks;
  const double t0 = now();
  for (int j = 0; j < kJobs; j++) {
    const uint8_t* base = buf + (size_t)j * job_bytes;
    pool.parallel_dynamic(kChunks, [&](int c) { sink[c] += stream(base + c * chunk, chunk); });
    for (double until = now() + 20e-6; now() < until;) {
    }
  }
  return now() - t0;
}

}  // namespace

int main(int argc, char** argv) {
  const int rounds = argc > 1 ? atoi(argv[1]) : 20;
  const bool busy = argc > 2 && atoi(argv[2]) != 0;
  const size_t bytes = 1u << 30;
  uint8_t* buf = (uint8_t*)std::aligned_alloc(2u << 20, bytes);
  std::memset(buf, 1, bytes);
  std::vector<uint64_t> sink(16);
  std::atomic<bool> stop{false};
  std::thread spinner;
  if (busy)
    spinner = std::thread([&] {
      while (!stop.load(std::memory_order_relaxed)) {
      }
    });
  q3::ThreadPool fresh(2);
  q3old::ThreadPool old(2);
  std::vector<double> t_new, t_old, ratio;
  for (int r = 0; r < rounds; r++) {
    double a, b;
    if (r % 2) {
      b = step(old, buf, bytes, sink), a = step(fresh, buf, bytes, sink);
    } else {
      a = step(fresh, buf, bytes, sink), b = step(old, buf, bytes, sink);
    }
    t_new.push_back(a), t_old.push_back(b), ratio.push_back(b / a);
    std::printf("round %2d: new %.1f ms, old %.1f ms, old/new %.3f\n", r, 1e3 * a, 1e3 * b, b / a);
    std::fflush(stdout);
  }
  stop = true;
  if (spinner.joinable()) spinner.join();
  for (auto* v : {&t_new, &t_old, &ratio}) std::sort(v->begin(), v->end());
  const int h = rounds / 2;
  std::printf("\n%s: step median new %.1f ms, old %.1f ms; old/new paired median %.3f (quartiles %.3f-%.3f)\n",
              busy ? "with a busy loop" : "no busy loop", 1e3 * t_new[h], 1e3 * t_old[h], ratio[h], ratio[rounds / 4],
              ratio[rounds * 3 / 4]);
  std::free(buf);
  return 0;
}
