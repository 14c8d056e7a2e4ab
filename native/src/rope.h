// RoPE frequencies as a pure function of the config: the inverse-frequency table (head_dim/2 entries) and the
// attention factor that multiplies cos and sin. YaRN lives only here; kernels take the table.
#pragma once
#include <vector>

#include "config.h"

namespace q3 {

struct RopeTable {
  std::vector<float> inv_freq;  // (head_dim/2)
  float attention_factor = 1.0f;
};

RopeTable build_rope_table(const Qwen3Config& cfg);

}  // namespace q3
