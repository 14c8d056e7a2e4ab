// Default RoPE and YaRN exactly as transformers' _compute_yarn_parameters (docs/model.md#yarn), computed in
// double and stored as float.
#include "rope.h"

#include <algorithm>
#include <cmath>

namespace q3 {

static double yarn_mscale(double scale, double m) { return scale <= 1.0 ? 1.0 : 0.1 * m * std::log(scale) + 1.0; }

RopeTable build_rope_table(const Qwen3Config& cfg) {
  RopeTable t;
  const int dim = cfg.head_dim, half = dim / 2;
  const double base = cfg.rope_theta;
  t.inv_freq.resize(half);
  std::vector<double> extra(half), inter(half);
  for (int i = 0; i < half; i++) {
    // arange(0, dim, 2) / dim computed in float in transformers; the exponent values are exact in float anyway.
    double pos_freq = std::pow(base, (double)(2 * i) / dim);
    extra[i] = 1.0 / pos_freq;
    inter[i] = 1.0 / (cfg.rope.factor * pos_freq);
  }
  if (!cfg.rope.yarn) {
    for (int i = 0; i < half; i++) t.inv_freq[i] = (float)extra[i];
    return t;
  }
  const RopeScaling& r = cfg.rope;
  if (r.has_attention_factor) t.attention_factor = (float)r.attention_factor;
  else if (r.mscale != 0 && r.mscale_all_dim != 0)
    t.attention_factor = (float)(yarn_mscale(r.factor, r.mscale) / yarn_mscale(r.factor, r.mscale_all_dim));
  else t.attention_factor = (float)yarn_mscale(r.factor, 1.0);

  const double L = r.original_max_position;
  auto correction_dim = [&](double rot) { return dim * std::log(L / (rot * 2 * M_PI)) / (2 * std::log(base)); };
  double low = correction_dim(r.beta_fast), high = correction_dim(r.beta_slow);
  if (r.truncate) {
    low = std::floor(low);
    high = std::ceil(high);
  }
  low = std::max(low, 0.0);
  high = std::min(high, (double)(dim - 1));
  if (low == high) high += 0.001;
  for (int i = 0; i < half; i++) {
    double ramp = std::clamp((i - low) / (high - low), 0.0, 1.0);
    double extra_factor = 1.0 - ramp;
    t.inv_freq[i] = (float)(inter[i] * (1.0 - extra_factor) + extra[i] * extra_factor);
  }
  return t;
}

}  // namespace q3
