// Experiment: the screened head's candidate selection (screen_row's two passes over the vocabulary) on the scalar and
// AVX-512 paths, at the Qwen3-8B vocabulary (151,936 tokens), greedy (top_k 1) and top_k 20: per path the median and
// best time of both passes over `reps` rows, the coefficient arrays and logits warm or evicted by a 64 MiB read first
// (as a decode step's weight stream leaves them). The result of both paths is checked equal.
// Build: g++ -O3 -march=native -I native/src -I native/include native/dev/cpu/screen_select.cpp native/build/libq3core.a -lpthread -o /tmp/screen_select
// Usage: /tmp/screen_select [reps]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "cpu/head_screen.h"
#include "half.h"
#include "threadpool.h"

using namespace q3;

namespace {
double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }
}  // namespace

int main(int argc, char** argv) {
  const int reps = argc > 1 ? atoi(argv[1]) : 50, V = 151936, K = 64;
  ThreadPool pool(2);
  std::mt19937_64 rng(1);
  std::normal_distribution<float> nd(0.f, 0.05f);
  std::vector<uint16_t> w((size_t)V * K);
  for (auto& v : w) v = f32_to_f16(nd(rng));
  ScreenedHead h;
  build_screened_head(w.data(), V, K, h, pool);
  std::vector<float> logits(V);
  std::vector<uint32_t> always((V + 31) / 32, 0);
  std::vector<uint8_t> evict(64u << 20, 1);
  volatile unsigned sink = 0;
  for (bool cold : {false, true})
    for (int top_k : {1, 20}) {
      std::vector<double> t[2];
      bool same = true;
      for (int r = 0; r < reps; r++) {
        for (auto& v : logits) v = 20 * nd(rng);
        const head_screen::Selection s{&h, logits.data(), 1.0f, 0.5f, nullptr, always.data()};
        std::vector<int32_t> c[2];
        float tau[2];
        for (int path = 0; path < 2; path++) {
          if (cold) {
            unsigned acc = 0;
            for (size_t i = 0; i < evict.size(); i += 64) acc += evict[i]++;
            sink = sink + acc;
          }
          const double t0 = now();
          head_screen::TopK best(top_k);
          (path ? head_screen::lower_bounds_avx512 : head_screen::lower_bounds_scalar)(s, best);
          const float floor = best.top() - (top_k == 1 ? 0.f : 0.002f);
          (path ? head_screen::candidates_avx512 : head_screen::candidates_scalar)(s, floor, 4096, c[path]);
          t[path].push_back(now() - t0);
          tau[path] = best.top();
        }
        same = same && c[0] == c[1] && tau[0] == tau[1];
      }
      for (auto& v : t) std::sort(v.begin(), v.end());
      std::printf("%s, top_k %2d: scalar %.3f ms (best %.3f), avx512 %.3f ms (best %.3f), same results: %s\n",
                  cold ? "cold" : "warm", top_k, 1e3 * t[0][reps / 2], 1e3 * t[0][0], 1e3 * t[1][reps / 2],
                  1e3 * t[1][0], same ? "yes" : "NO");
    }
  return 0;
}
