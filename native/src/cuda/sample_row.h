// How a request's sampling parameters (the C ABI's q3_sampling) become a row of the device sampler
// (cuda::SampleRow): the "off" values the CPU sampler accepts (top_k <= 0 or >= vocab, top_p <= 0 or >= 1,
// repetition_penalty <= 0) mapped to the kernels' single "off" value. The caller fills the per-step fields
// (forced, seed, offset, history, allowed).
#pragma once
#include <algorithm>

#include "qwen3.h"
#include "qwen3_cuda.h"

namespace q3 {

inline cuda::SampleRow sample_row(const q3_sampling& p, int vocab) {
  cuda::SampleRow row{};
  row.temperature = p.temperature;
  row.top_k = p.top_k > 0 && p.top_k < vocab ? p.top_k : 0;
  row.top_p = p.top_p > 0 && p.top_p < 1 ? p.top_p : 1.0f;
  row.min_p = p.min_p > 0 ? p.min_p : 0.0f;
  row.repetition_penalty = p.repetition_penalty > 0 ? p.repetition_penalty : 1.0f;
  row.presence_penalty = p.presence_penalty;
  row.frequency_penalty = p.frequency_penalty;
  row.forced = -1;
  row.n_logprobs = std::clamp(p.n_logprobs, 0, cuda::kMaxLogprobs);
  row.active = 1;
  return row;
}

}  // namespace q3
