// Proves edge/validate-request.ts's checks of the generation bodies equal the zod schemas of edge/schemas.ts (the
// reference): on thousands of seeded random bodies (valid ones with one to three fields replaced, removed or added
// anywhere in them) both accept the same bodies with the same output (fields, order, undefined kept), and refuse the
// others with the same message and `param`; plus named cases where the two could part (unions, size limits that
// abort, rules across fields, key order).
import { isDeepStrictEqual } from 'node:util';
import { describe, expect, it } from 'vitest';
import { chatCompletionRequestSchema, completionRequestSchema } from '../../edge/schemas.ts';
import { checkChatRequest, checkCompletionRequest, fromZod, type RequestCheck } from '../../edge/validate-request.ts';
import { issueReport } from '../../edge/validate.ts';
import { LONG_NAME, mutate, type Json } from '../helpers/json-mutations.ts';
import { random } from '../helpers/tokenizer-corpus.ts';

type Outcome = { ok: true; value: unknown } | { ok: false; message: string; param: string | null };

function withZod(schema: typeof chatCompletionRequestSchema | typeof completionRequestSchema, body: unknown): Outcome {
  const result = schema.safeParse(body);
  return result.success ? { ok: true, value: result.data } : { ok: false, ...issueReport(fromZod(result.error.issues[0])) };
}

function withChecks(check: RequestCheck<object>, body: unknown): Outcome {
  const result = check(body);
  return result.ok ? { ok: true, value: result.value } : { ok: false, ...issueReport(result.issue) };
}

/** Same acceptance, same output (deep, undefined-valued fields included, same key order), or the same report. */
function expectSame(check: RequestCheck<object>, schema: Parameters<typeof withZod>[0], body: unknown): Outcome {
  const ours = withChecks(check, body);
  const reference = withZod(schema, body);
  const shown = JSON.stringify(body)?.slice(0, 400);
  if (ours.ok && reference.ok) {
    expect(isDeepStrictEqual(ours.value, reference.value), shown).toBe(true);
    expect(JSON.stringify(ours.value), shown).toBe(JSON.stringify(reference.value));
  } else {
    expect(ours, shown).toEqual(reference);
  }
  return ours;
}

const TOOL = { type: 'function', function: { name: 'get_weather', description: 'weather', parameters: { type: 'object', properties: { city: { type: 'string' } } }, strict: true } };
/** Valid bodies that between them use every field of the two schemas. */
const CHAT_BODIES: Json[] = [
  { model: 'qwen3-8b-awq', messages: [{ role: 'user', content: 'hi' }] },
  {
    model: 'qwen3-8b-awq', stream: true, stream_options: { include_usage: true, include_obfuscation: false }, n: 2, temperature: 0.7, top_p: 0.9, top_k: 20, min_p: 0,
    presence_penalty: 1.5, frequency_penalty: 0, repetition_penalty: 1.1, seed: 42, stop: ['\n\n', 'END'], stop_token_ids: [151645], max_tokens: 100,
    max_completion_tokens: 90, logprobs: true, top_logprobs: 2, logit_bias: { '100': 0 }, user: 'u', metadata: { a: 'b' }, store: false,
    service_tier: 'auto', safety_identifier: 's', prompt_cache_key: 'k', split_special_tokens: true,
    messages: [
      { role: 'system', content: 'be brief', name: 'sys' },
      { role: 'user', content: [{ type: 'text', text: 'weather?' }] },
      { role: 'assistant', content: null, reasoning_content: 'hmm', reasoning: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Oslo"}' } }] },
      { role: 'tool', content: 'cold', tool_call_id: 'call_1' },
    ],
    tools: [TOOL], tool_choice: { type: 'function', function: { name: 'get_weather' } }, parallel_tool_calls: false,
  },
  {
    model: 'qwen3-8b-awq', messages: [{ role: 'user', content: 'json please' }], response_format: { type: 'json_schema', json_schema: { name: 'w', description: null, schema: { type: 'object' }, strict: true } },
    chat_template_kwargs: { enable_thinking: false, extra: 1 }, reasoning_effort: 'low', reasoning: { enabled: true, effort: 'high', max_tokens: 100, exclude: false },
    think: 'medium', thinking_token_budget: 512, include_reasoning: true, tool_choice: 'auto',
  },
  {
    model: 'qwen3-8b-awq', messages: [{ role: 'developer', content: 'x' }, { role: 'user', content: 'y' }], structured_outputs: { json: '{"type":"object"}', disable_any_whitespace: true },
    guided_decoding_backend: 'xgrammar', stop: 'x', think: false, logit_bias: null, seed: null,
  },
  { model: 'qwen3-8b-awq', messages: [{ role: 'user', content: 'pick' }], guided_choice: ['a', 'b'], guided_regex: '[a-z]+', guided_grammar: 'root ::= "a"', guided_json: { type: 'string' }, structured_outputs: { choice: ['x'] } },
];
const COMPLETION_BODIES: Json[] = [
  { model: 'qwen3-8b-awq', prompt: 'Once upon a time' },
  { model: 'qwen3-8b-awq', prompt: ['a', 'b'], n: 2, best_of: 2, echo: true, logprobs: 3, max_tokens: 16, stop: ['.'], suffix: '', stream: true },
  { model: 'qwen3-8b-awq', prompt: [1, 2, 3], stop_token_ids: [151645], temperature: 0, logit_bias: { '5': 0 }, response_format: { type: 'json_object' } },
  { model: 'qwen3-8b-awq', prompt: [[1, 2], [3]], structured_outputs: { regex: '\\d+' }, guided_choice: ['x'], user: 'u', seed: 7 },
];

describe('the generation bodies, checked without zod, as the zod schemas check them', () => {
  /** How many of `count` random edits of `bases` were refused, each compared with the schema. */
  function fuzz(check: RequestCheck<object>, schema: Parameters<typeof withZod>[0], bases: Json[], seed: number, count: number): number {
    const rand = random(seed);
    let refused = 0;
    for (let i = 0; i < count; i++) refused += expectSame(check, schema, mutate(bases[i % bases.length], rand)).ok ? 0 : 1;
    return refused;
  }

  it('Should accept and refuse 6,000 random chat bodies exactly as chatCompletionRequestSchema does', () => {
    const refused = fuzz(checkChatRequest, chatCompletionRequestSchema, CHAT_BODIES, 13, 6000);
    // most edits break something, but not all: both outcomes are well covered
    expect(refused).toBeGreaterThan(2000);
    expect(refused).toBeLessThan(5500);
  });

  it('Should accept and refuse 4,000 random legacy completion bodies exactly as completionRequestSchema does', () => {
    const refused = fuzz(checkCompletionRequest, completionRequestSchema, COMPLETION_BODIES, 31, 4000);
    expect(refused).toBeGreaterThan(1000);
    expect(refused).toBeLessThan(3700);
  });

  const chat = (extra: Record<string, Json>) => ({ model: 'qwen3-8b-awq', messages: [{ role: 'user', content: 'hi' }], ...extra });
  it.each<[string, unknown, string | null, string]>([
    ['a body that is not an object', [1], null, 'Invalid input: expected object, received array'],
    ['a missing required field', { model: 'qwen3-8b-awq' }, 'messages', "Invalid value for 'messages': Invalid input: expected array, received undefined"],
    ['the first bad field in the schema order, not the body order', { n: 0, messages: [], model: 'qwen3-8b-awq' }, 'messages', "Invalid value for 'messages': Too small: expected array to have >=1 items"],
    ['content explained by the branch that got furthest', chat({ messages: [{ role: 'user', content: [{ type: 'image_url' }] }] }), 'messages[0].content[0].type', 'Invalid value for \'messages[0].content[0].type\': Invalid input: expected "text"'],
    ['a stop list over its limit (checked before its items)', chat({ stop: [...Array(16).fill('s'), 5] }), 'stop', "Invalid value for 'stop': Invalid input"],
    ['a named tool choice with an empty name (the only branch that failed softly)', chat({ tool_choice: { type: 'function', function: { name: '' } } }), 'tool_choice.function.name', "Invalid value for 'tool_choice.function.name': Too small: expected string to have >=1 characters"],
    ['an unknown response format', chat({ response_format: { type: 'xml' } }), 'response_format.type', "Invalid value for 'response_format.type': Invalid discriminator value. Expected 'text' | 'json_object' | 'json_schema'"],
    ['unknown keys of structured_outputs', chat({ structured_outputs: { foo: 1, bar: 2 } }), 'structured_outputs', 'Invalid value for \'structured_outputs\': Unrecognized keys: "foo", "bar"'],
    ['an integer beyond the safe range', chat({ seed: 2 ** 60 }), 'seed', "Invalid value for 'seed': Too big: expected int to be <=9007199254740991"],
    ['a fraction where an integer goes', chat({ top_k: 1.5 }), 'top_k', "Invalid value for 'top_k': Invalid input: expected int, received number"],
    ['a tool name over 64 characters', chat({ tools: [{ type: 'function', function: { name: LONG_NAME } }] }), 'tools[0].function.name', "Invalid value for 'tools[0].function.name': Too big: expected string to have <=64 characters"],
    ['top_logprobs without logprobs (a rule across fields)', chat({ top_logprobs: 3 }), 'top_logprobs', "Invalid value for 'top_logprobs': top_logprobs requires logprobs to be true"],
    ['a token id outside the vocabulary', chat({ stop_token_ids: [1, 999999] }), 'stop_token_ids[1]', "Invalid value for 'stop_token_ids[1]': token id 999999 is not in the vocabulary (ids are below 151669)"],
  ])('Should refuse %s as zod does', (_, body, param, message) => {
    const ours = expectSame(checkChatRequest, chatCompletionRequestSchema, body);
    expect(ours).toEqual({ ok: false, message, param });
  });

  it.each<[string, unknown, string | null, string]>([
    ['an empty prompt list (three branches fail softly)', { model: 'm', prompt: [] }, 'prompt', "Invalid value for 'prompt': Invalid input"],
    ['a negative token id (only the id list fails softly)', { model: 'm', prompt: [-1] }, 'prompt[0]', "Invalid value for 'prompt[0]': Too small: expected number to be >=0"],
    ['an empty token list among lists', { model: 'm', prompt: [[1], []] }, 'prompt[1]', "Invalid value for 'prompt[1]': Too small: expected array to have >=1 items"],
    ['a fractional id (the string branch got as far)', { model: 'm', prompt: [1.5] }, 'prompt[0]', "Invalid value for 'prompt[0]': Invalid input: expected string, received number"],
    ['best_of other than n', { model: 'm', prompt: 'x', best_of: 2 }, 'best_of', "Invalid value for 'best_of': best_of other than n is not supported by this server"],
  ])('Should refuse a legacy completion with %s as zod does', (_, body, param, message) => {
    const ours = expectSame(checkCompletionRequest, completionRequestSchema, body);
    expect(ours).toEqual({ ok: false, message, param });
  });

  it('Should keep only the declared fields, in the schema order, the loose chat_template_kwargs whole', () => {
    const body = { stream: true, zz: 1, messages: [{ content: 'x', role: 'user', extra: 1 }], model: 'qwen3-8b-awq', chat_template_kwargs: { other: 2, enable_thinking: true } };
    const ours = expectSame(checkChatRequest, chatCompletionRequestSchema, body);
    expect(JSON.stringify(ours.ok && ours.value)).toBe('{"model":"qwen3-8b-awq","messages":[{"role":"user","content":"x"}],"stream":true,"chat_template_kwargs":{"enable_thinking":true,"other":2}}');
  });
});
