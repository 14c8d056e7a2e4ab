// int4 AWQ matmul on the CPU: repacking of the published layout, activation quantisation, run-time ISA dispatch
// and the double-precision reference. The SIMD tile kernels live in awq_cpu_avx512.cpp / awq_cpu_avx2.cpp.
#include "awq_cpu.h"

#include <cpuid.h>

#include <algorithm>
#include <atomic>
#include <cfloat>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>

#include "../awq_format.h"
#include "isa_choice.h"
#include "../half.h"
#include "awq_cpu_kernels.h"
#include "bandwidth_cpu.h"
#include "phases_cpu.h"

namespace q3 {
namespace {

using namespace awq_cpu;

enum Isa { kScalar = 0, kAvx2 = 1, kAvx512bw = 2, kAvx512vnni = 3, kAmx = 4 };
const char* const kIsaNames[] = {"scalar", "avx2", "avx512bw", "avx512-vnni", "amx"};

bool cpu_has(Isa isa) {
  switch (isa) {
    case kScalar: return true;
    case kAvx2:
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
    case kAvx512bw:
      return cpu_has(kAvx2) && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
    case kAvx512vnni: return cpu_has(kAvx512bw) && __builtin_cpu_supports("avx512vnni");
    case kAmx: {
      // The OS must also agree to save the tile registers; asked once.
      static const bool granted = cpu_has(kAvx512vnni) && __builtin_cpu_supports("amx-tile") &&
                                  __builtin_cpu_supports("amx-int8") && amx_request_permission();
      return granted;
    }
    default: return false;
  }
}

IsaChoice g_isa(kIsaNames, 5, [](int i) { return cpu_has((Isa)i); });

Isa current_isa() { return (Isa)g_isa.current(); }

// The packed data starts at the first 64-byte boundary after an 8-byte header holding its offset, so a copied
// AwqMatrixCpu (whose buffer may sit at another alignment) still finds it; kernels use unaligned loads.
constexpr size_t kHeader = 8;

const uint8_t* packed_data(const AwqMatrixCpu& w) {
  uint64_t off;
  std::memcpy(&off, w.storage.data(), sizeof off);
  if (off < kHeader || off >= kHeader + 64) throw std::runtime_error("awq_matmul_cpu: matrix is not from awq_pack_cpu");
  return w.storage.data() + off;
}

size_t tile_bytes_for(int K, int G) {
  size_t b = (size_t)K / 8 * kWordBytes + (size_t)(K / G) * kMetaBytes;
  return (b + 63) / 64 * 64;
}

// Largest multiple of 8 that divides G and keeps the int32 accumulators exact (see awq_cpu_kernels.h).
int block_for(int G) {
  if (G <= kMaxBlock) return G;
  for (int b = kMaxBlock; b >= 8; b -= 8)
    if (G % b == 0) return b;
  return 8;
}

void check_shape(int K, int G, int N, const char* who) {
  if (K <= 0 || G <= 0) throw std::runtime_error(std::string(who) + ": K and group_size must be positive");
  if (G % 8 != 0)
    throw std::runtime_error(std::string(who) + ": group_size " + std::to_string(G) + " is not a multiple of 8");
  if (K % G != 0)
    throw std::runtime_error(std::string(who) + ": K " + std::to_string(K) + " is not a multiple of group_size " +
                             std::to_string(G));
  if (N <= 0 || N % 8 != 0)
    throw std::runtime_error(std::string(who) + ": N " + std::to_string(N) + " is not a positive multiple of 8");
}

}  // namespace

AwqMatrixCpu awq_pack_cpu(int K, int group_size, const std::vector<AwqSource>& parts) {
  if (parts.empty()) throw std::runtime_error("awq_pack_cpu: no parts");
  long long total_n = 0;
  for (const AwqSource& p : parts) {
    check_shape(K, group_size, p.N, "awq_pack_cpu");
    if (!p.qweight || !p.qzeros || !p.scales) throw std::runtime_error("awq_pack_cpu: null tensor pointer");
    total_n += p.N;
  }
  if (total_n > (1 << 30)) throw std::runtime_error("awq_pack_cpu: N too large");
  const int N = (int)total_n, G = group_size, n_groups = K / G;
  const int n_tiles = (N + kTile - 1) / kTile;
  const size_t tile_bytes = tile_bytes_for(K, G);

  AwqMatrixCpu w;
  w.K = K;
  w.N = N;
  w.group_size = G;
  const size_t payload = (size_t)n_tiles * tile_bytes;
  w.storage.reserve(payload + kHeader + 64);
  uint64_t off = kHeader;
  while (((uintptr_t)w.storage.data() + off) % 64 != 0) off++;
  w.storage.assign(off + payload, 0);  // zero padding: padded columns get q = z = 0 and scale 0
  std::memcpy(w.storage.data(), &off, sizeof off);
  uint8_t* data = w.storage.data() + off;

  // Row-major over the source, 8 rows (one k block) at a time, so reads are sequential; each 64-byte destination word
  // is filled by 16 consecutive columns. With huge pages (the storage's allocator) the tile stride does not thrash
  // the TLB.
  int n_base = 0;
  for (const AwqSource& p : parts) {
    const int pc = p.N / 8;
    for (int kb = 0; kb < K / 8; kb++) {
      const int32_t* rows = p.qweight + (size_t)kb * 8 * pc;
      for (int c = 0; c < pc; c++) {
        uint32_t src[8];
        for (int i = 0; i < 8; i++) src[i] = (uint32_t)rows[(size_t)i * pc + c];
        for (int j = 0; j < 8; j++) {
          const int shift = 4 * awq::kReverseOrder[j], gn = n_base + 8 * c + j;
          uint32_t v = 0;
          for (int i = 0; i < 8; i++) v |= ((src[i] >> shift) & 0xF) << kNibbleShift[i];
          std::memcpy(data + (size_t)(gn / kTile) * tile_bytes + (size_t)kb * kWordBytes + (gn % kTile) * 4, &v, 4);
        }
      }
    }
    for (int g = 0; g < n_groups; g++) {
      for (int n = 0; n < p.N; n++) {
        const int gn = n_base + n;
        uint8_t* rec = data + (size_t)(gn / kTile) * tile_bytes + (size_t)K / 8 * kWordBytes + (size_t)g * kMetaBytes;
        std::memcpy(rec + (gn % kTile) * 2, &p.scales[(size_t)g * p.N + n], 2);
        rec[32 + gn % kTile] = (uint8_t)awq::unpack(p.qzeros + (size_t)g * pc, n);
      }
    }
    n_base += p.N;
  }
  return w;
}

namespace {

// x (M, K) quantised per block for the kernels, into buffers owned by the calling thread (the forward pass calls
// this hundreds of times per token), laid out as AMX tiles too when `amx`.
QuantizedRows quantize_activations(const float* x, int M, int K, int block, Isa isa, bool amx, ThreadPool& pool) {
  const int nb = K / block;
  thread_local std::vector<int16_t> xq;
  thread_local std::vector<int8_t> xhi, xlo;
  thread_local std::vector<float> xs;
  thread_local std::vector<int32_t> xsum;
  // Grown, never shrunk: the widths alternate (4096, 12288 for the 8B model) and each regrowth would zero the new part.
  auto at_least = [](auto& v, size_t n) {
    if (v.size() < n) v.resize(n);
  };
  at_least(xq, (size_t)M * K);
  at_least(xhi, (size_t)M * K);
  at_least(xlo, (size_t)M * K);
  at_least(xs, (size_t)M * nb);
  at_least(xsum, (size_t)M * nb);
  // Plain pointers: inside a pool task the thread_local names would mean the worker's own (empty) buffers.
  int16_t* q = xq.data();
  int8_t *hi = xhi.data(), *lo = xlo.data();
  float* qscale = xs.data();
  int32_t* qsum = xsum.data();
  auto quantize = [=](int m0, int m1) {
    const size_t at = (size_t)m0 * K, bt = (size_t)m0 * nb;
    return (isa >= kAvx512bw ? quantize_rows_avx512 : quantize_rows_scalar)(x + at, m1 - m0, K, block, q + at, hi + at,
                                                                            lo + at, qscale + bt, qsum + bt);
  };
  bool finite = true;
  if (M < 4 * pool.size()) {
    finite = quantize(0, M);
  } else {  // prefill: worth splitting across the pool
    const int P = pool.size();
    std::atomic<bool> ok{true};
    pool.parallel_for(P, [&](int i) {
      if (!quantize((int)((long long)M * i / P), (int)((long long)M * (i + 1) / P))) ok.store(false);
    });
    finite = ok.load();
  }
  if (!finite) throw std::runtime_error("awq_matmul_cpu: activation is NaN or infinite");

  QuantizedRows rows{M, K, block, q, hi, lo, qscale, qsum};
  if (amx) {
    thread_local std::vector<int8_t> tiles;
    tiles.resize(amx_tiles_bytes(M, K));
    amx_tile_activations(rows, tiles.data());
    rows.tiles = tiles.data();
  }
  return rows;
}

}  // namespace

void awq_matmul_cpu(const AwqMatrixCpu& w, const float* x, int M, float* y, ThreadPool& pool) {
  if (M <= 0) return;
  if (w.storage.size() < kHeader + 64) throw std::runtime_error("awq_matmul_cpu: matrix is not packed");
  check_shape(w.K, w.group_size, w.N, "awq_matmul_cpu");
  const int K = w.K;
  const Isa isa = current_isa();
  // Two rows go to the VNNI kernel (rows_vnni), more to the tile unit.
  const bool amx = isa == kAmx && M > 2;
  const int block = block_for(w.group_size);
  // Decode rows (M <= 2): each thread quantises x for itself when it takes its first piece, so no thread waits while
  // one quantises for all. Done once by the caller before the fork, the quantisation was a stretch in which the other
  // thread and the memory bus idled: 12-13 us per matmul in the EPYC's fast memory mode (1.8 ms of a 78 ms step),
  // 4 us in the slow one, against 1.2-3.7 us for the same call alone. Per thread, each writes its own buffers and
  // reads them alone, in parallel (bench/results/cpu-zen4-between-matmuls.md).
  const bool per_thread = M <= 2;
  QuantizedRows rows{};
  if (!per_thread) {
    phases::Scope scope(phases::kQuantize);
    rows = quantize_activations(x, M, K, block, isa, amx, pool);
  }
  PackedView view{K, w.N, w.group_size, (w.N + kTile - 1) / kTile, tile_bytes_for(K, w.group_size), packed_data(w)};
  if (view.data + (size_t)view.n_tiles * view.tile_bytes > w.storage.data() + w.storage.size())
    throw std::runtime_error("awq_matmul_cpu: packed storage is smaller than its K, N and group_size need");
  void (*kernel)(const PackedView&, const QuantizedRows&, int, int, float*) = tiles_scalar;
  void (*const vnni)(const PackedView&, const QuantizedRows&, int, int, float*) =
      amd_prefetch() ? tiles_avx512vnni_amd : tiles_avx512vnni;
  switch (isa) {
    case kAmx: kernel = amx ? tiles_amx : vnni; break;
    case kAvx512vnni: kernel = vnni; break;
    case kAvx512bw: kernel = tiles_avx512bw; break;
    case kAvx2: kernel = tiles_avx2; break;
    default: kernel = tiles_scalar; break;
  }
  // Chunks of whole tile pairs (the kernels work on two tiles at once), taken by the threads in turn: each chunk is
  // one contiguous stretch of the packed matrix (hundreds of KB for the 8B shapes), and a thread that another
  // process delays leaves its remaining chunks to the others. About 8 chunks per thread. Decode rows (M <= 2, where
  // the matmul only streams) taper the last quarter down to 4 tiles (the M = 1 kernel's streams), so the thread that
  // finishes first waits for at most a few tiles of the other's instead of up to a whole chunk.
  const int pairs = (view.n_tiles + 1) / 2;
  const int chunk = std::max(1, pairs / (8 * pool.size()));
  std::vector<int> pieces;
  if (M <= 2) {
    pieces = tapered_pieces(pairs, chunk, pool.size(), 2);
  } else {
    for (int p = 0; p < pairs; p += chunk) pieces.push_back(p);
    pieces.push_back(pairs);
  }
  static std::atomic<uint64_t> calls{0};
  const uint64_t call = per_thread ? calls.fetch_add(1, std::memory_order_relaxed) + 1 : 0;
  phases::Region region;
  pool.parallel_dynamic((int)pieces.size() - 1, [&](int c) {
    phases::Chunk timed;
    const int t0 = 2 * pieces[c], t1 = std::min(view.n_tiles, 2 * pieces[c + 1]);
    if (!per_thread) return kernel(view, rows, t0, t1, y);
    // this thread's quantised x for this call: made at its first piece, in its own thread_local buffers
    thread_local uint64_t quantised_for = 0;
    thread_local QuantizedRows mine{};
    if (quantised_for != call) {
      mine = quantize_activations(x, M, K, block, isa, false, pool);
      quantised_for = call;
    }
    kernel(view, mine, t0, t1, y);
  });
}

void awq_matmul_ref(const AwqSource& src, int K, int group_size, const float* x, int M, float* y) {
  check_shape(K, group_size, src.N, "awq_matmul_ref");
  const int N = src.N, pc = N / 8;
  std::vector<double> acc((size_t)M * N, 0.0), wrow(N);
  for (int k = 0; k < K; k++) {
    const int g = k / group_size;
    for (int n = 0; n < N; n++) {
      int q = awq::unpack(src.qweight + (size_t)k * pc, n);
      int z = awq::unpack(src.qzeros + (size_t)g * pc, n);
      wrow[n] = (double)(q - z) * (double)f16_to_f32(src.scales[(size_t)g * N + n]);
    }
    for (int m = 0; m < M; m++) {
      const double xv = x[(size_t)m * K + k];
      double* a = acc.data() + (size_t)m * N;
      for (int n = 0; n < N; n++) a[n] += xv * wrow[n];
    }
  }
  for (size_t i = 0; i < acc.size(); i++) y[i] = (float)acc[i];
}

namespace awq_cpu {

// Symmetric int16 quantisation per block: scale = max|x| / kActMax, so the rounding error is <= 1.6e-5 of the block's
// largest activation; q is also written as two signed bytes, q = 256 hi + lo. It may run on a pool thread, so a
// non-finite activation is reported by the return value, not thrown.
bool quantize_rows_scalar(const float* x, int M, int K, int block, int16_t* q, int8_t* hi, int8_t* lo, float* scale,
                          int32_t* sum) {
  int nb = K / block;
  for (int m = 0; m < M; m++) {
    for (int b = 0; b < nb; b++) {
      const size_t at = (size_t)m * K + (size_t)b * block;
      const float* xs = x + at;
      float amax = 0.f;
      bool finite = true;
      for (int i = 0; i < block; i++) {
        const float a = std::fabs(xs[i]);
        amax = std::max(amax, a);
        finite &= a <= FLT_MAX;  // false for NaN too, which std::max would skip
      }
      if (!finite) return false;
      int32_t s = 0;
      const float inv = amax == 0.f ? 0.f : (float)kActMax / amax;
      for (int i = 0; i < block; i++) {
        int v = (int)std::lrintf(xs[i] * inv);
        v = std::min(kActMax, std::max(-kActMax, v));
        const int l = ((v + 128) & 255) - 128;
        q[at + i] = (int16_t)v;
        lo[at + i] = (int8_t)l;
        hi[at + i] = (int8_t)((v - l) / 256);
        s += v;
      }
      scale[(size_t)m * nb + b] = amax / (float)kActMax;
      sum[(size_t)m * nb + b] = s;
    }
  }
  return true;
}

// The portable path and the definition the SIMD kernels must agree with: exact int32 dot products per block, one
// float fold per block.
void tiles_scalar(const PackedView& w, const QuantizedRows& x, int t0, int t1, float* y) {
  const int K = w.K, G = w.group_size, B = x.block, nb = K / B;
  for (int t = t0; t < t1; t++) {
    const uint8_t* tile = w.tile(t);
    const uint8_t* meta = w.meta(t);
    const int lanes = std::min(kTile, w.N - t * kTile);
    for (int m = 0; m < x.M; m++) {
      const int16_t* xq = x.q + (size_t)m * K;
      float out[kTile] = {};
      for (int b = 0; b < nb; b++) {
        int32_t acc[kTile] = {};
        for (int kb = b * B / 8; kb < (b + 1) * B / 8; kb++) {
          const uint8_t* word = tile + (size_t)kb * kWordBytes;
          const int16_t* xk = xq + kb * 8;
          for (int j = 0; j < kTile; j++) {
            uint32_t v;
            std::memcpy(&v, word + 4 * j, 4);
            int32_t a = 0;
            for (int i = 0; i < 8; i++) a += (int32_t)((v >> kNibbleShift[i]) & 0xF) * xk[i];
            acc[j] += a;
          }
        }
        const uint8_t* rec = meta + (size_t)(b * B / G) * kMetaBytes;
        const float xs = x.scale[(size_t)m * nb + b];
        const int32_t xsum = x.sum[(size_t)m * nb + b];
        for (int j = 0; j < kTile; j++) {
          uint16_t s;
          std::memcpy(&s, rec + 2 * j, 2);
          out[j] += (f16_to_f32(s) * xs) * (float)(acc[j] - (int32_t)rec[32 + j] * xsum);
        }
      }
      for (int j = 0; j < lanes; j++) y[(size_t)m * w.N + t * kTile + j] = out[j];
    }
  }
}

namespace {

// The x86 CPU family (CPUID leaf 1: the base family, plus the extended one when the base is 15; AMD Zen 4 is 25,
// Zen 5 is 26), 0 if CPUID cannot tell.
int cpu_family() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
  const int base = (int)((a >> 8) & 0xF);
  return base == 0xF ? base + (int)((a >> 20) & 0xFF) : base;
}

std::atomic<int> g_forced_streams{0};  // force_merged_streams

}  // namespace

// Read once: the environment is the A/B switch for benchmarks (qwen3 bench, bench_gemv_cpu) without a flag.
bool amd_prefetch() {
  static const bool amd = [] {
    const char* e = std::getenv("Q3_AWQ_PREFETCH");
    if (e && std::strcmp(e, "intel") == 0) return false;
    if (e && std::strcmp(e, "amd") == 0) return true;
    return (bool)__builtin_cpu_is("amd");
  }();
  return amd;
}

int merged_streams() {
  if (const int f = g_forced_streams.load(std::memory_order_relaxed)) return f;
  static const int streams = [] {
    const char* e = std::getenv("Q3_AWQ_STREAMS");
    if (e && (std::strcmp(e, "4") == 0 || std::strcmp(e, "8") == 0)) return std::atoi(e);
    return cpu_family() >= 26 ? 4 : 8;
  }();
  return streams;
}

void force_merged_streams(int streams) { g_forced_streams.store(streams == 4 || streams == 8 ? streams : 0); }

}  // namespace awq_cpu

const char* awq_cpu_isa() { return g_isa.name(); }

bool awq_cpu_force_isa(const char* name) { return g_isa.force(name); }

}  // namespace q3
