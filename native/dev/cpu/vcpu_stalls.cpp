// Experiment: does this machine run every vCPU all the time? One thread per vCPU (pinned) reads the clock in a loop
// and records every gap between two reads longer than 20 ms: time the thread did not run although it was runnable and
// alone on its vCPU, so the host did not run the vCPU (the guest's own load is nothing: check `top`). Loads: one
// vCPU busy, both busy, and both busy with a sleep after every millisecond of spinning (duty cycles below 100%), in
// alternating rounds. Session 34 found the decode step's rare long join waits (`qwen3 bench --phases`, "join waits
// over 1 ms") to be such gaps: on the 2-vCPU benchmark host, ~100 ms stalls of one vCPU while both are busy, none
// with one busy or both at <= 77% (bench/results/cpu-vcpu-stalls.md).
// Build: g++ -O2 -I native/dev/cpu native/dev/cpu/vcpu_stalls.cpp -lpthread -o /tmp/vcpu_stalls
// Usage: /tmp/vcpu_stalls [seconds per load and round, default 10] [rounds, default 2] [results file]
#include <pthread.h>
#include <sched.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "results_md.h"

namespace {

double now() {
  timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

constexpr double kStall = 20e-3;  // s: far above any scheduler tick or interrupt in the guest

struct Load {
  std::string name;
  unsigned cpus;  // bit c: a thread on vCPU c
  int sleep_us;   // after every millisecond of spinning; 0: spin throughout
};

struct Seen {
  int stalls = 0;
  double lost = 0, longest = 0;  // s
};

// Runs `load` for `seconds`: per vCPU of the load, the stalls it saw.
std::vector<Seen> run(const Load& load, double seconds) {
  std::vector<Seen> seen(2);
  std::vector<std::thread> threads;
  const double start = now();
  for (int c = 0; c < 2; c++) {
    if (!(load.cpus >> c & 1)) continue;
    threads.emplace_back([&, c] {
      cpu_set_t set;
      CPU_ZERO(&set);
      CPU_SET(c, &set);
      pthread_setaffinity_np(pthread_self(), sizeof set, &set);
      double last = now(), tick = last;
      while (last - start < seconds) {
        const double t = now();
        if (t - last > kStall) {
          seen[c].stalls++;
          seen[c].lost += t - last;
          if (t - last > seen[c].longest) seen[c].longest = t - last;
        }
        last = t;
        if (load.sleep_us > 0 && t - tick > 1e-3) usleep(load.sleep_us), last = tick = now();
      }
    });
  }
  for (auto& t : threads) t.join();
  return seen;
}

}  // namespace

int main(int argc, char** argv) {
  const double seconds = argc > 1 ? std::atof(argv[1]) : 10;
  const int rounds = argc > 2 ? std::atoi(argv[2]) : 2;
  const char* out = argc > 3 ? argv[3] : nullptr;
  if (std::thread::hardware_concurrency() < 2) return std::fprintf(stderr, "needs 2 vCPUs\n"), 1;
  const std::vector<Load> loads = {{"vCPU 0 busy", 1, 0},
                                   {"vCPU 1 busy", 2, 0},
                                   {"both busy", 3, 0},
                                   {"both, 100 us sleep per ms (91%)", 3, 100},
                                   {"both, 300 us sleep per ms (77%)", 3, 300},
                                   {"both, 1 ms sleep per ms (50%)", 3, 1000}};
  std::vector<std::vector<Seen>> total(loads.size(), std::vector<Seen>(2));
  const std::string load_before = q3::dev::date_and_load_line();
  for (int r = 0; r < rounds; r++) {
    for (size_t i = 0; i < loads.size(); i++) {
      const size_t l = r % 2 ? loads.size() - 1 - i : i;  // alternate the order, so no load always runs first
      const auto seen = run(loads[l], seconds);
      for (int c = 0; c < 2; c++) {
        total[l][c].stalls += seen[c].stalls;
        total[l][c].lost += seen[c].lost;
        if (seen[c].longest > total[l][c].longest) total[l][c].longest = seen[c].longest;
      }
      std::fprintf(stderr, "round %d %-34s stalls %d / %d\n", r + 1, loads[l].name.c_str(), seen[0].stalls,
                   seen[1].stalls);
    }
  }
  std::string md =
      "| load | vCPU | stalls > 20 ms | time lost | share of its run | longest |\n|---|---|---:|---:|---:|---:|\n";
  for (size_t l = 0; l < loads.size(); l++)
    for (int c = 0; c < 2; c++) {
      if (!(loads[l].cpus >> c & 1)) continue;
      const Seen& s = total[l][c];
      md += "| " + loads[l].name + " | " + std::to_string(c) + " | " + std::to_string(s.stalls) + " | " +
            q3::dev::fmt("%.0f ms", 1e3 * s.lost) + " | " + q3::dev::fmt("%.1f%%", 100 * s.lost / (seconds * rounds)) +
            " | " + q3::dev::fmt("%.1f ms", 1e3 * s.longest) + " |\n";
    }
  std::printf("%s", md.c_str());
  if (out) {
    FILE* f = std::fopen(out, "w");
    if (!f) return std::fprintf(stderr, "cannot write %s\n", out), 1;
    std::fprintf(f, "# vCPU stalls under load (native/dev/cpu/vcpu_stalls.cpp)\n\n%s- %d rounds of %.0f s per load, "
                 "loads in alternating order\n\n%s", load_before.c_str(), rounds, seconds, md.c_str());
    std::fclose(f);
  }
  return 0;
}
