// Proves the CPU matmul kernels: every int4 AWQ path this CPU has (forced one by one) against the double-precision
// reference on random data, odd shapes and concatenated parts; the fp16 matmul against a plain loop; and the AWQ
// nibble order of awq_format.h (round trip, the spec's packed constant, a matrix whose columns are all distinct).
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <initializer_list>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "awq_format.h"
#include "check.h"
#include "cpu/awq_cpu.h"
#include "cpu/awq_cpu_kernels.h"
#include "cpu/f16_matmul_cpu.h"
#include "half.h"
#include "threadpool.h"

using namespace q3;

namespace {

using test::check;

double norm_err(const std::vector<float>& y, const std::vector<float>& ref) {
  double num = 0, den = 0;
  for (size_t i = 0; i < y.size(); i++) {
    double d = (double)y[i] - ref[i];
    num += d * d;
    den += (double)ref[i] * ref[i];
  }
  if (den == 0) return num == 0 ? 0 : INFINITY;
  return std::sqrt(num / den);
}

// One AutoAWQ linear in the published layout, owning its tensors.
struct AwqLinear {
  int K, G, N;
  std::vector<int32_t> qweight, qzeros;  // (K, N/8), (K/G, N/8)
  std::vector<uint16_t> scales;          // (K/G, N)
  AwqSource source() const { return AwqSource{qweight.data(), qzeros.data(), scales.data(), N}; }
};

AwqLinear random_linear(int K, int G, int N, std::mt19937& rng) {
  AwqLinear l{K, G, N, std::vector<int32_t>((size_t)K * N / 8), std::vector<int32_t>((size_t)K / G * N / 8),
              std::vector<uint16_t>((size_t)K / G * N)};
  for (auto& v : l.qweight) v = (int32_t)rng();
  for (auto& v : l.qzeros) v = (int32_t)rng();
  std::uniform_real_distribution<float> s(0.002f, 0.03f);
  for (auto& v : l.scales) v = f32_to_f16(s(rng));
  return l;
}

std::vector<float> random_x(int M, int K, std::mt19937& rng) {
  std::normal_distribution<float> d(0.f, 1.f);
  std::vector<float> x((size_t)M * K);
  for (auto& v : x) v = d(rng);
  return x;
}

// Reference of several parts concatenated along N.
std::vector<float> ref_concat(const std::vector<AwqLinear>& parts, const std::vector<float>& x, int M) {
  int N = 0;
  for (const auto& p : parts) N += p.N;
  std::vector<float> y((size_t)M * N);
  int base = 0;
  for (const auto& p : parts) {
    std::vector<float> yp((size_t)M * p.N);
    awq_matmul_ref(p.source(), p.K, p.G, x.data(), M, yp.data());
    for (int m = 0; m < M; m++)
      std::memcpy(&y[(size_t)m * N + base], &yp[(size_t)m * p.N], sizeof(float) * p.N);
    base += p.N;
  }
  return y;
}

const char* const kAwqIsas[] = {"scalar", "avx2", "avx512bw", "avx512-vnni", "amx"};
const char* const kF16Isas[] = {"scalar", "avx2", "avx512"};

void test_awq_case(const std::vector<AwqLinear>& parts, ThreadPool& pool, std::mt19937& rng) {
  const int K = parts[0].K, G = parts[0].G;
  std::vector<AwqSource> src;
  int N = 0;
  for (const auto& p : parts) src.push_back(p.source()), N += p.N;
  AwqMatrixCpu w = awq_pack_cpu(K, G, src);
  for (int M : {1, 2, 3, 4, 5, 6, 7, 8, 16, 33}) {
    std::vector<float> x = random_x(M, K, rng);
    if (M == 3) std::fill(x.begin() + K, x.begin() + 2 * K, 0.f);  // an all-zero row must give exact zeros
    std::vector<float> ref = ref_concat(parts, x, M);
    for (const char* isa : kAwqIsas) {
      if (!awq_cpu_force_isa(isa)) continue;
      std::vector<float> y((size_t)M * N, NAN);
      awq_matmul_cpu(w, x.data(), M, y.data(), pool);
      double e = norm_err(y, ref);
      char what[160];
      std::snprintf(what, sizeof what, "awq %s K=%d G=%d N=%d parts=%zu M=%d: err %.3g", isa, K, G, N, parts.size(),
                    M, e);
      check(e <= 1e-4, what);
      if (M == 3) {
        bool zero = true;
        for (int n = 0; n < N; n++) zero = zero && y[(size_t)N + n] == 0.f;
        check(zero, std::string(what) + " (zero row not exactly zero)");
      }
    }
  }
  awq_cpu_force_isa("auto");
}

void test_awq(ThreadPool& pool, ThreadPool& pool3) {
  std::mt19937 rng(1234);
  struct Shape { int K, G; std::vector<int> Ns; };
  const Shape shapes[] = {
      {256, 128, {8}},        {384, 64, {24}},   {256, 128, {136}}, {384, 64, {6144}},
      {96, 32, {40}},         {40, 8, {8}},      {1024, 512, {24}},  // G > 256: blocks of 256 inside a group
      {256, 64, {24, 8, 40}},                                        // q|k|v style: tiles straddle parts
      {128, 128, {16, 16}},
  };
  for (const Shape& s : shapes) {
    std::vector<AwqLinear> parts;
    for (int n : s.Ns) parts.push_back(random_linear(s.K, s.G, n, rng));
    test_awq_case(parts, pool, rng);
  }
  // An uneven split across threads (3 threads, 9 tiles).
  std::vector<AwqLinear> parts{random_linear(256, 128, 136, rng)};
  AwqMatrixCpu w = awq_pack_cpu(256, 128, {parts[0].source()});
  for (int M : {3, 5}) {  // the AMX path (where the CPU has it) over the same uneven split
    std::vector<float> xm = random_x(M, 256, rng), ym((size_t)M * 136);
    awq_matmul_cpu(w, xm.data(), M, ym.data(), pool3);
    check(norm_err(ym, ref_concat(parts, xm, M)) <= 1e-4, "awq 3-thread split, M=" + std::to_string(M));
  }
  std::vector<float> x = random_x(2, 256, rng), y(2 * 136);
  awq_matmul_cpu(w, x.data(), 2, y.data(), pool3);
  check(norm_err(y, ref_concat(parts, x, 2)) <= 1e-4, "awq 3-thread split");
  // A copy of the packed matrix (its buffer may sit at another alignment) must still work.
  AwqMatrixCpu copy = w;
  std::vector<float> y2(2 * 136);
  awq_matmul_cpu(copy, x.data(), 2, y2.data(), pool);
  check(y2 == y, "awq copied matrix");
}

using TileKernel = void (*)(const awq_cpu::PackedView&, const awq_cpu::QuantizedRows&, int, int, float*);

// The AMX kernel and the VNNI one (which takes M >= 3 where there is no AMX) on their own, over tile ranges that start
// and end anywhere (odd starts, one tile, the partial last tile), at every row count they specialise (3..8) and past
// them (9), from m_first rows: the columns of [t0, t1) match the scalar kernel on the same quantised rows, and no other
// column is written. With same_bits_as, the output is also bit for bit that kernel's (a version that differs from it
// only in how it reads memory).
void test_tile_ranges(const char* isa, const char* kernel_name, TileKernel kernel, std::mt19937& rng, int m_first = 3,
                      TileKernel same_bits_as = nullptr, const char* same_bits_name = "the Intel-prefetch kernel") {
  using namespace awq_cpu;
  if (!awq_cpu_force_isa(isa)) return;
  awq_cpu_force_isa("auto");
  const int K = 384, G = 128, N = 136, n_tiles = (N + kTile - 1) / kTile;  // 9 tiles, the last one half full
  AwqLinear l = random_linear(K, G, N, rng);
  AwqMatrixCpu w = awq_pack_cpu(K, G, {l.source()});
  uint64_t off;
  std::memcpy(&off, w.storage.data(), sizeof off);  // awq_cpu.cpp's header: where the packed tiles start
  const size_t tile_bytes = ((size_t)K / 8 * kWordBytes + (size_t)(K / G) * kMetaBytes + 63) / 64 * 64;
  const PackedView view{K, N, G, n_tiles, tile_bytes, w.storage.data() + off};
  for (int M = m_first; M <= 9; M++) {
    const std::vector<float> x = random_x(M, K, rng);
    const int nb = K / G;
    std::vector<int16_t> q((size_t)M * K);
    std::vector<int8_t> hi((size_t)M * K), lo((size_t)M * K), tiles(amx_tiles_bytes(M, K));
    std::vector<float> scale((size_t)M * nb);
    std::vector<int32_t> sum((size_t)M * nb);
    check(quantize_rows_scalar(x.data(), M, K, G, q.data(), hi.data(), lo.data(), scale.data(), sum.data()),
          std::string(isa) + " ranges: quantise");
    QuantizedRows rows{M, K, G, q.data(), hi.data(), lo.data(), scale.data(), sum.data()};
    amx_tile_activations(rows, tiles.data());
    rows.tiles = tiles.data();
    for (auto [t0, t1] : {std::pair{0, 9}, {1, 4}, {3, 4}, {2, 9}, {8, 9}, {5, 8}, {1, 2}}) {
      std::vector<float> y((size_t)M * N, NAN), ref((size_t)M * N, NAN);
      kernel(view, rows, t0, t1, y.data());
      tiles_scalar(view, rows, t0, t1, ref.data());
      std::vector<float> yin, refin;
      bool untouched = true;
      for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
          const size_t i = (size_t)m * N + n;
          if (n / kTile >= t0 && n / kTile < t1) {
            yin.push_back(y[i]), refin.push_back(ref[i]);
          } else {
            untouched = untouched && std::isnan(y[i]);
          }
        }
      char what[96];
      std::snprintf(what, sizeof what, "%s (%s) tiles [%d, %d) M=%d", isa, kernel_name, t0, t1, M);
      check(norm_err(yin, refin) <= 1e-6, std::string(what) + ": matches the scalar kernel");
      check(untouched, std::string(what) + ": writes no other column");
      if (same_bits_as) {
        std::vector<float> other((size_t)M * N, NAN);
        same_bits_as(view, rows, t0, t1, other.data());
        check(std::memcmp(y.data(), other.data(), y.size() * sizeof(float)) == 0,
              std::string(what) + ": same bits as " + same_bits_name);
      }
    }
  }
}

void test_awq_errors() {
  std::mt19937 rng(7);
  AwqLinear l = random_linear(256, 128, 16, rng);
  auto throws = [&](int K, int G, int N) {
    AwqSource s = l.source();
    s.N = N;
    try {
      awq_pack_cpu(K, G, {s});
    } catch (const std::runtime_error&) {
      return true;
    }
    return false;
  };
  check(throws(250, 128, 16), "pack rejects K % G != 0");
  check(throws(256, 12, 16), "pack rejects G % 8 != 0");
  check(throws(256, 128, 12), "pack rejects N % 8 != 0");
  check(!throws(256, 128, 16), "pack accepts a valid shape");

  // A NaN activation is reported as an error, also when quantisation runs on the pool's threads (M >= 8, and M <= 2
  // where each thread quantises for itself: with 64 tiles both threads take pieces).
  ThreadPool pool(2);
  const AwqLinear wide = random_linear(256, 128, 1024, rng);
  for (const AwqLinear* layer : std::vector<const AwqLinear*>{&l, &wide}) {
    const AwqMatrixCpu w = awq_pack_cpu(256, 128, {layer->source()});
    const int N = w.N;
    for (int M : {1, 2, 16}) {
      std::vector<float> x((size_t)M * 256, 1.f), y((size_t)M * N);
      x[(size_t)(M - 1) * 256 + 3] = NAN;
      bool threw = false;
      try {
        awq_matmul_cpu(w, x.data(), M, y.data(), pool);
      } catch (const std::runtime_error&) {
        threw = true;
      }
      check(threw, "matmul rejects a NaN activation, M=" + std::to_string(M) + " N=" + std::to_string(N));
    }
  }
}

void test_nibble_order(ThreadPool& pool) {
  // The spec's derived check: logical values 0..7 pack to 0x75316420 and unpack back to 0..7.
  const uint8_t seq[8] = {0, 1, 2, 3, 4, 5, 6, 7};
  int32_t word = 0;
  awq::pack_row(seq, 8, &word);
  check((uint32_t)word == 0x75316420u, "pack_row(0..7) == 0x75316420");
  const int32_t spec_word = (int32_t)0x75316420u;
  bool ok = true;
  for (int n = 0; n < 8; n++) ok = ok && awq::unpack(&spec_word, n) == n;
  check(ok, "unpack(0x75316420) == 0..7");

  // Round trip on random rows.
  std::mt19937 rng(99);
  std::vector<uint8_t> vals(64);
  std::vector<int32_t> packed(8);
  ok = true;
  for (int rep = 0; rep < 100; rep++) {
    for (auto& v : vals) v = rng() & 0xF;
    awq::pack_row(vals.data(), 64, packed.data());
    for (int n = 0; n < 64; n++) ok = ok && awq::unpack(packed.data(), n) == vals[n];
  }
  check(ok, "pack_row / unpack round trip");

  // Every column distinct in value, zero and scale: a wrong nibble order anywhere (qweight, qzeros, repacking,
  // kernels) moves a value to another column and changes y. W[k][n] = (n - (15 - n)) * (1 + n/16).
  const int K = 128, G = 128, N = 16;
  AwqLinear l{K, G, N, std::vector<int32_t>(K * N / 8), std::vector<int32_t>(N / 8), std::vector<uint16_t>(N)};
  uint8_t qrow[N], zrow[N];
  for (int n = 0; n < N; n++) {
    qrow[n] = (uint8_t)n;
    zrow[n] = (uint8_t)(15 - n);
    l.scales[n] = f32_to_f16(1.f + n / 16.f);
  }
  for (int k = 0; k < K; k++) awq::pack_row(qrow, N, &l.qweight[(size_t)k * N / 8]);
  awq::pack_row(zrow, N, l.qzeros.data());
  std::vector<float> x(K, 1.f), expect(N), y(N);
  for (int n = 0; n < N; n++) expect[n] = K * (2.f * n - 15.f) * (1.f + n / 16.f);
  awq_matmul_ref(l.source(), K, G, x.data(), 1, y.data());
  check(y == expect, "nibble order: reference on distinct columns");
  AwqMatrixCpu w = awq_pack_cpu(K, G, {l.source()});
  for (const char* isa : kAwqIsas) {
    if (!awq_cpu_force_isa(isa)) continue;
    std::fill(y.begin(), y.end(), NAN);
    awq_matmul_cpu(w, x.data(), 1, y.data(), pool);
    check(norm_err(y, expect) <= 1e-5, std::string("nibble order: ") + isa + " on distinct columns");
  }
  awq_cpu_force_isa("auto");
}

// The activation quantiser: the AVX-512 version gives exactly the scalar version's bits (so every ISA path sees the
// same integers), q = 256 hi + lo, |q| <= kActMax, q * scale within half a step of x, sum = the block's sum of q,
// and a NaN or infinity anywhere is reported.
void test_quantize() {
  using namespace awq_cpu;
  std::mt19937 rng(5);
  std::normal_distribution<float> d(0.f, 3.f);
  for (int block : {8, 24, 128, 256}) {
    const int M = 3, K = block * 4, nb = K / block;
    std::vector<float> x((size_t)M * K);
    for (auto& v : x) v = d(rng);
    std::fill(x.begin() + block, x.begin() + 2 * block, 0.f);  // an all-zero block
    x[5] = 1e30f;                                               // a huge value: its block's others round to 0
    struct Out {
      std::vector<int16_t> q;
      std::vector<int8_t> hi, lo;
      std::vector<float> scale;
      std::vector<int32_t> sum;
    };
    auto run = [&](bool simd, Out& o) {
      o.q.assign((size_t)M * K, 0), o.hi.assign((size_t)M * K, 0), o.lo.assign((size_t)M * K, 0);
      o.scale.assign((size_t)M * nb, 0), o.sum.assign((size_t)M * nb, 0);
      return (simd ? quantize_rows_avx512 : quantize_rows_scalar)(x.data(), M, K, block, o.q.data(), o.hi.data(),
                                                                  o.lo.data(), o.scale.data(), o.sum.data());
    };
    Out a, b;
    check(run(false, a), "quantize scalar accepts finite input");
    bool ok = true;
    for (int m = 0; m < M; m++)
      for (int bi = 0; bi < nb; bi++) {
        int32_t s = 0;
        for (int i = 0; i < block; i++) {
          const size_t at = (size_t)m * K + (size_t)bi * block + i;
          const int qv = a.q[at];
          s += qv;
          ok = ok && qv == 256 * a.hi[at] + a.lo[at] && std::abs(qv) <= kActMax;
          // half a step, plus the float rounding of scale and 1/scale (a few ulp of x)
          const float step = a.scale[(size_t)m * nb + bi];
          ok = ok && std::fabs(qv * step - x[at]) <= 0.5f * step + 1e-6f * std::fabs(x[at]);
        }
        ok = ok && s == a.sum[(size_t)m * nb + bi];
      }
    check(ok, "quantize scalar: q = 256 hi + lo, range, rounding, sums (block " + std::to_string(block) + ")");
    if (!__builtin_cpu_supports("avx512bw")) continue;
    check(run(true, b), "quantize avx512 accepts finite input");
    check(a.q == b.q && a.hi == b.hi && a.lo == b.lo && a.scale == b.scale && a.sum == b.sum,
          "quantize avx512 == scalar, bit for bit (block " + std::to_string(block) + ")");
    for (float bad : {NAN, INFINITY, -INFINITY}) {
      x[(size_t)2 * K + K - 1] = bad;
      check(!run(true, b) && !run(false, a), "quantize reports a non-finite activation (block " + std::to_string(block) + ")");
    }
  }
}

// Every fp16 path against the double-precision reference: y for the given W and x at each row count.
void check_f16(const char* what, const std::vector<uint16_t>& w, int N, int K, const std::vector<float>& x_all,
               std::initializer_list<int> Ms, ThreadPool& pool) {
  for (int M : Ms) {
    const std::vector<float> x(x_all.begin(), x_all.begin() + (size_t)M * K);
    std::vector<float> ref((size_t)M * N);
    f16_matmul_ref(w.data(), N, K, x.data(), M, ref.data());
    for (const char* isa : kF16Isas) {
      if (!f16_matmul_cpu_force_isa(isa)) continue;
      std::vector<float> y((size_t)M * N, NAN);
      f16_matmul_cpu(w.data(), N, K, x.data(), M, y.data(), pool);
      const double e = norm_err(y, ref);
      char msg[160];
      std::snprintf(msg, sizeof msg, "f16 %s %s N=%d K=%d M=%d: err %.3g", what, isa, N, K, M, e);
      check(e <= 1e-5, msg);
    }
  }
  f16_matmul_cpu_force_isa("auto");
}

void test_f16(ThreadPool& pool) {
  std::mt19937 rng(42);
  std::normal_distribution<float> d(0.f, 0.05f);
  struct Shape { int N, K; };
  for (Shape s : {Shape{1, 5}, Shape{7, 16}, Shape{37, 100}, Shape{300, 4096}, Shape{19, 33}}) {
    std::vector<uint16_t> w((size_t)s.N * s.K);
    for (auto& v : w) v = f32_to_f16(d(rng));
    check_f16("random", w, s.N, s.K, random_x(8, s.K, rng), {1, 2, 3, 4, 5, 6, 7, 8}, pool);
  }
  // Weights at the ends of fp16's range: all subnormal (a path that flushed them would give zeros), and a mix of
  // subnormals, zeros of either sign, the largest finite values and ordinary ones.
  const int N = 40, K = 300;
  std::vector<uint16_t> sub((size_t)N * K), mix((size_t)N * K);
  for (auto& v : sub) v = (uint16_t)((rng() & 0x8000) | (1 + rng() % 0x3ff));
  const uint16_t specials[] = {0x0001, 0x03ff, 0x8001, 0x0000, 0x8000, 0x7bff, 0xfbff, 0x0400, 0x3c00};
  for (auto& v : mix) v = rng() % 4 == 0 ? f32_to_f16(d(rng)) : specials[rng() % 9];
  check_f16("subnormal", sub, N, K, random_x(8, K, rng), {1, 2, 4, 5, 8}, pool);
  check_f16("extremes", mix, N, K, random_x(8, K, rng), {1, 2, 3, 6, 8}, pool);
}

}  // namespace

int main() {
  auto t0 = std::chrono::steady_clock::now();
  try {
    ThreadPool pool(2), pool3(3);
    std::printf("awq isa (auto): %s, f16 isa (auto): %s\ntested paths:", awq_cpu_isa(), f16_matmul_cpu_isa());
    for (const char* isa : kAwqIsas)
      if (awq_cpu_force_isa(isa)) std::printf(" awq:%s", isa);
    for (const char* isa : kF16Isas)
      if (f16_matmul_cpu_force_isa(isa)) std::printf(" f16:%s", isa);
    std::printf("\n");
    awq_cpu_force_isa("auto");
    f16_matmul_cpu_force_isa("auto");
    test_nibble_order(pool);
    test_awq_errors();
    test_awq(pool, pool3);
    {
      std::mt19937 rng(77);
      test_tile_ranges("amx", "amx", awq_cpu::tiles_amx, rng);
      test_tile_ranges("avx512-vnni", "Intel prefetch", awq_cpu::tiles_avx512vnni, rng);
      // The VNNI kernels (the decode kernel's vpdpbusd written as asm) against the AVX512BW kernel, which sums the
      // same exact int32 products through vpmaddubsw: equal bits at every M, decode's M = 1, 2 included.
      test_tile_ranges("avx512-vnni", "Intel prefetch", awq_cpu::tiles_avx512vnni, rng, 1, awq_cpu::tiles_avx512bw,
                       "the AVX512BW kernel");
      // The AMD decode kernel (M = 1: merged accumulators) streaming 8 tiles at once and 4, whatever this CPU takes;
      // without GFNI as CPUs without it run it.
      for (const int streams : {8, 4}) {
        awq_cpu::force_merged_streams(streams);
        const std::string amd = "AMD prefetch, " + std::to_string(streams) + " streams";
        test_tile_ranges("avx512-vnni", amd.c_str(), awq_cpu::tiles_avx512vnni_amd, rng, 1, awq_cpu::tiles_avx512vnni);
        test_tile_ranges("avx512-vnni", amd.c_str(), awq_cpu::tiles_avx512vnni_amd, rng, 1, awq_cpu::tiles_avx512bw,
                         "the AVX512BW kernel");
        test_tile_ranges("avx512-vnni", (amd + ", without GFNI").c_str(), awq_cpu::tiles_avx512vnni_amd_no_gfni, rng, 1,
                         awq_cpu::tiles_avx512vnni);
      }
      awq_cpu::force_merged_streams(0);
    }
    test_quantize();
    test_f16(pool);
  } catch (const std::exception& e) {
    check(false, std::string("exception: ") + e.what());
  }
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("time %.2f s\n", s);
  return test::report();
}
