// Qwen3 model configuration read from config.json and generation_config.json: every dimension the engine uses
// comes from here, so any dense Qwen3 AWQ size loads with no code change.
#pragma once
#include <string>
#include <vector>

namespace q3 {

struct RopeScaling {
  bool yarn = false;
  double factor = 1.0;
  int original_max_position = 0;   // original_max_position_embeddings
  double beta_fast = 32.0, beta_slow = 1.0;
  bool has_attention_factor = false;
  double attention_factor = 1.0;   // explicit value from config
  double mscale = 0, mscale_all_dim = 0;
  bool truncate = true;
};

struct Qwen3Config {
  int hidden_size = 0, intermediate_size = 0, n_layers = 0, n_heads = 0, n_kv_heads = 0, head_dim = 0;
  int vocab_size = 0, max_position_embeddings = 0;
  double rope_theta = 10000.0, rms_norm_eps = 1e-6;
  bool tie_word_embeddings = false;
  int group_size = 0;              // AWQ quantization group along the input dimension
  RopeScaling rope;
  std::vector<int> eos_ids;        // generation_config.json (falls back to config.json)
};

// Throws std::runtime_error naming config.json / generation_config.json and the offending key.
Qwen3Config load_config(const std::string& dir);

// Turns YaRN on (or re-parameterises it) without editing config.json. original_max = 0 keeps the config's value,
// else 32768 when the config has none.
void override_yarn(Qwen3Config& cfg, double factor, int original_max);

}  // namespace q3
