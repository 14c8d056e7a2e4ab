// Random checkpoints for tests, the local stack and benchmarks. The `demo` preset makes decoding follow a fixed
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
#include <stdexcept>
#include <vector>

#include "awq_format.h"
#include "demo_script.h"
#include "half.h"
#include "json.h"

namespace q3 {
namespace {

struct Preset {
  int hidden, intermediate, layers, heads, kv_heads, head_dim, vocab, group, max_pos;
  double rope_theta;
  bool tie;
  double awq_scale;          // typical |W| scale of the quantized linears
  bool scripted;             // demo: follow kDemoChain
  size_t max_shard_bytes;    // 0 = one file
  std::vector<int> eos;
};

Preset preset_for(const std::string& name) {
  if (name == "tiny") return {128, 256, 2, 4, 2, 32, 1024, 64, 4096, 1e6, false, 0.6, false, 0, {1023, 1022}};
  if (name == "demo") return {128, 384, 2, 4, 2, 32, 151936, 128, 40960, 1e6, false, 0.03, true, 0, {151645, 151643}};
  if (name == "8b")
    return {4096, 12288, 36, 32, 8, 128, 151936, 128, 40960, 1e6, false, 0.3, false, (size_t)5 << 30, {151645, 151643}};
  throw std::runtime_error("unknown preset '" + name + "' (expected tiny, demo or 8b)");
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

struct Tensor {
  std::string name;
  const char* dtype;
  std::vector<int64_t> shape;
  size_t elem;
  std::function<void(uint8_t* dst, size_t first, size_t count, Rng& rng)> fill;  // elements [first, first+count)
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

void add_awq_linear(std::vector<Tensor>& ts, const std::string& prefix, int K, int N, int G, double scale,
                    bool centred_zeros) {
  ts.push_back({prefix + ".qweight", "I32", {K, N / 8}, 4, [](uint8_t* d, size_t, size_t n, Rng& r) {
                  for (size_t i = 0; i < n; i++) {
                    uint32_t v = (uint32_t)r.next();
                    std::memcpy(d + 4 * i, &v, 4);
                  }
                }});
  ts.push_back({prefix + ".qzeros", "I32", {K / G, N / 8}, 4, [centred_zeros](uint8_t* d, size_t, size_t n, Rng& r) {
                  for (size_t i = 0; i < n; i++) {
                    uint8_t z[8];
                    for (int j = 0; j < 8; j++) z[j] = centred_zeros ? 8 : (uint8_t)(6 + r.next() % 5);
                    int32_t packed;
                    awq::pack_row(z, 8, &packed);
                    std::memcpy(d + 4 * i, &packed, 4);
                  }
                }});
  // |q - z| averages ~4, so s = scale / (4 sqrt(K)) keeps each output's spread near `scale` for unit inputs.
  const float s = (float)(scale / (4.0 * std::sqrt((double)K)));
  ts.push_back({prefix + ".scales", "F16", {K / G, N}, 2, [s](uint8_t* d, size_t, size_t n, Rng& r) {
                  for (size_t i = 0; i < n; i++) put_f16(d, i, s * (0.75f + 0.25f * r.uniform()));
                }});
}

std::vector<Tensor> tensors_for(const Preset& p) {
  std::vector<Tensor> ts;
  const int H = p.hidden, V = p.vocab;
  // Script tokens get one-hot embeddings at dimension = their index in the chain.
  auto chain_index = std::make_shared<std::map<int, int>>();
  if (p.scripted)
    for (int i = 0; i < kDemoChainLength; i++) (*chain_index)[kDemoChain[i]] = i;
  const bool scripted = p.scripted;

  ts.push_back({"model.embed_tokens.weight", "F16", {V, H}, 2, [=](uint8_t* d, size_t first, size_t n, Rng& r) {
                  for (size_t i = 0; i < n; i++) {
                    size_t row = (first + i) / H, col = (first + i) % H;
                    float v = 0.5f * r.uniform();
                    if (scripted) {
                      auto it = chain_index->find((int)row);
                      v = it == chain_index->end() ? 0.05f * r.uniform() : (it->second == (int)col ? 8.0f : 0.0f);
                    }
                    put_f16(d, i, v);
                  }
                }});
  auto norm = [&](const std::string& name, int n) {
    ts.push_back({name, "F16", {n}, 2, [scripted](uint8_t* d, size_t, size_t cnt, Rng& r) {
                    for (size_t i = 0; i < cnt; i++) put_f16(d, i, scripted ? 1.0f : 1.0f + 0.2f * r.uniform());
                  }});
  };
  const int q_dim = p.heads * p.head_dim, kv_dim = p.kv_heads * p.head_dim;
  for (int l = 0; l < p.layers; l++) {
    const std::string pre = "model.layers." + std::to_string(l) + ".";
    norm(pre + "input_layernorm.weight", H);
    norm(pre + "post_attention_layernorm.weight", H);
    norm(pre + "self_attn.q_norm.weight", p.head_dim);
    norm(pre + "self_attn.k_norm.weight", p.head_dim);
    add_awq_linear(ts, pre + "self_attn.q_proj", H, q_dim, p.group, p.awq_scale, scripted);
    add_awq_linear(ts, pre + "self_attn.k_proj", H, kv_dim, p.group, p.awq_scale, scripted);
    add_awq_linear(ts, pre + "self_attn.v_proj", H, kv_dim, p.group, p.awq_scale, scripted);
    add_awq_linear(ts, pre + "self_attn.o_proj", q_dim, H, p.group, p.awq_scale, scripted);
    add_awq_linear(ts, pre + "mlp.gate_proj", H, p.intermediate, p.group, p.awq_scale, scripted);
    add_awq_linear(ts, pre + "mlp.up_proj", H, p.intermediate, p.group, p.awq_scale, scripted);
    add_awq_linear(ts, pre + "mlp.down_proj", p.intermediate, H, p.group, p.awq_scale, scripted);
  }
  norm("model.norm.weight", H);
  if (!p.tie) {
    // Row of token t: for a script token that follows chain[i], 3 * e_i (logit ~ 3 * sqrt(hidden) = 34 after the
    // final norm); everything else small noise (logits ~ N(0, 0.6)).
    auto successor_of = std::make_shared<std::map<int, int>>();
    if (scripted)
      for (int i = 0; i + 1 < kDemoChainLength; i++) (*successor_of)[kDemoChain[i + 1]] = i;
    ts.push_back({"lm_head.weight", "F16", {V, H}, 2, [=](uint8_t* d, size_t first, size_t n, Rng& r) {
                    for (size_t i = 0; i < n; i++) {
                      size_t row = (first + i) / H, col = (first + i) % H;
                      float v = 0.5f * r.uniform();
                      if (scripted) {
                        auto it = successor_of->find((int)row);
                        v = it == successor_of->end() ? 0.1f * r.uniform() : (it->second == (int)col ? 3.0f : 0.0f);
                      }
                      put_f16(d, i, v);
                    }
                  }});
  }
  return ts;
}

std::string config_json(const Preset& p) {
  std::string eos = "[";
  for (size_t i = 0; i < p.eos.size(); i++) eos += (i ? ", " : "") + std::to_string(p.eos[i]);
  eos += "]";
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
                p.eos[0], p.head_dim, p.hidden, p.intermediate, p.max_pos, p.layers, p.heads, p.layers, p.kv_heads,
                p.group, p.rope_theta, p.tie ? "true" : "false", p.vocab);
  (void)eos;
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

void write_files(const std::string& dir, const Preset& p, uint64_t seed, const std::function<void(double)>& progress);

}  // namespace

// A new directory is written under a temporary name and renamed into place, so a reader (or a second writer racing
// for the same demo checkpoint) never sees a half-written model; an existing directory is overwritten in place.
void write_demo_checkpoint(const std::string& dir, const std::string& preset, uint64_t seed,
                           const std::function<void(double)>& progress) {
  const Preset p = preset_for(preset);
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

void write_files(const std::string& dir, const Preset& p, uint64_t seed, const std::function<void(double)>& progress) {

  write_text(dir + "/config.json", config_json(p));
  std::string eos = "[";
  for (size_t i = 0; i < p.eos.size(); i++) eos += (i ? ", " : "") + std::to_string(p.eos[i]);
  write_text(dir + "/generation_config.json",
             "{\n  \"bos_token_id\": 151643,\n  \"do_sample\": true,\n  \"eos_token_id\": " + eos +
                 "],\n  \"pad_token_id\": 151643,\n  \"temperature\": 0.6,\n  \"top_k\": 20,\n  \"top_p\": 0.95,\n"
                 "  \"transformers_version\": \"4.51.0\"\n}\n");

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
