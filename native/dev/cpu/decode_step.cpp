// Experiment: where a batch-1 decode step loses against its own matmuls, on the real checkpoint. Loads it once, then
// in rounds (each its own order) times the read bandwidth probe, the mainline forward pass for one decode token, the
// step's int4 matmuls alone back to back (36 x qkv, o, gate|up, down) in versions that differ in the M = 1 kernel's
// prefetching and in how the tiles are split between the threads, the fp16 lm_head alone (mainline and versions),
// and both read with no arithmetic (what the memory system gives reads of that shape). Every figure is a whole
// step's average (every call counts, as in decode), as a share of the same round's probe and paired with the
// int4 kernel before 61c8d10 in the same round. Results: bench/results/cpu-decode-step.md.
// Build: g++ -O3 -march=native -I native/src -I native/include native/dev/cpu/decode_step.cpp native/build/libq3core.a -lpthread -o /tmp/decode_step
// Usage: /tmp/decode_step MODEL_DIR [rounds] [steps per version and round]
#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "config.h"
#include "cpu/awq_cpu.h"
#include "cpu/awq_cpu_kernels.h"
#include "cpu/bandwidth_cpu.h"
#include "cpu/f16_matmul_cpu.h"
#include "cpu/forward_cpu.h"
#include "kv_cache.h"
#include "model.h"
#include "rope.h"
#include "safetensors.h"
#include "threadpool.h"
#include "step_inputs.h"

using namespace q3;
using namespace q3::awq_cpu;
using q3::dev::view_of;

namespace {

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

inline __m512i quad(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm512_set1_epi32(v);
}

constexpr int kPf = 6144;

// The mainline M = 1 kernel (awq_cpu_avx512.cpp tiles_one_row, VNNI), plus:
//   META: prefetch the T tiles' scale/zero records (the tail of each tile, read from the first block on) at the start
//   NEXT: once a stream's prefetch runs past its tile, it prefetches the start of the tile T further on (the next
//         group's tile in this stream) instead of the next tile, which another stream of this group already reads
template <int T, bool META, bool NEXT>
void one_row(const PackedView& w, const QuantizedRows& x, int t, float* y) {
  const __m512i m0 = _mm512_set1_epi32(0x0F0F0F0F), m1 = _mm512_set1_epi32((int)0xF0F0F0F0);
  const int B = x.block, nb = w.K / B, nv = B / 8;
  const uint8_t* wp[T];
  __m512 out[T];
  for (int i = 0; i < T; i++) wp[i] = w.tile(t + i), out[i] = _mm512_setzero_ps();
  if constexpr (META) {
    const size_t meta_bytes = (size_t)(w.K / w.group_size) * kMetaBytes;
    for (int i = 0; i < T; i++)
      for (size_t o = 0; o < meta_bytes; o += 64) _mm_prefetch((const char*)w.meta(t + i) + o, _MM_HINT_T0);
  }
  const size_t jump = (size_t)(T - 1) * w.tile_bytes;
  const uint8_t* tile_end = w.tile(t + 1) - kPf;  // past this, stream 0's prefetch leaves its tile
  for (int b = 0; b < nb; b++) {
    const int8_t* xl = x.lo + (size_t)b * B;
    const int8_t* xh = x.hi + (size_t)b * B;
    __m512i l0[T], l1[T], h0[T], h1[T];
    for (int i = 0; i < T; i++) l0[i] = l1[i] = h0[i] = h1[i] = _mm512_setzero_si512();
    const size_t extra = NEXT && wp[0] >= tile_end ? jump : 0;
    for (int j = 0; j < nv; j++, xl += 8, xh += 8) {
      const __m512i xl0 = quad(xl), xl1 = quad(xl + 4), xh0 = quad(xh), xh1 = quad(xh + 4);
      for (int i = 0; i < T; i++) {
        _mm_prefetch((const char*)wp[i] + kPf + extra, _MM_HINT_T0);
        const __m512i v = _mm512_loadu_si512(wp[i]);
        wp[i] += kWordBytes;
        const __m512i w0 = _mm512_and_si512(v, m0), w1 = _mm512_and_si512(v, m1);
        l0[i] = _mm512_dpbusd_epi32(l0[i], w0, xl0);
        l1[i] = _mm512_dpbusd_epi32(l1[i], w1, xl1);
        h0[i] = _mm512_dpbusd_epi32(h0[i], w0, xh0);
        h1[i] = _mm512_dpbusd_epi32(h1[i], w1, xh1);
      }
    }
    const size_t g = (size_t)(b * B / w.group_size) * kMetaBytes;
    for (int i = 0; i < T; i++) {
      const __m512i h = _mm512_add_epi32(h0[i], _mm512_srai_epi32(h1[i], 4));
      const __m512i acc = _mm512_add_epi32(_mm512_slli_epi32(h, 8), _mm512_add_epi32(l0[i], _mm512_srai_epi32(l1[i], 4)));
      const uint8_t* rec = w.meta(t + i) + g;
      const __m512 s = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i*)rec));
      const __m512i z = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i*)(rec + 32)));
      const __m512i d = _mm512_sub_epi32(acc, _mm512_mullo_epi32(z, _mm512_set1_epi32(x.sum[b])));
      out[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d), _mm512_mul_ps(s, _mm512_set1_ps(x.scale[b])), out[i]);
    }
  }
  for (int i = 0; i < T; i++) _mm512_storeu_ps(y + (size_t)(t + i) * kTile, out[i]);
}

// No arithmetic: the same T streams over the same tiles with the same prefetch, each word only added into an
// accumulator. What the memory system gives a read of this shape, the kernel's ceiling.
template <int T>
void read_only(const PackedView& w, const QuantizedRows&, int t, float* y) {
  const uint8_t* wp[T];
  __m512i acc[T];
  for (int i = 0; i < T; i++) wp[i] = w.tile(t + i), acc[i] = _mm512_setzero_si512();
  const int words = (int)(w.tile_bytes / kWordBytes);
  for (int j = 0; j < words; j++) {
    for (int i = 0; i < T; i++) {
      _mm_prefetch((const char*)wp[i] + kPf, _MM_HINT_T0);
      acc[i] = _mm512_add_epi32(acc[i], _mm512_loadu_si512(wp[i]));
      wp[i] += kWordBytes;
    }
  }
  for (int i = 0; i < T; i++) _mm512_storeu_ps(y + (size_t)(t + i) * kTile, _mm512_castsi512_ps(acc[i]));
}

// The fp16 lm_head at M = 1 (mainline: f16_matmul_cpu_avx512.cpp, 8 rows at a time, no software prefetch), here one
// 64-byte line of each of the 8 rows per turn, with a prefetch of the same line of the 8 rows DIST blocks on (0:
// none), into L1 (T0) or L2 (T1).
template <int DIST, int HINT>
void head_rows(const uint16_t* w, int K, const float* x, float* y, int n0, int n1) {
  constexpr int RW = 8;
  for (int n = n0; n < n1; n += RW) {
    __m512 acc[RW][2];
    for (int i = 0; i < RW; i++) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
    const uint16_t* base = w + (size_t)n * K;
    for (int k = 0; k < K; k += 32) {
      const __m512 x0 = _mm512_load_ps(x + k), x1 = _mm512_load_ps(x + k + 16);
#pragma GCC unroll 8
      for (int i = 0; i < RW; i++) {
        const uint16_t* p = base + (size_t)i * K + k;
        if (DIST > 0) _mm_prefetch((const char*)(p + (size_t)DIST * RW * K), (_mm_hint)HINT);
        acc[i][0] = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_load_si256((const __m256i*)p)), x0, acc[i][0]);
        acc[i][1] = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_load_si256((const __m256i*)(p + 16))), x1, acc[i][1]);
      }
    }
    for (int i = 0; i < RW; i++) y[n + i] = _mm512_reduce_add_ps(_mm512_add_ps(acc[i][0], acc[i][1]));
  }
}

using HeadKernel = void (*)(const uint16_t*, int, const float*, float*, int, int);

void head(const uint16_t* w, int N, int K, const float* x, float* y, HeadKernel k, ThreadPool& pool) {
  const int chunk = std::max(8, N / (8 * pool.size()) / 8 * 8), n_chunks = (N + chunk - 1) / chunk;
  pool.parallel_dynamic(n_chunks, [&](int c) { k(w, K, x, y, c * chunk, std::min(N, (c + 1) * chunk)); });
}

using Kernel = void (*)(const PackedView&, const QuantizedRows&, int, float*);
constexpr int kT = 4;

// How a matmul's groups of kT tiles go to the threads.
enum Split { kMainline, kGuided, kStatic };

void run_groups(const PackedView& w, const QuantizedRows& x, float* y, Kernel k, int g0, int g1) {
  for (int g = g0; g < g1; g++) k(w, x, g * kT, y);
}

void matmul(const PackedView& w, const QuantizedRows& x, float* y, Kernel k, Split split, ThreadPool& pool) {
  const int groups = w.n_tiles / kT, P = pool.size();  // the 8B shapes have n_tiles % 4 == 0
  if (split == kMainline) {  // awq_matmul_cpu: ~8 equal chunks per thread, claimed in turn
    const int chunk = std::max(1, groups / (8 * P)), n = (groups + chunk - 1) / chunk;
    pool.parallel_dynamic(n, [&](int c) { run_groups(w, x, y, k, c * chunk, std::min(groups, (c + 1) * chunk)); });
  } else if (split == kStatic) {  // one contiguous half per thread
    pool.parallel_for(P, [&](int p) { run_groups(w, x, y, k, groups * p / P, groups * (p + 1) / P); });
  } else {  // guided: each claim takes 1/(2P) of what is left, at least one group
    std::atomic<int> next{0};
    pool.parallel_for(P, [&](int) {
      for (;;) {
        int g0 = next.load(std::memory_order_relaxed), take;
        do {
          if (g0 >= groups) return;
          take = std::max(1, (groups - g0) / (2 * P));
        } while (!next.compare_exchange_weak(g0, g0 + take, std::memory_order_relaxed));
        run_groups(w, x, y, k, g0, g0 + take);
      }
    });
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: decode_step MODEL_DIR [rounds] [steps]\n");
    return 2;
  }
  const int rounds = argc > 2 ? atoi(argv[2]) : 12, steps = argc > 3 ? atoi(argv[3]) : 1;
  const dev::LoadedModel model(argv[1]);
  const Qwen3Config& cfg = model.cfg;
  const Qwen3Weights& w = model.w;
  const RopeTable rope = build_rope_table(cfg);
  ThreadPool pool(2);
  const int H = cfg.hidden_size, I = cfg.intermediate_size, V = cfg.vocab_size;
  dev::StepInputs in(H, I);
  const std::vector<float>& xh = in.xh;
  const std::vector<float>& xi = in.xi;
  const dev::Quantized &qh = in.qh, &qi = in.qi;
  std::vector<float>& y = in.y;
  float* xa = in.xa;
  std::vector<float> logits(V);

  // The forward pass: one decode token at position 80 of a sequence whose blocks are 0..5.
  KvPool kv(cfg.n_layers, cfg.n_kv_heads, cfg.head_dim, 16, 8);
  std::vector<int32_t> blocks(8);
  kv.alloc(8, blocks.data());
  CpuRunState run;
  const int32_t token = 1234;
  const q3_batch_item item{0, &token, 1, 80, blocks.data(), 8, 1, nullptr};
  const std::vector<int> rows{0};

  const double head_bytes = (double)V * H * 2;
  double int4_bytes = 0;
  for (const LayerWeights& L : w.layers)
    int4_bytes += (double)(L.qkv.bytes_read() + L.o.bytes_read() + L.gate_up.bytes_read() + L.down.bytes_read());
  // The lm_head read with no arithmetic: 8 rows (streams) at a time per thread, as the fp16 kernel reads them.
  auto head_read_only = [&] {
    const int chunk = 8 * 64;
    std::atomic<int> next{0};
    pool.parallel_for(pool.size(), [&](int) {
      for (int n0; (n0 = next.fetch_add(chunk)) < V;) {
        for (int n = n0; n < std::min(V, n0 + chunk); n += 8) {
          __m512i acc = _mm512_setzero_si512();
          for (int k = 0; k < H; k += 32) {
            for (int i = 0; i < 8; i++) {
              const uint16_t* row = w.lm_head + (size_t)(n + i) * H + k;
              _mm_prefetch((const char*)row + 768, _MM_HINT_T0);
              acc = _mm512_add_epi32(acc, _mm512_loadu_si512(row));
            }
          }
          _mm512_storeu_si512(logits.data() + n % (V - 16), acc);
        }
      }
    });
  };

  enum What { kInt4, kForward, kHead, kHeadReadOnly, kLibrary, kHeadVariant };
  struct Version {
    std::string name;
    Kernel k;
    Split split;
    What what = kInt4;
    HeadKernel hk = nullptr;
  };
  const std::vector<Version> versions = {
      {"forward pass (mainline)", nullptr, kMainline, kForward},
      {"lm_head (mainline)", nullptr, kMainline, kHead},
      {"lm_head read only", nullptr, kMainline, kHeadReadOnly},
      {"lm_head lines, no prefetch", nullptr, kMainline, kHeadVariant, head_rows<0, 0>},
      {"lm_head lines, next block T0", nullptr, kMainline, kHeadVariant, head_rows<1, _MM_HINT_T0>},
      {"lm_head lines, next block T1", nullptr, kMainline, kHeadVariant, head_rows<1, _MM_HINT_T1>},
      {"lm_head lines, 2 blocks on T1", nullptr, kMainline, kHeadVariant, head_rows<2, _MM_HINT_T1>},
      {"int4 read only: same tiles and split, no arithmetic", read_only<kT>, kMainline},
      {"int4 matmuls: kernel before 61c8d10", one_row<kT, false, false>, kMainline},
      {"int4 matmuls: + both prefetches (61c8d10)", one_row<kT, true, true>, kMainline},
      {"int4 matmuls: + meta prefetch only", one_row<kT, true, false>, kMainline},
      {"int4 matmuls: kernel before 61c8d10, guided split", one_row<kT, false, false>, kGuided},
      {"int4 matmuls: kernel before 61c8d10, static halves", one_row<kT, false, false>, kStatic},
      {"int4 matmuls: both prefetches, guided split", one_row<kT, true, true>, kGuided},
      {"int4 matmuls: the library's awq_matmul_cpu", nullptr, kMainline, kLibrary},
  };
  const int nv = (int)versions.size();
  // Each round: the probe, then one step of every version in a rotated order. A shared machine gives every version
  // some quiet steps; per version the median and the best step are reported, each against the same round's probe.
  std::vector<std::vector<double>> ratio(nv), gbs(nv);
  for (int r = 0; r < rounds; r++) {
    const double probe = measure_read_bandwidth_cpu(pool, 512u << 20, 2).best_gbs;
    std::printf("round %2d probe %5.1f GB/s:", r, probe);
    std::vector<double> round_gbs(nv);
    for (int vi = 0; vi < nv; vi++) {
      const int v = (vi + r) % nv;
      const Version& ver = versions[v];
      const double t0 = now();
      for (int s = 0; s < steps; s++) {
        if (ver.what == kForward) {
          forward_cpu(cfg, w, rope, kv, pool, run, &item, 1, rows, logits.data());
        } else if (ver.what == kHead) {
          f16_matmul_cpu(w.lm_head, V, H, xh.data(), 1, logits.data(), pool);
        } else if (ver.what == kHeadVariant) {
          head(w.lm_head, V, H, xa, logits.data(), ver.hk, pool);
        } else if (ver.what == kHeadReadOnly) {
          head_read_only();
        } else if (ver.what == kLibrary) {
          for (const LayerWeights& L : w.layers) {
            awq_matmul_cpu(L.qkv, xh.data(), 1, y.data(), pool);
            awq_matmul_cpu(L.o, xh.data(), 1, y.data(), pool);
            awq_matmul_cpu(L.gate_up, xh.data(), 1, y.data(), pool);
            awq_matmul_cpu(L.down, xi.data(), 1, y.data(), pool);
          }
        } else {
          for (const LayerWeights& L : w.layers) {
            matmul(view_of(L.qkv), qh.rows, y.data(), ver.k, ver.split, pool);
            matmul(view_of(L.o), qh.rows, y.data(), ver.k, ver.split, pool);
            matmul(view_of(L.gate_up), qh.rows, y.data(), ver.k, ver.split, pool);
            matmul(view_of(L.down), qi.rows, y.data(), ver.k, ver.split, pool);
          }
        }
      }
      const double bytes = ver.what == kForward                               ? int4_bytes + head_bytes
                           : ver.what == kInt4 || ver.what == kLibrary ? int4_bytes
                                                                       : head_bytes;
      const double g = bytes * steps / (now() - t0) / 1e9;
      gbs[v].push_back(g);
      ratio[v].push_back(g / probe);
      round_gbs[v] = g;
    }
    for (int v = 0; v < nv; v++) std::printf(" %5.1f", round_gbs[v]);
    std::printf("\n");
    std::fflush(stdout);
  }
  // Paired with the mainline int4 matmuls (version kBase) of the same round: the least noisy comparison here.
  const int kBase = 8;  // int4 matmuls: kernel before 61c8d10
  std::printf("\nversion: GB/s over a step (median, best), %% of the same round's probe (median, best), "
              "÷ '%s' in the same round (median, quartiles)\n", versions[kBase].name.c_str());
  std::vector<std::vector<double>> paired(nv);
  for (int v = 0; v < nv; v++)
    for (int r = 0; r < rounds; r++) paired[v].push_back(gbs[v][r] / gbs[kBase][r]);
  for (int v = 0; v < nv; v++) {
    std::sort(gbs[v].begin(), gbs[v].end());
    std::sort(ratio[v].begin(), ratio[v].end());
    std::sort(paired[v].begin(), paired[v].end());
    std::printf("%-48s %5.1f %5.1f GB/s  %5.1f%% %5.1f%%  %.3f (%.3f-%.3f)\n", versions[v].name.c_str(),
                gbs[v][rounds / 2], gbs[v][rounds - 1], 100 * ratio[v][rounds / 2], 100 * ratio[v][rounds - 1],
                paired[v][rounds / 2], paired[v][rounds / 4], paired[v][rounds * 3 / 4]);
  }
  return 0;
}
