// Optional timing of the CPU forward pass by phase (`qwen3 bench --phases`): where a decode step's time goes (each
// matmul kind, attention, the small ops between them, the thread pool's fork/join waits), and how evenly the threads
// share each parallel matmul. Off by default, and then every hook is one test of a global flag.
#pragma once
#include <chrono>
#include <cstddef>
#include <string>
#include <vector>

namespace q3::phases {

// What the forward pass does, in its order. kQuantize is the matmuls' activation quantisation, kept apart from
// their own rows so those show the streaming part alone.
enum Phase {
  kEmbed,       // embedding rows and each token's RoPE angles
  kNorm,        // the two RMSNorms per layer
  kQkv,         // q|k|v matmul
  kQkRopeKv,    // per-head q/k norm, RoPE, KV cache write
  kAttention,   // GQA attention over the cache
  kO,           // o_proj matmul
  kResidual,    // the two residual adds per layer
  kGateUp,      // gate|up matmul
  kSwiglu,      // SwiGLU
  kDown,        // down_proj matmul
  kLmHead,      // final norm and lm_head matmul
  kQuantize,    // int4 matmuls: activation quantisation (not counted in kQkv .. kDown)
  kCount
};
const char* name(Phase p);

constexpr int kMaxThreads = 64;

// Totals per phase since the last reset. For a parallel matmul: `wall` is the calling thread's time for the whole
// call; per thread, `busy` is time inside its kernel chunks, `start_wait` the time from the fork to its first chunk,
// `end_wait` the time from its last chunk to the join's return.
struct Totals {
  double wall[kCount] = {};                      // s
  double bytes[kCount] = {};                     // weight bytes streamed
  long calls[kCount] = {};
  double busy[kCount][kMaxThreads] = {};         // s
  double start_wait[kCount][kMaxThreads] = {};   // s
  double end_wait[kCount][kMaxThreads] = {};     // s
  // Parallel calls in which a thread waited more than kHeldUp at the join, and those waits: one thread held up
  // outside the engine (another process on its core, or the host not running its vCPU), while the other had
  // finished every piece it could take.
  long held_calls[kCount] = {};
  double held_wait[kCount] = {};                 // s
  int threads = 1;                               // most threads seen in one parallel region
};
constexpr double kHeldUp = 1e-3;  // s: far above a matmul's largest last piece (~0.15 ms for the 8B shapes)

extern bool g_enabled;
inline bool enabled() { return g_enabled; }
void enable(bool on);
void reset();
const Totals& totals();

inline double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Times the enclosing block as phase p (calling thread), excluding nested Scopes, which count as their own phase.
// `bytes`: weight bytes the phase streams, for its GB/s.
class Scope {
 public:
  explicit Scope(Phase p, double bytes = 0);
  ~Scope();
  // Ends this phase and starts p in the same Scope (a forward pass reads as one Scope moving through its steps).
  void next(Phase p, double bytes = 0);
  Scope(const Scope&) = delete;
  Scope& operator=(const Scope&) = delete;

 private:
  Phase phase_;
  double t0_ = 0, nested_ = 0;
  Scope* parent_ = nullptr;
  bool on_;
};

// Brackets one parallel call (pool.parallel_for / parallel_dynamic) inside a Scope, on the calling thread; each
// thread's work inside it goes in a Chunk. At the end, each thread's busy time and waits go to the Scope's phase.
class Region {
 public:
  Region();
  ~Region();
  Region(const Region&) = delete;
  Region& operator=(const Region&) = delete;

 private:
  double t0_ = 0;
  bool on_;
};

// One piece of work of one thread inside a Region (thread index from ThreadPool::this_thread_index()).
class Chunk {
 public:
  Chunk() : on_(g_enabled) {
    if (on_) t0_ = now();
  }
  ~Chunk();
  Chunk(const Chunk&) = delete;
  Chunk& operator=(const Chunk&) = delete;

 private:
  double t0_ = 0;
  bool on_;
};

// The totals as a markdown table: per phase ms per step, share of the step, MB and GB/s for the matmuls, thread
// busy share and fork/join waits, then a line for the join waits over kHeldUp. `steps` divides every total;
// `step_s` is the measured time of one whole step (the rest is shown as "outside the forward pass").
std::string report(int steps, double step_s);
// The same per phase as a JSON object: {"step_ms", "phases": [{"phase", "calls_per_step", "ms_per_step",
// "bytes_per_step", "busy_ms_per_step": [per thread], "fork_wait_ms_per_step": [...], "join_wait_ms_per_step": [...],
// "held_up_calls_per_step", "held_up_ms_per_step"}], "held_up": {"threshold_ms", "calls_per_step", "ms_per_step"}}.
std::string json(int steps, double step_s);

}  // namespace q3::phases
