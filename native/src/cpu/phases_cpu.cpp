// Per-phase timing of the CPU forward pass (see phases_cpu.h).
#include "phases_cpu.h"

#include <algorithm>
#include <cstdio>

#include "../threadpool.h"

namespace q3::phases {
namespace {

Totals g_totals;
thread_local Scope* t_current = nullptr;  // innermost open Scope of this thread
Phase t_phase = kCount;                     // phase of the calling thread's innermost Scope (read by Region)

// The open Region's per-thread record, written by each thread into its own slot only.
struct Slot {
  double first = 0, last = 0, busy = 0;  // s: first chunk start, last chunk end, time in chunks
};
Slot g_slots[kMaxThreads];

const char* const kNames[kCount] = {"embed + RoPE angles", "RMSNorm (2 per layer)", "qkv_proj",
                                    "q/k norm + RoPE + KV write", "attention", "o_proj", "residual adds",
                                    "gate|up_proj", "SwiGLU", "down_proj", "final norm + lm_head",
                                    "activation quantisation"};

}  // namespace

bool g_enabled = false;

const char* name(Phase p) { return p >= 0 && p < kCount ? kNames[p] : "?"; }
void enable(bool on) { g_enabled = on; }
void reset() { g_totals = Totals{}; }
const Totals& totals() { return g_totals; }

Scope::Scope(Phase p, double bytes) : phase_(p), on_(g_enabled) {
  if (!on_) return;
  parent_ = t_current;
  t_current = this;
  t_phase = p;
  g_totals.bytes[p] += bytes;
  g_totals.calls[p]++;
  t0_ = now();
}

void Scope::next(Phase p, double bytes) {
  if (!on_) return;
  const double t = now();
  g_totals.wall[phase_] += t - t0_ - nested_;
  if (parent_) parent_->nested_ += t - t0_;
  phase_ = t_phase = p;
  g_totals.bytes[p] += bytes;
  g_totals.calls[p]++;
  t0_ = t;
  nested_ = 0;
}

Scope::~Scope() {
  if (!on_) return;
  const double dt = now() - t0_;
  g_totals.wall[phase_] += dt - nested_;
  t_current = parent_;
  if (parent_) {
    parent_->nested_ += dt;
    t_phase = parent_->phase_;
  }
}

Region::Region() : on_(g_enabled && t_current) {
  if (!on_) return;
  for (Slot& s : g_slots) s = Slot{};
  t0_ = now();
}

Region::~Region() {
  if (!on_) return;
  const double t1 = now();
  const Phase p = t_phase;
  bool held = false;
  for (int i = 0; i < kMaxThreads; i++) {
    const Slot& s = g_slots[i];
    if (s.first == 0) continue;
    g_totals.threads = std::max(g_totals.threads, i + 1);
    g_totals.busy[p][i] += s.busy;
    g_totals.start_wait[p][i] += s.first - t0_;
    g_totals.end_wait[p][i] += t1 - s.last;
    if (t1 - s.last > kHeldUp) g_totals.held_wait[p] += t1 - s.last, held = true;
  }
  g_totals.held_calls[p] += held;
}

Chunk::~Chunk() {
  if (!on_) return;
  const double t1 = now();
  const int i = ThreadPool::this_thread_index();
  if (i < 0 || i >= kMaxThreads) return;
  Slot& s = g_slots[i];
  if (s.first == 0) s.first = t0_;
  s.last = t1;
  s.busy += t1 - t0_;
}

std::string report(int steps, double step_s) {
  const Totals& T = g_totals;
  const double n = std::max(steps, 1);
  std::string out;
  char line[512];
  out += "| phase | calls / step | ms / step | % of step | MB / step | GB/s (phase) | GB/s (kernels) |";
  for (int i = 0; i < T.threads; i++) {
    std::snprintf(line, sizeof line, " thread %d busy / fork wait / join wait (ms) |", i);
    out += line;
  }
  out += "\n|---|---:|---:|---:|---:|---:|---:|";
  for (int i = 0; i < T.threads; i++) out += "---|";
  out += "\n";
  double in_forward = 0, bytes = 0;
  for (int p = 0; p < kCount; p++) {
    if (T.calls[p] == 0) continue;
    in_forward += T.wall[p];
    bytes += T.bytes[p];
    const double ms = 1e3 * T.wall[p] / n;
    double busiest = 0;
    for (int i = 0; i < T.threads; i++) busiest = std::max(busiest, T.busy[p][i]);
    std::string gbs = "", kernel_gbs = "";
    if (T.bytes[p] > 0) {
      std::snprintf(line, sizeof line, "%.1f", T.bytes[p] / T.wall[p] / 1e9);
      gbs = line;
      if (busiest > 0) {
        std::snprintf(line, sizeof line, "%.1f", T.bytes[p] / busiest / 1e9);
        kernel_gbs = line;
      }
    }
    std::snprintf(line, sizeof line, "| %s | %.0f | %.2f | %.1f%% | %.1f | %s | %s |", name((Phase)p), T.calls[p] / n,
                  ms, 100 * T.wall[p] / n / step_s, T.bytes[p] / n / 1e6, gbs.c_str(), kernel_gbs.c_str());
    out += line;
    for (int i = 0; i < T.threads; i++) {
      if (T.busy[p][i] == 0 && T.start_wait[p][i] == 0) {
        out += " |";
        continue;
      }
      std::snprintf(line, sizeof line, " %.2f / %.3f / %.3f |", 1e3 * T.busy[p][i] / n, 1e3 * T.start_wait[p][i] / n,
                    1e3 * T.end_wait[p][i] / n);
      out += line;
    }
    out += "\n";
  }
  std::snprintf(line, sizeof line, "| forward pass (sum of the above) | | %.2f | %.1f%% | %.1f | %.1f | |\n",
                1e3 * in_forward / n, 100 * in_forward / n / step_s, bytes / n / 1e6, bytes / in_forward / 1e9);
  out += line;
  std::snprintf(line, sizeof line, "| outside the forward pass (sampling, engine) | | %.2f | %.1f%% | | | |\n",
                1e3 * (step_s - in_forward / n), 100 * (1 - in_forward / n / step_s));
  out += line;
  std::snprintf(line, sizeof line, "| whole step | | %.2f | 100%% | %.1f | %.1f | |\n", 1e3 * step_s, bytes / n / 1e6,
                bytes / n / step_s / 1e9);
  out += line;
  long held_calls = 0;
  double held_wait = 0;
  std::string where;
  for (int p = 0; p < kCount; p++) {
    if (T.held_calls[p] == 0) continue;
    held_calls += T.held_calls[p];
    held_wait += T.held_wait[p];
    std::snprintf(line, sizeof line, "%s%s %ld (%.1f ms)", where.empty() ? "" : ", ", name((Phase)p), T.held_calls[p],
                  1e3 * T.held_wait[p]);
    where += line;
  }
  std::snprintf(line, sizeof line,
                "\nJoin waits over %.0f ms (a thread held up outside the engine: another process on its core, or the "
                "host not running its vCPU): %ld calls in %d steps, %.2f ms per step (%.1f%% of the step)",
                1e3 * kHeldUp, held_calls, steps, 1e3 * held_wait / n, 100 * held_wait / n / step_s);
  return out + line + (where.empty() ? "" : "; " + where) + "\n";
}

std::string json(int steps, double step_s) {
  const Totals& T = g_totals;
  const double n = std::max(steps, 1);
  auto per_thread = [&](const double (&v)[kMaxThreads]) {
    std::string a = "[";
    for (int i = 0; i < T.threads; i++) a += (i ? ", " : "") + std::to_string(1e3 * v[i] / n);
    return a + "]";
  };
  std::string out = "{\"step_ms\": " + std::to_string(1e3 * step_s) + ", \"phases\": [";
  bool first = true;
  long held_calls = 0;
  double held_wait = 0;
  for (int p = 0; p < kCount; p++) {
    if (T.calls[p] == 0) continue;
    out += std::string(first ? "" : ", ") + "{\"phase\": \"" + name((Phase)p) +
           "\", \"calls_per_step\": " + std::to_string(T.calls[p] / n) +
           ", \"ms_per_step\": " + std::to_string(1e3 * T.wall[p] / n) +
           ", \"bytes_per_step\": " + std::to_string(T.bytes[p] / n) +
           ", \"busy_ms_per_step\": " + per_thread(T.busy[p]) +
           ", \"fork_wait_ms_per_step\": " + per_thread(T.start_wait[p]) +
           ", \"join_wait_ms_per_step\": " + per_thread(T.end_wait[p]) +
           ", \"held_up_calls_per_step\": " + std::to_string(T.held_calls[p] / n) +
           ", \"held_up_ms_per_step\": " + std::to_string(1e3 * T.held_wait[p] / n) + "}";
    first = false;
    held_calls += T.held_calls[p];
    held_wait += T.held_wait[p];
  }
  return out + "], \"held_up\": {\"threshold_ms\": " + std::to_string(1e3 * kHeldUp) +
         ", \"calls_per_step\": " + std::to_string(held_calls / n) +
         ", \"ms_per_step\": " + std::to_string(1e3 * held_wait / n) + "}}";
}

}  // namespace q3::phases
