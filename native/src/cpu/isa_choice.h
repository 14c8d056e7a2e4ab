// Run-time choice among a kernel family's instruction-set paths (ordered from plain to widest), with an override that
// tests and benchmarks use to force each path the CPU has.
#pragma once
#include <atomic>
#include <cstring>

namespace q3 {

class IsaChoice {
 public:
  // names[i] is path i; has(i) says whether this CPU can run it (path 0 must always be runnable).
  IsaChoice(const char* const* names, int count, bool (*has)(int)) : names_(names), count_(count), has_(has) {}

  int current() const {
    const int f = forced_.load(std::memory_order_relaxed);
    return f >= 0 ? f : best();
  }
  const char* name() const { return names_[current()]; }

  // "auto" or a path name; false when the name is unknown or the CPU lacks that path.
  bool force(const char* name) {
    if (!name) return false;
    if (std::strcmp(name, "auto") == 0) {
      forced_.store(-1);
      return true;
    }
    for (int i = 0; i < count_; i++)
      if (std::strcmp(name, names_[i]) == 0 && has_(i)) {
        forced_.store(i);
        return true;
      }
    return false;
  }

 private:
  int best() const {
    int b = best_.load(std::memory_order_relaxed);
    if (b < 0) {
      b = 0;
      for (int i = count_ - 1; i > 0 && b == 0; i--)
        if (has_(i)) b = i;
      best_.store(b, std::memory_order_relaxed);
    }
    return b;
  }

  const char* const* names_;
  int count_;
  bool (*has_)(int);
  std::atomic<int> forced_{-1};
  mutable std::atomic<int> best_{-1};
};

}  // namespace q3
