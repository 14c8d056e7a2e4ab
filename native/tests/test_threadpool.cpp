// ThreadPool checks: every task of every job runs exactly once, on a thread of the pool, and its writes are visible
// when the call returns, over thousands of jobs of random sizes back to back (both kinds, pools of 2 and 3 threads
// on a 2-core machine, so workers are often late: a job then returns before they wake, and a late worker must not run
// tasks of a job that has returned); a task that throws, on the caller's thread or a worker's, reaches the caller as
// the same exception and leaves the pool working. Prints "N passed, M failed".
#include <atomic>
#include <chrono>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "check.h"
#include "cpu/phases_cpu.h"
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

// Jobs where one task throws (task 0, which parallel_for's caller takes first; the last task, usually a worker's;
// or every task, so that any thread may be first): the call rethrows that exception after no thread holds the job,
// no task runs after the call returns, and the pool runs the next job whole.
void throwing_tasks(int threads, int rounds) {
  q3::ThreadPool pool(threads);
  int rethrown = 0, after_return = 0, next_whole = 0, cases = 0;
  for (int r = 0; r < rounds; r++) {
    for (int which = 0; which < 3; which++, cases++) {
      const int n = 4 + r % 29;
      std::atomic<int> ran{0};
      auto task = [&](int i) {
        ran.fetch_add(1, std::memory_order_relaxed);
        if (which == 2 || (which == 0 && i == 0) || (which == 1 && i == n - 1))
          throw std::runtime_error("task " + std::to_string(i) + " failed");
      };
      try {
        if (r % 2) {
          pool.parallel_for(n, task);
        } else {
          pool.parallel_dynamic(n, task);
        }
      } catch (const std::runtime_error& e) {
        rethrown += std::string(e.what()).rfind("task ", 0) == 0;
      }
      const int at_return = ran.load();
      std::this_thread::sleep_for(std::chrono::microseconds(200));
      after_return += ran.load() != at_return;
      std::vector<std::atomic<int>> counts(n);
      pool.parallel_dynamic(n, [&](int i) { counts[i].fetch_add(1); });
      bool whole = true;
      for (auto& c : counts) whole = whole && c.load() == 1;
      next_whole += whole;
    }
  }
  const std::string what = std::to_string(threads) + " threads, throwing tasks";
  check(rethrown == cases, what + ": every call rethrew its task's exception (" + std::to_string(rethrown) + " of " +
                               std::to_string(cases) + ")");
  check(after_return == 0, what + ": no task ran after its call returned");
  check(next_whole == cases, what + ": the next job ran every task exactly once");
}

}  // namespace

// tapered_pieces covers [0, n) once in order; pieces never grow, none is larger than the chunk, the tapered ones are
// multiples of the step, and the last is at most one step (what a thread that finishes first may wait for).
void tapered_pieces_cover() {
  bool ok = true;
  int cases = 0;
  for (int n : {1, 2, 3, 7, 16, 128, 192, 768, 18992})
    for (int threads : {1, 2, 3, 8})
      for (int step : {1, 2, 4})
        for (int chunk : {1, 5, 12, 48, 1187}) {
          const std::vector<int> b = q3::tapered_pieces(n, chunk, threads, step);
          bool good = b.size() >= 2 && b.front() == 0 && b.back() == n;
          for (size_t i = 1; good && i < b.size(); i++) {
            const int piece = b[i] - b[i - 1], before = i > 1 ? b[i - 1] - b[i - 2] : piece;
            const bool last = i + 1 == b.size();
            good = piece > 0 && piece <= std::max(chunk, step) && piece <= before &&
                   (last || piece == chunk || piece % step == 0);
          }
          good = good && (n < step || b.back() - b[b.size() - 2] <= std::max(step, std::min(chunk, n)));
          if (n >= 2 * threads * std::max(chunk, step) * 2 && good)  // enough work to taper: ends at one step
            good = b.back() - b[b.size() - 2] <= step;
          ok = ok && good;
          cases++;
        }
  check(ok, "tapered_pieces: every piece in order once, never growing, at most a chunk, tapering to one step (" +
                std::to_string(cases) + " cases)");
}

// --phases' count of held-up joins: a job of two tasks, one per thread (each waits until both have started, so
// neither thread can take both), in which the worker's task sleeps 5 ms and the caller's returns at once, is one call
// whose caller waited more than kHeldUp at the join; the same job with neither sleeping is none, and so is the
// sleeping one with phases off. Another process on a core can hold a thread up too, so each profiled case gets up to
// 5 tries and passes if one of them shows what it should.
void held_up_joins() {
  namespace ph = q3::phases;
  q3::ThreadPool pool(2);
  auto job = [&](int sleep_ms) {
    std::atomic<int> started{0};
    ph::Scope scope(ph::kGateUp);
    ph::Region region;
    pool.parallel_dynamic(2, [&](int) {
      ph::Chunk chunk;
      started.fetch_add(1);
      while (started.load() < 2) std::this_thread::yield();
      if (q3::ThreadPool::this_thread_index() == 1) std::this_thread::sleep_for(std::chrono::milliseconds(sleep_ms));
    });
  };
  ph::reset();
  job(5);  // phases off: nothing counted
  check(ph::totals().held_calls[ph::kGateUp] == 0 && ph::totals().calls[ph::kGateUp] == 0,
        "phases off: a held-up join is not counted");
  ph::enable(true);
  const ph::Totals& t = ph::totals();
  bool quiet = false, held = false;
  std::string seen;
  for (int i = 0; i < 5 && !quiet; i++) {
    ph::reset();
    job(0);
    quiet = t.calls[ph::kGateUp] == 1 && t.held_calls[ph::kGateUp] == 0 && t.held_wait[ph::kGateUp] == 0;
  }
  for (int i = 0; i < 5 && !held; i++) {
    ph::reset();
    job(5);
    held = t.calls[ph::kGateUp] == 1 && t.held_calls[ph::kGateUp] == 1 && t.held_wait[ph::kGateUp] >= 4e-3 &&
           t.held_wait[ph::kGateUp] <= t.end_wait[ph::kGateUp][0] + 1e-9 && t.held_calls[ph::kQkv] == 0;
    seen += " " + std::to_string(t.held_calls[ph::kGateUp]) + " call(s), " +
            std::to_string(1e3 * t.held_wait[ph::kGateUp]) + " ms;";
  }
  ph::enable(false);
  ph::reset();
  check(quiet, "phases: a join without a sleeping thread is not held up (5 tries)");
  check(held, "phases: the join behind a worker's 5 ms sleep is one held-up call, its wait the caller's join wait, "
              "in its own phase (tries:" + seen + ")");
}

int main() {
  tapered_pieces_cover();
  held_up_joins();
  throwing_tasks(2, 300);
  throwing_tasks(3, 300);
  stress(2, 20000, 40, false, 1);
  stress(3, 20000, 40, false, 2);
  stress(2, 2000, 16, true, 3);
  stress(4, 2000, 16, true, 4);
  return q3::test::report();
}
