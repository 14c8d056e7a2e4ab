/**
 * @module The edge↔worker wire format: zod schemas and their inferred types for POST /v1/generate (body, SSE
 * events, errors). Imported by both sides, so it uses nothing Node-only.
 *
 * Thinking budget, defined precisely:
 * - The think block is "open" from the first generated `think_start_id` (Qwen `<think>`, 151667) until the first
 *   generated `end_think_id` (`</think>`, 151668). When the prompt itself already ends inside a think block (its last
 *   `think_start_id` has no `end_think_id` after it, e.g. a prefilled assistant turn "<think>\n…"), the block is open
 *   from the first generated token. `prompt_in_think` overrides that detection.
 * - Thinking tokens are the generated tokens inside the open block: after `<think>`, not counting `<think>` itself
 *   nor `</think>`. With a thinking-mode prompt (ending in "<|im_start|>assistant\n") the model writes "<think>"
 *   first, so the "\n" after it is thinking token 1.
 * - When the N-th thinking token has been generated and the block is still open, the worker forces `inject_ids`:
 *   they are the next tokens of the stream, exactly, each counted in completion_tokens and max_tokens. Generation
 *   then continues as the answer; the budget applies once. With N = 0 the inject sequence directly follows <think>.
 *   Like Qwen's two-pass method (docs/chat-format.md#thinking-budget), a model that would have written </think> as
 *   token N + 1 is still cut: the worker cannot know that before sampling it.
 * - Forced tokens never trigger stop ids; eos generated inside the block still stops the stream.
 *
 * Stop tokens: generation ends when an eos id of the model or one of `stop_token_ids` is sampled. That token is NOT
 * in `tokens` (the final event names it in `stop_token_id`) but IS counted in completion_tokens, as vLLM does.
 *
 * Structured output (`structured_output`), defined precisely:
 * - `format` is xgrammar's structural-tag format (https://xgrammar.mlc.ai/docs/tutorials/structural_tag.html): text
 *   pieces (const_string, regex, EBNF grammar, JSON schema, any_text) composed by sequence, or, tag, triggered_tags
 *   (free text until a trigger opens a tag) and tags_with_separator. The worker compiles it with the model's
 *   tokenizer.json and, from the token where it applies, samples only tokens that keep the output a prefix of a
 *   string the format accepts; where the format may end, the model's eos ids are allowed too.
 * - JSON schemas are compiled strictly and compactly: properties or items a schema does not declare are not
 *   generated, and the JSON is one line with `, ` and `: ` separators (Python's json.dumps style) and no other
 *   whitespace — free whitespace lets a model pad forever instead of finishing.
 * - Without `after_think` the format applies from the first generated token. With it, generation is free inside a
 *   think block and the format applies after the first generated `end_think_id`, where the model may first write up
 *   to two of `separator_ids` (Qwen writes "\n\n" after </think>; the thinking budget's inject text ends with it),
 *   which are not part of the format. If the prompt does not end inside a think block, the first token may also be
 *   `think_start_id`; any other first token starts the format at once (a model that skips thinking is still
 *   constrained). So one compiled grammar serves both modes.
 * - Forced tokens (the thinking budget) are emitted as always; when the format applies they must fit it.
 * - A format the worker cannot compile, or cannot compile within GRAMMAR_COMPILE_TIMEOUT_MS, is answered 400 before
 *   streaming, with `param` set to the request's `param` (the client's field the edge built the format from).
 */
import * as z from 'zod/mini';
import en from 'zod/v4/locales/en.js';
import { END_THINK_ID, MAX_LOGPROBS, THINK_SEPARATOR_IDS, THINK_START_ID } from './protocol-basics.ts';

export * from './protocol-basics.ts';

// zod's functional build (its schemas cost little to construct; the edge checks the frames it reads without zod:
// edge/validate-worker.ts); the messages are the same English ones (mini loads no locale by itself).
z.config(en());

const int = z.number().check(z.int());
const tokenId = z.number().check(z.int(), z.minimum(0));
const nonEmpty = z.string().check(z.minLength(1));

export const SamplingSchema = z.strictObject({
  temperature: z._default(z.number().check(z.minimum(0), z.maximum(100)), 0),        // 0 = greedy
  top_p: z._default(z.number().check(z.gt(0), z.maximum(1)), 1),
  top_k: z._default(z.number().check(z.int(), z.minimum(0)), 0),                      // 0 = off
  min_p: z._default(z.number().check(z.minimum(0), z.maximum(1)), 0),
  presence_penalty: z._default(z.number().check(z.minimum(-2), z.maximum(2)), 0),
  frequency_penalty: z._default(z.number().check(z.minimum(-2), z.maximum(2)), 0),
  repetition_penalty: z._default(z.number().check(z.gt(0), z.maximum(10)), 1),       // 1 = off
  seed: z.optional(z.number().check(z.int(), z.minimum(0), z.maximum(Number.MAX_SAFE_INTEGER))),
});

export const ThinkingBudgetSchema = z.strictObject({
  max_thinking_tokens: z.number().check(z.int(), z.minimum(0)),
  end_think_id: z._default(tokenId, END_THINK_ID),
  think_start_id: z._default(tokenId, THINK_START_ID),
  inject_ids: z.array(tokenId).check(z.minLength(1), z.maxLength(256)),
  prompt_in_think: z.optional(z.boolean()),                   // default: detected from the prompt (see above)
});

export type TagFormat = { type: 'tag'; begin: string; content: GrammarFormat; end: string };
export type GrammarFormat =
  | { type: 'const_string'; value: string }
  | { type: 'json_schema'; json_schema: boolean | Record<string, unknown> }
  | { type: 'regex'; pattern: string }
  | { type: 'grammar'; grammar: string }                    // xgrammar's EBNF, root rule `root`
  | { type: 'any_text' }
  | { type: 'sequence' | 'or'; elements: GrammarFormat[] }
  | TagFormat
  | { type: 'triggered_tags'; triggers: string[]; tags: TagFormat[]; at_least_one?: boolean; stop_after_first?: boolean }
  | { type: 'tags_with_separator'; separator: string; tags: TagFormat[]; at_least_one?: boolean; stop_after_first?: boolean };

const TagFormatSchema: z.ZodMiniType<TagFormat> = z.lazy(() =>
  z.strictObject({ type: z.literal('tag'), begin: z.string(), content: GrammarFormatSchema, end: z.string() }));
const tagListFields = { tags: z.array(TagFormatSchema).check(z.minLength(1)), at_least_one: z.optional(z.boolean()), stop_after_first: z.optional(z.boolean()) };

export const GrammarFormatSchema: z.ZodMiniType<GrammarFormat> = z.lazy(() =>
  z.union([
    z.strictObject({ type: z.literal('const_string'), value: z.string() }),
    z.strictObject({ type: z.literal('json_schema'), json_schema: z.union([z.boolean(), z.record(z.string(), z.unknown())]) }),
    z.strictObject({ type: z.literal('regex'), pattern: nonEmpty }),
    z.strictObject({ type: z.literal('grammar'), grammar: nonEmpty }),
    z.strictObject({ type: z.literal('any_text') }),
    z.strictObject({ type: z.enum(['sequence', 'or']), elements: z.array(GrammarFormatSchema).check(z.minLength(1)) }),
    TagFormatSchema,
    z.strictObject({ type: z.literal('triggered_tags'), triggers: z.array(nonEmpty).check(z.minLength(1)), ...tagListFields }),
    z.strictObject({ type: z.literal('tags_with_separator'), separator: z.string(), ...tagListFields }),
  ]));

export const StructuredOutputSchema = z.strictObject({
  format: GrammarFormatSchema,
  param: z._default(z.nullable(z.string().check(z.maxLength(256))), null),      // the client's field, named in a 400
  after_think: z._default(z.boolean(), false),
  think_start_id: z._default(tokenId, THINK_START_ID),
  end_think_id: z._default(tokenId, END_THINK_ID),
  separator_ids: z._default(z.array(tokenId).check(z.maxLength(8)), THINK_SEPARATOR_IDS),
});

export const GenerateRequestSchema = z.strictObject({
  request_id: z.string().check(z.minLength(1), z.maxLength(256)),
  prompt: z.array(tokenId).check(z.minLength(1, 'prompt must hold at least one token id')),
  // tokens to generate at most; omitted: up to the worker's context (prompt + completion = its max_context, which
  // GET /ready publishes), the worker being the one that knows it
  max_tokens: z.optional(z.number().check(z.int(), z.positive())),
  sampling: z.prefault(SamplingSchema, {}),
  stop_token_ids: z._default(z.array(tokenId).check(z.maxLength(64)), []),
  ignore_eos: z._default(z.boolean(), false),                    // benchmarks: only stop_token_ids and max_tokens end it
  logprobs: z.optional(z.number().check(z.int(), z.minimum(0), z.maximum(MAX_LOGPROBS))),   // top-n alternatives per token
  thinking_budget: z.optional(ThinkingBudgetSchema),
  // Who the request is for: the edge sets it from the authenticated API key (never from the client's body), and the
  // HMAC signature covers it. The worker shares queue slots and prefill among tenants round-robin; requests without
  // it form one anonymous tenant.
  tenant: z.optional(z.string().check(z.minLength(1), z.maxLength(128))),
  structured_output: z.optional(StructuredOutputSchema),       // constrained decoding (see above)
});

export const TopLogprobSchema = z.object({ token: int, logprob: z.number() });
export const TokenLogprobSchema = z.object({
  token: int,
  logprob: z.number(),          // log-softmax of the raw logits (before penalties and temperature)
  top: z.optional(z.array(TopLogprobSchema)),
});

export const UsageSchema = z.object({
  prompt_tokens: int,
  completion_tokens: int,
  cached_tokens: int,   // prompt tokens served from the prefix cache
});

export const FinishReasonSchema = z.enum(['stop', 'length', 'cancelled']);

/** One SSE `data:` frame: the new tokens since the previous frame; the last frame also carries finish and usage. */
export const GenerateEventSchema = z.object({
  tokens: z.array(int),
  logprobs: z.optional(z.array(TokenLogprobSchema)),
  finish_reason: z.optional(FinishReasonSchema),
  stop_token_id: z.optional(int),
  usage: z.optional(UsageSchema),
});

/** Body of every error: a JSON response before streaming, or the data of an `event: error` frame during it. */
export const ErrorBodySchema = z.object({
  error: z.object({
    message: z.string(),
    type: z.string(),
    param: z.optional(z.nullable(z.string())),
    // the worker's 503s: 'queue_full' (every queue slot taken) or 'tenant_queue_full' (the request's tenant holds its
    // share of the queue); both come with Retry-After
    code: z.optional(z.nullable(z.string())),
  }),
});

export type Sampling = z.infer<typeof SamplingSchema>;
export type ThinkingBudget = z.infer<typeof ThinkingBudgetSchema>;
export type StructuredOutput = z.infer<typeof StructuredOutputSchema>;
export type StructuredOutputInput = z.input<typeof StructuredOutputSchema>;
export type GenerateRequest = z.infer<typeof GenerateRequestSchema>;
export type GenerateRequestInput = z.input<typeof GenerateRequestSchema>;
export type TokenLogprob = z.infer<typeof TokenLogprobSchema>;
export type Usage = z.infer<typeof UsageSchema>;
export type FinishReason = z.infer<typeof FinishReasonSchema>;
export type GenerateEvent = z.infer<typeof GenerateEventSchema>;
export type ErrorBody = z.infer<typeof ErrorBodySchema>;

// --- fleet membership: the worker's heartbeat to the edge (edge/fleet.ts) -----------------------------------------

/**
 * A member's state. loading: the process is up but the model is not (not routed; tells the edge a worker is
 * starting). ready: routed. draining: it has left (SIGTERM) and is finishing what it runs; never routed again, and
 * later heartbeats of the same instance are ignored.
 */
export const MemberStateSchema = z.enum(['loading', 'ready', 'draining']);

export const HeartbeatSchema = z.strictObject({
  /** the base URL the edge reaches this worker at (scheme, host, port; no path) */
  url: z.url({ protocol: /^https?$/ }).check(z.maxLength(512)),
  /** one process: a worker restarted on the same URL is a new instance */
  instance: z.string().check(z.minLength(1), z.maxLength(128)),
  /** grows with every heartbeat of an instance; an older or repeated one changes nothing */
  seq: z.number().check(z.int(), z.minimum(0)),
  state: MemberStateSchema,
  model: z.string().check(z.maxLength(256)),
  /** tokens one sequence may hold; null while loading */
  max_context: z.nullable(z.number().check(z.int(), z.positive())),
  /** sequences per engine step (MAX_BATCH) */
  max_batch: z.number().check(z.int(), z.positive()),
  kv_blocks_free: z.number().check(z.int(), z.minimum(0)),
  kv_blocks_total: z.number().check(z.int(), z.minimum(0)),
  /** sequences in the batch */
  running: z.number().check(z.int(), z.minimum(0)),
  /** requests queued for admission */
  waiting: z.number().check(z.int(), z.minimum(0)),
});

/** The edge's answer: how often to beat, and how long to keep serving after leaving so every edge has noticed. */
export const HeartbeatAckSchema = z.object({
  /** a member not heard from for this long is out (ms) */
  ttl_ms: z.number().check(z.int(), z.positive()),
  /** send the next heartbeat after this long (ms) */
  interval_ms: z.number().check(z.int(), z.positive()),
  /** after a draining heartbeat, keep serving this long before draining: edges re-read membership meanwhile (ms) */
  leave_ms: z.number().check(z.int(), z.minimum(0)),
});

export type MemberState = z.infer<typeof MemberStateSchema>;
export type Heartbeat = z.infer<typeof HeartbeatSchema>;
export type HeartbeatAck = z.infer<typeof HeartbeatAckSchema>;
