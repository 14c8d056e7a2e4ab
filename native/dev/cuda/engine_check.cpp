// Step (2) of the GPU check: the whole engine through the C ABI, CUDA backend against the CPU backend, on a small
// random checkpoint with the shapes the CUDA kernels take (head_dim 128, AWQ group 128, GQA 4), written in the
// published file format. Checks: logits of every position (relative L2), greedy generation, continuous batching
// with mixed prefill/decode passes, CUDA-graph decode buckets with padding, passes split at 2048 tokens and
// 256 logits rows, YaRN, the device-selection errors, and sampling on the device against the CPU sampler
// (sampling_check.h): token frequencies of many seeded sequences against the distribution the CPU sampler's rules
// give the engine's own logits (temperature, top-k, top-p, min-p, penalties over a prompt and forced output),
// logprobs and top-n, forced tokens, seeded replay, greedy with penalties, with and without graphs.
//   engine_check --dir DIR [--self] [--json FILE] [--md FILE] [--device-count]
//   engine_check --bench MODEL_DIR [--ctx N] [--steps N] [--quick] [--bench-device cpu] [--json FILE]   (decode timing)
// --self compares two CPU engines (no GPU needed: proves the harness, including that it rejects a wrong
// distribution, and the no-device errors). --bench times decode steps: the backend alone (q3_logits), sampling on
// the device and on the host (q3_step, greedy and Qwen's sampling defaults), graphs on and off.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "demo_checkpoint.h"
#include "qwen3.h"
#include "sampler.h"
#include "sampling_check.h"

namespace {

// ---------------------------------------------------------------- results
struct Check {
  std::string name;
  double metric;
  bool pass;
  std::string note;
};
std::vector<Check> g_checks;

bool record(const std::string& name, double metric, bool pass, const std::string& note = "") {
  g_checks.push_back({name, metric, pass, note});
  std::printf("  %-4s %-58s %11.3e %s\n", pass ? "ok" : "FAIL", name.c_str(), metric, note.c_str());
  std::fflush(stdout);
  return pass;
}

struct Fatal : std::runtime_error {
  using std::runtime_error::runtime_error;
};
void check(q3_status st, const char* what) {
  if (st != Q3_OK) throw Fatal(std::string(what) + ": " + q3_last_error());
}

// ---------------------------------------------------------------- checkpoint (cuda-tiny)
// The shapes the CUDA kernels take, small; eos is the last id, which tokens() never draws.
q3::RandomCheckpointSpec cuda_tiny_spec() {
  q3::RandomCheckpointSpec spec;
  q3::Qwen3Config& c = spec.config;
  c.hidden_size = 512, c.intermediate_size = 1536, c.n_layers = 3, c.n_heads = 8, c.n_kv_heads = 2, c.head_dim = 128;
  c.vocab_size = 2000, c.group_size = 128, c.max_position_embeddings = 8192, c.rope_theta = 1e6;
  c.eos_ids = {c.vocab_size - 1};
  spec.awq_scale = 0.6;
  return spec;
}

// ---------------------------------------------------------------- engines
struct Engine {
  q3_engine* e = nullptr;
  q3_info info{};
  ~Engine() { q3_engine_free(e); }
};

// The CUDA load options a run varies (ignored by CPU engines).
struct CudaKnobs {
  bool graphs = true;
  bool host_sampling = false;
  std::string tag() const {
    return std::string(graphs ? "graphs" : "eager") + (host_sampling ? ", host sampling" : ", device sampling");
  }
};

void open(Engine& en, const std::string& dir, q3_device dev, double yarn = 0, CudaKnobs knobs = {}) {
  q3_load_options o{};
  o.device = dev;
  o.cuda_no_graphs = !knobs.graphs;
  o.cuda_host_sampling = knobs.host_sampling;
  o.kv_block_size = 16;
  o.kv_blocks = 2048;  // 32k tokens
  o.yarn_factor = yarn;
  if (yarn > 0) o.yarn_original_max = 1024;  // positions past 1024 then exercise the YaRN table
  check(q3_engine_load(dir.c_str(), &o, &en.e), "load");
  q3_engine_info(en.e, &en.info);
}

std::vector<int32_t> tokens(int n, int vocab, uint64_t seed) {
  std::mt19937_64 r(seed);
  std::vector<int32_t> t(n);
  for (auto& x : t) x = (int32_t)(r() % (uint64_t)(vocab - 1));  // never the eos id
  return t;
}

double rel_l2(const float* a, const float* ref, size_t n) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; i++) {
    if (!std::isfinite(a[i])) return INFINITY;
    num += ((double)a[i] - ref[i]) * ((double)a[i] - ref[i]);
    den += (double)ref[i] * ref[i];
  }
  return std::sqrt(num / std::max(den, 1e-30));
}

std::vector<int32_t> alloc_blocks(Engine& en, int tokens) {
  std::vector<int32_t> b((tokens + 15) / 16);
  check(q3_kv_alloc(en.e, (int32_t)b.size(), b.data()), "kv_alloc");
  return b;
}

// Logits of every position (or the last) of a prompt, both engines; worst row's relative L2.
void check_logits(Engine& a, Engine& b, int n, uint64_t seed, const std::string& tag, bool all = true) {
  const int V = a.info.vocab_size, rows = all ? n : 1;
  auto t = tokens(n, V, seed);
  std::vector<float> la((size_t)rows * V), lb((size_t)rows * V);
  for (auto [en, out] : {std::pair{&a, &la}, std::pair{&b, &lb}}) {
    auto blocks = alloc_blocks(*en, n);
    q3_batch_item it{0, t.data(), n, 0, blocks.data(), (int32_t)blocks.size(), 0, nullptr};
    check(q3_logits(en->e, &it, all ? 1 : 0, out->data()), "logits");
    q3_kv_release(en->e, blocks.data(), (int32_t)blocks.size());
  }
  double worst = 0;
  int worst_row = 0;
  for (int r = 0; r < rows; r++) {
    double e = rel_l2(&lb[(size_t)r * V], &la[(size_t)r * V], V);
    if (!(e <= worst)) worst = e, worst_row = r;
  }
  record(tag + (all ? " logits of every position (worst row rel L2)" : " last logits (rel L2)"), worst, worst <= 1e-2,
         "row " + std::to_string(worst_row));
}

int collect(void* user, const q3_sample_out* t) {
  ((std::vector<int32_t>*)user)->push_back(t->token);
  return 0;
}

void check_generate(Engine& a, Engine& b, int steps) {
  auto prompt = tokens(20, a.info.vocab_size, 7);
  q3_generate_params p{};
  p.max_tokens = steps;
  p.sampling.repetition_penalty = 1.0f;
  std::vector<int32_t> ta, tb;
  q3_finish fa, fb;
  check(q3_generate(a.e, prompt.data(), 20, &p, collect, &ta, &fa), "generate");
  check(q3_generate(b.e, prompt.data(), 20, &p, collect, &tb, &fb), "generate");
  size_t same = 0;
  while (same < ta.size() && same < tb.size() && ta[same] == tb[same]) same++;
  record("greedy generate " + std::to_string(steps) + " tokens: identical prefix", (double)same,
         ta == tb && (int)ta.size() == steps, std::to_string(same) + "/" + std::to_string(ta.size()));
}

// Continuous batching, teacher-forced with engine a's tokens so every step compares the same history: a mixed
// first step (prompts of 1..129 tokens, the 1-token prompt is a decode row), decode steps (graph buckets; batch 6
// pads to 8), a sequence joining mid-way (mixed prefill + decode pass), and one leaving.
void check_batching(Engine& a, Engine& b, int steps) {
  const int V = a.info.vocab_size;
  struct Seq {
    std::vector<int32_t> toks, blocks_a, blocks_b;
    int pos = 0;
    bool live = false;
  };
  std::vector<int> lens = {1, 5, 16, 17, 64, 129, 50};
  std::vector<Seq> seqs(lens.size());
  q3_sampling greedy{};
  greedy.repetition_penalty = 1.0f;
  greedy.n_logprobs = 2;
  auto start = [&](int i) {
    Seq& s = seqs[i];
    s.toks = tokens(lens[i], V, 100 + i);
    s.blocks_a = alloc_blocks(a, lens[i] + steps + 1);
    s.blocks_b = alloc_blocks(b, lens[i] + steps + 1);
    check(q3_seq_begin(a.e, i, s.toks.data(), lens[i], &greedy), "seq_begin");
    check(q3_seq_begin(b.e, i, s.toks.data(), lens[i], &greedy), "seq_begin");
    s.live = true;
  };
  for (int i = 0; i < 6; i++) start(i);
  int mismatches = 0, near_ties = 0, compared = 0;
  double worst_lp = 0;
  for (int step = 0; step < steps; step++) {
    if (step == steps / 3) start(6);
    if (step == 2 * steps / 3) {  // sequence 2 leaves
      seqs[2].live = false;
      q3_seq_end(a.e, 2);
      q3_seq_end(b.e, 2);
    }
    std::vector<q3_batch_item> ia, ib;
    std::vector<int> idx;
    for (size_t i = 0; i < seqs.size(); i++) {
      Seq& s = seqs[i];
      if (!s.live) continue;
      const int n = (int)s.toks.size() - s.pos;
      ia.push_back({(int64_t)i, s.toks.data() + s.pos, n, s.pos, s.blocks_a.data(), (int32_t)s.blocks_a.size(), 1, nullptr});
      ib.push_back({(int64_t)i, s.toks.data() + s.pos, n, s.pos, s.blocks_b.data(), (int32_t)s.blocks_b.size(), 1, nullptr});
      idx.push_back((int)i);
    }
    std::vector<q3_sample_out> oa(ia.size()), ob(ib.size());
    check(q3_step(a.e, ia.data(), (int32_t)ia.size(), oa.data()), "step");
    check(q3_step(b.e, ib.data(), (int32_t)ib.size(), ob.data()), "step");
    for (size_t k = 0; k < idx.size(); k++) {
      compared++;
      worst_lp = std::max(worst_lp, (double)std::fabs(oa[k].logprob - ob[k].logprob));
      if (oa[k].token != ob[k].token) {
        const bool tie = oa[k].n_top >= 2 && oa[k].top_logprobs[0] - oa[k].top_logprobs[1] < 2e-2;
        (tie ? near_ties : mismatches)++;
      }
      Seq& s = seqs[idx[k]];
      s.pos = (int)s.toks.size();
      s.toks.push_back(oa[k].token);  // teacher forcing: both continue with a's token
    }
  }
  for (size_t i = 0; i < seqs.size(); i++) {
    q3_kv_release(a.e, seqs[i].blocks_a.data(), (int32_t)seqs[i].blocks_a.size());
    q3_kv_release(b.e, seqs[i].blocks_b.data(), (int32_t)seqs[i].blocks_b.size());
    if (seqs[i].live) q3_seq_end(a.e, (int64_t)i), q3_seq_end(b.e, (int64_t)i);
  }
  record("batched steps: greedy token mismatches (" + std::to_string(compared) + " samples)", mismatches,
         mismatches == 0, std::to_string(near_ties) + " near-ties (top-2 gap < 0.02) allowed");
  record("batched steps: worst |logprob difference| of the chosen token", worst_lp, worst_lp <= 5e-2);
}

// ---------------------------------------------------------------- sampling against the CPU sampler

// Token counts of `draws` draws of the CPU sampler on one row, each from the same state (history restored).
std::vector<long> cpu_sampler_counts(const std::vector<float>& l, q3_sampling p, const q3check::History& h, int draws,
                                     uint64_t seed) {
  p.has_seed = 1;
  p.seed = seed;
  q3::SeqSampler s(p, h.seen.data(), (int32_t)h.seen.size());
  for (auto [t, n] : h.generated) s.generated[t] = n;
  const auto seen = s.seen;
  const auto generated = s.generated;
  std::vector<long> counts(l.size(), 0);
  q3_sample_out out;
  for (int i = 0; i < draws; i++) {
    q3::sample_token(s, l.data(), (int)l.size(), nullptr, &out);
    counts[out.token]++;
    s.seen = seen;
    s.generated = generated;
  }
  return counts;
}

// The harness on the CPU sampler alone: its draws fit the expected distribution of every case on a peaked and a flat
// row of V tokens (the same cases gpu_check puts to the kernels), and draws at a wrong temperature are rejected.
void check_sampling_harness(int V, int draws) {
  const std::vector<std::vector<float>> rows = {q3check::synthetic_logits(V, 11, 2.5f, 14.f),
                                                q3check::synthetic_logits(V, 12, 1.0f, 4.f)};
  for (size_t r = 0; r < rows.size(); r++)
    for (const q3check::Case& c : q3check::cases()) {
      if (c.mask) continue;  // the CPU sampler takes no bitmask yet
      const std::vector<float>& l = rows[r];
      const q3check::History h = c.history ? q3check::history_for(l, 5) : q3check::History{};
      const q3check::Fit f =
          q3check::fit(cpu_sampler_counts(l, c.p, h, draws, 1000 + r), q3check::expected_distribution(l.data(), V, c.p, h));
      record("harness: CPU sampler, " + std::string(r ? "flat" : "peaked") + " row, " + c.name, f.chi2, f.pass,
             f.summary());
    }
  // the same kept set (top-k 20), other weights: only the chi-square can tell
  const q3_sampling hot = q3check::params(1.0f, 20, 1, 0), cold = q3check::params(0.8f, 20, 1, 0);
  const std::vector<float>& l = rows[0];
  const q3check::Fit f = q3check::fit(cpu_sampler_counts(l, hot, {}, draws, 77),
                                      q3check::expected_distribution(l.data(), V, cold, {}));
  record("harness: rejects T 1.0 top-k 20 draws judged against T 0.8", f.chi2, !f.pass, f.summary());
}

struct EngineDraws {
  std::vector<long> counts;     // (vocab) tokens of the last step
  q3_sample_out first{};        // the first sequence's last output (logprobs)
  bool forced_ok = true;        // every forced token came back flagged and unchanged
};

// One sampled step of `n` sequences (batches of 128, each a CUDA graph bucket): every sequence begins with `history`
// as its prompt (the repetition penalty's tokens) and its own seed, has `forced` queued, feeds `feed` one token per
// step (forced tokens are the next fed ones) and draws at the last step.
EngineDraws engine_draws(Engine& en, const std::vector<int32_t>& feed, const std::vector<int32_t>& forced,
                         const std::vector<int32_t>& history, q3_sampling p, int n, uint64_t seed0) {
  static int64_t next_id = 1000000;
  EngineDraws d;
  d.counts.assign(en.info.vocab_size, 0);
  const int L = (int)feed.size();
  for (int b0 = 0; b0 < n; b0 += 128) {
    const int nb = std::min(128, n - b0);
    std::vector<int64_t> ids(nb);
    std::vector<std::vector<int32_t>> blocks(nb);
    for (int i = 0; i < nb; i++) {
      ids[i] = next_id++;
      p.has_seed = 1;
      p.seed = seed0 * 1000003 + b0 + i;
      check(q3_seq_begin(en.e, ids[i], history.data(), (int32_t)history.size(), &p), "seq_begin");
      if (!forced.empty()) check(q3_seq_force(en.e, ids[i], forced.data(), (int32_t)forced.size()), "seq_force");
      blocks[i] = alloc_blocks(en, L);
    }
    for (int k = 0; k < L; k++) {
      std::vector<q3_batch_item> items;
      for (int i = 0; i < nb; i++)
        items.push_back({ids[i], &feed[k], 1, k, blocks[i].data(), (int32_t)blocks[i].size(), 1, nullptr});
      std::vector<q3_sample_out> out(nb);
      check(q3_step(en.e, items.data(), nb, out.data()), "step");
      for (int i = 0; i < nb; i++) {
        if (k < L - 1) d.forced_ok &= out[i].forced == 1 && out[i].token == forced[k];
        else d.counts[out[i].token]++;
      }
      if (k == L - 1 && b0 == 0) d.first = out[0];
    }
    for (int i = 0; i < nb; i++) {
      q3_kv_release(en.e, blocks[i].data(), (int32_t)blocks[i].size());
      q3_seq_end(en.e, ids[i]);
    }
  }
  return d;
}

std::vector<float> last_logits(Engine& en, const std::vector<int32_t>& feed) {
  std::vector<float> l(en.info.vocab_size);
  check(q3_prompt_logits(en.e, feed.data(), (int32_t)feed.size(), 0, l.data()), "prompt_logits");
  return l;
}

// Sampling through both engines: each engine's draws fit the distribution the CPU sampler's rules give its own
// logits; logprobs and top-n agree; forced tokens, seeded replay and greedy decoding with penalties.
void check_sampling(Engine& a, Engine& b, bool self, int draws, const std::string& tag) {
  const int V = a.info.vocab_size;
  const long outside_ok = self ? 0 : draws / 50;  // a top-k / top-p edge can move between a prefill and a decode pass
  const int32_t t0 = tokens(1, V, 900)[0];
  struct EngineCase {
    std::string name;
    q3_sampling p;
    bool penalties;
  };
  const std::vector<EngineCase> cases = {
      {"T 0.7 top-k 40 top-p 0.9, 5 logprobs", q3check::params(0.7f, 40, 0.9f, 0, 0, 0, 1, 5), false},
      {"T 1.0 full distribution", q3check::params(1.0f, 0, 1, 0), false},
      {"T 0.9 top-p 0.8", q3check::params(0.9f, 0, 0.8f, 0), false},
      {"T 1.2 min-p 0.1", q3check::params(1.2f, 0, 1, 0.1f), false},
      {"T 0.8 top-k 50, rep 1.3 presence 0.5 frequency 0.3, after 2 forced tokens",
       q3check::params(0.8f, 50, 1, 0, 0.5f, 0.3f, 1.3f), true},
  };
  for (size_t ci = 0; ci < cases.size(); ci++) {
    const EngineCase& c = cases[ci];
    std::vector<int32_t> feed = {t0}, forced, history;
    if (c.penalties) {  // the likeliest token forced twice, the next step's likeliest tokens in the prompt
      const std::vector<float> l0 = last_logits(a, feed);
      const int32_t A = (int32_t)(std::max_element(l0.begin(), l0.end()) - l0.begin());
      feed = {t0, A, A};
      forced = {A, A};
      const std::vector<float> l = last_logits(a, feed);
      const std::vector<int> order = q3check::by_weight(std::vector<double>(l.begin(), l.end()));
      history.assign(order.begin(), order.begin() + 8);
      for (int32_t x : tokens(20, V, 901)) history.push_back(x);
    }
    q3check::History h;
    h.seen = history;
    for (int32_t f : forced) h.seen.push_back(f), h.generated[f]++;
    EngineDraws got[2];
    for (int k = 0; k < 2; k++) {
      Engine& en = k ? b : a;
      const std::vector<float> l = last_logits(en, feed);
      got[k] = engine_draws(en, feed, forced, history, c.p, draws, 10 + ci);
      const q3check::Fit f = q3check::fit(got[k].counts, q3check::expected_distribution(l.data(), V, c.p, h), outside_ok);
      record(tag + (k ? "checked" : "reference") + " draws, " + c.name, f.chi2, f.pass, f.summary());
      if (c.penalties) record(tag + (k ? "checked" : "reference") + ": forced tokens flagged and kept", 0, got[k].forced_ok);
      if (ci == 0 && k == 0) {  // the harness can fail: the same draws against a hotter distribution
        const q3check::Fit wrong = q3check::fit(
            got[0].counts, q3check::expected_distribution(l.data(), V, q3check::params(1.4f, 40, 0.9f, 0), h), draws);
        record(tag + "harness rejects the reference's draws judged at T 1.4", wrong.chi2, !wrong.pass, wrong.summary());
      }
    }
    if (c.p.n_logprobs > 0) {  // logprobs of the first sequence: chosen token and top-n, checked vs reference
      const q3_sample_out &ra = got[0].first, &rb = got[1].first;
      std::vector<float> lb = last_logits(b, feed);
      const float mb = *std::max_element(lb.begin(), lb.end());
      double z = 0;
      for (float x : lb) z += std::exp((double)x - mb);
      const double want = lb[rb.token] - mb - std::log(z);
      record(tag + "checked logprob of the drawn token = log-softmax of its logits", std::fabs(rb.logprob - want),
             std::fabs(rb.logprob - want) <= (self ? 1e-3 : 2e-2));
      double worst = 0;
      int swaps = 0, ties = 0;
      bool n_ok = ra.n_top == c.p.n_logprobs && rb.n_top == c.p.n_logprobs;
      for (int j = 0; n_ok && j < ra.n_top; j++) {
        if (ra.top_tokens[j] != rb.top_tokens[j]) {
          const bool tie = (j > 0 && ra.top_logprobs[j - 1] - ra.top_logprobs[j] < 2e-2) ||
                           (j + 1 < ra.n_top && ra.top_logprobs[j] - ra.top_logprobs[j + 1] < 2e-2);
          (tie ? ties : swaps)++;
        }
        worst = std::max(worst, (double)std::fabs(ra.top_logprobs[j] - rb.top_logprobs[j]));
      }
      record(tag + "top-5 logprobs: same tokens, worst |difference|", worst,
             n_ok && swaps == 0 && worst <= (self ? 0.0 : 5e-2), std::to_string(ties) + " near-tie swaps allowed");
    }
  }
  // seeded replay on the checked engine, and greedy decoding with penalties on both
  auto prompt = tokens(12, V, 31);
  auto generate = [&](Engine& en, q3_sampling p) {
    q3_generate_params g{};
    g.max_tokens = 24;
    g.sampling = p;
    std::vector<int32_t> out;
    q3_finish fin;
    check(q3_generate(en.e, prompt.data(), (int32_t)prompt.size(), &g, collect, &out, &fin), "generate");
    return out;
  };
  q3_sampling s = q3check::params(1.0f, 50, 1, 0);
  s.has_seed = 1;
  s.seed = 42;
  const auto r1 = generate(b, s), r2 = generate(b, s);
  s.seed = 43;
  const auto r3 = generate(b, s);
  record(tag + "seeded sampling (T 1, top-k 50) replays 24 tokens; another seed differs", 0, r1 == r2 && r1 != r3);
  const q3_sampling pen = q3check::params(0, 0, 1, 0, 1.0f, 0.5f, 1.5f);
  const auto ga = generate(a, pen), gb = generate(b, pen);
  size_t same = 0;
  while (same < ga.size() && same < gb.size() && ga[same] == gb[same]) same++;
  record(tag + "greedy with penalties (rep 1.5, presence 1, frequency 0.5): identical tokens", (double)same,
         ga == gb, std::to_string(same) + "/" + std::to_string(ga.size()));
}

void check_device_selection(const std::string& tiny_dir, const std::string& dir, bool have_cuda) {
  q3_load_options o{};
  q3_engine* e = nullptr;
  o.device = Q3_DEVICE_CUDA;
  q3_status st = q3_engine_load(tiny_dir.c_str(), &o, &e);
  std::string msg = q3_last_error();
  q3_engine_free(e);
  e = nullptr;
  if (have_cuda)
    record("tiny preset (head_dim 32) on --device cuda: Q3_ERR_DEVICE naming head_dim", st,
           st == Q3_ERR_DEVICE && msg.find("head_dim") != std::string::npos, msg);
  else
    record("--device cuda without a device: Q3_ERR_DEVICE", st, st == Q3_ERR_DEVICE, msg);
  o.device = Q3_DEVICE_AUTO;
  check(q3_engine_load(tiny_dir.c_str(), &o, &e), "load auto");
  q3_info info;
  q3_engine_info(e, &info);
  q3_engine_free(e);
  record("tiny preset on --device auto: falls back to the CPU", 0, std::strncmp(info.device, "cpu", 3) == 0,
         info.device);
  e = nullptr;
  check(q3_engine_load(dir.c_str(), &o, &e), "load auto");
  q3_engine_info(e, &info);
  q3_engine_free(e);
  record("cuda-tiny on --device auto: " + std::string(have_cuda ? "CUDA" : "CPU"), 0,
         std::strncmp(info.device, have_cuda ? "cuda" : "cpu", have_cuda ? 4 : 3) == 0, info.device);
}

// ---------------------------------------------------------------- decode timing of the real engine
double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

struct BenchRow {
  std::string name;
  double value;
  std::string unit;
};
std::vector<BenchRow> g_bench;
q3_device g_bench_device = Q3_DEVICE_CUDA;  // --bench-device cpu: proves the timing harness without a GPU
void bench_record(const std::string& name, double v, const std::string& unit) {
  g_bench.push_back({name, v, unit});
  std::printf("  %-62s %10.2f %s\n", name.c_str(), v, unit.c_str());
  std::fflush(stdout);
}

// Prefills `batch` sequences to `ctx` tokens, then times decode steps: batch 1 through q3_logits (the backend's
// forward and the logits copy) and q3_step (forward and sampling: greedy, and Qwen's thinking defaults T 0.6 top-k 20
// top-p 0.95 with one logprob), and batch 8 through q3_step. The difference of q3_step and q3_logits is what the
// sampler adds (device) or saves (host sampling also copies the logits).
void bench_engine(const std::string& model, int ctx, int steps, const CudaKnobs& knobs) {
  const int batch = 8;
  const std::string tag = knobs.tag() + ": ";
  q3_load_options o{};
  o.device = g_bench_device;
  o.kv_block_size = 16;
  o.cuda_no_graphs = !knobs.graphs;
  o.cuda_host_sampling = knobs.host_sampling;
  const int room = ctx + 4 * steps + 64;  // sequence 0 decodes 3 * steps + 6 tokens
  o.kv_blocks = batch * (room / 16 + 1);
  double t0 = now_s();
  Engine en;
  check(q3_engine_load(model.c_str(), &o, &en.e), "load");
  q3_engine_info(en.e, &en.info);
  bench_record(tag + "load on " + en.info.device + " (checkpoint in page cache)", now_s() - t0, "s");
  const int V = en.info.vocab_size;
  q3_sampling greedy{};
  greedy.repetition_penalty = 1.0f;
  q3_sampling qwen = q3check::params(0.6f, 20, 0.95f, 0, 0, 0, 1, 1);
  struct Seq {
    std::vector<int32_t> toks, blocks;
  };
  std::vector<Seq> seqs(batch);
  for (int i = 0; i < batch; i++) {
    seqs[i].toks = tokens(ctx, V, 500 + i);
    seqs[i].blocks = alloc_blocks(en, room);
    check(q3_seq_begin(en.e, i, seqs[i].toks.data(), ctx, &greedy), "seq_begin");
    check(q3_seq_begin(en.e, 100 + i, seqs[i].toks.data(), ctx, &qwen), "seq_begin");
  }
  std::vector<float> logits(V);
  // prefill each sequence (TTFT of a ctx-token prompt on an idle engine: forward + logits copy)
  for (int i = 0; i < batch; i++) {
    Seq& s = seqs[i];
    q3_batch_item it{i, s.toks.data(), ctx, 0, s.blocks.data(), (int32_t)s.blocks.size(), 0, nullptr};
    t0 = now_s();
    check(q3_logits(en.e, &it, 0, logits.data()), "prefill");
    if (i == 1) bench_record(tag + "prefill " + std::to_string(ctx) + " tokens (q3_logits)", (now_s() - t0) * 1e3, "ms");
    s.toks.push_back(1000 + i);
  }
  // batch 1, backend alone: q3_logits of one decode token, the first call warms and captures the graph
  auto decode1 = [&](int n) {
    Seq& s = seqs[0];
    for (int k = 0; k < n; k++) {
      const int pos = (int)s.toks.size() - 1;
      q3_batch_item it{0, s.toks.data() + pos, 1, pos, s.blocks.data(), (int32_t)s.blocks.size(), 0, nullptr};
      check(q3_logits(en.e, &it, 0, logits.data()), "decode");
      s.toks.push_back((int32_t)(std::max_element(logits.begin(), logits.end()) - logits.begin()));
    }
  };
  decode1(2);
  t0 = now_s();
  decode1(steps);
  const double b1 = steps / (now_s() - t0);
  bench_record(tag + "decode batch 1, ctx " + std::to_string(ctx) + ": q3_logits (forward + logits copy)", b1,
               "tok/s");
  // q3_step: sequence ids 0.. sample greedily, 100.. with Qwen's defaults
  auto step = [&](int nb, int n, int64_t id0) {
    for (int k = 0; k < n; k++) {
      std::vector<q3_batch_item> items;
      for (int i = 0; i < nb; i++) {
        Seq& s = seqs[i];
        const int pos = (int)s.toks.size() - 1;
        items.push_back({id0 + i, s.toks.data() + pos, 1, pos, s.blocks.data(), (int32_t)s.blocks.size(), 1, nullptr});
      }
      std::vector<q3_sample_out> out(nb);
      check(q3_step(en.e, items.data(), nb, out.data()), "step");
      for (int i = 0; i < nb; i++) seqs[i].toks.push_back(out[i].token);
    }
  };
  for (auto [id0, what] : {std::pair<int64_t, const char*>{0, "greedy"}, {100, "T 0.6 top-k 20 top-p 0.95"}}) {
    step(1, 2, id0);
    t0 = now_s();
    step(1, steps, id0);
    const double s1 = steps / (now_s() - t0);
    bench_record(tag + "decode batch 1: q3_step, " + what, s1, "tok/s");
    bench_record(tag + "q3_step - q3_logits per token, " + what, (1 / s1 - 1 / b1) * 1e6, "us");
  }
  step(batch, 2, 100);
  t0 = now_s();
  step(batch, steps / 2, 100);
  bench_record(tag + "decode batch 8: q3_step, T 0.6 top-k 20 top-p 0.95", batch * (steps / 2) / (now_s() - t0),
               "tok/s");
}

void write_results(const std::string& json, const std::string& md, const std::string& cmd, double secs) {
  char date[64];
  std::time_t now = std::time(nullptr);
  std::strftime(date, sizeof date, "%Y-%m-%d %H:%M:%S UTC", std::gmtime(&now));
  auto esc = [](const std::string& s) {
    std::string o;
    for (char c : s) o += (c == '"' || c == '\\') ? std::string("\\") + c : std::string(1, c);
    return o;
  };
  if (!json.empty()) {
    std::ofstream f(json);
    f << "{\n  \"date\": \"" << date << "\",\n  \"command\": \"" << esc(cmd) << "\",\n  \"seconds\": " << secs
      << ",\n  \"checks\": [\n";
    for (size_t i = 0; i < g_checks.size(); i++)
      f << "    {\"name\": \"" << esc(g_checks[i].name) << "\", \"metric\": "
        << (std::isfinite(g_checks[i].metric) ? g_checks[i].metric : -1) << ", \"pass\": "
        << (g_checks[i].pass ? "true" : "false") << ", \"note\": \"" << esc(g_checks[i].note) << "\"}"
        << (i + 1 < g_checks.size() ? "," : "") << "\n";
    f << "  ],\n  \"results\": [\n";
    for (size_t i = 0; i < g_bench.size(); i++)
      f << "    {\"name\": \"" << esc(g_bench[i].name) << "\", \"value\": " << g_bench[i].value << ", \"unit\": \""
        << g_bench[i].unit << "\"}" << (i + 1 < g_bench.size() ? "," : "") << "\n";
    f << "  ]\n}\n";
  }
  if (!md.empty()) {
    std::ofstream f(md);
    f << "# engine-check " << date << "\n\n- command: `" << cmd << "`\n- wall: " << secs
      << " s\n\n| check | metric | result | note |\n|---|---|---|---|\n";
    for (auto& c : g_checks)
      f << "| " << c.name << " | " << c.metric << " | " << (c.pass ? "PASS" : "FAIL") << " | " << c.note << " |\n";
    if (!g_bench.empty()) f << "\n| measurement | value | unit |\n|---|---|---|\n";
    for (auto& b : g_bench) f << "| " << b.name << " | " << b.value << " | " << b.unit << " |\n";
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir = "/tmp/q3-cuda-tiny", json, md, cmd, bench;
  int ctx = 1024, steps = 128;
  bool self = false, quick = false;  // --quick: --bench without the eager run
  for (int i = 0; i < argc; i++) cmd += std::string(i ? " " : "") + argv[i];
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    auto next = [&] { return i + 1 < argc ? std::string(argv[++i]) : std::string(); };
    if (a == "--dir") dir = next();
    else if (a == "--self") self = true;
    else if (a == "--quick") quick = true;
    else if (a == "--bench") bench = next();
    else if (a == "--bench-device") g_bench_device = next() == "cpu" ? Q3_DEVICE_CPU : Q3_DEVICE_CUDA;
    else if (a == "--ctx") ctx = std::atoi(next().c_str());
    else if (a == "--steps") steps = std::atoi(next().c_str());
    else if (a == "--json") json = next();
    else if (a == "--md") md = next();
    else if (a == "--device-count") {
      int n = q3_cuda_device_count();
      std::printf("%d\n", n);
      return n > 0 ? 0 : 1;
    } else {
      std::fprintf(stderr, "usage: engine_check [--dir DIR] [--self] [--json F] [--md F] [--device-count]\n"
                           "       engine_check --bench MODEL_DIR [--ctx N] [--steps N] [--quick] [--json F] [--md F]\n");
      return 2;
    }
  }
  auto t0 = std::chrono::steady_clock::now();
  if (!bench.empty()) {
    std::printf("== engine decode timing on %s ==\n", bench.c_str());
    try {
      std::vector<CudaKnobs> runs = {CudaKnobs{true, false}, CudaKnobs{true, true}};
      if (!quick) runs.push_back(CudaKnobs{false, false});
      for (const CudaKnobs& k : runs) bench_engine(bench, ctx, steps, k);
    } catch (const std::exception& e) {
      record(std::string("fatal: ") + e.what(), INFINITY, false);
    }
    write_results(json, md, cmd, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    return g_checks.empty() ? 0 : 1;
  }
  const bool have_cuda = q3_cuda_device_count() > 0;
  std::printf("== (2) engine: %s vs CPU on a cuda-tiny checkpoint (%s) ==\n", self ? "CPU" : "CUDA", dir.c_str());
  try {
    if (!self && !have_cuda) throw Fatal("no CUDA device (q3_cuda_device_count() == 0); --self runs CPU vs CPU");
    q3::write_random_checkpoint(dir, cuda_tiny_spec(), 1234, {});
    const std::string tiny = dir + "-preset-tiny";
    q3::write_demo_checkpoint(tiny, "tiny", 0, {});
    check_device_selection(tiny, dir, have_cuda);
    check_sampling_harness(4096, 2000);
    const q3_device other = self ? Q3_DEVICE_CPU : Q3_DEVICE_CUDA;
    {
      Engine cpu, dev;
      open(cpu, dir, Q3_DEVICE_CPU);
      open(dev, dir, other);
      std::printf("  reference: %s | checked: %s (%s)\n", cpu.info.device, dev.info.device, CudaKnobs{}.tag().c_str());
      check_logits(cpu, dev, 37, 1, "37-token prompt:");
      check_logits(cpu, dev, 300, 2, "300 tokens (logits in 2 passes of <= 256 rows):");
      check_logits(cpu, dev, 3000, 4, "3000 tokens (passes of 2048 + 952):", false);
      check_generate(cpu, dev, 32);
      check_batching(cpu, dev, 40);
      check_sampling(cpu, dev, self, 256, "");
    }
    if (!self)  // batching and sampling again with every pass eager, and with the logits copied to the host sampler
      for (CudaKnobs k : {CudaKnobs{false, false}, CudaKnobs{true, true}}) {
        Engine cpu, dev;
        open(cpu, dir, Q3_DEVICE_CPU);
        open(dev, dir, other, 0, k);
        std::printf("  %s:\n", k.tag().c_str());
        check_batching(cpu, dev, 24);
        check_sampling(cpu, dev, self, 128, k.tag() + ": ");
      }
    {
      Engine cpu, dev;
      open(cpu, dir, Q3_DEVICE_CPU, 4.0);
      open(dev, dir, other, 4.0);
      check_logits(cpu, dev, 1500, 3, "YaRN x4 (original 1024), 1500-token prompt:");
    }
  } catch (const std::exception& e) {
    record(std::string("fatal: ") + e.what(), INFINITY, false);
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  write_results(json, md, cmd, secs);
  int fails = 0;
  for (auto& c : g_checks) fails += !c.pass;
  std::printf("engine-check: %zu checks, %d failed (%.1f s)\n", g_checks.size(), fails, secs);
  return fails ? 1 : 0;
}
