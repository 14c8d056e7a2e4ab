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

  // Runs fn(i) for every i in [0, n), in size() strided shares (share s: i = s, s + size(), ...); thread s takes share
  // s, so a caller that splits work into size() contiguous parts gets a static, cache-friendly partition. A share
  // whose thread has not started on it when another thread is done with its own goes to that thread instead (another
  // process holds its core). Returns when every task is done.
  void parallel_for(int n, const std::function<void(int)>& fn);

  // Runs fn(i) for every i in [0, n), each thread taking the next unclaimed i (in increasing order) until none is
  // left: when another process holds one core for a while, the other threads take over its share instead of waiting.
  void parallel_dynamic(int n, const std::function<void(int)>& fn);

  // Both return as soon as every task is done: a worker that has not woken up by then is not waited for (it finds
  // the job gone when it does). Each task runs exactly once, on one thread. If a task throws, on any thread, the
  // tasks not yet started are skipped and the call rethrows the first exception once no thread holds the job.

 private:
  struct Job;
  void worker_loop(int index);
  void run(Job& job);

  int n_threads_;
  std::vector<std::thread> threads_;
  // Workers spin on generation_ for a short while after each job (the forward pass issues hundreds of short jobs
  // back to back, and waking a sleeping thread costs tens of microseconds), then sleep on cv_.
  std::mutex mu_;
  std::condition_variable cv_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> sleepers_{0};
  std::atomic<bool> stop_{false};
  // The job being run (on the caller's stack), null between jobs. A worker announces itself in inside_ before it
  // reads job_, and the caller, once every task is done, clears job_ and then waits for inside_ to drop to zero: no
  // worker can still be reading a job that has returned.
  std::atomic<Job*> job_{nullptr};
  std::atomic<int> inside_{0};
  std::vector<std::atomic<bool>> share_taken_;  // parallel_for: share s claimed (reset by the caller per job)
};

// Piece boundaries for parallel_dynamic over n units of work (0 = b[0] < b[1] < ... < b.back() = n): pieces of
// `chunk` units while at least 2 x threads x chunk are left, then a (2 x threads)-th of what is left, rounded down to a
// multiple of `step` but at least `step` (the last piece may be shorter). The large pieces keep the claims few; the
// tapered end leaves a thread that finishes first at most a small piece to wait for, where equal pieces leave it up
// to a whole one (the join wait of a memory-bound matmul, which streams nothing meanwhile).
std::vector<int> tapered_pieces(int n, int chunk, int threads, int step);

}  // namespace q3
