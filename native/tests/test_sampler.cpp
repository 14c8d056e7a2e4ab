// Sampler checks against a plain double-precision model of each rule: empirical token frequencies over many draws
// (fixed seeds) must match softmax(logits / T) restricted by top-k, top-p, min-p, within 5 binomial standard
// deviations; greedy and penalties are checked exactly. Prints "N passed, M failed".
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <vector>

#include "sampler.h"

namespace {

int passed = 0, failed = 0;

void check(bool ok, const char* what) {
  if (ok) {
    passed++;
  } else {
    failed++;
    std::printf("FAIL: %s\n", what);
  }
}

// Expected distribution: temperature, then top-k, then top-p on the renormalised set, then min-p.
std::vector<double> expected(const std::vector<float>& logits, float t, int top_k, float top_p, float min_p) {
  const int n = (int)logits.size();
  std::vector<int> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return logits[a] > logits[b]; });
  std::vector<double> p(n);
  for (int i = 0; i < n; i++) p[i] = std::exp((double)(logits[i] - logits[order[0]]) / t);
  int keep = n;
  if (top_k > 0 && top_k < n) keep = top_k;
  double z = 0;
  for (int i = 0; i < keep; i++) z += p[order[i]];
  if (top_p > 0 && top_p < 1) {
    double cum = 0;
    for (int i = 0; i < keep; i++)
      if ((cum += p[order[i]] / z) >= top_p) {
        keep = i + 1;
        break;
      }
  }
  if (min_p > 0) {
    int k = 1;
    while (k < keep && p[order[k]] >= min_p) k++;
    keep = k;
  }
  std::vector<double> out(n, 0.0);
  double kept = 0;
  for (int i = 0; i < keep; i++) kept += p[order[i]];
  for (int i = 0; i < keep; i++) out[order[i]] = p[order[i]] / kept;
  return out;
}

void check_distribution(const char* name, const std::vector<float>& logits, q3_sampling s, int draws) {
  const std::vector<double> want = expected(logits, s.temperature, s.top_k, s.top_p, s.min_p);
  std::vector<int> seen(logits.size(), 0);
  s.has_seed = 1;
  s.seed = 1234;
  q3::SeqSampler sampler(s, nullptr, 0);
  q3_sample_out out;
  for (int i = 0; i < draws; i++) {
    q3::sample_token(sampler, logits.data(), (int)logits.size(), &out);
    seen[out.token]++;
    sampler.generated.clear();  // keep penalties (none here) and history from growing
  }
  bool ok = true;
  for (size_t i = 0; i < logits.size(); i++) {
    const double mean = want[i] * draws, sd = std::sqrt(draws * want[i] * (1 - want[i]));
    if (want[i] == 0 ? seen[i] != 0 : std::fabs(seen[i] - mean) > 5 * sd + 1) {
      std::printf("  %s: token %zu seen %d, expected %.1f\n", name, i, seen[i], mean);
      ok = false;
    }
  }
  check(ok, name);
}

}  // namespace

int main() {
  // A small vocabulary with a spread of logits, including ties and very unlikely tokens.
  std::vector<float> logits = {2.0f, 1.5f, 1.5f, 0.3f, -0.7f, 3.1f, -4.0f, 0.0f, 1.0f, -20.0f, 2.9f, 0.5f};
  q3_sampling base{};
  base.repetition_penalty = 1.0f;
  base.temperature = 1.0f;
  const int draws = 60000;

  check_distribution("full distribution, T=1", logits, base, draws);
  q3_sampling s = base;
  s.temperature = 0.6f;
  check_distribution("T=0.6", logits, s, draws);
  s = base;
  s.top_k = 3;
  check_distribution("top-k 3", logits, s, draws);
  s = base;
  s.top_p = 0.8f;
  check_distribution("top-p 0.8", logits, s, draws);
  s = base;
  s.temperature = 0.7f;
  s.top_k = 5;
  s.top_p = 0.9f;
  check_distribution("T=0.7, top-k 5, top-p 0.9 (renormalised within top-k)", logits, s, draws);
  s = base;
  s.min_p = 0.3f;
  check_distribution("min-p 0.3", logits, s, draws);

  // Greedy picks the first maximum; penalties change it exactly as defined.
  q3_sampling g = base;
  g.temperature = 0;
  q3::SeqSampler greedy(g, nullptr, 0);
  q3_sample_out out;
  q3::sample_token(greedy, logits.data(), (int)logits.size(), &out);
  check(out.token == 5, "greedy = argmax");
  g.presence_penalty = 0.5f;
  int32_t prompt[1] = {10};
  q3::SeqSampler pen(g, prompt, 1);
  q3::sample_token(pen, logits.data(), (int)logits.size(), &out);  // 5 (3.1) generated once
  q3::sample_token(pen, logits.data(), (int)logits.size(), &out);  // 5 now 2.6 < 2.9 of token 10
  check(out.token == 10, "presence penalty moves greedy to the runner-up");
  g.presence_penalty = 0;
  g.repetition_penalty = 2.0f;
  q3::SeqSampler rep(g, prompt, 1);  // token 10 (2.9, in the prompt) -> 1.45
  q3::sample_token(rep, logits.data(), (int)logits.size(), &out);
  check(out.token == 5, "repetition penalty keeps the unpenalised best");
  q3::sample_token(rep, logits.data(), (int)logits.size(), &out);  // 5 -> 1.55, so 0 (2.0) wins
  check(out.token == 0, "repetition penalty divides a repeated positive logit");

  // Logprobs are log-softmax of the raw logits.
  double z = 0;
  for (float l : logits) z += std::exp((double)l);
  q3_sampling lp = base;
  lp.temperature = 0;
  lp.n_logprobs = 3;
  q3::SeqSampler lps(lp, nullptr, 0);
  q3::sample_token(lps, logits.data(), (int)logits.size(), &out);
  check(std::fabs(out.logprob - (3.1 - std::log(z))) < 1e-5, "logprob of the chosen token");
  check(out.n_top == 3 && out.top_tokens[0] == 5 && out.top_tokens[1] == 10 && out.top_tokens[2] == 0, "top-3 logprobs order");

  std::printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}
