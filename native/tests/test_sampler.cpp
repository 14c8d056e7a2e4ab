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

// Bit t of a token mask (xgrammar's layout: bit t % 32 of word t / 32).
std::vector<uint32_t> mask_of(const std::vector<int>& allowed, int vocab) {
  std::vector<uint32_t> m(Q3_MASK_WORDS(vocab), 0);
  for (int t : allowed) m[t / 32] |= 1u << (t % 32);
  return m;
}

// With a mask, the expected distribution is that of the logits with every disallowed token at -inf.
void check_distribution(const char* name, const std::vector<float>& logits, q3_sampling s, int draws,
                        const uint32_t* mask = nullptr) {
  std::vector<float> model = logits;
  if (mask)
    for (size_t t = 0; t < model.size(); t++)
      if (!(mask[t / 32] >> (t % 32) & 1u)) model[t] = -INFINITY;
  const std::vector<double> want = expected(model, s.temperature, s.top_k, s.top_p, s.min_p);
  std::vector<int> seen(logits.size(), 0);
  s.has_seed = 1;
  s.seed = 1234;
  q3::SeqSampler sampler(s, nullptr, 0);
  q3_sample_out out;
  for (int i = 0; i < draws; i++) {
    q3::sample_token(sampler, logits.data(), (int)logits.size(), mask, &out);
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
  q3::sample_token(greedy, logits.data(), (int)logits.size(), nullptr, &out);
  check(out.token == 5, "greedy = argmax");
  g.presence_penalty = 0.5f;
  int32_t prompt[1] = {10};
  q3::SeqSampler pen(g, prompt, 1);
  q3::sample_token(pen, logits.data(), (int)logits.size(), nullptr, &out);  // 5 (3.1) generated once
  q3::sample_token(pen, logits.data(), (int)logits.size(), nullptr, &out);  // 5 now 2.6 < 2.9 of token 10
  check(out.token == 10, "presence penalty moves greedy to the runner-up");
  g.presence_penalty = 0;
  g.repetition_penalty = 2.0f;
  q3::SeqSampler rep(g, prompt, 1);  // token 10 (2.9, in the prompt) -> 1.45
  q3::sample_token(rep, logits.data(), (int)logits.size(), nullptr, &out);
  check(out.token == 5, "repetition penalty keeps the unpenalised best");
  q3::sample_token(rep, logits.data(), (int)logits.size(), nullptr, &out);  // 5 -> 1.55, so 0 (2.0) wins
  check(out.token == 0, "repetition penalty divides a repeated positive logit");

  // Logprobs are log-softmax of the raw logits.
  double z = 0;
  for (float l : logits) z += std::exp((double)l);
  q3_sampling lp = base;
  lp.temperature = 0;
  lp.n_logprobs = 3;
  q3::SeqSampler lps(lp, nullptr, 0);
  q3::sample_token(lps, logits.data(), (int)logits.size(), nullptr, &out);
  check(std::fabs(out.logprob - (3.1 - std::log(z))) < 1e-5, "logprob of the chosen token");
  check(out.n_top == 3 && out.top_tokens[0] == 5 && out.top_tokens[1] == 10 && out.top_tokens[2] == 0, "top-3 logprobs order");

  // Token masks: only allowed tokens are ever drawn, in the proportions of the masked distribution, under every
  // rule (the best token, 5, is masked out; 9 is allowed but ~e^-20 unlikely).
  const std::vector<int> allowed = {1, 2, 4, 9, 11};
  const std::vector<uint32_t> mask = mask_of(allowed, (int)logits.size());
  check_distribution("mask, T=1", logits, base, draws, mask.data());
  s = base;
  s.top_k = 3;
  check_distribution("mask, top-k 3", logits, s, draws, mask.data());
  s = base;
  s.top_k = 8;  // more than the allowed tokens: the cut falls among weight-0 tokens, which must never be picked
  s.top_p = 0.999f;
  check_distribution("mask, top-k 8 > allowed, top-p 0.999", logits, s, draws, mask.data());
  s = base;
  s.top_p = 0.5f;
  s.min_p = 0.2f;
  check_distribution("mask, top-p 0.5, min-p 0.2", logits, s, draws, mask.data());
  {
    const std::vector<uint32_t> one = mask_of({9}, (int)logits.size());
    q3_sampling t = base;
    t.temperature = 1.5f;
    t.top_k = 5;
    t.has_seed = 1;
    q3::SeqSampler only(t, nullptr, 0);
    bool always = true;
    for (int i = 0; i < 2000; i++) {
      q3::sample_token(only, logits.data(), (int)logits.size(), one.data(), &out);
      always = always && out.token == 9;
    }
    check(always, "a mask allowing one very unlikely token always yields it");
  }
  g = base;
  g.temperature = 0;
  q3::SeqSampler masked_greedy(g, nullptr, 0);
  q3::sample_token(masked_greedy, logits.data(), (int)logits.size(), mask.data(), &out);
  check(out.token == 1, "greedy = argmax of the allowed tokens (first of a tie)");
  {
    // Logprobs under a mask: log-softmax over the allowed tokens; alternatives only from them, however many asked.
    double zm = 0;
    for (int t : allowed) zm += std::exp((double)logits[t]);
    q3_sampling m = base;
    m.temperature = 0;
    m.n_logprobs = 8;
    q3::SeqSampler mls(m, nullptr, 0);
    q3::sample_token(mls, logits.data(), (int)logits.size(), mask.data(), &out);
    check(std::fabs(out.logprob - (1.5 - std::log(zm))) < 1e-5, "masked logprob of the chosen token");
    bool tops = out.n_top == 5 && out.top_tokens[0] == 1 && out.top_tokens[1] == 2 && out.top_tokens[2] == 11 &&
                out.top_tokens[3] == 4 && out.top_tokens[4] == 9;
    for (int i = 0; tops && i < out.n_top; i++) tops = std::isfinite(out.top_logprobs[i]);
    check(tops, "masked top logprobs: the 5 allowed tokens, finite, in order");
    // A forced token ignores the mask; outside it, its logprob comes from the raw logits (finite).
    int32_t forced = 5;
    mls.forced.push_back(forced);
    q3::sample_token(mls, logits.data(), (int)logits.size(), mask.data(), &out);
    check(out.token == 5 && out.forced == 1 && std::fabs(out.logprob - (3.1 - std::log(z))) < 1e-5,
          "a forced token outside the mask is emitted with its raw logprob");
  }
  {
    // Penalties apply to the allowed tokens: frequency 0.6 takes token 1 (1.5) below 11 (0.5) after two picks.
    q3_sampling f = base;
    f.temperature = 0;
    f.frequency_penalty = 0.6f;
    q3::SeqSampler freq(f, nullptr, 0);
    const std::vector<uint32_t> two = mask_of({1, 11}, (int)logits.size());
    int picks[3];
    for (int& t : picks) {
      q3::sample_token(freq, logits.data(), (int)logits.size(), two.data(), &out);
      t = out.token;
    }
    check(picks[0] == 1 && picks[1] == 1 && picks[2] == 11, "frequency penalty among masked tokens");
  }
  check(q3::mask_allows_any(mask.data(), (int)logits.size()), "mask_allows_any: a mask with allowed tokens");
  std::vector<uint32_t> tail_only(Q3_MASK_WORDS(40), 0);
  tail_only[1] = 1u << 9;  // token 41: past a 40-token vocabulary
  check(!q3::mask_allows_any(tail_only.data(), 40), "mask_allows_any ignores bits past the vocabulary");
  tail_only[1] = 1u << 7;  // token 39
  check(q3::mask_allows_any(tail_only.data(), 40), "mask_allows_any sees the last partial word");

  std::printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}
