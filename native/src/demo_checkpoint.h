// Writes random-weight Qwen3 AWQ checkpoints in exactly the published file format (config.json,
// generation_config.json, safetensors with AutoAWQ "gemm" tensors, sharded with an index when large).
#pragma once
#include <cstdint>
#include <functional>
#include <string>

namespace q3 {

// preset: "tiny" (a few MB, for engine and worker tests), "demo" (real vocabulary, scripted output, see
// demo_script.h), "8b" (the full Qwen3-8B-AWQ shapes, random, for benchmarks). Throws std::runtime_error.
void write_demo_checkpoint(const std::string& dir, const std::string& preset, uint64_t seed,
                           const std::function<void(double fraction)>& progress);

}  // namespace q3
