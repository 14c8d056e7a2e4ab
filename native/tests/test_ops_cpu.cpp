// Proves the CPU operators between the matmuls (ops_cpu.h) against double-precision plain loops: SwiGLU over the whole
// float range its exp approximation is used on (saturating ends included), RMSNorm at lengths that are and are not
// multiples of the accumulator lanes, RoPE in two steps equal to the one-step rotation, and causal GQA attention read
// through a block table (K/V stored in fp16, as the KV cache holds them) for one query head, for three and four
// sharing a KV head, at head_dim 72 (the plain loops) and 128 (the plain loops and the AVX2 and AVX-512 kernels, each
// forced where the CPU has it).
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "check.h"
#include "half.h"
#include "cpu/ops_cpu.h"
#include "kv_cache.h"
#include "rope.h"

using namespace q3;

namespace {

using test::check;

void test_silu() {
  std::vector<float> g, up;
  for (float v = -120.f; v <= 120.f; v += 0.0371f) g.push_back(v), up.push_back(1.f);
  for (float v : {-1e30f, -90.f, -88.5f, -87.f, 0.f, -0.f, 1e-30f, 87.f, 88.5f, 90.f, 1e30f}) g.push_back(v), up.push_back(1.f);
  std::vector<float> out(g.size());
  silu_mul_cpu(g.data(), up.data(), (int)g.size(), out.data());
  double worst = 0;
  bool finite = true;
  for (size_t i = 0; i < g.size(); i++) {
    const double ref = (double)g[i] / (1.0 + std::exp(-(double)g[i]));
    finite = finite && std::isfinite(out[i]);
    // relative error where the value is representable, absolute near zero (tiny or saturated-to-zero results)
    const double err = std::fabs(out[i] - ref) / std::max(std::fabs(ref), 1e-30);
    if (std::fabs(ref) > 1e-30) worst = std::max(worst, err);
    else check(std::fabs(out[i]) < 1e-30, "silu of " + std::to_string(g[i]) + " is ~0");
  }
  check(finite, "silu finite everywhere");
  char what[96];
  std::snprintf(what, sizeof what, "silu within 4e-7 relative of double (worst %.2g)", worst);
  check(worst < 4e-7, what);
}

void test_rmsnorm() {
  std::mt19937 rng(3);
  std::normal_distribution<float> d(0.f, 2.f);
  for (int n : {1, 15, 16, 128, 4097}) {
    std::vector<float> x(n), w(n), out(n);
    for (auto& v : x) v = d(rng);
    for (auto& v : w) v = 1.f + 0.1f * d(rng);
    rmsnorm_cpu(x.data(), w.data(), n, 1e-6f, out.data());
    double ss = 0;
    for (float v : x) ss += (double)v * v;
    const double r = 1.0 / std::sqrt(ss / n + 1e-6);
    double worst = 0;
    for (int i = 0; i < n; i++) worst = std::max(worst, std::fabs(out[i] - w[i] * x[i] * r) / (std::fabs(w[i] * x[i] * r) + 1e-12));
    check(worst < 1e-6, "rmsnorm n=" + std::to_string(n));
  }
}

void test_rope() {
  RopeTable rope;
  rope.attention_factor = 1.0f;
  for (int j = 0; j < 64; j++) rope.inv_freq.push_back(std::pow(1e6, -2.0 * j / 128));
  std::vector<float> a(128), b(128), c(64), s(64);
  for (int i = 0; i < 128; i++) a[i] = b[i] = std::sin(0.3f * i);
  rope_cpu(a.data(), 128, 777, rope);
  rope_cos_sin_cpu(777, rope, 128, c.data(), s.data());
  rope_rotate_cpu(b.data(), 128, c.data(), s.data());
  check(a == b, "rope in two steps == rope_cpu");
}

// Every fp16 value widens to the number its fields define (IEEE 754 binary16), and back to the same bits (NaNs: a
// NaN). The attention widens the KV cache's fp16 rows with it on the plain path.
void test_f16_widen() {
  int wrong = 0;
  for (uint32_t h = 0; h < 0x10000; h++) {
    const int sign = h >> 15, exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    const double mag = exp == 0 ? std::ldexp((double)man, -24) : std::ldexp(1.0 + man / 1024.0, exp - 15);
    const double want = exp == 31 ? (man ? NAN : INFINITY) : mag;
    const float got = f16_to_f32((uint16_t)h);
    const bool ok = exp == 31 && man ? std::isnan(got) : (double)got == (sign ? -want : want) && std::signbit(got) == (bool)sign;
    if (!ok || (!(exp == 31 && man) && f32_to_f16(got) != h)) wrong++;
  }
  check(wrong == 0, "f16_to_f32: all 65536 values exact (" + std::to_string(wrong) + " wrong)");
}

// narrow_f16 (the KV cache's writes) gives f32_to_f16's bits: every fp16 value, the points halfway between
// neighbours and one float step either side of them, random values from far below fp16's range to past it, and
// the specials (signed zeros, float subnormals, infinities, NaNs with payloads, inside a run of 8 and in the tail).
void test_f16_narrow() {
  std::vector<float> x;
  for (uint32_t h = 0; h < 0x10000; h++) {
    const float f = f16_to_f32((uint16_t)h);
    if (std::isnan(f)) continue;
    x.push_back(f);
    if (std::isinf(f)) continue;
    const float next = f16_to_f32((uint16_t)(h + 1));
    if (std::isnan(next) || std::signbit(next) != std::signbit(f)) continue;
    const float mid = (float)(((double)f + (double)next) / 2);  // exact: a float has the bits to spare
    x.push_back(mid);
    x.push_back(std::nextafter(mid, 0.f));
    x.push_back(std::nextafter(mid, INFINITY));
  }
  std::mt19937 rng(4);
  std::uniform_real_distribution<float> e(-30.f, 18.f);
  for (int i = 0; i < 100000; i++) x.push_back((rng() & 1 ? -1.f : 1.f) * std::exp2(e(rng)));
  auto bits = [](uint32_t b) {
    float f;
    std::memcpy(&f, &b, 4);
    return f;
  };
  const uint32_t specials[] = {0x00000000u, 0x80000000u, 0x00000001u, 0x807fffffu, 0x7f7fffffu, 0x7f800000u,
                               0xff800000u, 0x7f800001u, 0x7fc00000u, 0xffc12345u, 0x7fbfffffu};
  for (int copy = 0; copy < 9; copy++)  // at each offset within a run of 8, then in the tail
    for (uint32_t b : specials) x.push_back(bits(b));
  x.push_back(1.f);  // the length is not a multiple of 8
  std::vector<uint16_t> got(x.size());
  narrow_f16(x.data(), (int)x.size(), got.data());
  int wrong = 0;
  for (size_t i = 0; i < x.size(); i++) wrong += got[i] != f32_to_f16(x[i]);
  check(x.size() % 8 != 0 && wrong == 0,
        "narrow_f16: f32_to_f16's bits for " + std::to_string(x.size()) + " values (" + std::to_string(wrong) + " wrong)");
}

// Attention of one query head (qg: D values) over positions 0..pos of KV head `head` in `layer`, through the block
// table, in float64: the reference both attention tests hold the kernels to.
std::vector<double> reference_attention(const float* qg, const KvPool& kv, const int32_t* table, int layer, int head,
                                        int pos, int D, float scale) {
  const int bs = kv.block_size();
  std::vector<double> s(pos + 1), ref(D, 0.0);
  double mx = -1e300, sum = 0;
  for (int j = 0; j <= pos; j++) {
    const uint16_t* k = kv.k(table[j / bs], layer) + ((size_t)head * bs + j % bs) * D;
    double dot = 0;
    for (int i = 0; i < D; i++) dot += (double)qg[i] * f16_to_f32(k[i]);
    s[j] = dot * scale, mx = std::max(mx, s[j]);
  }
  for (int j = 0; j <= pos; j++) s[j] = std::exp(s[j] - mx), sum += s[j];
  for (int j = 0; j <= pos; j++) {
    const uint16_t* v = kv.v(table[j / bs], layer) + ((size_t)head * bs + j % bs) * D;
    for (int i = 0; i < D; i++) ref[i] += s[j] / sum * f16_to_f32(v[i]);
  }
  return ref;
}

// bs: the KV cache's block size (16 by default; the AVX-512 and AVX2 paths score a block's rows 4 and 2 at a time
// where bs allows).
void test_attention(int D, int bs = 16) {
  std::mt19937 rng(9);
  std::normal_distribution<float> d(0.f, 1.f);
  const int layers = 2, kv_heads = 2, blocks = 8;
  KvPool kv(layers, kv_heads, D, bs, blocks);
  std::vector<int32_t> table = {5, 2, 7, 0};
  for (int32_t b : table)
    for (int l = 0; l < layers; l++)
      for (int i = 0; i < kv_heads * bs * D; i++) kv.k(b, l)[i] = f32_to_f16(d(rng)), kv.v(b, l)[i] = f32_to_f16(d(rng));
  for (int n_q : {1, 3, 4, 6}) {  // query heads sharing the KV head, each with its own q
    std::vector<float> q((size_t)n_q * D), scores((size_t)n_q * 4 * bs), out((size_t)n_q * D);
    for (auto& v : q) v = d(rng);
    for (int pos : {0, bs - 1, bs, 2 * bs + bs / 2, 4 * bs - 1}) {
      const int layer = 1, head = 1;
      const float scale = 1.f / std::sqrt((float)D);
      attention_group_cpu(q.data(), n_q, kv, layer, head, table.data(), pos, D, scale, scores.data(), out.data());
      for (int g = 0; g < n_q; g++) {
        const std::vector<double> ref =
            reference_attention(q.data() + (size_t)g * D, kv, table.data(), layer, head, pos, D, scale);
        const float* og = out.data() + (size_t)g * D;
        double num = 0, den = 0;
        for (int i = 0; i < D; i++) num += (og[i] - ref[i]) * (og[i] - ref[i]), den += ref[i] * ref[i];
        check(std::sqrt(num / den) < 1e-5,
              "attention D=" + std::to_string(D) + " bs=" + std::to_string(bs) + " n_q=" + std::to_string(n_q) +
                  " head " + std::to_string(g) + " pos=" + std::to_string(pos));
      }
    }
  }
}

// One token's attention split by position (attention_blocks_cpu): every KV head at once over a range of blocks,
// whole or in parts merged by attention_merge_cpu, against the same float64 reference as test_attention.
void test_attention_blocks(int D, int bs, int group) {
  std::mt19937 rng(11);
  std::normal_distribution<float> d(0.f, 1.f);
  const int layers = 2, kv_heads = 3, blocks = 9, n_heads = kv_heads * group, layer = 1;
  KvPool kv(layers, kv_heads, D, bs, blocks);
  std::vector<int32_t> table = {5, 2, 7, 0, 8, 3};
  for (int32_t b : table)
    for (int l = 0; l < layers; l++)
      for (int i = 0; i < kv_heads * bs * D; i++) kv.k(b, l)[i] = f32_to_f16(d(rng)), kv.v(b, l)[i] = f32_to_f16(d(rng));
  std::vector<float> q((size_t)n_heads * D);
  for (auto& v : q) v = 2 * d(rng);  // sharper softmaxes than unit scores, so that the parts' maxima differ
  const float scale = 1.f / std::sqrt((float)D);
  for (int pos : {0, bs - 1, bs, 3 * bs + bs / 2, 6 * bs - 1}) {
    const int nb = pos / bs + 1;  // blocks holding positions 0..pos
    std::vector<float> ref_out((size_t)n_heads * D);
    for (int g = 0; g < n_heads; g++) {  // query head g reads KV head g / group
      const std::vector<double> ref =
          reference_attention(q.data() + (size_t)g * D, kv, table.data(), layer, g / group, pos, D, scale);
      for (int i = 0; i < D; i++) ref_out[(size_t)g * D + i] = (float)ref[i];
    }
    for (int part : {0, 1, 2, 4}) {  // blocks per part; 0: the whole sequence in one call, no merge
      const int parts = part == 0 ? 1 : (nb + part - 1) / part, per = part == 0 ? nb : part;
      std::vector<float> scores((size_t)n_heads * per * bs), outs((size_t)parts * n_heads * D), out(n_heads * D);
      std::vector<float> mx((size_t)parts * n_heads);
      std::vector<double> sums((size_t)parts * n_heads);
      for (int p = 0; p < parts; p++) {
        const int b0 = p * per, b1 = std::min(nb, b0 + per);
        attention_blocks_cpu(q.data(), n_heads, group, kv, layer, table.data(), b0, b1, pos, D, scale, scores.data(),
                             part == 0 ? out.data() : &outs[(size_t)p * n_heads * D],
                             part == 0 ? nullptr : &mx[(size_t)p * n_heads], part == 0 ? nullptr : &sums[(size_t)p * n_heads]);
      }
      if (part != 0) attention_merge_cpu(parts, n_heads, D, outs.data(), mx.data(), sums.data(), out.data());
      double worst = 0;
      for (int g = 0; g < n_heads; g++) {
        double num = 0, den = 0;
        for (int i = 0; i < D; i++) {
          const double e = out[(size_t)g * D + i] - ref_out[(size_t)g * D + i];
          num += e * e, den += (double)ref_out[(size_t)g * D + i] * ref_out[(size_t)g * D + i];
        }
        worst = std::max(worst, std::sqrt(num / den));
      }
      check(worst < 1e-5, "attention_blocks D=" + std::to_string(D) + " bs=" + std::to_string(bs) + " group=" +
                              std::to_string(group) + " pos=" + std::to_string(pos) + " blocks per part " +
                              std::to_string(part) + " (worst head " + std::to_string(worst) + ")");
    }
  }
}

}  // namespace

int main() {
  test_f16_widen();
  test_f16_narrow();
  test_silu();
  test_rmsnorm();
  test_rope();
  test_attention(72);  // not a multiple of the lanes: the plain loops whatever the path
  // Qwen3's head_dim on each path the CPU has: the plain loops and the AVX2 and AVX-512 kernels (attention_cpu_avx2.cpp,
  // attention_cpu_avx512.cpp)
  for (const char* isa : {"plain", "avx2", "avx512"}) {
    if (!attention_cpu_force_isa(isa)) {
      std::printf("attention: no %s path on this CPU, not checked\n", isa);
      continue;
    }
    check(std::string(attention_cpu_isa()) == isa, std::string("attention path forced to ") + isa);
    test_attention(128);
    test_attention(128, 32);  // two groups of 16 rows per block
    test_attention(128, 6);   // not a multiple of 4: row by row on AVX-512, 2 rows at a time on AVX2
    test_attention(128, 5);   // odd: row by row on both
    test_attention(32);       // head_dim 32 (the yarn test checkpoint's)
    if (std::string(isa) == "plain") {
      check(!attention_blocks_available(128, 16), "attention_blocks: not on the plain path");
      continue;
    }
    test_attention_blocks(128, 16, 4);  // Qwen3's shape: the V pass in registers
    test_attention_blocks(128, 32, 4);
    test_attention_blocks(128, 16, 2);  // other groups: the V pass through memory
    test_attention_blocks(32, 8, 3);
  }
  attention_cpu_force_isa("auto");
  return test::report();
}
