// Per-sequence sampling: penalties, temperature, top-k, top-p, min-p, seeded RNG, top-n logprobs and forced tokens.
#pragma once
#include <cstdint>
#include <deque>
#include <random>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "qwen3.h"

namespace q3 {

struct SeqSampler {
  q3_sampling params{};
  uint64_t seed = 0;                              // the request's, or drawn at q3_seq_begin
  uint64_t draws = 0;                             // tokens emitted so far (a device sampler's Philox counter)
  std::mt19937_64 rng;
  std::unordered_set<int32_t> seen;               // prompt + generated tokens (repetition penalty)
  std::unordered_map<int32_t, int32_t> generated; // token -> count in the output (presence/frequency penalties)
  std::deque<int32_t> forced;                     // emitted instead of sampling, in order

  SeqSampler() = default;
  SeqSampler(const q3_sampling& p, const int32_t* prompt, int32_t n_prompt);
};

// Picks the next token from raw logits (vocab) and records it in the sampler's history. `mask` (nullable,
// Q3_MASK_WORDS(vocab) words) lists the allowed tokens; the caller makes sure it allows at least one.
// `candidates` (nullable): a screened row's (screen_needs) n_candidates tokens computed exactly, ascending and all
// allowed, every other logit -inf; then the sample reads only those (same token as from the whole row) and its
// logprob is NaN.
void sample_token(SeqSampler& s, const float* logits, int vocab, const uint32_t* mask, q3_sample_out* out,
                  const int32_t* candidates = nullptr, int n_candidates = 0);

// True when the mask allows at least one token of the vocabulary.
bool mask_allows_any(const uint32_t* mask, int vocab);

// Records a token emitted for the sequence (sampled here or on a device, or forced) in its history.
void record_token(SeqSampler& s, int32_t token);

// What the next sample of a sequence needs from a screened lm_head (docs/cpu-head-screen.md): the exact logits of
// every allowed token that can be among the top_k largest, of every token within `margin` below the top_k-th, and of
// the tokens in `exact` (their logits change with penalties); any value below all of those elsewhere (-inf) leaves
// sample_token's token unchanged.
struct ScreenNeeds {
  int top_k = 1;
  float margin = 0;
  std::vector<int32_t> exact;
};

// The largest top_k a screened sample takes.
constexpr int kMaxScreenTopK = 64;

// True when the sequence's sample can run on a screened head (skip_logprob, no top-n logprobs, greedy or top_k in
// 1..kMaxScreenTopK); then fills `out` (optional).
bool screen_needs(const SeqSampler& s, ScreenNeeds* out);

// Whether the sequence's penalties need its token history (a device sampler keeps a copy only then).
inline bool uses_history(const q3_sampling& p) {
  return (p.repetition_penalty > 0 && p.repetition_penalty != 1.0f) || p.frequency_penalty != 0 ||
         p.presence_penalty != 0;
}

}  // namespace q3
