// Experiment: how a batch-1 decode step's matmuls split their weights between the threads, on the real checkpoint.
// Each round times one step's matmuls (36 x qkv, o, gate|up, down with the library's M = 1 int4 kernel, then the
// fp16 lm_head) once per split, the order alternating, and records for every call how long each thread sat idle
// between its last chunk and the end of the call (the join wait that `qwen3 bench --phases` reports).
//   equal:  ~8 equal chunks per thread, claimed in turn (awq_matmul_cpu / f16_matmul_cpu before this experiment)
//   ranges: chunks of the same size while much is left, then each 1 / (2 threads) of what is left, down to 1 tile
//           pair (int4) / 8 rows (fp16) at the tail, so the threads run out of work within a small chunk of each
//           other instead of one waiting out the other's last large chunk at the join
// Build: g++ -O3 -march=native -I native/src -I native/include native/dev/cpu/matmul_split.cpp native/build/libq3core.a -lpthread -o /tmp/matmul_split
// Usage: /tmp/matmul_split MODEL_DIR [rounds]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "cpu/awq_cpu.h"
#include "cpu/awq_cpu_kernels.h"
#include "cpu/f16_matmul_cpu.h"
#include "threadpool.h"
#include "step_inputs.h"

using namespace q3;
using namespace q3::awq_cpu;
using q3::dev::view_of;

namespace {

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

// The `ranges` split of [0, n): range r is [starts[r], starts[r + 1]).
std::vector<int> range_starts(int n, int grain, int P) {
  const int largest = std::max(grain, n / (8 * P));
  std::vector<int> starts;
  for (int at = 0; at < n;) {
    starts.push_back(at);
    at += std::min(n - at, std::max(grain, std::min(largest, (n - at) / (2 * P))));
  }
  starts.push_back(n);
  return starts;
}

// Runs fn over [0, n) with the split `ranges` (else equal chunks) and adds each thread's idle tail to idle_s.
void split(ThreadPool& pool, bool ranges, int n, int grain, const std::function<void(int, int)>& fn, double& idle_s) {
  std::vector<double> last(pool.size(), 0.0);
  auto timed = [&](int a, int b) {
    fn(a, b);
    last[ThreadPool::this_thread_index()] = now();
  };
  if (ranges) {
    const std::vector<int> s = range_starts(n, grain, pool.size());
    pool.parallel_dynamic((int)s.size() - 1, [&](int r) { timed(s[r], s[r + 1]); });
  } else {
    const int chunk = std::max(grain, n / (8 * pool.size()) / grain * grain), n_chunks = (n + chunk - 1) / chunk;
    pool.parallel_dynamic(n_chunks, [&](int c) { timed(c * chunk, std::min(n, (c + 1) * chunk)); });
  }
  const double end = now();
  for (double t : last)
    if (t > 0) idle_s += end - t;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: matmul_split MODEL_DIR [rounds]\n");
    return 2;
  }
  const int rounds = argc > 2 ? atoi(argv[2]) : 20;
  const dev::LoadedModel model(argv[1]);
  const Qwen3Weights& w = model.w;
  ThreadPool pool(2);
  const int H = model.cfg.hidden_size, V = model.cfg.vocab_size;
  dev::StepInputs in(H, model.cfg.intermediate_size);
  std::vector<float> logits(V);
  double bytes = (double)V * H * 2;
  for (const LayerWeights& L : w.layers)
    bytes += (double)(L.qkv.bytes_read() + L.o.bytes_read() + L.gate_up.bytes_read() + L.down.bytes_read());

  const char* names[2] = {"equal chunks (library)", "ranges, shrinking tail"};
  std::vector<double> ms[2], idle[2], paired;
  for (int r = 0; r < rounds; r++) {
    double round_ms[2];
    for (int i = 0; i < 2; i++) {
      const int v = (i + r) % 2;
      double idle_s = 0;
      const double t0 = now();
      for (const LayerWeights& L : w.layers) {
        for (const AwqMatrixCpu* m : {&L.qkv, &L.o, &L.gate_up, &L.down}) {
          const PackedView view = view_of(*m);
          const QuantizedRows& x = m == &L.down ? in.qi.rows : in.qh.rows;
          split(pool, v == 1, (view.n_tiles + 1) / 2, 1, [&](int a, int b) {
            tiles_avx512vnni(view, x, 2 * a, std::min(view.n_tiles, 2 * b), in.y.data());
          }, idle_s);
        }
      }
      split(pool, v == 1, V, 8, [&](int a, int b) { f16_cpu::rows_avx512(w.lm_head, V, H, in.xa, 1, logits.data(), a, b); },
            idle_s);
      round_ms[v] = 1e3 * (now() - t0);
      ms[v].push_back(round_ms[v]);
      idle[v].push_back(1e3 * idle_s / pool.size());
    }
    paired.push_back(round_ms[1] / round_ms[0]);
    std::printf("round %2d: %7.1f %7.1f ms (%.1f %.1f GB/s), idle tail per thread %.2f %.2f ms\n", r, round_ms[0],
                round_ms[1], bytes / round_ms[0] / 1e6, bytes / round_ms[1] / 1e6, idle[0].back(), idle[1].back());
    std::fflush(stdout);
  }
  std::printf("\nsplit: step's matmuls ms (median, best), idle tail per thread ms per step (median), and "
              "ranges / equal in the same round (median, quartiles)\n");
  std::sort(paired.begin(), paired.end());
  for (int v = 0; v < 2; v++) {
    std::sort(ms[v].begin(), ms[v].end());
    std::sort(idle[v].begin(), idle[v].end());
    std::printf("%-24s %7.1f %7.1f ms  idle %.2f ms\n", names[v], ms[v][rounds / 2], ms[v][0], idle[v][rounds / 2]);
  }
  std::printf("ranges / equal: %.3f (%.3f-%.3f)\n", paired[rounds / 2], paired[rounds / 4],
              paired[rounds * 3 / 4]);
  return 0;
}
