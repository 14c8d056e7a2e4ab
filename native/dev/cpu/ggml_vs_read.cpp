// Experiment, for issue 18's bandwidth target: does llama.cpp's own decode kernel read its weights closer to a plain
// read of the same bytes than this project's does, in this host's two memory modes? The project's M = 1 int4 kernel
// (tiles_avx512vnni_amd, as awq_matmul_cpu runs it on AMD) and llama.cpp's Q4_0 matrix-vector product (ggml's CPU
// backend with its repacked Q4_0 weights, the path llama-bench's decode takes: activations quantised to Q8_0, then
// ggml_gemv_q4_0_8x8_q8_0) each run on the Qwen3-8B layer shapes, and each is followed in the same round by a read of
// its own bytes with the bandwidth probe's fastest loop (dev::read_range). Every figure is a kernel's GB/s ÷ the read
// of its bytes in the same round, split by the mode of the project's read (>= 45 GB/s: fast).
// Both engines' weights are on huge pages and rotate over 256 MiB per shape, so every call reads DRAM; both run on 2
// threads: the project on its ThreadPool (8 chunks per thread, as awq_matmul_cpu splits), ggml on its own (OpenMP in
// bench/llama-cpp/build.sh's build), each engine's read on the same threads as its kernel. Per shape the four
// versions (project kernel, its read, ggml, its read) run in an order rotated per round; a shape's time is the mean call
// over its copies, and "all shapes" is one pass over qkv + o + gate + up + down, as a decode layer reads them.
// Needs the llama.cpp build of bench/llama-cpp/build.sh (.bench/llama.cpp/build). Build:
// g++ -O3 -march=native -fopenmp -I native/src -I native/include -I .bench/llama.cpp/ggml/include \
//   native/dev/cpu/ggml_vs_read.cpp native/build/libq3core.a .bench/llama.cpp/build/ggml/src/libggml.a \
//   .bench/llama.cpp/build/ggml/src/libggml-cpu.a .bench/llama.cpp/build/ggml/src/libggml-base.a -lpthread \
//   -o /tmp/ggml_vs_read
// Usage: /tmp/ggml_vs_read rounds [results file]
#include <immintrin.h>
#include <omp.h>
#include <sys/mman.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "awq_inputs.h"
#include "cpu/awq_cpu.h"
#include "cpu/awq_cpu_kernels.h"
#include "cpu/bandwidth_cpu.h"
#include "ggml-alloc.h"
#include "ggml-backend.h"
#include "ggml-cpu.h"
#include "ggml.h"
#include "results_md.h"
#include "threadpool.h"

using namespace q3;

namespace {

struct Shape {
  const char* name;
  int K, N;
};
const Shape kShapes[] = {{"qkv", 4096, 6144}, {"o", 4096, 4096}, {"gate", 4096, 12288}, {"up", 4096, 12288},
                         {"down", 12288, 4096}};
constexpr size_t kShapes_n = sizeof kShapes / sizeof kShapes[0];
constexpr size_t kRotate = 256u << 20;  // bytes of copies per shape and engine

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

// ggml's CPU backend with llama.cpp's repacked Q4_0 weights: per shape, copies of one random Q4_0 matrix (K x N) in
// the CPU_REPACK buffer type, and one graph y = W x per copy.
struct Ggml {
  ggml_backend_t backend = nullptr;
  ggml_backend_buffer_type_t repack = nullptr;
  std::vector<ggml_context*> contexts;
  std::vector<ggml_backend_buffer_t> buffers;
  struct Copy {
    ggml_tensor* w;
    ggml_cgraph* graph;
  };
  std::vector<std::vector<Copy>> copies;  // per shape
  std::vector<size_t> bytes;              // per shape: bytes of one copy's weights as the kernel reads them

  Ggml() {
    backend = ggml_backend_cpu_init();
    ggml_backend_cpu_set_n_threads(backend, 2);
    ggml_backend_dev_t dev = ggml_backend_get_device(backend);
    auto extra = (ggml_backend_dev_get_extra_bufts_t)ggml_backend_reg_get_proc_address(
        ggml_backend_dev_backend_reg(dev), "ggml_backend_dev_get_extra_bufts");
    for (ggml_backend_buffer_type_t* b = extra ? extra(dev) : nullptr; b && *b; b++)
      if (std::strcmp(ggml_backend_buft_name(*b), "CPU_REPACK") == 0) repack = *b;
    if (!repack) std::fprintf(stderr, "ggml has no CPU_REPACK buffer type\n"), std::exit(1);
  }
  ~Ggml() {
    for (ggml_backend_buffer_t b : buffers) ggml_backend_buffer_free(b);
    for (ggml_context* c : contexts) ggml_free(c);
    ggml_backend_free(backend);
  }

  ggml_context* context(size_t tensors, bool graphs) {
    const size_t mem = ggml_tensor_overhead() * tensors + (graphs ? tensors * ggml_graph_overhead() : 0) + (1 << 16);
    ggml_context* c = ggml_init({mem, nullptr, true});
    contexts.push_back(c);
    return c;
  }

  void add_shape(const Shape& s, std::mt19937& rng) {
    const size_t row = ggml_row_size(GGML_TYPE_Q4_0, s.K), one = row * s.N;
    const size_t n = std::max<size_t>(1, (kRotate + one - 1) / one);
    ggml_context* wc = context(n, false);
    std::vector<ggml_tensor*> ws;
    for (size_t i = 0; i < n; i++) ws.push_back(ggml_new_tensor_2d(wc, GGML_TYPE_Q4_0, s.K, s.N));
    ggml_backend_buffer_t wb = ggml_backend_alloc_ctx_tensors_from_buft(wc, repack);
    buffers.push_back(wb);
    ggml_backend_buffer_set_usage(wb, GGML_BACKEND_BUFFER_USAGE_WEIGHTS);
    // Huge pages before the first touch, as the project's weights (the repacked copy is not file-backed).
    uint8_t* base = (uint8_t*)ggml_backend_buffer_get_base(wb);
    const size_t size = ggml_backend_buffer_get_size(wb);
    uint8_t* a = (uint8_t*)(((uintptr_t)base + (2u << 20) - 1) & ~(uintptr_t)((2u << 20) - 1));
    if (a < base + size) madvise(a, (size_t)(base + size - a) / (2u << 20) * (2u << 20), MADV_HUGEPAGE);
    // Random Q4_0 blocks: an fp16 scale in [0.002, 0.03) and 16 bytes of nibbles per 32 weights.
    std::vector<uint8_t> q(one);
    std::uniform_real_distribution<float> sc(0.002f, 0.03f);
    for (size_t b = 0; b < one; b += 18) {
      const ggml_fp16_t d = ggml_fp32_to_fp16(sc(rng));
      std::memcpy(&q[b], &d, 2);
      for (int j = 0; j < 16; j++) q[b + 2 + j] = (uint8_t)rng();
    }
    for (ggml_tensor* w : ws) ggml_backend_tensor_set(w, q.data(), 0, one);  // repacks
    // Activations and outputs in a plain CPU buffer, one graph per copy.
    ggml_context* gc = context(3 * n + 1, true);
    ggml_tensor* x = ggml_new_tensor_1d(gc, GGML_TYPE_F32, s.K);
    std::vector<Copy> cs;
    for (ggml_tensor* w : ws) {
      ggml_tensor* y = ggml_mul_mat(gc, w, x);
      ggml_cgraph* g = ggml_new_graph_custom(gc, 4, false);
      ggml_build_forward_expand(g, y);
      cs.push_back({w, g});
    }
    ggml_backend_buffer_t gb = ggml_backend_alloc_ctx_tensors(gc, backend);
    buffers.push_back(gb);
    std::normal_distribution<float> nd(0.f, 1.f);
    std::vector<float> xv(s.K);
    for (float& v : xv) v = nd(rng);
    ggml_backend_tensor_set(x, xv.data(), 0, xv.size() * sizeof(float));
    copies.push_back(cs);
    bytes.push_back(ggml_nbytes(ws[0]));
  }

  // y = W x for copy c of shape s; its first output (to check that the product ran).
  float run(size_t s, size_t c) {
    ggml_backend_graph_compute(backend, copies[s][c].graph);
    const ggml_tensor* y = ggml_graph_node(copies[s][c].graph, -1);
    return ((const float*)y->data)[0];
  }
};

// A read of the n bytes at p on `threads` threads of OpenMP (ggml's threads), each a contiguous half in 8 chunks
// claimed in turn, as dev::read_tiles splits on the project's pool.
void omp_read(const uint8_t* p, size_t n, std::vector<long long>& sink) {
  const size_t chunks = 16, chunk = (n / chunks) / 1024 * 1024;
#pragma omp parallel for num_threads(2) schedule(dynamic, 1)
  for (size_t c = 0; c < chunks; c++) {
    __m512i s[4];
    dev::read_range(p + c * chunk, chunk, s);
    sink[omp_get_thread_num()] +=
        _mm512_reduce_add_epi64(_mm512_add_epi64(_mm512_add_epi64(s[0], s[1]), _mm512_add_epi64(s[2], s[3])));
  }
}

std::string mm(const std::vector<double>& v, const char* f) {
  if (v.empty()) return "-";
  return dev::fmt(f, dev::median(v)) + " (" + dev::fmt(f, *std::min_element(v.begin(), v.end())) + "-" +
         dev::fmt(f, *std::max_element(v.begin(), v.end())) + ") [" + std::to_string(v.size()) + "]";
}

}  // namespace

int main(int argc, char** argv) {
  const int rounds = argc > 1 ? atoi(argv[1]) : 20;
  if (!awq_cpu_force_isa("avx512-vnni")) return std::printf("no AVX512-VNNI\n"), 1;
  std::mt19937 rng(3);
  std::vector<std::vector<AwqMatrixCpu>> awq;
  std::vector<dev::RandomRows> rows;
  Ggml gg;
  for (const Shape& s : kShapes) {
    awq.push_back(dev::rotated_copies(dev::random_packed(s.K, s.N, rng), kRotate));
    rows.emplace_back(1, s.K, rng);
    gg.add_shape(s, rng);
  }
  ThreadPool pool(2);
  std::vector<float> y(12288);
  std::vector<long long> sink(2);
  // The four versions; each returns the seconds of one pass over a shape's copies.
  enum { kProject, kProjectRead, kGgml, kGgmlRead, kVersions };
  const char* names[kVersions] = {"this project (tiles_avx512vnni_amd, AWQ int4 g128)", "read of the project's bytes",
                                  "llama.cpp (ggml CPU_REPACK Q4_0 x Q8_0)", "read of llama.cpp's bytes"};
  auto pass = [&](int v, size_t s) {
    double total = 0;
    const size_t n = v < kGgml ? awq[s].size() : gg.copies[s].size();
    for (size_t c = 0; c < n; c++) {
      double t0 = 0;
      if (v < kGgml) {
        const awq_cpu::PackedView w = dev::view_of(awq[s][c]);
        const int pairs = (w.n_tiles + 1) / 2, chunk = std::max(1, pairs / (8 * pool.size())),
                  n_chunks = (pairs + chunk - 1) / chunk;
        auto fn = v == kProject ? awq_cpu::tiles_avx512vnni_amd : dev::read_tiles;
        t0 = now();
        pool.parallel_dynamic(n_chunks, [&](int ci) {
          fn(w, rows[s].x, 2 * ci * chunk, std::min(w.n_tiles, 2 * (ci + 1) * chunk), y.data());
        });
      } else if (v == kGgml) {
        t0 = now();
        if (!std::isfinite(gg.run(s, c))) std::fprintf(stderr, "ggml output not finite\n"), std::exit(1);
      } else {
        const uint8_t* p = (const uint8_t*)gg.copies[s][c].w->data;
        t0 = now();
        omp_read(p, gg.bytes[s], sink);
      }
      total += now() - t0;
    }
    return total / n;
  };
  auto bytes_of = [&](int v, size_t s) {
    return v < kGgml ? (double)awq[s][0].bytes_read() : (double)gg.bytes[s];
  };
  std::printf("llama.cpp's weights: %s, %.0f MB per layer; the project's: %.0f MB per layer\n",
              ggml_backend_buft_name(gg.repack), [&] { double b = 0; for (size_t s = 0; s < kShapes_n; s++) b += bytes_of(kGgml, s); return b / 1e6; }(),
              [&] { double b = 0; for (size_t s = 0; s < kShapes_n; s++) b += bytes_of(kProject, s); return b / 1e6; }());
  // Warm both engines' threads and code once over every shape (the first pass after the setup runs far slower).
  for (int v = 0; v < kVersions; v++)
    for (size_t s = 0; s < kShapes_n; s++) pass(v, s);
  // gbs[v][shape or kShapes_n = all] per round
  std::vector<std::vector<std::vector<double>>> gbs(kVersions, std::vector<std::vector<double>>(kShapes_n + 1));
  int last = kProject;
  for (int r = 0; r < rounds; r++) {
    double sec_all[kVersions] = {}, bytes_all[kVersions] = {};
    for (size_t s = 0; s < kShapes_n; s++)
      for (int k = 0; k < kVersions; k++) {
        const int v = (k + r + (int)s) % kVersions;
        // Each engine's idle threads poll for a while (the project's 0.5 ms, OpenMP's longer) and would take a core
        // from the other engine: a pause whenever the engine changes.
        if ((v < kGgml) != (last < kGgml)) std::this_thread::sleep_for(std::chrono::milliseconds(10));
        last = v;
        const double sec = pass(v, s);
        gbs[v][s].push_back(bytes_of(v, s) / sec / 1e9);
        sec_all[v] += sec, bytes_all[v] += bytes_of(v, s);
      }
    std::printf("round %d:", r);
    for (int v = 0; v < kVersions; v++) {
      gbs[v][kShapes_n].push_back(bytes_all[v] / sec_all[v] / 1e9);
      std::printf(" %.1f", gbs[v][kShapes_n].back());
    }
    std::printf("\n");
    std::fflush(stdout);
  }
  // Ratios within a round, split by the mode of the project's read of all shapes.
  auto fast = [&](size_t r) { return gbs[kProjectRead][kShapes_n][r] >= 45; };
  auto ratio = [&](int a, int b, size_t s, int mode) {  // mode: 0 slow, 1 fast, 2 all
    std::vector<double> out;
    for (size_t r = 0; r < gbs[a][s].size(); r++)
      if (mode == 2 || fast(r) == (mode == 1)) out.push_back(gbs[a][s][r] / gbs[b][s][r]);
    return out;
  };
  auto gb = [&](int v, int mode) {
    std::vector<double> out;
    for (size_t r = 0; r < gbs[v][kShapes_n].size(); r++)
      if (mode == 2 || fast(r) == (mode == 1)) out.push_back(gbs[v][kShapes_n][r]);
    return out;
  };
  std::string md =
      "# Decode kernels ÷ a read of their own bytes: this project and llama.cpp (native/dev/cpu/ggml_vs_read.cpp)\n\n"
      "- command: `/tmp/ggml_vs_read " + std::to_string(rounds) + "` (build line in the source)\n- cpu: " +
      cpu_model_name() + ", 2 threads per engine\n" + dev::date_and_load_line() +
      "- llama.cpp: ggml from bench/llama-cpp/build.sh's build (native), Q4_0 weights in its CPU_REPACK buffer type\n"
      "- figures: median (min-max) [rounds]; modes by the read of the project's bytes (all shapes): < 45 GB/s slow, "
      ">= 45 GB/s fast\n\n"
      "| version | GB/s, slow | GB/s, fast |\n|---|---:|---:|\n";
  for (int v = 0; v < kVersions; v++)
    md += std::string("| ") + names[v] + " | " + mm(gb(v, 0), "%.1f") + " | " + mm(gb(v, 1), "%.1f") + " |\n";
  md += "\nEach kernel ÷ the read of its own bytes in the same round (all shapes: one pass over a layer's five matrices):\n\n"
        "| kernel | mode | all shapes |";
  for (const Shape& s : kShapes) md += std::string(" ") + s.name + " |";
  md += "\n|---|---|---:|";
  for (size_t s = 0; s < kShapes_n; s++) md += "---:|";
  md += "\n";
  for (int v : {kProject, kGgml})
    for (int mode : {0, 1, 2}) {
      md += std::string("| ") + names[v] + " | " + (mode == 0 ? "slow" : mode == 1 ? "fast" : "all") + " | " +
            mm(ratio(v, v + 1, kShapes_n, mode), "%.3f") + " |";
      for (size_t s = 0; s < kShapes_n; s++) md += " " + dev::fmt("%.3f", ratio(v, v + 1, s, mode).empty() ? NAN : dev::median(ratio(v, v + 1, s, mode))) + " |";
      md += "\n";
    }
  md += "\nThe two reads ÷ each other (llama.cpp's ÷ the project's), all shapes: slow " + mm(ratio(kGgmlRead, kProjectRead, kShapes_n, 0), "%.3f") +
        ", fast " + mm(ratio(kGgmlRead, kProjectRead, kShapes_n, 1), "%.3f") + "\n";
  std::fputs(md.c_str(), stdout);
  if (argc > 2)
    if (FILE* f = std::fopen(argv[2], "w")) std::fputs(md.c_str(), f), std::fclose(f);
  return 0;
}
