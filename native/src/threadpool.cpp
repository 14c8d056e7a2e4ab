// Thread pool: workers spin briefly between jobs, since the forward pass issues many short jobs back to back, and
// sleep on a condition variable when no job comes. A job is done when its tasks are, not when every worker has
// checked in: on a machine with more runnable threads than cores, a worker may wake long after the others finished
// its share.
#include "threadpool.h"

#include <algorithm>
#include <chrono>
#include <exception>

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

// Waits until done() holds.
template <typename Done>
void wait_until(Done done) {
  for (int i = 0; !done(); i++) {
    if (i < kPollsBeforeYield) {
      Q3_CPU_RELAX();
    } else {
      std::this_thread::yield();
    }
  }
}

thread_local int t_index = 0;

}  // namespace

struct ThreadPool::Job {
  const std::function<void(int)>& fn;
  int n;
  bool strided;                    // parallel_for's shares, else parallel_dynamic's claims
  std::atomic<int> next{0};        // parallel_dynamic: next unclaimed task
  std::atomic<int> finished{0};    // tasks done
  std::vector<std::atomic<bool>>& share_taken;
  int P;
  // The first exception a task threw (written by the thread that set `failed`, before its count of finished tasks
  // is published); the caller rethrows it once the job is withdrawn. Tasks not started by then are skipped.
  std::atomic<bool> failed{false};
  std::exception_ptr error;

  // Thread `self` takes tasks until none is left unclaimed.
  void work(int self) {
    int count = 0;
    if (strided) {
      const int shares = n < P ? n : P;
      for (int k = 0; k < shares; k++) {
        const int s = (self + k) % P;  // its own share first
        if (s >= shares || share_taken[s].exchange(true, std::memory_order_relaxed)) continue;
        for (int i = s; i < n; i += P, count++) attempt(i);
      }
    } else {
      for (int i = next.fetch_add(1, std::memory_order_relaxed); i < n;
           i = next.fetch_add(1, std::memory_order_relaxed), count++)
        attempt(i);
    }
    if (count > 0) finished.fetch_add(count, std::memory_order_release);
  }

  // Runs task i unless an earlier task failed. A task's exception never leaves the pool's threads (on a worker it
  // would end the process; on the caller it would return while workers still hold the job): it is kept for run().
  void attempt(int i) {
    if (failed.load(std::memory_order_relaxed)) return;
    try {
      fn(i);
    } catch (...) {
      if (!failed.exchange(true)) error = std::current_exception();
    }
  }
};

int ThreadPool::this_thread_index() { return t_index; }

ThreadPool::ThreadPool(int n_threads) {
  if (n_threads <= 0) n_threads = (int)std::thread::hardware_concurrency();
  if (n_threads <= 0) n_threads = 1;
  n_threads_ = n_threads;
  share_taken_ = std::vector<std::atomic<bool>>(n_threads_);
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

void ThreadPool::run(Job& job) {
  job_.store(&job);      // seq_cst, as are the loads that pair with it
  generation_.fetch_add(1);  // either a worker about to sleep sees it, or we see it among the sleepers
  if (sleepers_.load() > 0) {
    std::lock_guard<std::mutex> lock(mu_);
    cv_.notify_all();
  }
  job.work(0);
  wait_until([&] { return job.finished.load(std::memory_order_acquire) == job.n; });
  // Withdraw the job, then wait out the workers that may have read job_ before: with seq_cst on both sides, a worker
  // that announces itself after this load of inside_ reads job_ after the store of null.
  job_.store(nullptr);
  wait_until([&] { return inside_.load() == 0; });
  if (job.error) std::rethrow_exception(job.error);
}

void ThreadPool::parallel_for(int n, const std::function<void(int)>& fn) {
  if (n <= 0) return;
  if (n_threads_ == 1 || n == 1) {
    for (int i = 0; i < n; i++) fn(i);
    return;
  }
  for (auto& t : share_taken_) t.store(false, std::memory_order_relaxed);  // published by run's store of job_
  Job job{fn, n, true, {}, {}, share_taken_, n_threads_, {}, {}};
  run(job);
}

void ThreadPool::parallel_dynamic(int n, const std::function<void(int)>& fn) {
  if (n <= 0) return;
  if (n_threads_ == 1 || n == 1) {
    for (int i = 0; i < n; i++) fn(i);
    return;
  }
  Job job{fn, n, false, {}, {}, share_taken_, n_threads_, {}, {}};
  run(job);
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
    inside_.fetch_add(1);  // seq_cst: see run()
    if (Job* job = job_.load()) job->work(index);  // null or a later job: that one's tasks are as good
    inside_.fetch_sub(1, std::memory_order_release);
  }
}

std::vector<int> tapered_pieces(int n, int chunk, int threads, int step) {
  step = std::max(1, step);
  chunk = std::max(step, chunk);
  std::vector<int> b{0};
  for (int at = 0; at < n;) {
    const int left = n - at;
    int piece = std::min(chunk, left / (2 * std::max(1, threads)) / step * step);
    piece = std::min(std::max(piece, step), left);
    b.push_back(at += piece);
  }
  return b;
}

}  // namespace q3
