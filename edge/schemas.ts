// The request schemas the edge accepts (OpenAI's and vLLM's extensions; the admin API's): one zod schema per endpoint
// gives the route's types and, for /tokenize, /detokenize and the admin API, the validation (400
// invalid_request_error naming the bad field in `param`; edge/validate-request.ts's jsonBody). The generation
// endpoints are checked by edge/validate-request.ts's own functions, which a test holds to these schemas. The edge
// imports this module's values only when a request needs them (zod and these schemas cost a cold isolate ms).
import * as z from 'zod/mini';
import en from 'zod/v4/locales/en.js';
import { KEY_PATTERN } from './key-store.ts';
import type { RateLimits } from './rate-limiter-do.ts';
import { chatRequestRules, completionRequestRules, type AddIssue } from './request-rules.ts';

// zod's functional build (zod/mini): its schemas are plain objects, where the classic build attaches some fifty
// methods to every schema it constructs, which made building these at isolate start-up cost tens of ms. The
// messages are the same English ones (mini loads no locale by itself).
z.config(en());

const str = z.string();
const bool = z.boolean();
const num = z.number();
const int = z.number().check(z.int());
const nonEmpty = z.string().check(z.minLength(1));
const anyObject = z.record(str, z.unknown());

const textPart = z.object({ type: z.literal('text'), text: str });
const content = z.nullish(z.union([str, z.array(textPart)]));

const toolCall = z.object({
  id: z.optional(str),
  type: z.optional(z.literal('function')),
  function: z.object({ name: nonEmpty, arguments: z.optional(z.union([str, anyObject])) }),
});

export const chatMessageSchema = z.object({
  role: z.enum(['system', 'developer', 'user', 'assistant', 'tool']),
  content,
  name: z.optional(str),
  reasoning_content: z.nullish(str),
  reasoning: z.nullish(str),
  tool_calls: z.nullish(z.array(toolCall)),
  tool_call_id: z.optional(str),
});

export const functionToolSchema = z.object({
  type: z.literal('function'),
  function: z.object({
    name: z.string().check(z.minLength(1), z.maxLength(64)),
    description: z.optional(str),
    parameters: z.optional(anyObject),
    strict: z.nullish(bool),
  }),
});

export const toolChoiceSchema = z.union([
  z.enum(['none', 'auto', 'required']),
  z.object({ type: z.literal('function'), function: z.object({ name: nonEmpty }) }),
]);

const jsonSchemaObject = anyObject;

/** OpenAI's response_format; json modes are enforced by structured-output.ts. */
const responseFormatSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('text') }),
  z.object({ type: z.literal('json_object') }),
  z.object({
    type: z.literal('json_schema'),
    json_schema: z.object({
      name: z.string().check(z.regex(/^[a-zA-Z0-9_-]{1,64}$/, 'name must be 1-64 letters, digits, underscores or dashes')),
      description: z.nullish(str),
      schema: z.nullish(jsonSchemaObject),
      strict: z.nullish(bool),
    }),
  }),
]);

/** vLLM's structured_outputs (exactly one constraint; the whitespace options are accepted: output JSON is compact). */
const structuredOutputsSchema = z.strictObject({
  json: z.nullish(z.union([jsonSchemaObject, str])),
  regex: z.nullish(nonEmpty),
  choice: z.nullish(z.array(str).check(z.minLength(1))),
  grammar: z.nullish(nonEmpty),
  json_object: z.nullish(bool),
  disable_fallback: z.nullish(bool),
  disable_any_whitespace: z.nullish(bool),
  disable_additional_properties: z.nullish(bool),
});

/** Fields that constrain the output, shared by chat and legacy completions (structured-output.ts). */
const structuredOutputFields = {
  response_format: z.nullish(responseFormatSchema),
  structured_outputs: z.nullish(structuredOutputsSchema),
  guided_json: z.nullish(z.union([jsonSchemaObject, str])),
  guided_regex: z.nullish(nonEmpty),
  guided_choice: z.nullish(z.array(str).check(z.minLength(1))),
  guided_grammar: z.nullish(nonEmpty),
  guided_decoding_backend: z.nullish(z.enum(['xgrammar', 'auto'])),
};
const structuredOutputFieldsSchema = z.object(structuredOutputFields);
export type StructuredOutputFields = z.infer<typeof structuredOutputFieldsSchema>;

const stop = z.nullish(z.union([str, z.array(str).check(z.maxLength(16))]));
const tokenId = z.number().check(z.int(), z.minimum(0));

/** Sampling fields shared by chat and legacy completions (OpenAI's, plus vLLM's top_k / min_p / repetition_penalty). */
const samplingSchema = z.object({
  temperature: z.nullish(z.number().check(z.minimum(0), z.maximum(2))),
  top_p: z.nullish(z.number().check(z.minimum(0), z.maximum(1))),
  top_k: z.nullish(z.number().check(z.int(), z.minimum(-1))),
  min_p: z.nullish(z.number().check(z.minimum(0), z.maximum(1))),
  presence_penalty: z.nullish(z.number().check(z.minimum(-2), z.maximum(2))),
  frequency_penalty: z.nullish(z.number().check(z.minimum(-2), z.maximum(2))),
  repetition_penalty: z.nullish(z.number().check(z.gt(0), z.maximum(10))),
  seed: z.nullish(int),
});
export type SamplingFields = z.infer<typeof samplingSchema>;

/** Fields shared by chat and legacy completions: sampling, choices, stops, streaming, the token budget. */
const generationFields = {
  ...samplingSchema.shape,
  n: z.nullish(z.number().check(z.int(), z.minimum(1), z.maximum(16))),
  stop,
  stop_token_ids: z.nullish(z.array(tokenId).check(z.maxLength(64))),
  stream: z.nullish(bool),
  stream_options: z.nullish(z.object({ include_usage: z.nullish(bool), include_obfuscation: z.nullish(bool) })),
  max_tokens: z.nullish(z.number().check(z.int(), z.positive())),
  user: z.nullish(str),
};

export const reasoningEffortSchema = z.enum(['none', 'minimal', 'low', 'medium', 'high', 'xhigh', 'max']);
export type ReasoningEffort = z.infer<typeof reasoningEffortSchema>;

/** The request fields that control thinking (edge/thinking-mode.ts), as the four conventions clients use spell them. */
export const thinkingControlsSchema = z.object({
  /** vLLM / transformers. */
  chat_template_kwargs: z.nullish(z.looseObject({ enable_thinking: z.nullish(bool) })),
  /** OpenAI. */
  reasoning_effort: z.nullish(reasoningEffortSchema),
  /** OpenRouter: effort or max_tokens (tokens), `enabled` inferred from them, `exclude` hides reasoning. */
  reasoning: z.nullish(
    z.object({
      enabled: z.nullish(bool),
      effort: z.nullish(reasoningEffortSchema),
      max_tokens: z.nullish(z.number().check(z.int(), z.nonnegative())),
      exclude: z.nullish(bool),
    }),
  ),
  /** Ollama (string levels are its GPT-OSS form). */
  think: z.nullish(z.union([bool, z.enum(['low', 'medium', 'high'])])),
  /** vLLM: thinking budget in tokens. */
  thinking_token_budget: z.nullish(z.number().check(z.int(), z.nonnegative())),
  /** vLLM: false hides reasoning from the response. */
  include_reasoning: z.nullish(bool),
});
export type ThinkingControls = z.infer<typeof thinkingControlsSchema>;

/** The rules across fields (edge/request-rules.ts, shared with edge/validate-request.ts) as a refinement. */
function refinement<T>(rules: (body: T, add: AddIssue) => void) {
  return z.superRefine<T>((body, ctx) => rules(body, (path, message) => ctx.addIssue({ code: 'custom', path, message })));
}

export const chatCompletionRequestSchema = z
  .extend(
    z.object({
      model: nonEmpty,
      messages: z.array(chatMessageSchema).check(z.minLength(1)),
      ...generationFields,
      max_completion_tokens: z.nullish(z.number().check(z.int(), z.positive())),
      logprobs: z.nullish(bool),
      top_logprobs: z.nullish(z.number().check(z.int(), z.minimum(0), z.maximum(20))),
      logit_bias: z.nullish(z.record(str, num)),
      tools: z.nullish(z.array(functionToolSchema).check(z.maxLength(128))),
      tool_choice: z.nullish(toolChoiceSchema),
      parallel_tool_calls: z.nullish(bool),
      ...structuredOutputFields,
      metadata: z.nullish(z.record(str, str)),
      store: z.nullish(bool),
      service_tier: z.nullish(str),
      safety_identifier: z.nullish(str),
      prompt_cache_key: z.nullish(str),
      /** transformers' name: true = added-token spellings in messages are text (default: SPLIT_SPECIAL_TOKENS). */
      split_special_tokens: z.nullish(bool),
    }),
    thinkingControlsSchema.shape,
  )
  .check(refinement(chatRequestRules));

export const completionRequestSchema = z
  .object({
    model: nonEmpty,
    prompt: z.union([str, z.array(str).check(z.minLength(1)), z.array(tokenId).check(z.minLength(1)), z.array(z.array(tokenId).check(z.minLength(1))).check(z.minLength(1))]),
    ...generationFields,
    logprobs: z.nullish(z.number().check(z.int(), z.minimum(0), z.maximum(5))),
    echo: z.nullish(bool),
    best_of: z.nullish(z.number().check(z.int(), z.minimum(1))),
    suffix: z.nullish(str),
    logit_bias: z.nullish(z.record(str, num)),
    ...structuredOutputFields,
  })
  .check(refinement(completionRequestRules));

/** vLLM's /tokenize: a plain prompt, or chat messages rendered with the template. */
export const tokenizeRequestSchema = z.union([
  z.object({
    model: z.optional(nonEmpty),
    prompt: str,
    add_special_tokens: z.optional(bool),
    return_token_strs: z.optional(bool),
    /** Default false here: a raw prompt is formatted by the caller, control tokens included (as /v1/completions reads it). */
    split_special_tokens: z.optional(bool),
  }),
  z.extend(
    z.object({
      model: z.optional(nonEmpty),
      messages: z.array(chatMessageSchema).check(z.minLength(1)),
      add_generation_prompt: z.optional(bool),
      tools: z.nullish(z.array(functionToolSchema)),
      return_token_strs: z.optional(bool),
      split_special_tokens: z.nullish(bool),
    }),
    thinkingControlsSchema.shape,
  ),
]);

export const detokenizeRequestSchema = z.object({ model: z.optional(nonEmpty), tokens: z.array(tokenId) });

export type ChatCompletionRequest = z.infer<typeof chatCompletionRequestSchema>;
export type CompletionRequest = z.infer<typeof completionRequestSchema>;
export type TokenizeRequest = z.infer<typeof tokenizeRequestSchema>;
export type DetokenizeRequest = z.infer<typeof detokenizeRequestSchema>;

// --- the admin API (edge/admin.ts) ------------------------------------------------------------------------------------

const positiveInt = z.number().check(z.int(), z.positive());

/** A key's limits (edge/rate-limiter-do.ts); the stored record is checked with the same rules by edge/key-store.ts. */
export const limitsSchema = z.strictObject({
  requests_per_minute: positiveInt,
  tokens_per_minute: positiveInt,
  concurrent_streams: positiveInt,
  quota_tokens: z.nullable(z.number().check(z.int(), z.nonnegative())),
}) satisfies z.ZodMiniType<RateLimits>;

const keyName = z.string().check(z.maxLength(256));
const models = z.nullable(z.array(z.string().check(z.minLength(1))).check(z.minLength(1)));
const someLimits = z.partial(limitsSchema);

export const createKeySchema = z.strictObject({
  /** a caller-chosen secret (the local stack's development key); generated when absent */
  key: z.optional(z.string().check(z.regex(KEY_PATTERN, 'must be "sk-" followed by 16–200 URL-safe characters'))),
  tenant: z.string().check(z.minLength(1), z.maxLength(128)),
  name: z._default(keyName, ''),
  models: z._default(models, null),
  limits: z._default(someLimits, {}),
});

export const updateKeySchema = z.strictObject({
  name: z.optional(keyName),
  models: z.optional(models),
  limits: z.optional(someLimits),
  /** forget the spent quota (a new billing period) */
  reset_quota: z.optional(z.boolean()),
});
