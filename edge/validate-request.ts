// The request bodies of the generation endpoints (/v1/chat/completions, /v1/completions), checked without zod
// (edge/validate.ts): the same rules as the zod schemas of edge/schemas.ts (which give the types and stay the
// reference: a test compares the two on thousands of random bodies), with the same first error, message and `param`,
// and the same output (only declared fields, in the schema's order). Also here: reading the JSON body, the zod-checked
// bodies of the other endpoints, and the request checks the routes share (model, context).
import type { Context, Env, MiddlewareHandler } from 'hono';
import type * as z from 'zod/mini';
import { paramName } from '../gpu-worker/protocol-basics.ts';
import { invalidRequest, modelNotFound } from './errors.ts';
import type { ChatCompletionRequest, CompletionRequest } from './schemas.ts';
import { chatRequestRules, completionRequestRules, type AddIssue } from './request-rules.ts';
import {
  anything, array, bool, int, issue, matching, nonEmpty, nullish, num, object, oneOf, optional, record, requestError, str, string, tagged, union,
  type Check, type Issue, type Shape,
} from './validate.ts';

// --- the generation requests ----------------------------------------------------------------------------------------

const tokenId = int({ min: 0 });
const anyObject = record(anything);
const jsonSchemaObject = anyObject;

const content = nullish(union([string, array(object({ type: oneOf(['text']), text: string }))]));
const toolCall = object({
  id: optional(string),
  type: optional(oneOf(['function'])),
  function: object({ name: nonEmpty, arguments: optional(union([string, anyObject])) }),
});
const chatMessage = object({
  role: oneOf(['system', 'developer', 'user', 'assistant', 'tool']),
  content,
  name: optional(string),
  reasoning_content: nullish(string),
  reasoning: nullish(string),
  tool_calls: nullish(array(toolCall)),
  tool_call_id: optional(string),
});
const functionTool = object({
  type: oneOf(['function']),
  function: object({
    name: str({ min: 1, max: 64 }),
    description: optional(string),
    parameters: optional(anyObject),
    strict: nullish(bool),
  }),
});
const toolChoice = union([oneOf(['none', 'auto', 'required']), object({ type: oneOf(['function']), function: object({ name: nonEmpty }) })]);

const responseFormat = tagged('type', {
  text: object({ type: oneOf(['text']) }),
  json_object: object({ type: oneOf(['json_object']) }),
  json_schema: object({
    type: oneOf(['json_schema']),
    json_schema: object({
      name: matching(/^[a-zA-Z0-9_-]{1,64}$/, 'name must be 1-64 letters, digits, underscores or dashes'),
      description: nullish(string),
      schema: nullish(jsonSchemaObject),
      strict: nullish(bool),
    }),
  }),
});
const structuredOutputs = object(
  {
    json: nullish(union([jsonSchemaObject, string])),
    regex: nullish(nonEmpty),
    choice: nullish(array(string, { min: 1 })),
    grammar: nullish(nonEmpty),
    json_object: nullish(bool),
    disable_fallback: nullish(bool),
    disable_any_whitespace: nullish(bool),
    disable_additional_properties: nullish(bool),
  },
  'strict',
);
const structuredOutputFields: Shape = {
  response_format: nullish(responseFormat),
  structured_outputs: nullish(structuredOutputs),
  guided_json: nullish(union([jsonSchemaObject, string])),
  guided_regex: nullish(nonEmpty),
  guided_choice: nullish(array(string, { min: 1 })),
  guided_grammar: nullish(nonEmpty),
  guided_decoding_backend: nullish(oneOf(['xgrammar', 'auto'])),
};

const generationFields: Shape = {
  temperature: nullish(num({ min: 0, max: 2 })),
  top_p: nullish(num({ min: 0, max: 1 })),
  top_k: nullish(int({ min: -1 })),
  min_p: nullish(num({ min: 0, max: 1 })),
  presence_penalty: nullish(num({ min: -2, max: 2 })),
  frequency_penalty: nullish(num({ min: -2, max: 2 })),
  repetition_penalty: nullish(num({ gt: 0, max: 10 })),
  seed: nullish(int()),
  n: nullish(int({ min: 1, max: 16 })),
  stop: nullish(union([string, array(string, { max: 16 })])),
  stop_token_ids: nullish(array(tokenId, { max: 64 })),
  stream: nullish(bool),
  stream_options: nullish(object({ include_usage: nullish(bool), include_obfuscation: nullish(bool) })),
  max_tokens: nullish(int({ gt: 0 })),
  user: nullish(string),
};

const reasoningEffort = oneOf(['none', 'minimal', 'low', 'medium', 'high', 'xhigh', 'max']);
const thinkingControls: Shape = {
  chat_template_kwargs: nullish(object({ enable_thinking: nullish(bool) }, 'loose')),
  reasoning_effort: nullish(reasoningEffort),
  reasoning: nullish(object({ enabled: nullish(bool), effort: nullish(reasoningEffort), max_tokens: nullish(int({ min: 0 })), exclude: nullish(bool) })),
  think: nullish(union([bool, oneOf(['low', 'medium', 'high'])])),
  thinking_token_budget: nullish(int({ min: 0 })),
  include_reasoning: nullish(bool),
};

const chatRequest = object({
  model: nonEmpty,
  messages: array(chatMessage, { min: 1 }),
  ...generationFields,
  max_completion_tokens: nullish(int({ gt: 0 })),
  logprobs: nullish(bool),
  top_logprobs: nullish(int({ min: 0, max: 20 })),
  logit_bias: nullish(record(num())),
  tools: nullish(array(functionTool, { max: 128 })),
  tool_choice: nullish(toolChoice),
  parallel_tool_calls: nullish(bool),
  ...structuredOutputFields,
  metadata: nullish(record(string)),
  store: nullish(bool),
  service_tier: nullish(string),
  safety_identifier: nullish(string),
  prompt_cache_key: nullish(string),
  split_special_tokens: nullish(bool),
  ...thinkingControls,
});

const completionRequest = object({
  model: nonEmpty,
  prompt: union([string, array(string, { min: 1 }), array(tokenId, { min: 1 }), array(array(tokenId, { min: 1 }), { min: 1 })]),
  ...generationFields,
  logprobs: nullish(int({ min: 0, max: 5 })),
  echo: nullish(bool),
  best_of: nullish(int({ min: 1 })),
  suffix: nullish(string),
  logit_bias: nullish(record(num())),
  ...structuredOutputFields,
});

/** A request check: the body to use, or its first problem. */
export type RequestCheck<T> = (body: unknown) => { ok: true; value: T } | { ok: false; issue: Issue };

function withRules<T>(check: Check, rules: (body: T, add: AddIssue) => void): RequestCheck<T> {
  return (body) => {
    const issues: Issue[] = [];
    const value = check(body, issues) as T;
    // the rules across fields run when every field has the right type (zod runs refinements unless a problem aborts)
    if (issues.length === 0 || !issues.some((i) => i.aborts)) rules(value, (path, message) => issues.push(issue(message, false, path)));
    return issues.length === 0 ? { ok: true, value } : { ok: false, issue: issues[0] };
  };
}

export const checkChatRequest: RequestCheck<ChatCompletionRequest> = withRules<ChatCompletionRequest>(chatRequest, chatRequestRules);
export const checkCompletionRequest: RequestCheck<CompletionRequest> = withRules<CompletionRequest>(completionRequest, completionRequestRules);

// --- the body -------------------------------------------------------------------------------------------------------

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

/** Middleware checking the JSON body with `check` (400 naming the field); its output flows into `c.req.valid('json')`. */
export function validBody<T extends object>(check: RequestCheck<T>): MiddlewareHandler<Env, string, { in: { json: unknown }; out: { json: T } }> {
  return async function validBody(c, next) {
    const result = check(await readJsonBody(c));
    if (!result.ok) requestError(result.issue);
    c.req.addValidatedData('json', result.value);
    await next();
  };
}

/** A zod problem as an Issue (a union's branches too). */
export function fromZod(found: z.core.$ZodIssue): Issue {
  const branches = found.code === 'invalid_union' ? found.errors.map((own) => own.map(fromZod)) : undefined;
  return { path: [...found.path], message: found.message, aborts: true, branches };
}

/**
 * Middleware validating the JSON body with the zod schema `load` gives (the endpoints off the generation path; load
 * imports edge/schemas.ts when the first such request comes, so that a cold isolate neither loads zod nor builds
 * schemas), 400 naming the field like validBody; the schema's output type flows into `c.req.valid('json')`.
 */
export function jsonBody<S extends z.ZodMiniType>(load: () => Promise<S>): MiddlewareHandler<Env, string, { in: { json: z.input<S> }; out: { json: z.output<S> } }> {
  return async function jsonBody(c, next) {
    const schema = await load();
    const result = schema.safeParse(await readJsonBody(c));
    if (!result.success) requestError(fromZod(result.error.issues[0]));
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
