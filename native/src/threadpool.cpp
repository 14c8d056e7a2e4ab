// Thread pool: workers spin briefly between jobs, since the forward pass issues many short jobs back to back, and
// sleep on a condition variable when no job comes.
#include "threadpool.h"

#include <chrono>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define Q3_CPU_RELAX() _mm_pause()
#else
#define Q3_CPU_RELAX() std::this_thread::yield()
#endif

namespace q3 {
namespace {

// How long an idle worker polls for the next job before it sleeps: longer than the serial stretches between the jobs
// of one forward pass (norms, activation quantisation: tens of microseconds), short enough not to burn a core
// between requests.
constexpr std::chrono::microseconds kSpin{500};
// Polls by a waiting thread before it starts yielding its core at each poll: on a machine with more runnable threads
// than cores, the thread being waited for may need this core to finish.
constexpr int kPollsBeforeYield = 2000;

// Waits until pending reaches zero.
void wait_for(const std::atomic<int>& pending) {
  for (int i = 0; pending.load(std::memory_order_acquire) != 0; i++) {
    if (i < kPollsBeforeYield) {
      Q3_CPU_RELAX();
    } else {
      std::this_thread::yield();
    }
  }
}

thread_local int t_index = 0;

}  // namespace

int ThreadPool::this_thread_index() { return t_index; }

ThreadPool::ThreadPool(int n_threads) {
  if (n_threads <= 0) n_threads = (int)std::thread::hardware_concurrency();
  if (n_threads <= 0) n_threads = 1;
  n_threads_ = n_threads;
  for (int i = 1; i < n_threads_; i++) threads_.emplace_back([this, i] { worker_loop(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_.store(true);
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
}

void ThreadPool::run(int n, const std::function<void(int)>& fn) {
  job_ = &fn;
  job_n_ = n;
  pending_.store(n_threads_ - 1);
  generation_.fetch_add(1);  // seq_cst: either a worker about to sleep sees it, or we see it among the sleepers
  if (sleepers_.load() > 0) {
    std::lock_guard<std::mutex> lock(mu_);
    cv_.notify_all();
  }
}

void ThreadPool::parallel_for(int n, const std::function<void(int)>& fn) {
  if (n <= 0) return;
  if (n_threads_ == 1 || n == 1) {
    for (int i = 0; i < n; i++) fn(i);
    return;
  }
  const std::function<void(int)> strided = [&](int index) {
    for (int i = index; i < n; i += n_threads_) fn(i);
  };
  run(n, strided);
  strided(0);
  wait_for(pending_);
}

void ThreadPool::parallel_dynamic(int n, const std::function<void(int)>& fn) {
  if (n <= 0) return;
  if (n_threads_ == 1 || n == 1) {
    for (int i = 0; i < n; i++) fn(i);
    return;
  }
  next_.store(0);
  const std::function<void(int)> claim = [&](int) {
    for (int i = next_.fetch_add(1, std::memory_order_relaxed); i < n; i = next_.fetch_add(1, std::memory_order_relaxed))
      fn(i);
  };
  run(n, claim);
  claim(0);
  wait_for(pending_);
}

void ThreadPool::worker_loop(int index) {
  t_index = index;
  uint64_t seen = 0;
  for (;;) {
    uint64_t g = generation_.load(std::memory_order_acquire);
    int polls = 0;
    for (auto until = std::chrono::steady_clock::now() + kSpin; g == seen && !stop_.load(std::memory_order_relaxed);) {
      for (int i = 0; i < 64 && g == seen; i++, polls++) {
        if (polls < kPollsBeforeYield) {
          Q3_CPU_RELAX();
        } else {
          std::this_thread::yield();
        }
        g = generation_.load(std::memory_order_acquire);
      }
      if (g == seen && std::chrono::steady_clock::now() > until) {
        std::unique_lock<std::mutex> lock(mu_);
        sleepers_.fetch_add(1);
        cv_.wait(lock, [&] { return stop_.load() || generation_.load() != seen; });
        sleepers_.fetch_sub(1);
        g = generation_.load();
      }
    }
    if (stop_.load()) return;
    seen = g;
    if (index < job_n_) (*job_)(index);
    pending_.fetch_sub(1, std::memory_order_acq_rel);
  }
}

}  // namespace q3
