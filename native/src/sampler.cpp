// Sampling order follows vLLM/HF: a token mask (structured outputs) leaves only the allowed tokens (as if the others'
// logits were -inf); logprobs are reported from those tokens' raw logits; then repetition, frequency and presence
// penalties; then greedy, or temperature → top-k → top-p → min-p → draw.
#include "sampler.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>

namespace q3 {

SeqSampler::SeqSampler(const q3_sampling& p, const int32_t* prompt, int32_t n_prompt) : params(p) {
  seed = p.has_seed ? p.seed : ((uint64_t)std::random_device{}() << 32) ^ std::random_device{}();
  rng.seed(seed);
  for (int32_t i = 0; i < n_prompt; i++) seen.insert(prompt[i]);
}

namespace {

// e^x for x <= 0 (~1e-7 relative error), written so loops over the vocabulary vectorise even on plain SSE2:
// round t = x·log2(e) to an integer n with the 1.5·2^23 trick, 2^(t-n) by a degree-6 polynomial on [-0.5, 0.5],
// 2^n through the exponent bits. Sampling runs it over all 151,936 logits for every token.
inline float exp_nonpositive(float x) {
  x = std::max(x, -87.0f);
  const float t = x * 1.44269504f;
  const float n = (t + 12582912.0f) - 12582912.0f;
  const float f = t - n;
  const float p = 1.0f + f * (0.693147182f + f * (0.240226507f + f * (0.0555041087f + f * (0.00961812911f +
                  f * (0.00133335581f + f * 0.000154035304f)))));
  const int32_t bits = ((int32_t)n + 127) << 23;
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

// Log-normaliser of a distribution's logits, and its top-n alternatives (indices into `logits`) written to `out`.
double normalise_and_top(const float* logits, int n, int n_top, q3_sample_out* out) {
  const float max_l = *std::max_element(logits, logits + n);
  const double log_z = log_sum_exp(logits, n, max_l);
  n_top = std::clamp(n_top, 0, std::min(Q3_MAX_LOGPROBS, n));
  out->n_top = n_top;
  if (n_top == 0) return log_z;
  std::vector<int32_t> idx(n);
  std::iota(idx.begin(), idx.end(), 0);
  std::partial_sort(idx.begin(), idx.begin() + n_top, idx.end(), [&](int32_t a, int32_t b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  });
  for (int i = 0; i < n_top; i++) {
    out->top_tokens[i] = idx[i];
    out->top_logprobs[i] = (float)(logits[idx[i]] - log_z);
  }
  return log_z;
}

inline bool allows(const uint32_t* mask, int32_t t) { return mask[t >> 5] >> (t & 31) & 1u; }

int32_t argmax(const std::vector<float>& l) {
  return (int32_t)(std::max_element(l.begin(), l.end()) - l.begin());  // first maximum: deterministic ties
}

// Weight of every token relative to the best one, w = exp((l - max) / T) in (0, 1]; the float exponent of w is its
// log2 bucket (127 for the best token, lower for less likely ones), which lets top-k and top-p find their cut with
// one histogram pass instead of sorting the whole vocabulary.
//
// `absent` more tokens (a screened row's non-candidates, not in l) have logit -inf: they count as the full row's
// -inf logits do (the weight exp_nonpositive gives -inf, in its bucket), so the cuts come out as on the full row. When
// the cut reaches their bucket, which tokens are kept would depend on them: -1, the caller draws on the full row.
int32_t draw(SeqSampler& s, const std::vector<float>& l, int absent = 0) {
  const q3_sampling& p = s.params;
  const int n = (int)l.size(), vocab = n + absent;
  const float inv_t = 1.0f / p.temperature;
  const float max_l = *std::max_element(l.begin(), l.end());
  thread_local std::vector<float> w;
  w.resize(n);
  for (int i = 0; i < n; i++) w[i] = exp_nonpositive((l[i] - max_l) * inv_t);
  auto bucket = [&](int i) {
    uint32_t bits;
    std::memcpy(&bits, &w[i], 4);
    return (int)(bits >> 23);  // 0..127
  };
  double mass[128] = {}, total = 0;
  int count[128] = {};
  for (int i = 0; i < n; i++) {
    const int b = bucket(i);
    mass[b] += w[i];
    count[b]++;
  }
  int absent_bucket = -1;
  if (absent > 0) {
    const float w_absent = exp_nonpositive(-INFINITY);
    uint32_t bits;
    std::memcpy(&bits, &w_absent, 4);
    absent_bucket = (int)(bits >> 23);
    mass[absent_bucket] += (double)absent * w_absent;
    count[absent_bucket] += absent;
  }
  for (double m : mass) total += m;

  const bool top_k = p.top_k > 0 && p.top_k < vocab, top_p = p.top_p > 0 && p.top_p < 1;
  if (absent > 0 && !top_k) return -1;  // (a screened row keeps every allowed token then: not reached)
  if (!top_k && !top_p && p.min_p <= 0) {  // the full distribution: no order needed
    double u = std::uniform_real_distribution<double>(0.0, total)(s.rng);
    for (int i = 0; i < n; i++)
      if ((u -= w[i]) < 0) return i;
    return (int32_t)(std::max_element(w.begin(), w.end()) - w.begin());
  }
  // Lowest bucket that can still hold a kept token: top-k's k-th token, or the nucleus' edge (top-p without top-k;
  // with top-k, top-p applies to the renormalised top-k set, which is small and handled exactly below).
  int floor_bucket = 0;
  if (top_k) {
    for (int b = 127, seen = 0; b >= 0; b--)
      if ((seen += count[b]) >= p.top_k) {
        floor_bucket = b;
        break;
      }
  } else if (top_p) {
    double acc = 0;
    for (int b = 127; b >= 0; b--)
      if ((acc += mass[b]) >= p.top_p * total) {
        floor_bucket = b;
        break;
      }
  }
  if (floor_bucket <= absent_bucket) return -1;
  thread_local std::vector<int32_t> cand;
  cand.clear();
  for (int i = 0; i < n; i++)
    if (bucket(i) >= floor_bucket) cand.push_back(i);
  std::sort(cand.begin(), cand.end(), [&](int32_t a, int32_t b) { return w[a] > w[b] || (w[a] == w[b] && a < b); });
  if (top_k && (int)cand.size() > p.top_k) cand.resize(p.top_k);
  size_t keep = cand.size();
  if (top_p) {
    double denom = 0;
    if (top_k) for (int32_t t : cand) denom += w[t];
    else denom = total;
    double cum = 0;
    for (size_t i = 0; i < cand.size(); i++)
      if ((cum += w[cand[i]]) >= p.top_p * denom) {
        keep = i + 1;
        break;
      }
  }
  if (p.min_p > 0) {  // w of the best token is 1, so min-p keeps w >= min_p
    size_t k = 1;
    while (k < keep && w[cand[k]] >= p.min_p) k++;
    keep = k;
  }
  double kept = 0;
  for (size_t i = 0; i < keep; i++) kept += w[cand[i]];
  double u = std::uniform_real_distribution<double>(0.0, kept)(s.rng);
  for (size_t i = 0; i < keep; i++)
    if ((u -= w[cand[i]]) < 0) return cand[i];
  return cand[keep - 1];
}

}  // namespace

bool mask_allows_any(const uint32_t* mask, int vocab) {
  for (int w = 0; w < vocab / 32; w++)
    if (mask[w]) return true;
  for (int t = vocab / 32 * 32; t < vocab; t++)
    if (allows(mask, t)) return true;
  return false;
}

// With a mask, sampling runs on the allowed tokens only (their logits gathered in token order): the same
// distribution as the full vocabulary with every other logit at -inf, without touching 150k logits when a grammar
// allows a handful. A screened row's candidates are gathered the same way: the others' logits are -inf, and the
// sample takes no logprob, so the pass over the whole vocabulary for the log-normaliser (and the copy of the row) is
// skipped too.
void sample_token(SeqSampler& s, const float* logits, int vocab, const uint32_t* mask, q3_sample_out* out,
                  const int32_t* candidates, int n_candidates) {
  const q3_sampling& p = s.params;
  const bool forced = !s.forced.empty();
  const bool screened = candidates && n_candidates > 0 && !forced;
  int32_t token = forced ? s.forced.front() : -1;
  if (forced) s.forced.pop_front();
  // A forced token outside the mask (it ignores masks) is reported against the unmasked distribution.
  const bool masked = mask && !(forced && !allows(mask, token));
  thread_local std::vector<int32_t> ids;  // masked or screened: the token ids of l, ascending
  thread_local std::vector<float> l;      // the candidates' logits: all of them, the allowed ones or the screened ones
  int absent = 0;                         // screened: the allowed tokens not in l (their logits are -inf)
  if (screened) {
    ids.assign(candidates, candidates + n_candidates);
    int allowed = vocab;
    if (mask) {
      allowed = 0;
      for (int w = 0; w < vocab / 32; w++) allowed += __builtin_popcount(mask[w]);
      for (int t = vocab / 32 * 32; t < vocab; t++) allowed += allows(mask, t) ? 1 : 0;
    }
    absent = allowed - n_candidates;
  } else if (masked) {
    ids.clear();
    for (int w = 0; w < (vocab + 31) / 32; w++)
      for (uint32_t bits = mask[w]; bits; bits &= bits - 1) {
        const int32_t t = w * 32 + __builtin_ctz(bits);
        if (t < vocab) ids.push_back(t);
      }
  }
  const bool gathered = screened || masked;
  if (gathered) {
    l.resize(ids.size());
    for (size_t i = 0; i < ids.size(); i++) l[i] = logits[ids[i]];
  } else {
    l.assign(logits, logits + vocab);
  }
  const int n = (int)l.size();
  double log_z = std::numeric_limits<double>::quiet_NaN();
  if (screened) {
    out->n_top = 0;  // (screen_needs: no logprobs)
  } else {
    log_z = normalise_and_top(l.data(), n, p.n_logprobs, out);
    if (masked)
      for (int i = 0; i < out->n_top; i++) out->top_tokens[i] = ids[out->top_tokens[i]];
  }
  if (!forced) {
    auto logit_of = [&](int32_t t) -> float* {  // a penalised token's candidate logit, if it is a candidate
      if (!gathered) return &l[t];
      auto it = std::lower_bound(ids.begin(), ids.end(), t);
      return it != ids.end() && *it == t ? &l[it - ids.begin()] : nullptr;
    };
    if (p.repetition_penalty > 0 && p.repetition_penalty != 1.0f)
      for (int32_t t : s.seen)
        if (float* v = logit_of(t)) *v = *v > 0 ? *v / p.repetition_penalty : *v * p.repetition_penalty;
    if (p.frequency_penalty != 0 || p.presence_penalty != 0)
      for (auto [t, count] : s.generated)
        if (float* v = logit_of(t)) *v -= p.frequency_penalty * count + p.presence_penalty;
    const int32_t pick = p.temperature <= 0 ? argmax(l) : draw(s, l, absent);
    // draw gives up (-1) only for a screened row whose cut would reach its -inf tokens: sample on the full row
    if (pick < 0) {
      sample_token(s, logits, vocab, mask, out);
      out->logprob = std::numeric_limits<float>::quiet_NaN();
      return;
    }
    token = gathered ? ids[pick] : pick;
  }
  out->token = token;
  out->forced = forced ? 1 : 0;
  out->logprob = screened ? std::numeric_limits<float>::quiet_NaN()
                          : (float)(logits[token] - log_z);  // a candidate's logit is its raw one
  record_token(s, token);
}

// Greedy takes the first largest logit: a token below the best lower bound is never it (margin 0). A draw orders
// tokens by w = exp_nonpositive((l - max) / T): a token at least 2e-3·T below the k-th candidate is at least 2e-3
// below it in that exponent (less the exponent's float rounding, about 1e-5), far more than the polynomial's error
// (about 1e-7 relative), so its w is strictly smaller, and top-p / min-p only see the top-k tokens.
constexpr float kScreenMarginPerTemperature = 2e-3f;

bool screen_needs(const SeqSampler& s, ScreenNeeds* out) {
  const q3_sampling& p = s.params;
  if (!p.skip_logprob || p.n_logprobs > 0) return false;
  const bool greedy = p.temperature <= 0;
  if (!greedy && (p.top_k <= 0 || p.top_k > kMaxScreenTopK)) return false;
  if (!out) return true;
  out->top_k = greedy ? 1 : p.top_k;
  out->margin = greedy ? 0 : kScreenMarginPerTemperature * p.temperature;
  out->exact.clear();
  if (p.repetition_penalty > 0 && p.repetition_penalty != 1.0f) out->exact.assign(s.seen.begin(), s.seen.end());
  if (p.frequency_penalty != 0 || p.presence_penalty != 0)
    for (auto [t, count] : s.generated) out->exact.push_back(t);
  return true;
}

void record_token(SeqSampler& s, int32_t token) {
  s.seen.insert(token);
  s.generated[token]++;
  s.draws++;
}

}  // namespace q3
