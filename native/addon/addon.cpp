// N-API surface of the engine (typed in index.ts): every long call runs off the JS thread (AsyncWorker or a
// generation thread), results come back through promises or a ThreadSafeFunction, and C errors become JS Errors.
// Worker threads never touch Napi values.
#include <napi.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "qwen3.h"

namespace {

// Owns the engine; in-flight async work holds a reference, so free() never pulls weights from under a step.
struct Handle {
  q3_engine* e;
  explicit Handle(q3_engine* engine) : e(engine) {}
  ~Handle() { q3_engine_free(e); }
};
using HandlePtr = std::shared_ptr<Handle>;

Napi::Error make_error(Napi::Env env, const std::string& msg) { return Napi::Error::New(env, msg); }

std::vector<int32_t> to_ids(const Napi::Value& v, const char* what) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
    throw Napi::TypeError::New(v.Env(), std::string(what) + " must be an Int32Array");
  Napi::Int32Array a = v.As<Napi::Int32Array>();
  return std::vector<int32_t>(a.Data(), a.Data() + a.ElementLength());
}

double num(const Napi::Object& o, const char* key, double fallback) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return fallback;
  if (!v.IsNumber()) throw Napi::TypeError::New(o.Env(), std::string(key) + " must be a number");
  return v.As<Napi::Number>().DoubleValue();
}

bool flag(const Napi::Object& o, const char* key, bool fallback) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return fallback;
  if (!v.IsBoolean()) throw Napi::TypeError::New(o.Env(), std::string(key) + " must be a boolean");
  return v.As<Napi::Boolean>().Value();
}

// The wire's sampling fields (gpu-worker/protocol.ts, same names as q3_sampling's) plus logprobs: the one place
// where a request's sampling becomes the engine's.
q3_sampling to_sampling(const Napi::Value& v) {
  q3_sampling s{};
  s.repetition_penalty = 1.0f;
  if (v.IsUndefined() || v.IsNull()) return s;
  if (!v.IsObject()) throw Napi::TypeError::New(v.Env(), "sampling must be an object");
  Napi::Object o = v.As<Napi::Object>();
  s.temperature = (float)num(o, "temperature", 0);
  s.top_k = (int32_t)num(o, "top_k", 0);
  s.top_p = (float)num(o, "top_p", 1);
  s.min_p = (float)num(o, "min_p", 0);
  s.presence_penalty = (float)num(o, "presence_penalty", 0);
  s.frequency_penalty = (float)num(o, "frequency_penalty", 0);
  s.repetition_penalty = (float)num(o, "repetition_penalty", 1);
  s.n_logprobs = (int32_t)num(o, "logprobs", 0);
  s.skip_logprob = flag(o, "skip_logprob", false) ? 1 : 0;
  Napi::Value seed = o.Get("seed");
  if (!seed.IsUndefined() && !seed.IsNull()) {
    s.has_seed = 1;
    s.seed = (uint64_t)(int64_t)num(o, "seed", 0);
  }
  return s;
}

Napi::Object token_to_js(Napi::Env env, const q3_sample_out& t) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("token", t.token);
  o.Set("logprob", t.logprob);
  o.Set("forced", Napi::Boolean::New(env, t.forced != 0));
  if (t.n_top > 0) {
    Napi::Array top = Napi::Array::New(env, t.n_top);
    for (int i = 0; i < t.n_top; i++) {
      Napi::Object e = Napi::Object::New(env);
      e.Set("token", t.top_tokens[i]);
      e.Set("logprob", t.top_logprobs[i]);
      top.Set(i, e);
    }
    o.Set("top", top);
  }
  return o;
}

// ---- load ----

class LoadWorker : public Napi::AsyncWorker {
 public:
  LoadWorker(Napi::Env env, std::string dir, q3_load_options opts, Napi::Function on_progress)
      : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), dir_(std::move(dir)), opts_(opts) {
    if (!on_progress.IsEmpty())
      progress_ = Napi::ThreadSafeFunction::New(env, on_progress, "qwen3-load-progress", 0, 1);
  }
  ~LoadWorker() override {
    if (progress_) progress_.Release();
  }
  Napi::Promise promise() { return deferred_.Promise(); }

  void Execute() override {
    q3_load_options o = opts_;
    if (progress_) {
      o.progress = [](void* user, const char* stage, double f) {
        auto* tsfn = (Napi::ThreadSafeFunction*)user;
        auto* payload = new std::pair<std::string, double>(stage, f);
        tsfn->NonBlockingCall(payload, [](Napi::Env env, Napi::Function cb, std::pair<std::string, double>* p) {
          cb.Call({Napi::String::New(env, p->first), Napi::Number::New(env, p->second)});
          delete p;
        });
      };
      o.progress_user = &progress_;
    }
    q3_engine* e = nullptr;
    if (q3_engine_load(dir_.c_str(), &o, &e) != Q3_OK) {
      SetError(q3_last_error());
      return;
    }
    engine_ = e;
  }
  void OnOK() override;
  void OnError(const Napi::Error& err) override { deferred_.Reject(err.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  std::string dir_;
  q3_load_options opts_;
  Napi::ThreadSafeFunction progress_;
  q3_engine* engine_ = nullptr;
};

// ---- the Engine object ----

class Engine : public Napi::ObjectWrap<Engine> {
 public:
  static Napi::FunctionReference constructor;

  static void Init(Napi::Env env) {
    Napi::Function f = DefineClass(env, "Engine",
                                   {InstanceMethod("info", &Engine::Info), InstanceMethod("stats", &Engine::Stats),
                                    InstanceMethod("generate", &Engine::Generate), InstanceMethod("step", &Engine::Step),
                                    InstanceMethod("forward", &Engine::Forward), InstanceMethod("sample", &Engine::Sample),
                                    InstanceMethod("logits", &Engine::Logits), InstanceMethod("kvAlloc", &Engine::KvAlloc),
                                    InstanceMethod("kvRetain", &Engine::KvRetain),
                                    InstanceMethod("kvRelease", &Engine::KvRelease),
                                    InstanceMethod("kvFreeBlocks", &Engine::KvFreeBlocks),
                                    InstanceMethod("seqBegin", &Engine::SeqBegin),
                                    InstanceMethod("seqForce", &Engine::SeqForce), InstanceMethod("seqEnd", &Engine::SeqEnd),
                                    InstanceMethod("free", &Engine::Free)});
    constructor = Napi::Persistent(f);
    constructor.SuppressDestruct();
  }

  explicit Engine(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Engine>(info) {
    if (info.Length() == 1 && info[0].IsExternal()) handle_ = *info[0].As<Napi::External<HandlePtr>>().Data();
  }

  HandlePtr handle(Napi::Env env) {
    if (!handle_) throw make_error(env, "engine was freed");
    return handle_;
  }

  Napi::Value Info(const Napi::CallbackInfo& info);
  Napi::Value Stats(const Napi::CallbackInfo& info);
  Napi::Value Generate(const Napi::CallbackInfo& info);
  Napi::Value Step(const Napi::CallbackInfo& info);
  Napi::Value Forward(const Napi::CallbackInfo& info);
  Napi::Value Sample(const Napi::CallbackInfo& info);
  Napi::Value Logits(const Napi::CallbackInfo& info);

  Napi::Value KvAlloc(const Napi::CallbackInfo& info) {
    HandlePtr h = handle(info.Env());
    int32_t n = info[0].As<Napi::Number>().Int32Value();
    if (n < 0) throw Napi::RangeError::New(info.Env(), "kvAlloc: negative count");
    Napi::Int32Array ids = Napi::Int32Array::New(info.Env(), n);
    if (q3_kv_alloc(h->e, n, ids.Data()) != Q3_OK) return info.Env().Null();
    return ids;
  }
  Napi::Value KvRetain(const Napi::CallbackInfo& info) {
    auto ids = to_ids(info[0], "ids");
    q3_kv_retain(handle(info.Env())->e, ids.data(), (int32_t)ids.size());
    return info.Env().Undefined();
  }
  Napi::Value KvRelease(const Napi::CallbackInfo& info) {
    auto ids = to_ids(info[0], "ids");
    q3_kv_release(handle(info.Env())->e, ids.data(), (int32_t)ids.size());
    return info.Env().Undefined();
  }
  Napi::Value KvFreeBlocks(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), q3_kv_free_blocks(handle(info.Env())->e));
  }
  Napi::Value SeqBegin(const Napi::CallbackInfo& info) {
    HandlePtr h = handle(info.Env());
    int64_t id = info[0].As<Napi::Number>().Int64Value();
    auto prompt = to_ids(info[1], "prompt");
    q3_sampling s = to_sampling(info[2]);
    if (q3_seq_begin(h->e, id, prompt.data(), (int32_t)prompt.size(), &s) != Q3_OK)
      throw make_error(info.Env(), q3_last_error());
    return info.Env().Undefined();
  }
  Napi::Value SeqForce(const Napi::CallbackInfo& info) {
    HandlePtr h = handle(info.Env());
    auto tokens = to_ids(info[1], "tokens");
    if (q3_seq_force(h->e, info[0].As<Napi::Number>().Int64Value(), tokens.data(), (int32_t)tokens.size()) != Q3_OK)
      throw make_error(info.Env(), q3_last_error());
    return info.Env().Undefined();
  }
  Napi::Value SeqEnd(const Napi::CallbackInfo& info) {
    q3_seq_end(handle(info.Env())->e, info[0].As<Napi::Number>().Int64Value());
    return info.Env().Undefined();
  }
  Napi::Value Free(const Napi::CallbackInfo& info) {
    handle_.reset();
    return info.Env().Undefined();
  }

 private:
  HandlePtr handle_;
};

Napi::FunctionReference Engine::constructor;

void LoadWorker::OnOK() {
  Napi::Env env = Env();
  HandlePtr h = std::make_shared<Handle>(engine_);
  Napi::Object obj = Engine::constructor.New({Napi::External<HandlePtr>::New(env, &h)});
  deferred_.Resolve(obj);
}

Napi::Value Engine::Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  q3_info i;
  q3_engine_info(handle(env)->e, &i);
  Napi::Object o = Napi::Object::New(env);
  o.Set("hiddenSize", i.hidden_size);
  o.Set("intermediateSize", i.intermediate_size);
  o.Set("layers", i.n_layers);
  o.Set("heads", i.n_heads);
  o.Set("kvHeads", i.n_kv_heads);
  o.Set("headDim", i.head_dim);
  o.Set("vocabSize", i.vocab_size);
  o.Set("groupSize", i.group_size);
  o.Set("maxContext", i.max_context);
  o.Set("ropeTheta", i.rope_theta);
  o.Set("rmsNormEps", i.rms_norm_eps);
  o.Set("tieWordEmbeddings", Napi::Boolean::New(env, i.tie_word_embeddings != 0));
  o.Set("yarn", Napi::Boolean::New(env, i.yarn_enabled != 0));
  o.Set("yarnFactor", i.yarn_factor);
  o.Set("yarnAttentionFactor", i.yarn_attention_factor);
  o.Set("kvBlockSize", i.kv_block_size);
  o.Set("kvBlocks", i.kv_blocks);
  Napi::Array eos = Napi::Array::New(env, i.n_eos);
  for (int k = 0; k < i.n_eos; k++) eos.Set(k, i.eos_ids[k]);
  o.Set("eosIds", eos);
  o.Set("weightBytesPerToken", (double)i.weight_bytes_per_token);
  o.Set("kvBytesPerToken", (double)i.kv_bytes_per_token);
  o.Set("device", i.device);
  return o;
}

Napi::Value Engine::Stats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  q3_stats s;
  q3_engine_stats(handle(env)->e, &s);
  Napi::Object o = Napi::Object::New(env);
  o.Set("prefillTokens", (double)s.prefill_tokens);
  o.Set("decodeTokens", (double)s.decode_tokens);
  o.Set("steps", (double)s.steps);
  o.Set("prefillSeconds", s.prefill_seconds);
  o.Set("decodeSeconds", s.decode_seconds);
  o.Set("kvBlocksTotal", s.kv_blocks_total);
  o.Set("kvBlocksUsed", s.kv_blocks_used);
  o.Set("sequences", s.sequences);
  o.Set("headScreenedRows", (double)s.head_screened_rows);
  o.Set("headExactRows", (double)s.head_exact_rows);
  return o;
}

// ---- step, forward, sample ----

struct OwnedItem {
  int64_t seq_id;
  std::vector<int32_t> tokens, blocks;
  int32_t pos;
  bool sample;
  int32_t mask_row;  // row of the step's mask array, or -1
};

// The token masks of one call: rows of Q3_MASK_WORDS(vocab) words in an Int32Array (often on a SharedArrayBuffer that
// grammar threads fill). The reference keeps the array alive until the call resolves; nobody writes a row while its
// sample runs (the caller only hands masks over once they are final).
struct Masks {
  Napi::Reference<Napi::Int32Array> ref;
  const uint32_t* words = nullptr;
  size_t rows = 0;
};

enum class Phase { kStep, kForward, kSample };

class StepWorker : public Napi::AsyncWorker {
 public:
  StepWorker(Napi::Env env, HandlePtr h, std::vector<OwnedItem> items, Masks masks, size_t row_words, Phase phase)
      : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), h_(std::move(h)), items_(std::move(items)),
        masks_(std::move(masks)), row_words_(row_words), phase_(phase) {}
  Napi::Promise promise() { return deferred_.Promise(); }
  void Execute() override {
    std::vector<q3_batch_item> c;
    for (auto& it : items_)
      c.push_back({it.seq_id, it.tokens.data(), (int32_t)it.tokens.size(), it.pos, it.blocks.data(),
                   (int32_t)it.blocks.size(), it.sample ? 1 : 0,
                   it.mask_row >= 0 ? masks_.words + (size_t)it.mask_row * row_words_ : nullptr});
    out_.resize(items_.size());
    q3_status st = phase_ == Phase::kStep      ? q3_step(h_->e, c.data(), (int32_t)c.size(), out_.data())
                   : phase_ == Phase::kForward ? q3_forward(h_->e, c.data(), (int32_t)c.size())
                                               : q3_sample(h_->e, c.data(), (int32_t)c.size(), out_.data());
    if (st != Q3_OK) SetError(q3_last_error());
  }
  void OnOK() override {
    Napi::Env env = Env();
    if (phase_ == Phase::kForward) return deferred_.Resolve(env.Undefined());
    Napi::Array arr = Napi::Array::New(env, items_.size());
    for (size_t i = 0; i < items_.size(); i++)
      arr.Set(i, items_[i].sample ? (Napi::Value)token_to_js(env, out_[i]) : env.Null());
    deferred_.Resolve(arr);
  }
  void OnError(const Napi::Error& err) override { deferred_.Reject(err.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  HandlePtr h_;
  std::vector<OwnedItem> items_;
  Masks masks_;
  size_t row_words_;
  Phase phase_;
  std::vector<q3_sample_out> out_;
};

// step(items, masks?), forward(items), sample(items, masks?): items as in index.ts; an item's maskRow picks its row.
Napi::Value queue_step(const Napi::CallbackInfo& info, HandlePtr h, Phase phase) {
  Napi::Env env = info.Env();
  if (!info[0].IsArray()) throw Napi::TypeError::New(env, "step: items must be an array");
  q3_info model;
  q3_engine_info(h->e, &model);
  const size_t row_words = Q3_MASK_WORDS((size_t)model.vocab_size);
  Masks masks;
  if (phase != Phase::kForward && info.Length() > 1 && !info[1].IsUndefined() && !info[1].IsNull()) {
    if (!info[1].IsTypedArray() || info[1].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
      throw Napi::TypeError::New(env, "step: masks must be an Int32Array");
    Napi::Int32Array a = info[1].As<Napi::Int32Array>();
    masks.words = reinterpret_cast<const uint32_t*>(a.Data());
    masks.rows = a.ElementLength() / row_words;
    masks.ref = Napi::Persistent(a);
  }
  Napi::Array arr = info[0].As<Napi::Array>();
  std::vector<OwnedItem> items;
  for (uint32_t i = 0; i < arr.Length(); i++) {
    Napi::Object o = arr.Get(i).As<Napi::Object>();
    OwnedItem it;
    it.seq_id = o.Get("seqId").As<Napi::Number>().Int64Value();
    it.tokens = to_ids(o.Get("tokens"), "tokens");
    it.pos = o.Get("pos").As<Napi::Number>().Int32Value();
    it.blocks = to_ids(o.Get("blockTable"), "blockTable");
    it.sample = o.Get("sample").ToBoolean().Value();
    Napi::Value row = o.Get("maskRow");
    it.mask_row = row.IsNumber() && phase != Phase::kForward ? row.As<Napi::Number>().Int32Value() : -1;
    if (it.mask_row >= (int64_t)masks.rows)
      throw Napi::RangeError::New(env, "step: item " + std::to_string(i) + " has maskRow " + std::to_string(it.mask_row) +
                                           " but masks hold " + std::to_string(masks.rows) + " rows");
    items.push_back(std::move(it));
  }
  auto* w = new StepWorker(env, std::move(h), std::move(items), std::move(masks), row_words, phase);
  Napi::Promise p = w->promise();
  w->Queue();
  return p;
}

Napi::Value Engine::Step(const Napi::CallbackInfo& info) { return queue_step(info, handle(info.Env()), Phase::kStep); }
Napi::Value Engine::Forward(const Napi::CallbackInfo& info) {
  return queue_step(info, handle(info.Env()), Phase::kForward);
}
Napi::Value Engine::Sample(const Napi::CallbackInfo& info) {
  return queue_step(info, handle(info.Env()), Phase::kSample);
}

// ---- logits ----

class LogitsWorker : public Napi::AsyncWorker {
 public:
  LogitsWorker(Napi::Env env, HandlePtr h, std::vector<int32_t> tokens, bool all)
      : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), h_(std::move(h)), tokens_(std::move(tokens)), all_(all) {}
  Napi::Promise promise() { return deferred_.Promise(); }
  void Execute() override {
    q3_info i;
    q3_engine_info(h_->e, &i);
    const int n = (int)tokens_.size();
    out_.resize((size_t)(all_ ? n : 1) * i.vocab_size);
    if (q3_prompt_logits(h_->e, tokens_.data(), n, all_ ? 1 : 0, out_.data()) != Q3_OK) SetError(q3_last_error());
  }
  void OnOK() override {
    Napi::Float32Array a = Napi::Float32Array::New(Env(), out_.size());
    std::copy(out_.begin(), out_.end(), a.Data());
    deferred_.Resolve(a);
  }
  void OnError(const Napi::Error& err) override { deferred_.Reject(err.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  HandlePtr h_;
  std::vector<int32_t> tokens_;
  bool all_;
  std::vector<float> out_;
};

Napi::Value Engine::Logits(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto* w = new LogitsWorker(env, handle(env), to_ids(info[0], "tokens"), info[1].ToBoolean().Value());
  Napi::Promise p = w->promise();
  w->Queue();
  return p;
}

// ---- generate: a dedicated thread per generation, tokens batched per event-loop turn ----

struct Generation {
  HandlePtr h;
  std::vector<int32_t> prompt, stop_ids;
  q3_generate_params params{};
  std::atomic<bool> cancelled{false};
  std::mutex mu;
  std::vector<q3_sample_out> pending;  // produced, not yet delivered to JS
  bool scheduled = false;
  q3_status status = Q3_OK;
  q3_finish finish = Q3_FINISH_NONE;
  std::string error;
  Napi::ThreadSafeFunction tsfn;
  Napi::Promise::Deferred deferred;
  Napi::FunctionReference on_tokens;
  std::thread thread;
  explicit Generation(Napi::Env env) : deferred(Napi::Promise::Deferred::New(env)) {}
};

void deliver(Napi::Env env, Generation* g) {
  std::vector<q3_sample_out> batch;
  {
    std::lock_guard<std::mutex> lock(g->mu);
    batch.swap(g->pending);
    g->scheduled = false;
  }
  if (batch.empty()) return;
  Napi::Array arr = Napi::Array::New(env, batch.size());
  for (size_t i = 0; i < batch.size(); i++) arr.Set(i, token_to_js(env, batch[i]));
  g->on_tokens.Call({arr});
}

int on_token(void* user, const q3_sample_out* tok) {
  auto* g = (Generation*)user;
  bool schedule = false;
  {
    std::lock_guard<std::mutex> lock(g->mu);
    g->pending.push_back(*tok);
    if (!g->scheduled) schedule = g->scheduled = true;
  }
  if (schedule)
    g->tsfn.NonBlockingCall(g, [](Napi::Env env, Napi::Function, Generation* gen) {
      try {
        deliver(env, gen);
      } catch (const Napi::Error& e) {
        gen->cancelled = true;  // a throwing callback ends the generation
      }
    });
  return g->cancelled.load() ? 1 : 0;
}

Napi::Value Engine::Generate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  HandlePtr h = handle(env);
  if (!info[2].IsFunction()) throw Napi::TypeError::New(env, "generate: onTokens must be a function");
  auto g = std::make_shared<Generation>(env);
  g->h = h;
  g->prompt = to_ids(info[0], "prompt");
  Napi::Object params = info[1].As<Napi::Object>();
  g->params.max_tokens = (int32_t)num(params, "maxTokens", 16);
  Napi::Value stops = params.Get("stopIds");
  if (stops.IsArray())
    for (uint32_t i = 0; i < stops.As<Napi::Array>().Length(); i++)
      g->stop_ids.push_back(stops.As<Napi::Array>().Get(i).As<Napi::Number>().Int32Value());
  g->params.stop_ids = g->stop_ids.data();
  g->params.n_stop = (int32_t)g->stop_ids.size();
  g->params.sampling = to_sampling(params.Get("sampling"));
  g->on_tokens = Napi::Persistent(info[2].As<Napi::Function>());
  g->tsfn = Napi::ThreadSafeFunction::New(env, Napi::Function::New(env, [](const Napi::CallbackInfo&) {}),
                                          "qwen3-generate", 0, 1);
  auto* keep = new std::shared_ptr<Generation>(g);  // released by the final TSFN call
  g->thread = std::thread([gen = g.get(), keep] {
    gen->status = q3_generate(gen->h->e, gen->prompt.data(), (int32_t)gen->prompt.size(), &gen->params, on_token, gen,
                              &gen->finish);
    if (gen->status != Q3_OK) gen->error = q3_last_error();
    gen->tsfn.BlockingCall(keep, [](Napi::Env env, Napi::Function, std::shared_ptr<Generation>* k) {
      Generation* gen = k->get();
      gen->thread.join();
      try {
        deliver(env, gen);
      } catch (const Napi::Error&) {
      }
      if (gen->status != Q3_OK) {
        gen->deferred.Reject(Napi::Error::New(env, gen->error).Value());
      } else {
        Napi::Object r = Napi::Object::New(env);
        const char* reason = gen->finish == Q3_FINISH_STOP ? "stop" : gen->finish == Q3_FINISH_CANCELLED ? "cancelled" : "length";
        r.Set("finishReason", reason);
        gen->deferred.Resolve(r);
      }
      gen->tsfn.Release();
      delete k;
    });
  });
  Napi::Object result = Napi::Object::New(env);
  result.Set("done", g->deferred.Promise());
  std::weak_ptr<Generation> weak = g;
  result.Set("cancel", Napi::Function::New(env, [weak](const Napi::CallbackInfo& ci) {
               if (auto gen = weak.lock()) gen->cancelled = true;
               return ci.Env().Undefined();
             }));
  return result;
}

// ---- module functions ----

Napi::Value Load(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString()) throw Napi::TypeError::New(env, "load: modelDir must be a string");
  q3_load_options o{};
  Napi::Function on_progress;
  if (info.Length() > 1 && info[1].IsObject()) {
    Napi::Object opts = info[1].As<Napi::Object>();
    std::string device = opts.Get("device").IsString() ? opts.Get("device").As<Napi::String>().Utf8Value() : "auto";
    if (device == "cpu") o.device = Q3_DEVICE_CPU;
    else if (device == "cuda") o.device = Q3_DEVICE_CUDA;
    else if (device == "auto") o.device = Q3_DEVICE_AUTO;
    else throw Napi::TypeError::New(env, "device must be auto, cpu or cuda");
    o.n_threads = (int32_t)num(opts, "threads", 0);
    o.kv_block_size = (int32_t)num(opts, "kvBlockSize", 0);
    o.kv_blocks = (int32_t)num(opts, "kvBlocks", 0);
    o.kv_cache_mib = (int64_t)num(opts, "kvCacheMiB", 0);
    o.max_context = (int32_t)num(opts, "maxContext", 0);
    o.yarn_factor = num(opts, "yarnFactor", 0);
    o.yarn_original_max = (int32_t)num(opts, "yarnOriginal", 0);
    o.cuda_gemv_max = (int32_t)num(opts, "cudaGemvMax", 0);
    o.cuda_no_graphs = flag(opts, "cudaGraphs", true) ? 0 : 1;
    o.cuda_host_sampling = flag(opts, "cudaHostSampling", false) ? 1 : 0;
    const std::string head = opts.Get("cpuHead").IsString() ? opts.Get("cpuHead").As<Napi::String>().Utf8Value() : "auto";
    if (head != "auto" && head != "screened" && head != "full")
      throw Napi::TypeError::New(env, "cpuHead must be auto, screened or full");
    o.cpu_head = head == "full" ? 1 : head == "screened" ? 2 : 0;
    if (opts.Get("onProgress").IsFunction()) on_progress = opts.Get("onProgress").As<Napi::Function>();
  }
  auto* w = new LoadWorker(env, info[0].As<Napi::String>().Utf8Value(), o, on_progress);
  Napi::Promise p = w->promise();
  w->Queue();
  return p;
}

Napi::Value MeasureReadBandwidth(const Napi::CallbackInfo& info) {
  int32_t threads = info[0].As<Napi::Number>().Int32Value();
  int64_t bytes = info[1].As<Napi::Number>().Int64Value();
  return Napi::Number::New(info.Env(), q3_measure_read_bandwidth(threads, bytes));
}

Napi::Value CudaAvailable(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), q3_cuda_device_count() > 0);
}

Napi::Object InitModule(Napi::Env env, Napi::Object exports) {
  Engine::Init(env);
  exports.Set("load", Napi::Function::New(env, Load));
  exports.Set("measureReadBandwidth", Napi::Function::New(env, MeasureReadBandwidth));
  exports.Set("cudaAvailable", Napi::Function::New(env, CudaAvailable));
  return exports;
}

}  // namespace

NODE_API_MODULE(qwen3_addon, InitModule)
