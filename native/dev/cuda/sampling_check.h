// The comparison of the device sampler (native/kernels/cuda/sampling.cuh) with the CPU sampler
// (native/src/sampler.cpp), shared by gpu_check (the kernels) and engine_check (whole engines through the C ABI;
// --self tests this harness without a GPU): the probability the CPU sampler's rules give each token of a row, in
// double precision, and a chi-square goodness-of-fit of observed token counts against it. "Equal in distribution"
// here means: the draws of both samplers fit the same expected distribution, and a wrong distribution is rejected
// (the harness's own test).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <numeric>
#include <random>
#include <string>
#include <unordered_set>
#include <vector>

#include "qwen3.h"

namespace q3check {

// Sampler state beyond the parameters.
struct History {
  std::vector<int32_t> seen;             // prompt and output tokens (repetition penalty)
  std::map<int32_t, int32_t> generated;  // output token -> occurrences (presence and frequency penalties)
};

inline bool allowed_bit(const uint32_t* allowed, int i) { return !allowed || ((allowed[i >> 5] >> (i & 31)) & 1u); }

// The logits after the penalties, in the CPU sampler's float arithmetic, with disallowed tokens at -inf.
inline std::vector<float> penalised(const float* logits, int V, const q3_sampling& p, const History& h,
                                    const uint32_t* allowed = nullptr) {
  std::vector<float> l(logits, logits + V);
  if (p.repetition_penalty > 0 && p.repetition_penalty != 1.0f)
    for (int32_t t : std::unordered_set<int32_t>(h.seen.begin(), h.seen.end()))
      l[t] = l[t] > 0 ? l[t] / p.repetition_penalty : l[t] * p.repetition_penalty;
  if (p.frequency_penalty != 0 || p.presence_penalty != 0)
    for (auto [t, n] : h.generated) l[t] -= p.frequency_penalty * n + p.presence_penalty;
  for (int i = 0; i < V; i++)
    if (!allowed_bit(allowed, i)) l[i] = -INFINITY;
  return l;
}

// Tokens by weight w = exp((l - max) / T), best first, lower id first on ties (the CPU sampler's order).
inline std::vector<int> by_weight(const std::vector<double>& w) {
  std::vector<int> order(w.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return w[a] > w[b]; });
  return order;
}

// Probability of each token under the CPU sampler's rules: the bitmask (disallowed: never), penalties; greedy takes
// the first maximum; otherwise
// w = exp((l - max) / T), top-k keeps exactly k by weight, top-p the shortest prefix reaching top_p of the top-k
// set's weight (of all weights without top-k), min-p the prefix with w >= min_p (the best token always), and the
// draw is proportional to w. `kept_order` (optional) gets the kept tokens in the CPU sampler's walk order.
inline std::vector<double> expected_distribution(const float* logits, int V, const q3_sampling& p, const History& h,
                                                 const uint32_t* allowed = nullptr,
                                                 std::vector<int>* kept_order = nullptr) {
  const std::vector<float> l = penalised(logits, V, p, h, allowed);
  std::vector<double> q(V, 0.0);
  const int am = (int)(std::max_element(l.begin(), l.end()) - l.begin());
  if (p.temperature <= 0) {
    q[am] = 1;
    if (kept_order) *kept_order = {am};
    return q;
  }
  std::vector<double> w(V);
  for (int i = 0; i < V; i++) w[i] = l[i] == -INFINITY ? 0.0 : std::exp(((double)l[i] - l[am]) / p.temperature);
  const std::vector<int> order = by_weight(w);
  int keep = 0;
  while (keep < V && w[order[keep]] > 0) keep++;
  if (p.top_k > 0) keep = std::min(keep, p.top_k);
  if (p.top_p > 0 && p.top_p < 1) {
    double denom = 0, cum = 0;
    for (int i = 0; i < (p.top_k > 0 ? keep : V); i++) denom += w[order[i]];
    for (int i = 0; i < keep; i++)
      if ((cum += w[order[i]]) >= p.top_p * denom) {
        keep = i + 1;
        break;
      }
  }
  if (p.min_p > 0) {
    int k = 1;
    while (k < keep && w[order[k]] >= p.min_p) k++;
    keep = k;
  }
  double kept = 0;
  for (int i = 0; i < keep; i++) kept += w[order[i]];
  for (int i = 0; i < keep; i++) q[order[i]] = w[order[i]] / kept;
  if (kept_order) kept_order->assign(order.begin(), order.begin() + keep);
  return q;
}

// The token a draw with u in [0, 1) gives when the kept tokens are walked in `walk` order.
inline int draw_with(const std::vector<double>& q, const std::vector<int>& walk, double u) {
  double cum = 0;
  for (int t : walk)
    if (u < (cum += q[t])) return t;
  return walk.back();
}

struct Fit {
  double chi2 = 0, critical = 0, tv = 0;  // tv: total variation distance of the observed frequencies from q
  int df = 0;
  long n = 0, outside = 0;                // outside: draws of tokens with q = 0
  bool pass = false;
  std::string summary() const {
    char b[160];
    std::snprintf(b, sizeof b, "chi2 %.1f (df %d, limit %.1f), TV %.3f, %ld/%ld outside the kept set", chi2, df,
                  critical, tv, outside, n);
    return b;
  }
};

// Chi-square of `counts` against q: tokens expecting >= 5 draws are bins of their own, the others one pooled bin
// (folded into the smallest bin when it expects < 5); the limit is the chi-square quantile at p = 1e-4
// (Wilson-Hilferty). Draws outside the kept set fail beyond `outside_allowed`.
inline Fit fit(const std::vector<long>& counts, const std::vector<double>& q, long outside_allowed = 0) {
  Fit f;
  for (long c : counts) f.n += c;
  std::vector<std::pair<double, double>> bins;  // (expected, observed)
  double pool_e = 0, pool_o = 0;
  for (size_t i = 0; i < q.size(); i++) {
    f.tv += std::fabs((double)counts[i] / std::max<long>(f.n, 1) - q[i]) / 2;
    if (q[i] == 0) {
      f.outside += counts[i];
      continue;
    }
    const double e = q[i] * f.n;
    if (e >= 5) bins.push_back({e, (double)counts[i]});
    else pool_e += e, pool_o += counts[i];
  }
  if (pool_e >= 5 || bins.empty()) {
    bins.push_back({pool_e, pool_o});
  } else if (pool_e > 0) {
    auto smallest = std::min_element(bins.begin(), bins.end());
    smallest->first += pool_e;
    smallest->second += pool_o;
  }
  for (auto [e, o] : bins)
    if (e > 0) f.chi2 += (o - e) * (o - e) / e;
  f.df = (int)bins.size() - 1;
  if (f.df > 0) {
    const double z = 3.719, a = 2.0 / (9.0 * f.df);  // z: the normal quantile at 1 - 1e-4
    f.critical = f.df * std::pow(1 - a + z * std::sqrt(a), 3);
  }
  f.pass = f.outside <= outside_allowed && (f.df == 0 || f.chi2 <= f.critical);
  return f;
}

// A row shaped like a language model's logits: a broad normal bulk, a handful of leading tokens and an exact tie
// among them.
inline std::vector<float> synthetic_logits(int V, uint64_t seed, float bulk_sd, float lead) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> bulk(0.f, bulk_sd);
  std::vector<float> l(V);
  for (auto& x : l) x = bulk(rng);
  std::uniform_int_distribution<int> tok(0, V - 1);
  for (int k = 0; k < 12; k++) l[tok(rng)] = lead - 0.6f * k;
  const int a = tok(rng), b = tok(rng);
  l[a] = l[b] = lead - 2.0f;
  return l;
}

inline q3_sampling params(float t, int top_k, float top_p, float min_p, float presence = 0, float frequency = 0,
                          float repetition = 1, int n_logprobs = 0) {
  q3_sampling p{};
  p.temperature = t;
  p.top_k = top_k;
  p.top_p = top_p;
  p.min_p = min_p;
  p.presence_penalty = presence;
  p.frequency_penalty = frequency;
  p.repetition_penalty = repetition;
  p.n_logprobs = n_logprobs;
  return p;
}

// The sampling configurations both check programs compare, with the state the penalty case needs.
struct Case {
  std::string name;
  q3_sampling p;
  bool history;  // penalties over a prompt and earlier output
  bool mask;     // an allowed-token bitmask (the device side only until the CPU sampler takes one)
};
inline std::vector<Case> cases() {
  return {
      {"greedy", params(0, 0, 1, 0), false, false},
      {"T 0.6 top-k 20 top-p 0.95 (Qwen thinking)", params(0.6f, 20, 0.95f, 0), false, false},
      {"T 0.7 top-k 20 top-p 0.8 (Qwen non-thinking)", params(0.7f, 20, 0.8f, 0), false, false},
      {"T 1.0 full distribution", params(1.0f, 0, 1, 0), false, false},
      {"T 1.0 top-p 0.9", params(1.0f, 0, 0.9f, 0), false, false},
      {"T 1.3 min-p 0.05", params(1.3f, 0, 1, 0.05f), false, false},
      {"T 0.9 top-k 3000 (beyond the sorted list)", params(0.9f, 3000, 1, 0), false, false},
      {"T 0.8 top-k 50, penalties rep 1.3 presence 0.5 frequency 0.3", params(0.8f, 50, 1, 0, 0.5f, 0.3f, 1.3f),
       true, false},
      {"greedy, penalties rep 1.5 presence 1.0 frequency 0.5", params(0, 0, 1, 0, 1.0f, 0.5f, 1.5f), true, false},
      {"T 1.0 top-k 40, bitmask of 2/3 of the tokens", params(1.0f, 40, 1, 0), false, true},
  };
}

// A prompt and earlier output for the penalty cases: the row's 10 best tokens seen, the best three generated.
inline History history_for(const std::vector<float>& l, uint64_t seed) {
  History h;
  std::vector<double> w(l.begin(), l.end());
  const std::vector<int> order = by_weight(w);
  std::mt19937_64 rng(seed);
  for (int k = 0; k < 10; k++) h.seen.push_back(order[k]);
  for (int k = 0; k < 40; k++) h.seen.push_back((int32_t)(rng() % l.size()));
  h.generated[order[0]] = 3;
  h.generated[order[1]] = 1;
  h.generated[order[2]] = 2;
  for (auto [t, n] : h.generated) h.seen.push_back(t);
  return h;
}

// Bitmask allowing 2/3 of the tokens (not the row's best one).
inline std::vector<uint32_t> mask_for(const std::vector<float>& l) {
  std::vector<uint32_t> m((l.size() + 31) / 32, 0);
  for (size_t i = 0; i < l.size(); i++)
    if (i % 3 != 1) m[i >> 5] |= 1u << (i & 31);
  const int best = (int)(std::max_element(l.begin(), l.end()) - l.begin());
  m[best >> 5] &= ~(1u << (best & 31));
  return m;
}

}  // namespace q3check
