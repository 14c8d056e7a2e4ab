// The qwen3 command-line tool: logits, generate, make-demo-model and bench, over the C ABI. Its JSON output is a
// stable interface (tests and outside checks parse it). Runs without Node, so GPU machines can use it alone.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "cpu/bandwidth_cpu.h"
#include "backend.h"
#include "cpu/phases_cpu.h"
#include "threadpool.h"
#include "demo_checkpoint.h"
#include "qwen3.h"

namespace {

const char* kUsage =
    "usage:\n"
    "  qwen3 logits --model DIR --tokens 1,2,3 [--all] [--rope-scaling yarn:FACTOR[:ORIGINAL]] [--device cpu|cuda|auto]\n"
    "  qwen3 generate --model DIR --tokens 1,2,3 --max-tokens N [--temperature T] [--top-p P] [--top-k K]\n"
    "                 [--min-p P] [--seed S] [--head auto|screened|full] [--rope-scaling yarn:F[:O]]\n"
    "  qwen3 make-demo-model --out DIR [--preset tiny|demo|8b] [--seed S] [--tokenizer tokenizer.json]\n"
    "  qwen3 bench --model DIR [--threads N] [--prompt N] [--steps N] [--pairs N] [--batch N] [--context N]\n"
    "              [--probe-mib N] [--out FILE.json] [--phases] [--head auto|screened|full] [--rope-scaling ...]\n"
              "              # --head: the CPU lm_head of its greedy samples (auto: screened where AVX-512 VNNI runs)\n"
    "              # --pairs: decode steps each timed beside a read of the same bytes (CPU; default 10)\n"
    "              # --phases: where a batch-1 decode step's time goes (CPU)\n"
    "              # --batch: sequences of the batched decode after the batch-1 one (default 8; 0: none)\n"
    "  qwen3 bandwidth [--threads N] [--mib N] [--passes N]   # memory read bandwidth probe, JSON\n"
    "CUDA options of every command: [--cuda-gemv-max N (-1..16)] [--cuda-graphs 1|0] [--cuda-sampling device|host]\n";

struct Args {
  std::string command;
  std::map<std::string, std::string> opts;
  bool has(const std::string& k) const { return opts.count(k) != 0; }
  std::string get(const std::string& k, const std::string& d = "") const {
    auto it = opts.find(k);
    return it == opts.end() ? d : it->second;
  }
};

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

Args parse_args(int argc, char** argv) {
  Args a;
  if (argc < 2) throw UsageError("missing command");
  a.command = argv[1];
  for (int i = 2; i < argc; i++) {
    std::string k = argv[i];
    if (k.rfind("--", 0) != 0) throw UsageError("unexpected argument '" + k + "'");
    k = k.substr(2);
    if (k == "all" || k == "phases") {
      a.opts[k] = "1";
      continue;
    }
    if (i + 1 >= argc) throw UsageError("--" + k + " needs a value");
    a.opts[k] = argv[++i];
  }
  return a;
}

double to_num(const std::string& name, const std::string& v) {
  char* end = nullptr;
  double d = std::strtod(v.c_str(), &end);
  if (v.empty() || *end || !std::isfinite(d)) throw UsageError("--" + name + " expects a number, got '" + v + "'");
  return d;
}

int64_t to_int(const std::string& name, const std::string& v) {
  double d = to_num(name, v);
  if (d != std::floor(d)) throw UsageError("--" + name + " expects an integer, got '" + v + "'");
  return (int64_t)d;
}

std::vector<int32_t> parse_tokens(const std::string& s) {
  std::vector<int32_t> out;
  size_t i = 0;
  while (i <= s.size()) {
    size_t j = s.find(',', i);
    if (j == std::string::npos) j = s.size();
    std::string item = s.substr(i, j - i);
    int64_t v = to_int("tokens", item);
    if (v < 0 || v > INT32_MAX) throw UsageError("--tokens: id " + item + " is out of range");
    out.push_back((int32_t)v);
    i = j + 1;
  }
  if (out.empty()) throw UsageError("--tokens is empty");
  return out;
}

void apply_rope_scaling(const Args& a, q3_load_options& o) {
  if (!a.has("rope-scaling")) return;
  std::string v = a.get("rope-scaling");
  if (v.rfind("yarn:", 0) != 0) throw UsageError("--rope-scaling expects yarn:FACTOR[:ORIGINAL]");
  std::string rest = v.substr(5);
  size_t c = rest.find(':');
  o.yarn_factor = to_num("rope-scaling", rest.substr(0, c));
  if (o.yarn_factor < 1) throw UsageError("--rope-scaling factor must be >= 1");
  if (c != std::string::npos) o.yarn_original_max = (int32_t)to_int("rope-scaling", rest.substr(c + 1));
}

void apply_cuda_options(const Args& a, q3_load_options& o) {
  if (a.has("cuda-gemv-max")) o.cuda_gemv_max = (int32_t)to_int("cuda-gemv-max", a.get("cuda-gemv-max"));
  if (a.has("cuda-graphs")) {
    const std::string g = a.get("cuda-graphs");
    if (g != "0" && g != "1") throw UsageError("--cuda-graphs expects 1 or 0");
    o.cuda_no_graphs = g == "0";
  }
  if (a.has("cuda-sampling")) {
    const std::string v = a.get("cuda-sampling");
    if (v != "device" && v != "host") throw UsageError("--cuda-sampling expects device or host");
    o.cuda_host_sampling = v == "host";
  }
}

q3_device parse_device(const Args& a) {
  std::string d = a.get("device", "auto");
  if (d == "cpu") return Q3_DEVICE_CPU;
  if (d == "cuda") return Q3_DEVICE_CUDA;
  if (d == "auto") return Q3_DEVICE_AUTO;
  throw UsageError("--device expects cpu, cuda or auto");
}

struct Engine {
  q3_engine* e = nullptr;
  q3_info info{};
  ~Engine() { q3_engine_free(e); }
};

void check(q3_status st) {
  if (st != Q3_OK) throw std::runtime_error(q3_last_error());
}

void progress_to_stderr(void* user, const char* stage, double f) {
  if (user) std::fprintf(stderr, "\r%-24s %5.1f%%", stage, 100 * f), std::fflush(stderr);
}

// Loads with a KV pool sized for `tokens` positions of one sequence (or the default pool when tokens = 0).
void open_engine(Engine& en, const Args& a, int64_t tokens, bool show_progress = false) {
  if (!a.has("model")) throw UsageError("--model DIR is required");
  q3_load_options o{};
  o.device = parse_device(a);
  o.n_threads = a.has("threads") ? (int32_t)to_int("threads", a.get("threads")) : 0;
  o.kv_block_size = 16;
  if (tokens > 0) o.kv_blocks = (int32_t)((tokens + 15) / 16 + 1);
  if (a.has("context")) {
    const int64_t ctx = to_int("context", a.get("context"));
    if (ctx <= 0 || ctx > INT32_MAX) throw UsageError("--context must be a positive token count");
    o.max_context = (int32_t)ctx;
  }
  o.progress = progress_to_stderr;
  o.progress_user = show_progress ? &en : nullptr;
  apply_rope_scaling(a, o);
  apply_cuda_options(a, o);
  const std::string head = a.get("head", "auto");
  if (head != "auto" && head != "screened" && head != "full") throw UsageError("--head expects auto, screened or full");
  o.cpu_head = head == "full" ? 1 : head == "screened" ? 2 : 0;
  check(q3_engine_load(a.get("model").c_str(), &o, &en.e));
  if (show_progress) std::fprintf(stderr, "\n");
  q3_engine_info(en.e, &en.info);
}

int cmd_logits(const Args& a) {
  std::vector<int32_t> tokens = parse_tokens(a.get("tokens"));
  Engine en;
  open_engine(en, a, (int64_t)tokens.size());
  const int n = (int)tokens.size();
  const bool all = a.has("all");
  std::vector<float> logits((size_t)(all ? n : 1) * en.info.vocab_size);
  check(q3_prompt_logits(en.e, tokens.data(), n, all ? 1 : 0, logits.data()));
  std::string out = "{\"logits\": [";
  char buf[32];
  for (int r = 0; r < (all ? n : 1); r++) {
    out += r ? ", [" : "[";
    for (int v = 0; v < en.info.vocab_size; v++) {
      std::snprintf(buf, sizeof buf, v ? ", %.9g" : "%.9g", logits[(size_t)r * en.info.vocab_size + v]);
      out += buf;
    }
    out += "]";
  }
  out += "]}\n";
  std::fwrite(out.data(), 1, out.size(), stdout);
  return 0;
}

int on_token_collect(void* user, const q3_sample_out* tok) {
  ((std::vector<int32_t>*)user)->push_back(tok->token);
  return 0;
}

int cmd_generate(const Args& a) {
  std::vector<int32_t> prompt = parse_tokens(a.get("tokens"));
  if (!a.has("max-tokens")) throw UsageError("--max-tokens N is required");
  q3_generate_params p{};
  p.max_tokens = (int32_t)to_int("max-tokens", a.get("max-tokens"));
  if (p.max_tokens <= 0) throw UsageError("--max-tokens must be positive");
  p.sampling.temperature = (float)to_num("temperature", a.get("temperature", "0"));
  p.sampling.top_p = (float)to_num("top-p", a.get("top-p", "1"));
  p.sampling.top_k = (int32_t)to_int("top-k", a.get("top-k", "0"));
  p.sampling.min_p = (float)to_num("min-p", a.get("min-p", "0"));
  p.sampling.repetition_penalty = 1.0f;
  p.sampling.skip_logprob = 1;  // only tokens are printed (the screened head where the engine has one)
  if (a.has("seed")) {
    p.sampling.has_seed = 1;
    p.sampling.seed = (uint64_t)to_int("seed", a.get("seed"));
  }
  Engine en;
  open_engine(en, a, (int64_t)prompt.size() + p.max_tokens);
  std::vector<int32_t> out;
  q3_finish finish;
  check(q3_generate(en.e, prompt.data(), (int32_t)prompt.size(), &p, on_token_collect, &out, &finish));
  std::string s = "{\"tokens\": [";
  for (size_t i = 0; i < out.size(); i++) s += (i ? ", " : "") + std::to_string(out[i]);
  s += std::string("], \"finish_reason\": \"") + (finish == Q3_FINISH_STOP ? "stop" : "length") + "\"}\n";
  std::fwrite(s.data(), 1, s.size(), stdout);
  return 0;
}

int cmd_make_demo_model(const Args& a) {
  if (!a.has("out")) throw UsageError("--out DIR is required");
  std::string preset = a.get("preset", "demo");
  uint64_t seed = (uint64_t)to_int("seed", a.get("seed", "0"));
  bool bar = preset == "8b";
  q3::write_demo_checkpoint(a.get("out"), preset, seed, [&](double f) {
    if (bar) {
      static int last = -1;
      int pct = (int)(f * 100);
      if (pct != last) {
        last = pct;
        std::fprintf(stderr, "\rwriting %s [%-50s] %3d%%", preset.c_str(), std::string(pct / 2, '#').c_str(), pct);
        std::fflush(stderr);
      }
    }
  }, a.get("tokenizer", ""));
  if (bar) std::fprintf(stderr, "\n");
  std::printf("{\"out\": \"%s\", \"preset\": \"%s\"}\n", a.get("out").c_str(), preset.c_str());
  return 0;
}

double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

// The 1-minute load average, to record how busy the machine was around a measurement (-1 where unknown).
double load_average() {
  std::ifstream f("/proc/loadavg");
  double l = -1;
  f >> l;
  return f ? l : -1;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n == 0 ? 0 : n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// Prefill tok/s, decode tok/s at batch 1 and `batch` (8 unless --batch; 0 skips it), weight bytes per decode step,
// measured read bandwidth, and the fraction of the bandwidth limit reached (weight bytes per step x steps per second
// / bandwidth).
//
// The memory bandwidth of a shared or virtual machine moves by tens of percent within a second, so a probe taken at
// another moment than the decode says little about the decode's efficiency. After the timed batch-1 decode come
// `pairs` pairs of [one timed decode step, one timed read of the same number of bytes] (which goes first alternates),
// on the engine's own threads, with the probe's fastest loop, over the probe's buffer: the decode's share of the
// bandwidth is read off each pair (median over pairs) and off the fastest of each side (best of `pairs` each). The
// probe's best segment and sustained rate stay as rows of their own.
//
// Every sequence gets its own KV blocks for prompt + 1 + steps positions (prefill, one untimed warm-up decode, the
// timed decodes; at batch 1 also the paired steps and, with --phases, `steps` more profiled decodes), and the pool
// holds `batch` of them at once. Prefill is timed on a warm engine: a first, untimed prefill of another sequence pays
// for page faults and cold caches.
int cmd_bench(const Args& a) {
  const int64_t prompt_len = to_int("prompt", a.get("prompt", "32"));
  const int64_t steps = to_int("steps", a.get("steps", "8"));
  const int64_t pairs = to_int("pairs", a.get("pairs", "10"));
  const int64_t probe_mib = to_int("probe-mib", a.get("probe-mib", "1024"));
  const int threads = a.has("threads") ? (int)to_int("threads", a.get("threads")) : 0;
  const int64_t batch = to_int("batch", a.get("batch", "8"));
  if (prompt_len <= 0 || steps <= 0) throw UsageError("--prompt and --steps must be positive");
  if (batch < 0 || batch > 64) throw UsageError("--batch must be 0..64");
  if (pairs < 0 || pairs > 1000) throw UsageError("--pairs must be 0..1000");
  if (probe_mib < 64) throw UsageError("--probe-mib must be at least 64");
  const bool profile = a.has("phases");
  // prefill, warm-up decode, timed decodes, paired decodes, profiled decodes
  const int64_t positions = prompt_len + 1 + steps + pairs + (profile ? steps : 0);

  const double load_before = load_average();
  Engine en;
  open_engine(en, a, std::max<int64_t>(batch, 1) * ((positions + 15) / 16 * 16), true);
  const q3_info& info = en.info;
  if (positions > info.max_context)
    throw UsageError("--prompt " + std::to_string(prompt_len) + " + --steps " + std::to_string(steps) +
                     " + 1 warm-up token" + (pairs ? " + " + std::to_string(pairs) + " paired steps" : "") +
                     (profile ? " + " + std::to_string(steps) + " profiled steps" : "") + " = " +
                     std::to_string(positions) + " positions do not fit the context of " +
                     std::to_string(info.max_context) + " tokens");
  // The probe runs on the engine's CPU threads (its own pool of as many threads on another device, unpaired).
  std::unique_ptr<q3::ThreadPool> own_pool;
  q3::ThreadPool* pool = q3::engine_cpu_thread_pool(en.e);
  const bool paired = pool != nullptr && pairs > 0;
  if (!pool) own_pool = std::make_unique<q3::ThreadPool>(threads), pool = own_pool.get();
  std::fprintf(stderr, "measuring memory read bandwidth...\n");
  q3::ReadProbe reader(*pool, (size_t)probe_mib << 20);
  const q3::ReadBandwidth probe = reader.measure();
  const int bs = info.kv_block_size;
  q3_sampling greedy{};
  greedy.repetition_penalty = 1.0f;
  greedy.skip_logprob = 1;  // the bench reads tokens only: the screened head when the engine has one
  // fp16 head rows the screened head computed exactly per sample, step by step (empty with the full head)
  std::vector<double> exact_rows1, exact_rows8;
  auto head_counts = [&] {
    q3_stats st;
    q3_engine_stats(en.e, &st);
    return std::make_pair(st.head_screened_rows, st.head_exact_rows);
  };
  auto record_exact = [&](std::pair<int64_t, int64_t> before, std::vector<double>& into) {
    const auto after = head_counts();
    if (after.first > before.first)
      into.push_back((double)(after.second - before.second) / (double)(after.first - before.first));
  };

  struct Seq {
    int64_t id;
    std::vector<int32_t> blocks, tokens;
    int pos = 0;
  };
  auto begin_seq = [&](int64_t id) {
    Seq s;
    s.id = id;
    uint64_t x = 0x9e3779b97f4a7c15ull * (uint64_t)(id + 1);
    for (int64_t i = 0; i < prompt_len; i++) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      s.tokens.push_back((int32_t)(x % (uint64_t)std::min(info.vocab_size, 150000)));
    }
    s.blocks.resize((size_t)((positions + bs - 1) / bs));
    check(q3_kv_alloc(en.e, (int32_t)s.blocks.size(), s.blocks.data()));
    check(q3_seq_begin(en.e, id, s.tokens.data(), (int32_t)prompt_len, &greedy));
    return s;
  };
  auto end_seq = [&](Seq& s) {
    q3_seq_end(en.e, s.id);
    q3_kv_release(en.e, s.blocks.data(), (int32_t)s.blocks.size());
  };
  // One forward pass over the given sequences (each feeds all its tokens not yet run), appending the sampled token.
  auto step = [&](const std::vector<Seq*>& seqs) {
    std::vector<q3_batch_item> items;
    for (Seq* s : seqs)
      items.push_back({s->id, s->tokens.data() + s->pos, (int32_t)s->tokens.size() - s->pos, s->pos, s->blocks.data(),
                       (int32_t)s->blocks.size(), 1, nullptr});
    std::vector<q3_sample_out> out(items.size());
    check(q3_step(en.e, items.data(), (int32_t)items.size(), out.data()));
    for (size_t i = 0; i < seqs.size(); i++) {
      seqs[i]->pos = (int)seqs[i]->tokens.size();
      seqs[i]->tokens.push_back(out[i].token);
    }
  };

  {  // warm-up prefill, untimed
    Seq warm = begin_seq(batch + 1);
    step({&warm});
    end_seq(warm);
  }
  Seq one = begin_seq(0);
  double t0 = now_s();
  step({&one});
  const double prefill_tps = (double)prompt_len / (now_s() - t0);
  step({&one});  // warm-up decode
  t0 = now_s();
  double counting_s = 0;  // reading the counters, left out of the time
  for (int64_t i = 0; i < steps; i++) {
    const double c0 = now_s();
    const auto before = head_counts();
    counting_s += now_s() - c0;
    step({&one});
    const double c1 = now_s();
    record_exact(before, exact_rows1);
    counting_s += now_s() - c1;
  }
  const double decode1_tps = (double)steps / (now_s() - t0 - counting_s);
  // Weight bytes of a step: the head's int8 pass plus the exact rows it read (median per sample), or the fp16 head.
  const double row_bytes = 2.0 * info.hidden_size;
  const bool screened = !exact_rows1.empty();
  const double bytes = (double)info.weight_bytes_per_token + (screened ? median(exact_rows1) * row_bytes : 0);
  std::vector<double> step_gbs, read_gbs, pair_fraction;  // per pair
  for (int64_t k = 0; paired && k < pairs; k++) {
    auto timed_step = [&] {
      const double t = now_s();
      step({&one});
      step_gbs.push_back(bytes / (now_s() - t) / 1e9);
    };
    auto timed_read = [&] { read_gbs.push_back(reader.timed_read_gbs((size_t)bytes, probe.method)); };
    if (k % 2 == 0) timed_step(), timed_read();
    else timed_read(), timed_step();
    pair_fraction.push_back(step_gbs.back() / read_gbs.back());
  }
  std::string phase_table, phase_json;
  if (profile) {  // the same decode again, each phase timed (the timed steps above ran without the hooks)
    q3::phases::reset();
    q3::phases::enable(true);
    t0 = now_s();
    for (int64_t i = 0; i < steps; i++) step({&one});
    const double step_s = (now_s() - t0) / (double)steps;
    q3::phases::enable(false);
    if (q3::phases::totals().calls[q3::phases::kQkv] > 0) {
      phase_table = q3::phases::report((int)steps, step_s);
      phase_json = q3::phases::json((int)steps, step_s);
    }
  }
  end_seq(one);

  double step8_s = 0;
  if (batch > 0) {
    std::vector<Seq> seqs;
    std::vector<Seq*> all;
    for (int64_t i = 0; i < batch; i++) seqs.push_back(begin_seq(i + 1));
    for (Seq& s : seqs) all.push_back(&s), step({&s});  // prefill each
    step(all);                                        // warm-up decode
    t0 = now_s();
    counting_s = 0;
    for (int64_t i = 0; i < steps; i++) {
      const double c0 = now_s();
      const auto before = head_counts();
      counting_s += now_s() - c0;
      step(all);
      const double c1 = now_s();
      record_exact(before, exact_rows8);
      counting_s += now_s() - c1;
    }
    step8_s = (now_s() - t0 - counting_s) / (double)steps;
    for (Seq& s : seqs) end_seq(s);
  }
  const double bytes8 = (double)info.weight_bytes_per_token + (screened ? median(exact_rows8) * batch * row_bytes : 0);
  const double decode8_tps = batch > 0 ? batch / step8_s : 0;
  const double load_after = load_average();

  const double bw = probe.best_gbs;
  const double eff1 = bytes * decode1_tps / 1e9, eff8 = batch > 0 ? bytes8 / step8_s / 1e9 : 0;
  auto max_of = [](const std::vector<double>& v) { return v.empty() ? 0.0 : *std::max_element(v.begin(), v.end()); };
  char head_desc[256] = "full fp16";
  if (screened) {
    const int n = std::snprintf(head_desc, sizeof head_desc,
                                "screened: int8 copy + exact fp16 rows per sample, median %.0f (max %.0f) at batch 1",
                                median(exact_rows1), max_of(exact_rows1));
    if (batch > 0)
      std::snprintf(head_desc + n, sizeof head_desc - n, ", %.0f (max %.0f) at batch %lld", median(exact_rows8),
                    max_of(exact_rows8), (long long)batch);
  }
  char date[32];
  std::time_t tt = std::time(nullptr);
  std::strftime(date, sizeof date, "%Y-%m-%d", std::gmtime(&tt));
  // the batched decode's rows, or what stands in for them with --batch 0
  char b_decode[160], b_bytes[64], b_rate[160];
  if (batch > 0) {
    std::snprintf(b_decode, sizeof b_decode, "| decode, batch %lld | %.2f tok/s aggregate (%.1f ms/step) |\n",
                  (long long)batch, decode8_tps, step8_s * 1e3);
    std::snprintf(b_bytes, sizeof b_bytes, ", %.1f MB at batch %lld", bytes8 / 1e6, (long long)batch);
    std::snprintf(b_rate, sizeof b_rate, "| batch %lld: weight bytes x steps/s | %.1f GB/s = %.0f%% of measured bandwidth |\n",
                  (long long)batch, eff8, 100 * eff8 / bw);
  } else {
    std::snprintf(b_decode, sizeof b_decode, "| decode, batched | not run (--batch 0) |\n");
    b_bytes[0] = b_rate[0] = 0;
  }
  char table[2048];
  std::snprintf(table, sizeof table,
                "| metric | value |\n|---|---|\n"
                "| model | %s (hidden %d, %d layers, vocab %d) |\n| device | %s |\n"
                "| prefill (%lld-token prompt) | %.2f tok/s |\n| decode, batch 1 | %.2f tok/s |\n"
                "%s"
                "| lm_head (greedy samples, no logprobs) | %s |\n"
                "| weight bytes read per decode step | %.1f MB at batch 1%s (full fp16 head: %.1f MB) |\n"
                "| measured memory read bandwidth | %.1f GB/s (%s) |\n"
                "| sustained read (the probe's every segment, not its best) | %.1f GB/s |\n"
                "| batch 1: weight bytes x steps/s | %.1f GB/s = %.0f%% of measured bandwidth, %.0f%% of sustained |\n"
                "%s"
                "| bandwidth limit at batch 1 | %.2f tok/s |\n",
                a.get("model").c_str(), info.hidden_size, info.n_layers, info.vocab_size, info.device,
                (long long)prompt_len, prefill_tps, decode1_tps, b_decode, head_desc, bytes / 1e6, b_bytes,
                (double)info.full_head_bytes_per_token / 1e6, bw, probe.method.c_str(), probe.sustained_gbs, eff1,
                100 * eff1 / bw, 100 * eff1 / probe.sustained_gbs, b_rate, bw * 1e9 / bytes);
  std::string rows = table;
  const double paired_fraction = median(pair_fraction);
  double best_step = 0, best_read = 0;
  for (double g : step_gbs) best_step = std::max(best_step, g);
  for (double g : read_gbs) best_read = std::max(best_read, g);
  if (paired) {
    char row[512];
    std::snprintf(row, sizeof row,
                  "| batch 1 vs a read of the same bytes beside it (median of %lld pairs: step GB/s / read GB/s) | "
                  "%.0f%% (%.0f-%.0f%%); steps %.1f GB/s, reads %.1f GB/s (medians) |\n"
                  "| batch 1 fastest step vs fastest read of the same bytes (best of %lld each) | "
                  "%.0f%%: %.1f / %.1f GB/s |\n",
                  (long long)pairs, 100 * paired_fraction,
                  100 * *std::min_element(pair_fraction.begin(), pair_fraction.end()),
                  100 * *std::max_element(pair_fraction.begin(), pair_fraction.end()), median(step_gbs),
                  median(read_gbs), (long long)pairs, 100 * best_step / best_read, best_step, best_read);
    rows += row;
  }
  char load_row[128];
  std::snprintf(load_row, sizeof load_row, "| 1-minute load average before / after | %.2f / %.2f |\n", load_before,
                load_after);
  rows += load_row;
  std::printf("%s", rows.c_str());
  if (!phase_table.empty()) std::printf("\nBatch-1 decode step by phase (%lld profiled steps):\n\n%s", (long long)steps,
                                        phase_table.c_str());
  if (a.has("out")) {
    std::string cmd;
    for (auto& [k, v] : a.opts) cmd += " --" + k + " " + v;
    std::ofstream f(a.get("out"));
    f << "{\n  \"command\": \"qwen3 bench" << cmd << "\",\n  \"date\": \"" << date << "\",\n  \"cpu\": \""
      << q3::cpu_model_name() << "\",\n  \"device\": \"" << info.device << "\",\n  \"prompt_tokens\": " << prompt_len
      << ",\n  \"steps\": " << steps << ",\n  \"batch\": " << batch << ",\n  \"prefill_tok_s\": " << prefill_tps
      << ",\n  \"decode_tok_s_batch1\": " << decode1_tps << ",\n  \"weight_bytes_per_step\": " << (int64_t)bytes
      << ",\n  \"full_head_weight_bytes_per_step\": " << info.full_head_bytes_per_token
      << ",\n  \"head\": \"" << (screened ? "screened" : "full") << "\""
      << ",\n  \"exact_rows_per_sample_batch1_median\": " << (screened ? median(exact_rows1) : 0)
      << ",\n  \"exact_rows_per_sample_batch1_max\": " << max_of(exact_rows1);
    if (batch > 0) {  // the batched decode's keys end in its size (batch8 by default)
      const std::string b = "batch" + std::to_string(batch);
      f << ",\n  \"decode_tok_s_" << b << "\": " << decode8_tps << ",\n  \"weight_bytes_per_step_" << b
        << "\": " << (int64_t)bytes8 << ",\n  \"exact_rows_per_sample_" << b
        << "_median\": " << (screened ? median(exact_rows8) : 0) << ",\n  \"exact_rows_per_sample_" << b
        << "_max\": " << max_of(exact_rows8) << ",\n  \"fraction_of_bandwidth_" << b << "\": " << eff8 / bw;
    }
    f << ",\n  \"read_bandwidth_gb_s\": " << bw
      << ",\n  \"read_bandwidth_method\": \"" << probe.method << "\",\n  \"read_bandwidth_sustained_gb_s\": "
      << probe.sustained_gbs << ",\n  \"fraction_of_bandwidth_batch1\": " << eff1 / bw
      << ",\n  \"fraction_of_sustained_batch1\": " << eff1 / probe.sustained_gbs
      << ",\n  \"load_average_before\": " << load_before << ",\n  \"load_average_after\": " << load_after;
    if (paired) {
      auto list = [](const std::vector<double>& v) {
        std::string out = "[";
        for (size_t i = 0; i < v.size(); i++) out += (i ? ", " : "") + std::to_string(v[i]);
        return out + "]";
      };
      f << ",\n  \"paired_pairs\": " << pairs << ",\n  \"paired_read_method\": \"" << probe.method
        << "\",\n  \"paired_step_gb_s\": " << list(step_gbs) << ",\n  \"paired_read_gb_s\": " << list(read_gbs)
        << ",\n  \"paired_fraction_batch1\": " << paired_fraction << ",\n  \"paired_fraction_batch1_min\": "
        << *std::min_element(pair_fraction.begin(), pair_fraction.end()) << ",\n  \"paired_fraction_batch1_max\": "
        << *std::max_element(pair_fraction.begin(), pair_fraction.end()) << ",\n  \"best_step_gb_s\": " << best_step
        << ",\n  \"best_read_gb_s\": " << best_read << ",\n  \"best_fraction_batch1\": " << best_step / best_read;
    }
    if (!phase_json.empty()) f << ",\n  \"phases_batch1\": " << phase_json;
    f << "\n}\n";
    if (!f) throw std::runtime_error("cannot write " + a.get("out"));
    std::string md = a.get("out");
    if (md.size() > 5 && md.substr(md.size() - 5) == ".json") md = md.substr(0, md.size() - 5) + ".md";
    std::ofstream m(md);
    m << "# qwen3 bench\n\nCommand: `npx qwen3 bench" << cmd << "`  \nDate: " << date << "  \nCPU: " << q3::cpu_model_name()
      << "\n\n" << rows;
    if (paired)
      m << "\nThe paired rows: this machine's memory bandwidth moves by tens of percent within a second (other "
        << "processes, other virtual machines on the host), so a probe taken at another moment than the decode, or a "
        << "best-of on one side only, makes the ratio mostly noise. After the timed batch-1 decode, " << pairs
        << " pairs of [one timed decode step, one timed read of the same " << (int64_t)bytes
        << " bytes] ran back to back, the order alternating, both on the engine's " << pool->size()
        << " threads; the read uses the probe's fastest loop (" << probe.method << ") over its " << probe_mib
        << " MiB huge-page buffer, round-robin, in ~32 MiB segments with a fork and join each (as a decode step's "
        << "matmuls have). Each pair gives the step's GB/s (weight bytes / step time) over the read's; the median "
        << "over pairs is the decode's share of the bandwidth available at that moment. The fastest step over the "
        << "fastest read is the same ratio as a best-of on both sides (like STREAM's best rate).\n";
    if (!phase_table.empty())
      m << "\nBatch-1 decode step by phase (" << steps << " profiled steps after the timed ones; GB/s (kernels): "
        << "bytes / the busiest thread's time inside the matmul's chunks; per thread: ms per step busy in chunks / "
        << "from the fork to its first chunk / from its last chunk to the join):\n\n" << phase_table;
  }
  return 0;
}

// The read-bandwidth probe alone (the denominator of every CPU benchmark), as one JSON line.
int cmd_bandwidth(const Args& a) {
  const int threads = a.has("threads") ? (int)to_int("threads", a.get("threads")) : 0;
  const int64_t mib = to_int("mib", a.get("mib", "1024"));
  const int64_t passes = to_int("passes", a.get("passes", "5"));
  if (mib < 64) throw UsageError("--mib must be at least 64");
  if (passes <= 0 || passes > 1000) throw UsageError("--passes must be 1..1000");
  q3::ThreadPool pool(threads);
  const q3::ReadBandwidth r = q3::measure_read_bandwidth_cpu(pool, (size_t)mib << 20, (int)passes);
  std::string out = "{\"read_bandwidth_gb_s\": " + std::to_string(r.best_gbs) + ", \"method\": \"" + r.method +
                    "\", \"sustained_gb_s\": " + std::to_string(r.sustained_gbs) + ", \"threads\": " + std::to_string(pool.size()) + ", \"per_method\": {";
  for (size_t i = 0; i < r.per_method.size(); i++)
    out += (i ? ", \"" : "\"") + r.per_method[i].first + "\": " + std::to_string(r.per_method[i].second);
  out += "}}\n";
  std::fwrite(out.data(), 1, out.size(), stdout);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    Args a = parse_args(argc, argv);
    if (a.command == "logits") return cmd_logits(a);
    if (a.command == "generate") return cmd_generate(a);
    if (a.command == "make-demo-model") return cmd_make_demo_model(a);
    if (a.command == "bench") return cmd_bench(a);
    if (a.command == "bandwidth") return cmd_bandwidth(a);
    if (a.command == "help" || a.command == "--help") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    throw UsageError("unknown command '" + a.command + "'");
  } catch (const UsageError& e) {
    std::fprintf(stderr, "qwen3: %s\n%s", e.what(), kUsage);
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "qwen3: error: %s\n", e.what());
    return 1;
  }
}
