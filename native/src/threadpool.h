// A fixed pool of worker threads for data-parallel loops; the calling thread works too.
#pragma once
#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace q3 {

class ThreadPool {
 public:
  explicit ThreadPool(int n_threads);  // n_threads <= 0: all online cores
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }

  // The calling thread's index in its pool: 1..size()-1 for a worker, 0 for any other thread (the caller, which
  // works as thread 0).
  static int this_thread_index();

  // Runs fn(i) for every i in [0, n); task i goes to thread i % size(), so a caller that splits work into size()
  // contiguous parts gets a static, cache-friendly partition. Returns when every task is done.
  void parallel_for(int n, const std::function<void(int)>& fn);

  // Runs fn(i) for every i in [0, n), each thread taking the next unclaimed i (in increasing order) until none is
  // left: when another process holds one core for a while, the other threads take over its share instead of waiting.
  // Every task is claimed, the first ones too, so a worker that wakes late finds the tasks done rather than one kept
  // for it. (It still has to wake before this returns: the join counts every worker.)
  void parallel_dynamic(int n, const std::function<void(int)>& fn);

 private:
  void worker_loop(int index);
  void run(int n, const std::function<void(int)>& fn);

  int n_threads_;
  std::vector<std::thread> threads_;
  // Workers spin on generation_ for a short while after each job (the forward pass issues hundreds of short jobs
  // back to back, and waking a sleeping thread costs tens of microseconds), then sleep on cv_.
  std::mutex mu_;
  std::condition_variable cv_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> sleepers_{0};
  std::atomic<bool> stop_{false};
  const std::function<void(int)>* job_ = nullptr;  // written before generation_ is bumped
  int job_n_ = 0;
  std::atomic<int> next_{0};                        // parallel_dynamic: next unclaimed task
  std::atomic<int> pending_{0};                     // workers still running the current job
};

}  // namespace q3
