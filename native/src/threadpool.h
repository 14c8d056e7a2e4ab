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

  // Runs fn(i) for every i in [0, n); task i goes to thread i % size(), so a caller that splits work into size()
  // contiguous parts gets a static, cache-friendly partition. Returns when every task is done.
  void parallel_for(int n, const std::function<void(int)>& fn);

 private:
  void worker_loop(int index);

  int n_threads_;
  std::vector<std::thread> threads_;
  std::mutex mu_;
  std::condition_variable cv_;
  const std::function<void(int)>* job_ = nullptr;
  int job_n_ = 0;
  uint64_t generation_ = 0;
  std::atomic<int> pending_{0};
  bool stop_ = false;
};

}  // namespace q3
