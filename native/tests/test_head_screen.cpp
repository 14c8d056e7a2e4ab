// Screened lm_head checks (docs/cpu-head-screen.md) against the full fp16 head on random tables: the bound holds for
// every token, the candidates contain the true top-k (and everything within the margin), their logits have the full
// head's bits, and sample_token picks the same tokens from screened logits as from the full ones (greedy, top-k with
// temperature, top-p, min-p, penalties, masks), also for nearly tied rows and activations aligned with a row's
// quantisation error. Prints "N passed, M failed".
#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "check.h"
#include "cpu/f16_matmul_cpu.h"
#include "cpu/head_screen.h"
#include "half.h"
#include "sampler.h"
#include "threadpool.h"

using q3::test::check;

namespace {

struct Table {
  int N, K;
  std::vector<uint16_t> w;
  q3::ScreenedHead h;
};

// Rows of N(0, sd) fp16 values; rows 1 and 2 are row 0 with one element moved by one fp16 step (nearly tied logits).
Table make_table(int N, int K, uint64_t seed, q3::ThreadPool& pool) {
  Table t{N, K, std::vector<uint16_t>((size_t)N * K), {}};
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> nd(0.0f, 0.05f);
  for (auto& v : t.w) v = q3::f32_to_f16(nd(rng));
  for (int r = 1; r <= 2 && r < N; r++) {
    std::memcpy(&t.w[(size_t)r * K], &t.w[0], K * sizeof(uint16_t));
    t.w[(size_t)r * K + r] = (uint16_t)(t.w[(size_t)r * K + r] + 1);
  }
  q3::build_screened_head(t.w.data(), N, K, t.h, pool);
  return t;
}

std::vector<float> random_x(int K, std::mt19937_64& rng, float scale) {
  std::normal_distribution<float> nd(0.0f, scale);
  std::vector<float> x(K);
  for (auto& v : x) v = nd(rng);
  return x;
}

// x along row r's quantisation error (the Cauchy-Schwarz term's worst case), plus a little noise.
std::vector<float> error_aligned_x(const Table& t, int r, std::mt19937_64& rng) {
  std::vector<float> x(t.K);
  std::normal_distribution<float> nd(0.0f, 0.01f);
  double n2 = 0;
  for (int k = 0; k < t.K; k++) {
    const double e = q3::f16_to_f32(t.w[(size_t)r * t.K + k]) - (double)t.h.q[t.h.index(r, k)] * t.h.scale[r];
    x[k] = (float)e;
    n2 += e * e;
  }
  const float s = n2 > 0 ? (float)(3.0 / std::sqrt(n2 / t.K)) : 1.0f;
  for (auto& v : x) v = v * s + nd(rng);
  return x;
}

void test_rows_match_full(q3::ThreadPool& pool) {
  const char* isas[] = {"scalar", "avx2", "avx512"};
  std::mt19937_64 rng(7);
  for (int K : {200, 256}) {
    Table t = make_table(301, K, 11 + K, pool);
    for (const char* isa : isas) {
      if (!q3::f16_matmul_cpu_force_isa(isa)) continue;
      for (int M : {1, 2, 3, 5, 8}) {
        std::vector<float> x((size_t)M * K);
        for (auto& v : x) v = std::normal_distribution<float>(0, 1)(rng);
        std::vector<float> full((size_t)M * t.N), rows(t.N, 0);
        q3::f16_matmul_cpu(t.w.data(), t.N, K, x.data(), M, full.data(), pool);
        std::vector<int32_t> ids(t.N);
        for (int n = 0; n < t.N; n++) ids[n] = n;
        bool same = true;
        for (int m = 0; m < M; m++) {
          q3::f16_matmul_rows_cpu(t.w.data(), t.N, K, &x[(size_t)m * K], ids.data(), t.N, rows.data());
          same = same && std::memcmp(rows.data(), &full[(size_t)m * t.N], t.N * sizeof(float)) == 0;
        }
        check(same, std::string("f16_matmul_rows_cpu has the bits of f16_matmul_cpu (") + isa + ", K " +
                        std::to_string(K) + ", M " + std::to_string(M) + ")");
      }
    }
  }
  q3::f16_matmul_cpu_force_isa("auto");
}

// The two approximate kernels agree bit for bit, and a batch of M rows gives each row's single-row values.
void test_kernels_agree(q3::ThreadPool& pool) {
  std::mt19937_64 rng(3);
  Table t = make_table(517, 200, 5, pool);
  for (int M : {1, 2, 3, 4, 7, 8}) {
    std::vector<float> x((size_t)M * t.K);
    for (auto& v : x) v = std::normal_distribution<float>(0, 1)(rng);
    std::vector<float> a_scalar((size_t)M * t.N), a_fast((size_t)M * t.N), a_one(t.N);
    std::vector<q3::ScreenNorms> n1(M), n2(M), n3(1);
    q3::screened_head_force_isa("scalar");
    q3::screened_head_approx(t.h, x.data(), M, a_scalar.data(), n1.data(), pool);
    bool rows_same = true;
    for (int m = 0; m < M; m++) {
      q3::screened_head_approx(t.h, &x[(size_t)m * t.K], 1, a_one.data(), n3.data(), pool);
      rows_same = rows_same && std::memcmp(a_one.data(), &a_scalar[(size_t)m * t.N], t.N * sizeof(float)) == 0;
    }
    check(rows_same, "screened approx: a batch row equals the row alone (M " + std::to_string(M) + ")");
    if (q3::screened_head_force_isa("avx512-vnni")) {
      q3::screened_head_approx(t.h, x.data(), M, a_fast.data(), n2.data(), pool);
      check(std::memcmp(a_scalar.data(), a_fast.data(), a_fast.size() * sizeof(float)) == 0,
            "screened approx: VNNI and scalar kernels give the same bits (M " + std::to_string(M) + ")");
    }
  }
  q3::screened_head_force_isa("auto");
}

// One screened row against the full head: the bound, the candidates, the bits. Returns the candidate count.
int check_row(const Table& t, const std::vector<float>& x, const q3::ScreenQuery& q, q3::ThreadPool& pool,
              const std::string& what) {
  std::vector<float> full(t.N), a(t.N);
  q3::f16_matmul_cpu(t.w.data(), t.N, t.K, x.data(), 1, full.data(), pool);
  q3::ScreenNorms norms;
  q3::screened_head_approx(t.h, x.data(), 1, a.data(), &norms, pool);
  bool bound_ok = true;
  for (int n = 0; n < t.N; n++) {
    const double B = (double)norms.x_norm * t.h.x_coef[n] + (double)norms.dx_norm * t.h.dx_coef[n];
    bound_ok = bound_ok && std::fabs((double)full[n] - a[n]) <= B;
  }
  check(bound_ok, what + ": |exact - approx| <= bound for every token");
  std::vector<float> got = a;
  const int n_cand = q3::screen_row(t.h, t.w.data(), x.data(), norms, q, got.data());
  check(n_cand > 0, what + ": screen_row found candidates");
  if (n_cand <= 0) return n_cand;
  auto allowed = [&](int n) { return !q.allowed || (q.allowed[n >> 5] >> (n & 31) & 1u); };
  // every finite value is the full head's, bit for bit; the allowed tokens within margin of the k-th are there
  std::vector<float> vals;
  for (int n = 0; n < t.N; n++)
    if (allowed(n) && std::find(q.exact, q.exact + q.n_exact, n) == q.exact + q.n_exact) vals.push_back(full[n]);
  std::sort(vals.rbegin(), vals.rend());
  const float kth = (int)vals.size() >= q.top_k ? vals[q.top_k - 1] : -INFINITY;
  bool bits = true, complete = true, exact_there = true;
  int finite = 0;
  for (int n = 0; n < t.N; n++) {
    if (std::isfinite(got[n])) {
      finite++;
      bits = bits && std::memcmp(&got[n], &full[n], 4) == 0;
    } else if (allowed(n) && full[n] >= kth - q.margin) {
      complete = false;
    }
  }
  for (int i = 0; i < q.n_exact; i++)
    if (allowed(q.exact[i])) exact_there = exact_there && std::isfinite(got[q.exact[i]]);
  check(finite == n_cand, what + ": the candidates are the finite values");
  check(bits, what + ": candidates have the full head's bits");
  check(complete, what + ": every allowed token within the margin of the top-k is a candidate");
  check(exact_there, what + ": every allowed penalised token is a candidate");
  return n_cand;
}

void test_candidates(q3::ThreadPool& pool) {
  std::mt19937_64 rng(19);
  Table t = make_table(3001, 256, 23, pool);
  std::vector<uint32_t> mask(Q3_MASK_WORDS(t.N), 0);
  for (int n = 0; n < t.N; n += 3) mask[n >> 5] |= 1u << (n & 31);
  std::vector<int32_t> penalised = {0, 1, 2, 17, 400, 2999};
  int max_cand = 0;
  for (int trial = 0; trial < 40; trial++) {
    const bool aligned = trial % 4 == 3;
    std::vector<float> x = aligned ? error_aligned_x(t, (int)(rng() % t.N), rng)
                                   : random_x(t.K, rng, trial % 2 ? 1.0f : 6.0f);
    if (trial % 5 == 4) {  // row 0 (and its near twins 1, 2) far ahead: nearly tied top logits
      for (int k = 0; k < t.K; k++) x[k] += 4.0f * q3::f16_to_f32(t.w[k]) / 0.05f;
    }
    for (int top_k : {1, 20, 64}) {
      q3::ScreenQuery q;
      q.top_k = top_k;
      q.margin = top_k == 1 ? 0.0f : 0.01f;
      q.max_candidates = t.N;
      q.allowed = trial % 3 == 2 ? mask.data() : nullptr;
      if (trial % 2) {
        q.exact = penalised.data();
        q.n_exact = (int)penalised.size();
      }
      const std::string what = "trial " + std::to_string(trial) + " top_k " + std::to_string(top_k) +
                               (q.allowed ? " masked" : "") + (aligned ? " error-aligned" : "");
      max_cand = std::max(max_cand, check_row(t, x, q, pool, what));
    }
  }
  std::printf("largest candidate count: %d of %d\n", max_cand, t.N);
  check(max_cand < t.N / 2, "the screen leaves most of the vocabulary out on random tables");

  // a cap below the needed count gives up and leaves the row as it was
  std::vector<float> x = random_x(t.K, rng, 1.0f), a(t.N);
  q3::ScreenNorms norms;
  q3::screened_head_approx(t.h, x.data(), 1, a.data(), &norms, pool);
  std::vector<float> before = a;
  q3::ScreenQuery q;
  q.top_k = 64;
  q.max_candidates = 10;
  check(q3::screen_row(t.h, t.w.data(), x.data(), norms, q, a.data()) == -1 && a == before,
        "screen_row gives up above max_candidates and leaves the row unchanged");
}

// sample_token on screened logits picks the full logits' token, draw after draw (same seeds, same histories).
void test_sampling_matches(q3::ThreadPool& pool) {
  Table t = make_table(2003, 128, 29, pool);
  std::mt19937_64 rng(31);
  struct Case {
    const char* name;
    float temperature, top_p, min_p, presence, repetition;
    int top_k;
    float x_scale;
  };
  const Case cases[] = {
      {"greedy", 0.0f, 1.0f, 0.0f, 0.0f, 1.0f, 0, 3.0f},
      {"top_k 20, T 0.7", 0.7f, 1.0f, 0.0f, 0.0f, 1.0f, 20, 3.0f},
      {"top_k 20, T 0.6, top_p 0.95 (thinking defaults)", 0.6f, 0.95f, 0.0f, 0.0f, 1.0f, 20, 3.0f},
      {"top_k 40, T 1.5, min_p 0.05, presence 1.5", 1.5f, 1.0f, 0.05f, 1.5f, 1.0f, 40, 3.0f},
      {"top_k 64, T 0.05 (peaked, clamped weights), repetition 1.3", 0.05f, 0.9f, 0.0f, 0.0f, 1.3f, 64, 30.0f},
      {"top_k 5, T 4 (flat)", 4.0f, 1.0f, 0.0f, 0.0f, 1.0f, 5, 0.3f},
  };
  const std::vector<int32_t> prompt = {0, 5, 9, 1999};
  std::vector<uint32_t> mask(Q3_MASK_WORDS(t.N), 0);
  for (int n = 1; n < t.N; n += 2) mask[n >> 5] |= 1u << (n & 31);
  for (const Case& c : cases) {
    for (bool masked : {false, true}) {
      q3_sampling p{};
      p.temperature = c.temperature;
      p.top_k = c.top_k;
      p.top_p = c.top_p;
      p.min_p = c.min_p;
      p.presence_penalty = c.presence;
      p.repetition_penalty = c.repetition;
      p.has_seed = 1;
      p.seed = 1234;
      p.skip_logprob = 1;
      q3::SeqSampler full(p, prompt.data(), (int)prompt.size()), screened(p, prompt.data(), (int)prompt.size()),
          gathered(p, prompt.data(), (int)prompt.size());
      q3::ScreenNeeds needs;
      check(q3::screen_needs(screened, &needs), std::string(c.name) + ": screenable");
      bool same = true, same_gathered = true, listed = true;
      int most = 0;
      std::vector<int32_t> cand;
      for (int draw = 0; draw < 60; draw++) {
        std::vector<float> x = random_x(t.K, rng, c.x_scale), lf(t.N), ls(t.N);
        q3::f16_matmul_cpu(t.w.data(), t.N, t.K, x.data(), 1, lf.data(), pool);
        q3::ScreenNorms norms;
        q3::screened_head_approx(t.h, x.data(), 1, ls.data(), &norms, pool);
        q3::screen_needs(screened, &needs);
        q3::ScreenQuery q;
        q.top_k = needs.top_k;
        q.margin = needs.margin;
        q.exact = needs.exact.data();
        q.n_exact = (int)needs.exact.size();
        q.allowed = masked ? mask.data() : nullptr;
        q.max_candidates = t.N;
        const int n = q3::screen_row(t.h, t.w.data(), x.data(), norms, q, ls.data(), &cand);
        most = std::max(most, n);
        // the list: the tokens whose logits are finite, ascending
        std::vector<int32_t> finite;
        for (int tok = 0; tok < t.N; tok++)
          if (std::isfinite(ls[tok])) finite.push_back(tok);
        listed = listed && (int)cand.size() == n && cand == finite;
        q3_sample_out of{}, os{}, og{};
        q3::sample_token(full, lf.data(), t.N, q.allowed, &of);
        q3::sample_token(screened, ls.data(), t.N, q.allowed, &os);
        q3::sample_token(gathered, ls.data(), t.N, q.allowed, &og, cand.data(), (int)cand.size());
        same = same && of.token == os.token;
        same_gathered = same_gathered && of.token == og.token && std::isnan(og.logprob);
      }
      const std::string name = std::string(c.name) + (masked ? " masked" : "");
      check(same, name + ": 60 screened samples equal the full head's");
      check(listed, name + ": screen_row lists its candidates, ascending");
      check(same_gathered, name + ": 60 samples on the candidates only equal the full head's (logprob NaN)");
      std::printf("%s%s: at most %d candidates of %d\n", c.name, masked ? " masked" : "", most, t.N);
    }
  }
}

// screen_row's two passes over the vocabulary give the same τ and candidates on the scalar and AVX-512 paths, for
// coarse logits full of ties, masks, tokens always computed exactly, top_k past the allowed count, and a cap.
void test_selection_paths(q3::ThreadPool& pool) {
  if (!q3::screened_head_fast()) return;
  namespace hs = q3::head_screen;
  Table t = make_table(3001, 64, 41, pool);  // 3001: the last block of 16 tokens is partial
  std::mt19937_64 rng(43);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> logits(t.N);
  std::vector<uint32_t> mask(Q3_MASK_WORDS(t.N)), always(Q3_MASK_WORDS(t.N));
  int compared = 0;
  bool same_tau = true, same_cand = true, same_capped = true;
  for (int trial = 0; trial < 60; trial++) {
    const float grid = trial % 3 == 0 ? 0.25f : 0.0f;  // coarse values: many equal logits and bounds
    for (auto& v : logits) v = grid > 0 ? std::round(nd(rng) / grid) * grid : nd(rng);
    for (auto& m : mask) m = (uint32_t)rng() | (uint32_t)rng();  // about 3 in 4 allowed
    for (auto& m : always) m = 0;
    for (int i = 0; i < (trial % 4) * 5; i++) {
      const int tok = (int)(rng() % t.N);
      always[tok >> 5] |= 1u << (tok & 31);
    }
    const hs::Selection s{&t.h, logits.data(), trial % 2 ? 0.0f : 0.5f * std::fabs(nd(rng)), std::fabs(nd(rng)),
                          trial % 5 == 1 ? nullptr : mask.data(), always.data()};
    for (int top_k : {1, 7, 20, 64, 2500, 4000}) {
      hs::TopK a(top_k), b(top_k);
      hs::lower_bounds_scalar(s, a);
      hs::lower_bounds_avx512(s, b);
      const float ta = a.full() ? a.top() : 0.0f, tb = b.full() ? b.top() : 0.0f;
      same_tau = same_tau && a.full() == b.full() && std::memcmp(&ta, &tb, 4) == 0;
      const float floor = a.full() ? a.top() - (top_k == 1 ? 0.0f : 0.05f) : -INFINITY;
      std::vector<int32_t> ca, cb;
      const bool oka = hs::candidates_scalar(s, floor, t.N, ca), okb = hs::candidates_avx512(s, floor, t.N, cb);
      same_cand = same_cand && oka && okb && ca == cb;
      const int cap = (int)ca.size() / 2;
      ca.clear(), cb.clear();
      same_capped = same_capped && hs::candidates_scalar(s, floor, cap, ca) == hs::candidates_avx512(s, floor, cap, cb) &&
                    ca == cb;
      compared++;
    }
  }
  check(same_tau, "screen selection: the AVX-512 pass gives the scalar pass's top_k-th lower bound (" +
                      std::to_string(compared) + " rows)");
  check(same_cand, "screen selection: the AVX-512 pass gives the scalar pass's candidates");
  check(same_capped, "screen selection: both passes stop at the same candidate cap");
}

void test_screen_needs() {
  q3_sampling p{};
  p.repetition_penalty = 1.0f;
  p.skip_logprob = 1;
  const int32_t prompt[] = {3, 4};
  auto needs = [&](const q3_sampling& s) { return q3::screen_needs(q3::SeqSampler(s, prompt, 2), nullptr); };
  check(needs(p), "greedy without logprobs is screenable");
  q3_sampling q = p;
  q.skip_logprob = 0;
  check(!needs(q), "a caller that reads logprob gets the full head");
  q = p;
  q.n_logprobs = 1;
  check(!needs(q), "top-n logprobs need the full head");
  q = p;
  q.temperature = 0.7f;
  check(!needs(q), "temperature without top_k (the full distribution) needs the full head");
  q.top_k = 20;
  check(needs(q), "top_k 20 is screenable");
  q.top_k = q3::kMaxScreenTopK + 1;
  check(!needs(q), "top_k above the limit gets the full head");
}

}  // namespace

int main() {
  q3::ThreadPool pool(2);
  test_rows_match_full(pool);
  test_kernels_agree(pool);
  test_candidates(pool);
  test_sampling_matches(pool);
  test_selection_paths(pool);
  test_screen_needs();
  return q3::test::report();
}
