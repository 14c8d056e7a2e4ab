// ThreadPool checks: every task of every job runs exactly once, on a thread of the pool, and its writes are visible
// when the call returns, over thousands of jobs of random sizes back to back (both kinds, pools of 2 and 3 threads
// on a 2-core machine, so workers are often late: a job then returns before they wake, and a late worker must not run
// tasks of a job that has returned). Prints "N passed, M failed".
#include <atomic>
#include <chrono>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "check.h"
#include "threadpool.h"

using q3::test::check;

namespace {

// Runs `jobs` jobs with 1..max_n tasks; each task counts itself in its own job's array. A stale worker running a
// task of a job that has returned would bump a count after it was checked, which the sums over all jobs catch.
void stress(int threads, int jobs, int max_n, bool slow_tasks, unsigned seed) {
  q3::ThreadPool pool(threads);
  std::mt19937 rng(seed);
  std::vector<std::vector<std::atomic<int>>> counts(jobs);
  long long expected = 0;
  int exact = 0;
  std::atomic<int> wrong_thread{0};
  for (int j = 0; j < jobs; j++) {
    const int n = 1 + (int)(rng() % max_n);
    counts[j] = std::vector<std::atomic<int>>(n);
    std::vector<int> plain(n, 0);  // written without atomics: visible after the call only if the join orders it
    auto& c = counts[j];
    auto task = [&](int i) {
      const int t = q3::ThreadPool::this_thread_index();
      if (t < 0 || t >= threads) wrong_thread++;
      c[i].fetch_add(1, std::memory_order_relaxed);
      plain[i] = i + 1;
      if (slow_tasks && i % 7 == 0) std::this_thread::sleep_for(std::chrono::microseconds(50));
    };
    if (rng() % 2) {
      pool.parallel_for(n, task);
    } else {
      pool.parallel_dynamic(n, task);
    }
    bool ok = true;
    for (int i = 0; i < n; i++) ok = ok && c[i].load() == 1 && plain[i] == i + 1;
    exact += ok;
    expected += n;
    if (j % 97 == 0) std::this_thread::sleep_for(std::chrono::microseconds(700));  // let workers fall asleep
  }
  // After every job has returned and a pause, no late worker has added anything anywhere.
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  long long total = 0;
  for (auto& c : counts)
    for (auto& v : c) total += v.load();
  const std::string what = std::to_string(threads) + " threads, " + std::to_string(jobs) + " jobs";
  check(exact == jobs, what + ": every task of every job ran exactly once before its call returned (" +
                           std::to_string(exact) + " jobs exact)");
  check(total == expected, what + ": no task ran again after its job returned");
  check(wrong_thread == 0, what + ": tasks ran on the pool's threads only");
}

}  // namespace

int main() {
  stress(2, 20000, 40, false, 1);
  stress(3, 20000, 40, false, 2);
  stress(2, 2000, 16, true, 3);
  stress(4, 2000, 16, true, 4);
  return q3::test::report();
}
