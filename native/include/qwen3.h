/* C ABI of the Qwen3 AWQ engine, shared by the N-API addon (native/addon) and the CLI (native/cli).
 *
 * Ownership model: an engine holds the weights, a paged KV-cache pool and per-sequence sampler state.
 * KV blocks are handed out by the engine's allocator (q3_kv_alloc / q3_kv_retain / q3_kv_release, refcounted so a
 * prefix cache can share blocks); a caller drives decoding either with q3_step (continuous batching: any mix of
 * prefill chunks and decode tokens from many sequences in one forward pass) or with q3_generate (one sequence, tokens
 * streamed through a callback). Calls on one engine are serialised by the engine itself.
 *
 * Errors: every function that can fail returns Q3_OK or an error code; the message is then available from
 * q3_last_error() on the same thread. Nothing in the library calls exit() or aborts. */
#ifndef QWEN3_H
#define QWEN3_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
  Q3_OK = 0,
  Q3_ERR_IO = 1,         /* a file is missing, unreadable or truncated */
  Q3_ERR_FORMAT = 2,     /* a file is readable but not what a Qwen3 AWQ checkpoint must contain */
  Q3_ERR_ARGUMENT = 3,   /* a caller passed something invalid (token id >= vocab, prompt longer than the context...) */
  Q3_ERR_CAPACITY = 4,   /* out of KV blocks */
  Q3_ERR_DEVICE = 5,     /* CUDA requested but unavailable, or a device call failed */
  Q3_ERR_INTERNAL = 6
} q3_status;

typedef enum { Q3_DEVICE_AUTO = 0, Q3_DEVICE_CPU = 1, Q3_DEVICE_CUDA = 2 } q3_device;

/* Message of the last error raised on the calling thread ("" if none). */
const char* q3_last_error(void);

typedef void (*q3_progress_fn)(void* user, const char* stage, double fraction);

typedef struct {
  q3_device device;
  int32_t n_threads;            /* CPU threads; 0 = all online cores */
  int32_t kv_block_size;        /* tokens per KV block; 0 = 16 */
  int32_t kv_blocks;            /* blocks in the pool; 0 = derive from kv_cache_mib */
  int64_t kv_cache_mib;         /* pool size in MiB when kv_blocks is 0; 0 = enough for 4 full contexts, capped at 2 GiB */
  int32_t max_context;          /* 0 = config.json max_position_embeddings (x factor when YaRN is forced on) */
  double yarn_factor;           /* > 0: turn YaRN on with this factor, overriding config.json */
  int32_t yarn_original_max;    /* original_max_position_embeddings for the override; 0 = config's or 32768 */
  q3_progress_fn progress;      /* optional, called from the loading thread */
  void* progress_user;
  /* CUDA backend only (ignored on the CPU): */
  int32_t cuda_gemv_max;        /* matmuls of at most this many rows (1..16) use the GEMV, more the tensor-core GEMM;
                                   0 = 4; -1 = always the GEMM */
  int32_t cuda_no_graphs;       /* 1: run decode passes eagerly instead of replaying a CUDA graph per batch bucket */
  int32_t cuda_host_sampling;   /* 1: copy logits back and sample on the host; 0: sample on the device (only token
                                   ids and requested logprobs come back) */
  /* CPU backend only: */
  int32_t cpu_head;             /* lm_head of samples that set skip_logprob and need only their top-k (greedy, top_k
                                   <= 64): 0 = screened (an int8 copy picks the candidates, whose logits alone are
                                   computed from the fp16 head; docs/cpu-head-screen.md) where its AVX-512 VNNI kernel
                                   runs, else full; 1 = always the full fp16 head; 2 = screened on any CPU (tests) */
} q3_load_options;

typedef struct {
  int32_t hidden_size, intermediate_size, n_layers, n_heads, n_kv_heads, head_dim, vocab_size, group_size;
  int32_t max_context;          /* tokens one sequence may hold */
  double rope_theta, rms_norm_eps;
  int32_t tie_word_embeddings;
  int32_t yarn_enabled;         /* 1 when YaRN is active (config or override) */
  double yarn_factor, yarn_attention_factor;
  int32_t kv_block_size, kv_blocks;
  int32_t n_eos; int32_t eos_ids[8];  /* from generation_config.json */
  int64_t weight_bytes_per_token;     /* bytes of weights one decode step reads (with the screened head: its int8
                                         copy; add 2·hidden_size bytes per q3_stats.head_exact_rows) */
  int64_t full_head_bytes_per_token;  /* the same with the full fp16 lm_head */
  int64_t kv_bytes_per_token;         /* bytes of KV cache one token occupies */
  char device[64];              /* "cpu (avx512-vnni, 2 threads)" or "cuda (NVIDIA H200)" */
} q3_info;

typedef struct q3_engine q3_engine;

q3_status q3_engine_load(const char* model_dir, const q3_load_options* opts, q3_engine** out);
void q3_engine_free(q3_engine* e);
void q3_engine_info(const q3_engine* e, q3_info* out);

/* ---- KV blocks (refcounted) ---- */
q3_status q3_kv_alloc(q3_engine* e, int32_t n, int32_t* out_ids); /* all or nothing: Q3_ERR_CAPACITY if short */
void q3_kv_retain(q3_engine* e, const int32_t* ids, int32_t n);
void q3_kv_release(q3_engine* e, const int32_t* ids, int32_t n);   /* a block returns to the pool at refcount 0 */
int32_t q3_kv_free_blocks(const q3_engine* e);

/* ---- Sampling ---- */
typedef struct {
  float temperature;            /* <= 0: greedy */
  int32_t top_k;                /* <= 0: off */
  float top_p;                  /* >= 1: off */
  float min_p;                  /* <= 0: off */
  float presence_penalty;       /* OpenAI: subtracted once from every token already generated */
  float frequency_penalty;      /* OpenAI: subtracted per occurrence in the generated tokens */
  float repetition_penalty;     /* HF/vLLM: divides positive logits (multiplies negative) of prompt+generated tokens; 1 = off */
  uint64_t seed;                /* used when has_seed; otherwise a random seed is drawn */
  int32_t has_seed;
  int32_t n_logprobs;           /* top-n alternatives to report, 0..Q3_MAX_LOGPROBS */
  int32_t skip_logprob;         /* 1: the caller ignores q3_sample_out.logprob (and n_logprobs is 0), so the CPU
                                   backend may skip the logits the token does not depend on (cpu_head); logprob is then
                                   NaN. The sampled token is the same either way. */
} q3_sampling;

#define Q3_MAX_LOGPROBS 20

typedef struct {
  int32_t token;
  float logprob;                /* log-softmax of the raw logits (before penalties and temperature) */
  int32_t forced;               /* 1 when the token came from q3_seq_force, not from sampling */
  int32_t n_top;
  int32_t top_tokens[Q3_MAX_LOGPROBS];
  float top_logprobs[Q3_MAX_LOGPROBS];
} q3_sample_out;

/* Sampler state of a sequence: the prompt (for the repetition penalty), counts of generated tokens (for presence and
 * frequency penalties), the RNG and a queue of forced tokens. */
q3_status q3_seq_begin(q3_engine* e, int64_t seq_id, const int32_t* prompt, int32_t n_prompt, const q3_sampling* s);
/* Queue tokens that the next samples of this sequence emit instead of sampling (the thinking budget uses it). */
q3_status q3_seq_force(q3_engine* e, int64_t seq_id, const int32_t* tokens, int32_t n);
void q3_seq_end(q3_engine* e, int64_t seq_id);

/* Words of a token mask: one bit per vocabulary entry, 32 to a word. */
#define Q3_MASK_WORDS(vocab_size) (((vocab_size) + 31) / 32)

/* One sequence's share of a forward pass: feed tokens[0..n) at positions pos..pos+n-1. block_table lists the KV
 * blocks holding positions 0..pos+n-1 (positions < pos must already be filled, e.g. by a prefix cache). */
typedef struct {
  int64_t seq_id;
  const int32_t* tokens; int32_t n_tokens;
  int32_t pos;
  const int32_t* block_table; int32_t n_blocks;
  int32_t sample;               /* 1: sample one token from the logits after the last fed token (needs q3_seq_begin) */
  /* Optional (NULL = every token allowed): the tokens this sample may take, Q3_MASK_WORDS(vocab_size) words where
   * bit (t % 32) of word t / 32 set means token t is allowed (xgrammar's bitmask layout). Disallowed tokens get
   * probability 0 before penalties, temperature and top-k/p; logprobs are those of the masked distribution. A forced
   * token (q3_seq_force) ignores the mask. A mask that allows no token is an argument error. Read only while
   * sampling: with q3_forward + q3_sample a caller may still be filling it during the forward pass. */
  const uint32_t* token_mask;
} q3_batch_item;

/* One forward pass over all items; out[i] is written for every item with sample = 1. */
q3_status q3_step(q3_engine* e, const q3_batch_item* items, int32_t n_items, q3_sample_out* out);

/* q3_step in two halves, so token masks (which depend only on tokens already sampled) can be computed while the
 * forward pass runs: q3_forward keeps the logits of every item with sample = 1 in the engine, and q3_sample draws
 * from them, applying each item's token_mask. q3_sample must get the items of the last q3_forward (same sequences in
 * the same order; Q3_ERR_ARGUMENT otherwise), and any q3_step, q3_logits or q3_forward in between discards them.
 * A backend that samples on its device (CUDA) needs the masks inside the pass: there q3_forward only checks the batch
 * and the whole pass runs in q3_sample, so nothing overlaps but every row is still sampled on the device. */
q3_status q3_forward(q3_engine* e, const q3_batch_item* items, int32_t n_items);
q3_status q3_sample(q3_engine* e, const q3_batch_item* items, int32_t n_items, q3_sample_out* out);

/* Logits of one item (no sampling): the last position's [vocab], or every fed position's [n_tokens, vocab] when
 * all_positions is 1. */
q3_status q3_logits(q3_engine* e, const q3_batch_item* item, int32_t all_positions, float* out);

/* Logits of a whole prompt in one prefill, with KV blocks taken from the pool and given back: the last position's
 * [vocab], or [n_prompt, vocab] when all_positions is 1. Q3_ERR_ARGUMENT for an empty prompt or one longer than the
 * context. */
q3_status q3_prompt_logits(q3_engine* e, const int32_t* prompt, int32_t n_prompt, int32_t all_positions, float* out);

/* ---- One-sequence generation ---- */
typedef enum { Q3_FINISH_NONE = 0, Q3_FINISH_STOP = 1, Q3_FINISH_LENGTH = 2, Q3_FINISH_CANCELLED = 3 } q3_finish;

typedef struct {
  int32_t max_tokens;
  const int32_t* stop_ids; int32_t n_stop;  /* in addition to generation_config's eos ids */
  q3_sampling sampling;
} q3_generate_params;

/* Called for every token, in order, on the generating thread; return nonzero to cancel. */
typedef int (*q3_token_fn)(void* user, const q3_sample_out* tok);

q3_status q3_generate(q3_engine* e, const int32_t* prompt, int32_t n_prompt, const q3_generate_params* p,
                      q3_token_fn on_token, void* user, q3_finish* finish);

/* ---- Counters ---- */
typedef struct {
  int64_t prefill_tokens, decode_tokens, steps;
  double prefill_seconds, decode_seconds;
  int32_t kv_blocks_total, kv_blocks_used, sequences;
  int64_t head_screened_rows;   /* samples that ran on the screened lm_head (cpu_head) */
  int64_t head_exact_rows;      /* fp16 head rows computed for them: candidates, or the whole vocabulary when a row
                                   fell back */
} q3_stats;
void q3_engine_stats(const q3_engine* e, q3_stats* out);

/* CUDA devices the engine can use: 0 when built without the CUDA backend, without a driver or without a device. */
int32_t q3_cuda_device_count(void);

/* Measured memory read bandwidth of this machine (CPU: n_threads reading a buffer of `bytes`), in GB/s. */
double q3_measure_read_bandwidth(int32_t n_threads, int64_t bytes);

#ifdef __cplusplus
}
#endif
#endif
