// Random checkpoints for tests, the local stack, benchmarks and the GPU check. The `demo` preset makes decoding follow a fixed
// script: the embeddings of the script's tokens are orthogonal (one-hot, scaled), the transformer layers are small
// random perturbations, and lm_head maps each script token to its successor with a wide logit margin.
#include "demo_checkpoint.h"

#include <sys/stat.h>

#include <dirent.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <stdexcept>
#include <vector>

#include "awq_format.h"
#include "checkpoint_layout.h"
#include "demo_script.h"
#include "half.h"
#include "json.h"

namespace q3 {
namespace {

Qwen3Config dims(int hidden, int intermediate, int layers, int heads, int kv_heads, int head_dim, int vocab, int group,
                 int max_pos, std::vector<int> eos) {
  Qwen3Config c;
  c.hidden_size = hidden, c.intermediate_size = intermediate, c.n_layers = layers, c.n_heads = heads;
  c.n_kv_heads = kv_heads, c.head_dim = head_dim, c.vocab_size = vocab, c.group_size = group;
  c.max_position_embeddings = max_pos, c.rope_theta = 1e6, c.eos_ids = std::move(eos);
  return c;
}

// xoshiro256** — fast enough to fill 6 GB of random weights.
struct Rng {
  uint64_t s[4];
  explicit Rng(uint64_t seed) {
    for (auto& x : s) {  // splitmix64 seeding
      seed += 0x9e3779b97f4a7c15ull;
      uint64_t z = seed;
      z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
      z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
      x = z ^ (z >> 31);
    }
  }
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t next() {
    uint64_t r = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3]; s[2] ^= t; s[3] = rotl(s[3], 45);
    return r;
  }
  float uniform() { return (float)((next() >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f; }  // [-1, 1)
};

using Fill = std::function<void(uint8_t* dst, size_t first, size_t count, Rng& rng)>;  // elements [first, first+count)

struct Tensor {
  std::string name;
  const char* dtype;
  std::vector<int64_t> shape;
  size_t elem;  // bytes per element
  Fill fill;
  size_t bytes() const {
    size_t n = elem;
    for (int64_t d : shape) n *= (size_t)d;
    return n;
  }
};

void put_f16(uint8_t* dst, size_t i, float v) {
  uint16_t h = f32_to_f16(v);
  std::memcpy(dst + 2 * i, &h, 2);
}

Fill random_qweight() {
  return [](uint8_t* d, size_t, size_t n, Rng& r) {
    for (size_t i = 0; i < n; i++) {
      uint32_t v = (uint32_t)r.next();
      std::memcpy(d + 4 * i, &v, 4);
    }
  };
}

Fill random_qzeros(bool centred) {
  return [centred](uint8_t* d, size_t, size_t n, Rng& r) {
    for (size_t i = 0; i < n; i++) {
      uint8_t z[8];
      for (int j = 0; j < 8; j++) z[j] = centred ? 8 : (uint8_t)(6 + r.next() % 5);
      int32_t packed;
      awq::pack_row(z, 8, &packed);
      std::memcpy(d + 4 * i, &packed, 4);
    }
  };
}

// |q - z| averages ~4, so s = scale / (4 sqrt(K)) keeps each output's spread near `scale` for unit inputs.
Fill random_scales(double scale, int K) {
  const float s = (float)(scale / (4.0 * std::sqrt((double)K)));
  return [s](uint8_t* d, size_t, size_t n, Rng& r) {
    for (size_t i = 0; i < n; i++) put_f16(d, i, s * (0.75f + 0.25f * r.uniform()));
  };
}

Fill random_norm(bool scripted) {
  return [scripted](uint8_t* d, size_t, size_t cnt, Rng& r) {
    for (size_t i = 0; i < cnt; i++) put_f16(d, i, scripted ? 1.0f : 1.0f + 0.2f * r.uniform());
  };
}

// A (vocab, hidden) table: uniform noise of `amplitude`; scripted, the rows in `one_hot` are `value` at the mapped
// column and 0 elsewhere, every other row noise of `other_amplitude`.
Fill random_table(int H, float amplitude, std::shared_ptr<const std::map<int, int>> one_hot, float value,
                  float other_amplitude) {
  return [=](uint8_t* d, size_t first, size_t n, Rng& r) {
    for (size_t i = 0; i < n; i++) {
      size_t row = (first + i) / H, col = (first + i) % H;
      float v = amplitude * r.uniform();
      if (one_hot) {
        auto it = one_hot->find((int)row);
        v = it == one_hot->end() ? other_amplitude * r.uniform() : (it->second == (int)col ? value : 0.0f);
      }
      put_f16(d, i, v);
    }
  };
}

std::vector<Tensor> tensors_for(const RandomCheckpointSpec& spec) {
  using Role = TensorLayout::Role;
  const int H = spec.config.hidden_size;
  const bool scripted = spec.scripted;
  // Script tokens get one-hot embeddings at dimension = their index in the chain. lm_head's row of a script token
  // that follows chain[i] is 3 * e_i (logit ~ 3 * sqrt(hidden) = 34 after the final norm); everything else is small
  // noise (logits ~ N(0, 0.6)).
  std::shared_ptr<std::map<int, int>> chain_index, successor_of;
  if (scripted) {
    chain_index = std::make_shared<std::map<int, int>>();
    successor_of = std::make_shared<std::map<int, int>>();
    for (int i = 0; i < kDemoChainLength; i++) (*chain_index)[kDemoChain[i]] = i;
    for (int i = 0; i + 1 < kDemoChainLength; i++) (*successor_of)[kDemoChain[i + 1]] = i;
  }
  std::vector<Tensor> ts;
  for (const TensorLayout& t : checkpoint_layout(spec.config)) {
    Fill fill;
    switch (t.role) {
      case Role::kEmbedding: fill = random_table(H, 0.5f, chain_index, 8.0f, 0.05f); break;
      case Role::kLmHead: fill = random_table(H, 0.5f, successor_of, 3.0f, 0.1f); break;
      case Role::kNorm: fill = random_norm(scripted); break;
      case Role::kQWeight: fill = random_qweight(); break;
      case Role::kQZeros: fill = random_qzeros(scripted); break;
      case Role::kScales: fill = random_scales(spec.awq_scale, t.in_features); break;
    }
    ts.push_back({t.name, dtype_name(t.dtype), t.shape, dtype_size(t.dtype), fill});
  }
  return ts;
}

std::string config_json(const Qwen3Config& c) {
  char buf[2048];
  std::snprintf(buf, sizeof buf,
                "{\n  \"architectures\": [\"Qwen3ForCausalLM\"],\n  \"attention_bias\": false,\n"
                "  \"attention_dropout\": 0.0,\n  \"bos_token_id\": 151643,\n  \"eos_token_id\": %d,\n"
                "  \"head_dim\": %d,\n  \"hidden_act\": \"silu\",\n  \"hidden_size\": %d,\n"
                "  \"initializer_range\": 0.02,\n  \"intermediate_size\": %d,\n  \"max_position_embeddings\": %d,\n"
                "  \"max_window_layers\": %d,\n  \"model_type\": \"qwen3\",\n  \"num_attention_heads\": %d,\n"
                "  \"num_hidden_layers\": %d,\n  \"num_key_value_heads\": %d,\n"
                "  \"quantization_config\": {\n    \"bits\": 4,\n    \"group_size\": %d,\n"
                "    \"modules_to_not_convert\": null,\n    \"quant_method\": \"awq\",\n    \"version\": \"gemm\",\n"
                "    \"zero_point\": true\n  },\n  \"rms_norm_eps\": 1e-06,\n  \"rope_scaling\": null,\n"
                "  \"rope_theta\": %.1f,\n  \"sliding_window\": null,\n  \"tie_word_embeddings\": %s,\n"
                "  \"torch_dtype\": \"float16\",\n  \"transformers_version\": \"4.51.0\",\n  \"use_cache\": true,\n"
                "  \"use_sliding_window\": false,\n  \"vocab_size\": %d\n}\n",
                c.eos_ids[0], c.head_dim, c.hidden_size, c.intermediate_size, c.max_position_embeddings, c.n_layers,
                c.n_heads, c.n_layers, c.n_kv_heads, c.group_size, c.rope_theta, c.tie_word_embeddings ? "true" : "false",
                c.vocab_size);
  return buf;
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary);
  if (!f || !(f << text)) throw std::runtime_error(path + ": cannot write");
}

}  // namespace

namespace {

bool is_dir(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// mkdir -p
void make_dirs(const std::string& path) {
  for (size_t i = 1; i <= path.size(); i++) {
    if (i < path.size() && path[i] != '/') continue;
    std::string prefix = path.substr(0, i);
    if (!is_dir(prefix) && mkdir(prefix.c_str(), 0755) != 0 && errno != EEXIST)
      throw std::runtime_error(prefix + ": cannot create directory (" + std::strerror(errno) + ")");
  }
}

// rm -r of a flat directory of files
void remove_dir(const std::string& path) {
  if (DIR* d = opendir(path.c_str())) {
    while (dirent* e = readdir(d))
      if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) std::remove((path + "/" + e->d_name).c_str());
    closedir(d);
  }
  rmdir(path.c_str());
}

void write_files(const std::string& dir, const RandomCheckpointSpec& p, uint64_t seed,
                 const std::function<void(double)>& progress);

void copy_file(const std::string& from, const std::string& to) {
  std::ifstream in(from, std::ios::binary);
  if (!in) throw std::runtime_error(from + ": cannot read");
  std::ofstream out(to, std::ios::binary);
  if (!(out << in.rdbuf()) || !out.flush()) throw std::runtime_error(to + ": cannot write");
}

}  // namespace

RandomCheckpointSpec demo_checkpoint_spec(const std::string& preset) {
  if (preset == "tiny") return {dims(128, 256, 2, 4, 2, 32, 1024, 64, 4096, {1023, 1022}), 0.6, false, 0, ""};
  if (preset == "demo") return {dims(128, 384, 2, 4, 2, 32, 151936, 128, 40960, {151645, 151643}), 0.03, true, 0, ""};
  if (preset == "8b")
    return {dims(4096, 12288, 36, 32, 8, 128, 151936, 128, 40960, {151645, 151643}), 0.3, false, (size_t)5 << 30, ""};
  throw std::runtime_error("unknown preset '" + preset + "' (expected tiny, demo or 8b)");
}

void write_demo_checkpoint(const std::string& dir, const std::string& preset, uint64_t seed,
                           const std::function<void(double)>& progress, const std::string& tokenizer_json) {
  RandomCheckpointSpec spec = demo_checkpoint_spec(preset);
  spec.tokenizer_json = tokenizer_json;
  write_random_checkpoint(dir, spec, seed, progress);
}

// A new directory is written under a temporary name and renamed into place, so a reader (or a second writer racing
// for the same demo checkpoint) never sees a half-written model; an existing directory is overwritten in place.
void write_random_checkpoint(const std::string& dir, const RandomCheckpointSpec& p, uint64_t seed,
                             const std::function<void(double)>& progress) {
  if (p.config.eos_ids.empty()) throw std::runtime_error(dir + ": a checkpoint needs at least one eos id");
  if (is_dir(dir)) return write_files(dir, p, seed, progress);
  const size_t slash = dir.find_last_of('/');
  if (slash != std::string::npos && slash > 0) make_dirs(dir.substr(0, slash));
  const std::string tmp = dir + ".partial-" + std::to_string(getpid());
  make_dirs(tmp);
  write_files(tmp, p, seed, progress);
  if (rename(tmp.c_str(), dir.c_str()) != 0) {
    const int err = errno;
    remove_dir(tmp);
    // Another writer finished the same checkpoint first: use theirs.
    if (!((err == EEXIST || err == ENOTEMPTY) && is_dir(dir)))
      throw std::runtime_error(dir + ": cannot move the written checkpoint into place (" + std::strerror(err) + ")");
  }
}

namespace {

void write_files(const std::string& dir, const RandomCheckpointSpec& p, uint64_t seed,
                 const std::function<void(double)>& progress) {
  write_text(dir + "/config.json", config_json(p.config));
  std::string eos = "[";
  for (size_t i = 0; i < p.config.eos_ids.size(); i++) eos += (i ? ", " : "") + std::to_string(p.config.eos_ids[i]);
  write_text(dir + "/generation_config.json",
             "{\n  \"bos_token_id\": 151643,\n  \"do_sample\": true,\n  \"eos_token_id\": " + eos +
                 "],\n  \"pad_token_id\": 151643,\n  \"temperature\": 0.6,\n  \"top_k\": 20,\n  \"top_p\": 0.95,\n"
                 "  \"transformers_version\": \"4.51.0\"\n}\n");
  if (!p.tokenizer_json.empty()) copy_file(p.tokenizer_json, dir + "/tokenizer.json");

  std::vector<Tensor> ts = tensors_for(p);
  // Assign tensors to shards in order, as huggingface_hub does with max_shard_size.
  std::vector<std::vector<size_t>> shards(1);
  size_t shard_bytes = 0, total = 0;
  for (size_t i = 0; i < ts.size(); i++) {
    if (p.max_shard_bytes && shard_bytes + ts[i].bytes() > p.max_shard_bytes && !shards.back().empty()) {
      shards.emplace_back();
      shard_bytes = 0;
    }
    shards.back().push_back(i);
    shard_bytes += ts[i].bytes();
    total += ts[i].bytes();
  }
  const bool sharded = shards.size() > 1;
  std::string weight_map;
  Rng rng(seed);
  size_t written = 0;
  std::vector<uint8_t> buf;
  for (size_t s = 0; s < shards.size(); s++) {
    char fname[64];
    if (sharded) std::snprintf(fname, sizeof fname, "model-%05zu-of-%05zu.safetensors", s + 1, shards.size());
    else std::snprintf(fname, sizeof fname, "model.safetensors");
    std::string header = "{\"__metadata__\":{\"format\":\"pt\"}";
    size_t offset = 0;
    for (size_t i : shards[s]) {
      const Tensor& t = ts[i];
      std::string shape;
      for (size_t k = 0; k < t.shape.size(); k++) shape += (k ? "," : "") + std::to_string(t.shape[k]);
      header += ",\"" + t.name + "\":{\"dtype\":\"" + t.dtype + "\",\"shape\":[" + shape + "],\"data_offsets\":[" +
                std::to_string(offset) + "," + std::to_string(offset + t.bytes()) + "]}";
      offset += t.bytes();
      if (sharded) weight_map += std::string(weight_map.empty() ? "" : ",\n") + "    " + json_quote(t.name) + ": \"" + fname + "\"";
    }
    header += "}";
    while (header.size() % 8) header += ' ';
    std::string path = dir + "/" + fname;
    FILE* f = std::fopen(path.c_str(), "wb");
    if (!f) throw std::runtime_error(path + ": cannot write");
    uint64_t hlen = header.size();
    bool ok = std::fwrite(&hlen, 8, 1, f) == 1 && std::fwrite(header.data(), 1, header.size(), f) == header.size();
    for (size_t i : shards[s]) {
      const Tensor& t = ts[i];
      const size_t n = t.bytes() / t.elem, chunk = ((size_t)16 << 20) / t.elem;
      for (size_t first = 0; ok && first < n; first += chunk) {
        size_t count = std::min(chunk, n - first);
        buf.resize(count * t.elem);
        t.fill(buf.data(), first, count, rng);
        ok = std::fwrite(buf.data(), 1, buf.size(), f) == buf.size();
        written += buf.size();
        if (progress) progress((double)written / total);
      }
    }
    if (std::fclose(f) != 0 || !ok) throw std::runtime_error(path + ": write failed (disk full?)");
  }
  if (sharded)
    write_text(dir + "/model.safetensors.index.json",
               "{\n  \"metadata\": {\n    \"total_size\": " + std::to_string(total) + "\n  },\n  \"weight_map\": {\n" +
                   weight_map + "\n  }\n}\n");
}

}  // namespace

}  // namespace q3
