// The OpenAI (and vLLM-extension) request schemas the edge accepts: one zod schema per endpoint feeds both the
// validator (400 invalid_request_error naming the bad field in `param`) and the route's types.
import type { Context, Env, MiddlewareHandler } from 'hono';
import * as z from 'zod/mini';
import en from 'zod/v4/locales/en.js';
import { paramName } from '../gpu-worker/protocol.ts';
import { invalidRequest, modelNotFound } from './errors.ts';
import { getTokenizer } from './tokenizer/index.js';

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

type RefineContext = z.core.$RefinementCtx<unknown>;

/**
 * Token ids the client sent (stop_token_ids, token-id prompts) must be in the tokenizer's vocabulary: a worker would
 * refuse them with 400, so the edge refuses them first, naming the id's position.
 */
function checkTokenIds(ctx: RefineContext, ids: readonly number[] | null | undefined, path: PropertyKey[]): void {
  if (!ids) return;
  const vocabSize = getTokenizer().vocabSize;
  const bad = ids.findIndex((id) => id >= vocabSize);
  if (bad !== -1) {
    ctx.addIssue({ code: 'custom', path: [...path, bad], message: `token id ${ids[bad]} is not in the vocabulary (ids are below ${vocabSize})` });
  }
}

/**
 * logit_bias as OpenAI defines it (token id → bias in [-100, 100]), checked key by key; biases other than 0 are then
 * refused, because the sampler does not apply them.
 */
function checkLogitBias(ctx: RefineContext, bias: Record<string, number> | null | undefined): void {
  if (!bias) return;
  const vocabSize = getTokenizer().vocabSize;
  for (const [key, value] of Object.entries(bias)) {
    if (!/^\d{1,9}$/.test(key) || Number(key) >= vocabSize) {
      ctx.addIssue({ code: 'custom', path: ['logit_bias'], message: `"${key.slice(0, 32)}" is not a token id (ids are integers below ${vocabSize})` });
      return;
    }
    if (!(value >= -100 && value <= 100)) {
      ctx.addIssue({ code: 'custom', path: ['logit_bias'], message: `the bias of token ${key} must be between -100 and 100` });
      return;
    }
  }
  if (Object.values(bias).some((value) => value !== 0)) {
    ctx.addIssue({ code: 'custom', path: ['logit_bias'], message: 'logit_bias is not supported by this server' });
  }
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
  .check(
    z.superRefine((body, ctx) => {
      if (body.top_logprobs != null && body.top_logprobs > 0 && body.logprobs !== true) {
        ctx.addIssue({ code: 'custom', path: ['top_logprobs'], message: 'top_logprobs requires logprobs to be true' });
      }
      checkTokenIds(ctx, body.stop_token_ids, ['stop_token_ids']);
      checkLogitBias(ctx, body.logit_bias);
      if (body.tool_choice && body.tool_choice !== 'none' && body.tool_choice !== 'auto' && !body.tools?.length) {
        ctx.addIssue({ code: 'custom', path: ['tool_choice'], message: 'tool_choice requires tools' });
      }
      if (typeof body.tool_choice === 'object' && body.tool_choice && body.tools?.length) {
        const name = body.tool_choice.function.name;
        if (!body.tools.some((t) => t.function.name === name)) {
          ctx.addIssue({ code: 'custom', path: ['tool_choice', 'function', 'name'], message: `no tool named "${name}" in tools` });
        }
      }
    }),
  );

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
  .check(
    z.superRefine((body, ctx) => {
      if (body.suffix) ctx.addIssue({ code: 'custom', path: ['suffix'], message: 'suffix is not supported by this server' });
      if (body.best_of != null && body.best_of !== (body.n ?? 1)) {
        ctx.addIssue({ code: 'custom', path: ['best_of'], message: 'best_of other than n is not supported by this server' });
      }
      checkTokenIds(ctx, body.stop_token_ids, ['stop_token_ids']);
      checkLogitBias(ctx, body.logit_bias);
      const { prompt } = body;
      if (Array.isArray(prompt) && typeof prompt[0] === 'number') checkTokenIds(ctx, prompt as number[], ['prompt']);
      else if (Array.isArray(prompt)) (prompt as unknown[]).forEach((p, i) => Array.isArray(p) && checkTokenIds(ctx, p, ['prompt', i]));
    }),
  );

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

/** Turns the first issue into a 400 whose `param` names the field; for unions, the innermost failing branch's field. */
export function validationError(error: z.core.$ZodError): never {
  let issue: z.core.$ZodIssue = error.issues[0];
  let path: PropertyKey[] = [...issue.path];
  while (issue.code === 'invalid_union' && issue.errors.length > 0) {
    const branches = issue.errors.map((issues) => issues[0]).filter(Boolean);
    // the branch that got furthest into the value explains it best
    const deepest = branches.reduce((a, b) => (b.path.length > a.path.length ? b : a), branches[0]);
    if (!deepest || deepest.path.length === 0) break;
    issue = deepest;
    path = [...path, ...deepest.path];
  }
  const param = paramName(path);
  throw invalidRequest(param ? `Invalid value for '${param}': ${issue.message}` : issue.message, param);
}

/** Nesting deeper than this (objects and arrays) is refused before anything recurses over the body. */
export const MAX_JSON_DEPTH = 64;

/**
 * Where free-form JSON sits in a request ('#' = any index): a body nested too deep is reported at the free-form
 * field that holds it (`tools[0].function.parameters`), or else at its top-level field.
 */
const FREE_FORM_FIELDS: readonly (readonly string[])[] = [
  ['tools', '#', 'function', 'parameters'],
  ['messages', '#', 'tool_calls', '#', 'function', 'arguments'],
  ['messages', '#', 'content'],
  ['response_format'],
  ['chat_template_kwargs'],
  ['metadata'],
];

/** The path (top-level field first) to the first value nested deeper than `limit`, or null. Iterative: no recursion. */
export function tooDeep(value: unknown, limit: number): PropertyKey[] | null {
  type Node = { value: unknown; depth: number; parent: Node | null; key: PropertyKey };
  const stack: Node[] = [{ value, depth: 0, parent: null, key: '' }];
  while (stack.length > 0) {
    const node = stack.pop()!;
    if (node.value === null || typeof node.value !== 'object') continue;
    if (node.depth >= limit) {
      const path: PropertyKey[] = [];
      for (let n: Node | null = node; n?.parent; n = n.parent) path.unshift(n.key);
      return path;
    }
    for (const [key, child] of Object.entries(node.value)) {
      if (child !== null && typeof child === 'object') stack.push({ value: child, depth: node.depth + 1, parent: node, key: Array.isArray(node.value) ? Number(key) : key });
    }
  }
  return null;
}

function depthParam(path: readonly PropertyKey[]): string | null {
  const field = FREE_FORM_FIELDS.find((f) => f.length <= path.length && f.every((part, i) => (part === '#' ? typeof path[i] === 'number' : part === path[i])));
  return paramName(path.slice(0, field?.length ?? 1));
}

/**
 * The request body as JSON, whatever its Content-Type says (as vLLM does: `curl -d` sends form-urlencoded), refused
 * with 400 when it does not parse or is nested deeper than MAX_JSON_DEPTH.
 */
export async function readJsonBody(c: Context): Promise<unknown> {
  const text = await c.req.text();
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    const hint = text.trim() === '' ? 'the body is empty' : (err as Error).message;
    throw invalidRequest(`We could not parse the JSON body of your request (${hint}). Send a JSON object, e.g. with Content-Type: application/json.`);
  }
  const deep = tooDeep(value, MAX_JSON_DEPTH);
  if (deep) {
    const param = depthParam(deep);
    throw invalidRequest(`Invalid value for '${param}': nested deeper than ${MAX_JSON_DEPTH} levels.`, param);
  }
  return value;
}

/**
 * Middleware validating the JSON body with `schema` (400 naming the field on failure); its output type flows into
 * `c.req.valid('json')`.
 */
export function jsonBody<S extends z.core.$ZodType>(schema: S): MiddlewareHandler<Env, string, { in: { json: z.input<S> }; out: { json: z.output<S> } }> {
  return async function jsonBody(c, next) {
    const result = z.safeParse(schema, await readJsonBody(c));
    if (!result.success) validationError(result.error);
    c.req.addValidatedData('json', result.data as object);
    await next();
  };
}

/** Rejects anything other than the served model with 404 model_not_found. */
export function requireModel(model: string | undefined, served: string): void {
  if (model !== undefined && model !== served) throw modelNotFound(model);
}

/**
 * The completion budget for a prompt: the client's max tokens, or undefined when it sent none (up to the context of
 * the worker that serves it). `context` is the largest context among the workers (edge/worker-contexts.ts; undefined
 * while none is known, and the workers check alone). 400 context_length_exceeded when no worker can hold the prompt
 * and the completion (vLLM's wording), naming the field the client used, before any worker is called.
 */
export function completionBudget(
  promptTokens: number,
  requested: number | null | undefined,
  context: number | undefined,
  params: { prompt: string; budget: string },
): number | undefined {
  const param = params.budget;
  if (context !== undefined && promptTokens >= context) {
    throw invalidRequest(
      `This model's maximum context length is ${context} tokens. However, your prompt has ${promptTokens} tokens, ` +
        'which leaves no room for a completion. Please reduce the length of the prompt.',
      params.prompt,
      'context_length_exceeded',
    );
  }
  if (requested == null) return undefined;
  if (context !== undefined && promptTokens + requested > context) {
    throw invalidRequest(
      `This model's maximum context length is ${context} tokens. However, you requested ${promptTokens + requested} tokens ` +
        `(${promptTokens} in the prompt, ${requested} for the completion). Please reduce the length of the prompt or ${param}.`,
      param,
      'context_length_exceeded',
    );
  }
  return requested;
}

/** The most tokens one generation can use: its budget, else what the largest context leaves after the prompt. */
export function generationBound(promptTokens: number, maxTokens: number | undefined, context: number | undefined): number {
  return maxTokens ?? (context === undefined ? 0 : context - promptTokens);
}
