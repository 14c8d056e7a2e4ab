// Parsing and validation of config.json (architecture, dimensions, RoPE, AWQ quantization_config) and
// generation_config.json (eos ids).
#include "config.h"

#include <fstream>
#include <sstream>
#include <stdexcept>

#include "json.h"

namespace q3 {
namespace {

std::string read_file(const std::string& path, const std::string& name) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error(name + ": missing or unreadable (" + path + ")");
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

Json parse_file(const std::string& dir, const std::string& name) {
  try {
    return Json::parse(read_file(dir + "/" + name, name));
  } catch (const std::runtime_error& e) {
    std::string msg = e.what();
    if (msg.rfind(name, 0) == 0) throw;
    throw std::runtime_error(name + ": " + msg);
  }
}

std::string lower(std::string s) {
  for (char& c : s) c = (char)std::tolower((unsigned char)c);
  return s;
}

int get_int(const Json& j, const char* key, int fallback, bool required) {
  const Json* v = j.get(key);
  if (!v || v->is_null()) {
    if (required) throw std::runtime_error(std::string("config.json: missing \"") + key + "\"");
    return fallback;
  }
  if (!v->is_number() || v->number != (double)(long long)v->number || v->number <= 0 || v->number > 1e9)
    throw std::runtime_error(std::string("config.json: \"") + key + "\" must be a positive integer");
  return (int)v->number;
}

double get_num(const Json& j, const char* key, double fallback) {
  const Json* v = j.get(key);
  if (!v || v->is_null()) return fallback;
  if (!v->is_number()) throw std::runtime_error(std::string("config.json: \"") + key + "\" must be a number");
  return v->number;
}

void parse_rope_scaling(const Json& rs, Qwen3Config& cfg) {
  if (rs.is_null()) return;
  if (!rs.is_object()) throw std::runtime_error("config.json: \"rope_scaling\" must be an object or null");
  const Json* type = rs.get("rope_type");
  if (!type) type = rs.get("type");
  std::string t = type && type->is_string() ? lower(type->string) : "";
  if (t == "default" || t.empty()) return;
  if (t != "yarn")
    throw std::runtime_error("config.json: rope_scaling type \"" + t + "\" is not supported (only yarn or none)");
  RopeScaling& r = cfg.rope;
  r.yarn = true;
  r.factor = get_num(rs, "factor", 1.0);
  if (r.factor < 1.0) throw std::runtime_error("config.json: rope_scaling.factor must be >= 1");
  r.original_max_position = (int)get_num(rs, "original_max_position_embeddings", cfg.max_position_embeddings);
  r.beta_fast = get_num(rs, "beta_fast", 32.0);
  r.beta_slow = get_num(rs, "beta_slow", 1.0);
  if (const Json* af = rs.get("attention_factor"); af && !af->is_null()) {
    r.has_attention_factor = true;
    r.attention_factor = get_num(rs, "attention_factor", 1.0);
  }
  r.mscale = get_num(rs, "mscale", 0);
  r.mscale_all_dim = get_num(rs, "mscale_all_dim", 0);
  if (const Json* tr = rs.get("truncate"); tr && tr->is_bool()) r.truncate = tr->boolean;
}

void parse_eos(const Json* v, std::vector<int>& out) {
  if (!v) return;
  if (v->is_number()) out.push_back((int)v->number);
  if (v->is_array())
    for (const Json& e : v->array)
      if (e.is_number()) out.push_back((int)e.number);
}

}  // namespace

Qwen3Config load_config(const std::string& dir) {
  Json j = parse_file(dir, "config.json");
  if (!j.is_object()) throw std::runtime_error("config.json: not a JSON object");
  Qwen3Config cfg;

  std::string arch;
  if (const Json* a = j.get("architectures"); a && a->is_array() && !a->array.empty() && a->array[0].is_string())
    arch = a->array[0].string;
  std::string model_type = j.get("model_type") && j.get("model_type")->is_string() ? j.get("model_type")->string : "";
  if (arch != "Qwen3ForCausalLM" && !(arch.empty() && model_type == "qwen3"))
    throw std::runtime_error("config.json: unsupported architecture \"" + (arch.empty() ? model_type : arch) +
                             "\" (this engine runs dense Qwen3ForCausalLM models)");

  cfg.hidden_size = get_int(j, "hidden_size", 0, true);
  cfg.intermediate_size = get_int(j, "intermediate_size", 0, true);
  cfg.n_layers = get_int(j, "num_hidden_layers", 0, true);
  cfg.n_heads = get_int(j, "num_attention_heads", 0, true);
  cfg.n_kv_heads = get_int(j, "num_key_value_heads", cfg.n_heads, false);
  cfg.head_dim = get_int(j, "head_dim", cfg.hidden_size / cfg.n_heads, false);
  cfg.vocab_size = get_int(j, "vocab_size", 0, true);
  cfg.max_position_embeddings = get_int(j, "max_position_embeddings", 40960, false);
  cfg.rms_norm_eps = get_num(j, "rms_norm_eps", 1e-6);
  cfg.rope_theta = get_num(j, "rope_theta", 10000.0);
  if (const Json* t = j.get("tie_word_embeddings"); t && t->is_bool()) cfg.tie_word_embeddings = t->boolean;
  if (cfg.n_heads % cfg.n_kv_heads != 0)
    throw std::runtime_error("config.json: num_attention_heads must be a multiple of num_key_value_heads");
  if (cfg.head_dim % 2 != 0) throw std::runtime_error("config.json: head_dim must be even");
  if (const Json* sw = j.get("use_sliding_window"); sw && sw->is_bool() && sw->boolean)
    throw std::runtime_error("config.json: use_sliding_window=true is not supported");
  if (const Json* hb = j.get("attention_bias"); hb && hb->is_bool() && hb->boolean)
    throw std::runtime_error("config.json: attention_bias=true is not supported (Qwen3 has none)");
  if (const Json* act = j.get("hidden_act"); act && act->is_string() && act->string != "silu")
    throw std::runtime_error("config.json: hidden_act \"" + act->string + "\" is not supported (expected silu)");

  // transformers v5 nests rope settings in rope_parameters; v4 uses rope_theta + rope_scaling.
  if (const Json* rp = j.get("rope_parameters"); rp && rp->is_object()) {
    cfg.rope_theta = get_num(*rp, "rope_theta", cfg.rope_theta);
    parse_rope_scaling(*rp, cfg);
  }
  if (const Json* rs = j.get("rope_scaling")) parse_rope_scaling(*rs, cfg);

  const Json* q = j.get("quantization_config");
  if (!q || !q->is_object())
    throw std::runtime_error("config.json: no quantization_config (this engine runs AWQ int4 checkpoints)");
  std::string method = q->get("quant_method") && q->get("quant_method")->is_string() ? lower(q->get("quant_method")->string) : "";
  if (method != "awq")
    throw std::runtime_error("config.json: unsupported quant_method \"" + method + "\" (expected awq)");
  int bits = (int)get_num(*q, "bits", get_num(*q, "w_bit", 4));
  if (bits != 4) throw std::runtime_error("config.json: AWQ bits=" + std::to_string(bits) + " is not supported (expected 4)");
  std::string version = q->get("version") && q->get("version")->is_string() ? lower(q->get("version")->string) : "gemm";
  if (version != "gemm")
    throw std::runtime_error("config.json: AWQ version \"" + version + "\" is not supported (expected gemm)");
  if (const Json* zp = q->get("zero_point"); zp && zp->is_bool() && !zp->boolean)
    throw std::runtime_error("config.json: AWQ zero_point=false is not supported");
  cfg.group_size = (int)get_num(*q, "group_size", get_num(*q, "q_group_size", 128));
  if (cfg.group_size <= 0 || cfg.group_size % 8 != 0)
    throw std::runtime_error("config.json: AWQ group_size must be a positive multiple of 8");
  if (const Json* skip = q->get("modules_to_not_convert"); skip && skip->is_array() && !skip->array.empty())
    throw std::runtime_error("config.json: modules_to_not_convert is not supported (every decoder linear must be AWQ)");

  // generation_config.json holds the eos ids that end a turn (151645 <|im_end|> and 151643 <|endoftext|>).
  try {
    Json g = parse_file(dir, "generation_config.json");
    parse_eos(g.get("eos_token_id"), cfg.eos_ids);
  } catch (const std::runtime_error& e) {
    std::string msg = e.what();
    if (msg.find("missing or unreadable") == std::string::npos) throw;
  }
  if (cfg.eos_ids.empty()) parse_eos(j.get("eos_token_id"), cfg.eos_ids);
  for (int id : cfg.eos_ids)
    if (id < 0 || id >= cfg.vocab_size)
      throw std::runtime_error("generation_config.json: eos_token_id " + std::to_string(id) + " is outside the vocabulary");
  return cfg;
}

void override_yarn(Qwen3Config& cfg, double factor, int original_max) {
  RopeScaling r;
  r.yarn = true;
  r.factor = factor;
  r.original_max_position = original_max > 0 ? original_max
                            : cfg.rope.original_max_position > 0 ? cfg.rope.original_max_position
                                                                 : 32768;
  cfg.rope = r;
}

}  // namespace q3
