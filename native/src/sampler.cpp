// Sampling order follows vLLM/HF: logprobs are reported from the raw logits; then repetition, frequency and presence
// penalties; then greedy, or temperature → top-k → top-p → min-p → draw.
#include "sampler.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

namespace q3 {

SeqSampler::SeqSampler(const q3_sampling& p, const int32_t* prompt, int32_t n_prompt) : params(p) {
  uint64_t seed = p.has_seed ? p.seed : ((uint64_t)std::random_device{}() << 32) ^ std::random_device{}();
  rng.seed(seed);
  for (int32_t i = 0; i < n_prompt; i++) seen.insert(prompt[i]);
}

namespace {

// e^x for x <= 0, branch-free so the loop below vectorises (~1e-7 relative error): 2^floor(t) times a degree-6
// polynomial for 2^frac(t). The log-sum-exp over a 152k vocabulary runs on every sampled token, so it must be cheap.
inline float exp_nonpositive(float x) {
  x = x < -87.0f ? -87.0f : x;
  const float t = x * 1.44269504f;
  int i = (int)t;
  i -= (float)i > t ? 1 : 0;
  const float f = t - (float)i;
  const float p = 1.0f + f * (0.693147182f + f * (0.240226507f + f * (0.0555041087f + f * (0.00961812911f +
                  f * (0.00133335581f + f * 0.000154035304f)))));
  const uint32_t bits = (uint32_t)(i + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, 4);
  return p * scale;
}

double log_sum_exp(const float* logits, int vocab, float max_l) {
  constexpr int kLanes = 16;
  float acc[kLanes] = {};
  int i = 0;
  for (; i + kLanes <= vocab; i += kLanes)
    for (int j = 0; j < kLanes; j++) acc[j] += exp_nonpositive(logits[i + j] - max_l);
  double sum = 0;
  for (; i < vocab; i++) sum += exp_nonpositive(logits[i] - max_l);
  for (float a : acc) sum += a;
  return max_l + std::log(sum);
}

void fill_logprobs(const float* logits, int vocab, int32_t token, int n_top, q3_sample_out* out) {
  const float max_l = *std::max_element(logits, logits + vocab);
  const double log_z = log_sum_exp(logits, vocab, max_l);
  out->logprob = (float)(logits[token] - log_z);
  n_top = std::clamp(n_top, 0, std::min(Q3_MAX_LOGPROBS, vocab));
  out->n_top = n_top;
  if (n_top == 0) return;
  std::vector<int32_t> idx(vocab);
  std::iota(idx.begin(), idx.end(), 0);
  std::partial_sort(idx.begin(), idx.begin() + n_top, idx.end(), [&](int32_t a, int32_t b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  });
  for (int i = 0; i < n_top; i++) {
    out->top_tokens[i] = idx[i];
    out->top_logprobs[i] = (float)(logits[idx[i]] - log_z);
  }
}

int32_t argmax(const std::vector<float>& l) {
  return (int32_t)(std::max_element(l.begin(), l.end()) - l.begin());  // first maximum: deterministic ties
}

int32_t draw(SeqSampler& s, std::vector<float>& l) {
  const q3_sampling& p = s.params;
  const int vocab = (int)l.size();
  const float inv_t = 1.0f / p.temperature;
  float max_l = *std::max_element(l.begin(), l.end());
  // Candidates within e^-40 of the best token: the rest cannot matter at any top-p (mass < vocab * 4e-18).
  std::vector<int32_t> cand;
  cand.reserve(1024);
  for (int i = 0; i < vocab; i++)
    if ((l[i] - max_l) * inv_t > -40.0f) cand.push_back(i);
  auto by_logit = [&](int32_t a, int32_t b) { return l[a] > l[b] || (l[a] == l[b] && a < b); };
  if (p.top_k > 0 && p.top_k < (int)cand.size()) {
    std::partial_sort(cand.begin(), cand.begin() + p.top_k, cand.end(), by_logit);
    cand.resize(p.top_k);
  } else {
    std::sort(cand.begin(), cand.end(), by_logit);
  }
  std::vector<double> prob(cand.size());
  double sum = 0;
  for (size_t i = 0; i < cand.size(); i++) sum += prob[i] = std::exp((double)(l[cand[i]] - max_l) * inv_t);
  for (double& q : prob) q /= sum;
  size_t keep = cand.size();
  if (p.top_p > 0 && p.top_p < 1) {
    double cum = 0;
    for (size_t i = 0; i < cand.size(); i++) {
      cum += prob[i];
      if (cum >= p.top_p) {
        keep = i + 1;
        break;
      }
    }
  }
  if (p.min_p > 0) {
    const double floor = p.min_p * prob[0];
    size_t k = 1;
    while (k < keep && prob[k] >= floor) k++;
    keep = k;
  }
  double total = 0;
  for (size_t i = 0; i < keep; i++) total += prob[i];
  double u = std::uniform_real_distribution<double>(0.0, total)(s.rng);
  for (size_t i = 0; i < keep; i++) {
    u -= prob[i];
    if (u < 0) return cand[i];
  }
  return cand[keep - 1];
}

}  // namespace

void sample_token(SeqSampler& s, const float* logits, int vocab, q3_sample_out* out) {
  const q3_sampling& p = s.params;
  int32_t token;
  out->forced = 0;
  if (!s.forced.empty()) {
    token = s.forced.front();
    s.forced.pop_front();
    out->forced = 1;
  } else {
    std::vector<float> l(logits, logits + vocab);
    if (p.repetition_penalty > 0 && p.repetition_penalty != 1.0f)
      for (int32_t t : s.seen) l[t] = l[t] > 0 ? l[t] / p.repetition_penalty : l[t] * p.repetition_penalty;
    if (p.frequency_penalty != 0 || p.presence_penalty != 0)
      for (auto [t, n] : s.generated) l[t] -= p.frequency_penalty * n + p.presence_penalty;
    token = p.temperature <= 0 ? argmax(l) : draw(s, l);
  }
  out->token = token;
  fill_logprobs(logits, vocab, token, p.n_logprobs, out);
  s.seen.insert(token);
  s.generated[token]++;
}

}  // namespace q3
