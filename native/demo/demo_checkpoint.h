// Writes random-weight Qwen3 AWQ checkpoints in exactly the published file format (config.json,
// generation_config.json, safetensors with AutoAWQ "gemm" tensors named and shaped by checkpoint_layout.h, sharded
// with an index when large). A tool for the qwen3 CLI (make-demo-model) and the GPU check, not part of the engine.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

#include "config.h"

namespace q3 {

// A random checkpoint: the configuration its config.json and generation_config.json state (dimensions, AWQ
// group_size, max positions, RoPE base, eos ids; no rope_scaling) and how its weights are drawn.
struct RandomCheckpointSpec {
  Qwen3Config config;
  double awq_scale = 0.6;      // typical |W| scale of the quantized linears
  bool scripted = false;       // demo: decoding follows the token chain of demo_script.h
  size_t max_shard_bytes = 0;  // bytes per safetensors shard; 0 = one file
  // A tokenizer.json to ship in the checkpoint, as published checkpoints do ("" = none). The demo and 8b presets use
  // Qwen3's vocabulary, so Qwen3's file fits them; the worker's structured outputs need it.
  std::string tokenizer_json;
};

// preset: "tiny" (a few MB, for engine and worker tests), "demo" (real vocabulary, scripted output, see
// demo_script.h), "8b" (the full Qwen3-8B-AWQ shapes, random, for benchmarks). Throws std::runtime_error.
RandomCheckpointSpec demo_checkpoint_spec(const std::string& preset);

// Throws std::runtime_error. The same seed writes the same bytes.
void write_random_checkpoint(const std::string& dir, const RandomCheckpointSpec& spec, uint64_t seed,
                             const std::function<void(double fraction)>& progress);

// write_random_checkpoint with the preset's spec (and tokenizer_json, if not "").
void write_demo_checkpoint(const std::string& dir, const std::string& preset, uint64_t seed,
                           const std::function<void(double fraction)>& progress, const std::string& tokenizer_json = "");

}  // namespace q3
