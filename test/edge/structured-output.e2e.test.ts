// Structured outputs end to end: the official `openai` client → the edge in workerd (helpers/edge-stack.ts) →
// a real GPU worker on the demo checkpoint, whose random weights produce valid JSON only because the grammar
// forces it. Every output is checked with ajv (a standard JSON Schema validator, draft 2020-12 with formats):
// 200 generations over 25 schemas in both thinking modes, streamed and not, at temperature 0 and 1; tool_choice
// required and named (100 calls, arguments valid against the tool's parameters, finish_reason tool_calls); the SDK's
// chat.completions.parse with a JSON schema and with a zod schema; regex and choice, also on /v1/completions;
// json_object; errors for unsupported keywords, invalid regexes and grammars, and conflicting constraints.
import Ajv2020 from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { fastFormats } from 'ajv-formats/dist/formats.js';
import OpenAI, { BadRequestError } from 'openai';
import { zodResponseFormat } from 'openai/helpers/zod';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { SECRET, startWorker, type Worker } from '../gpu-worker/worker-process.ts';
import { MODEL, startEdge, type EdgeStack } from '../helpers/edge-stack.ts';

const CONCURRENCY = 16;

let worker: Worker;
let edge: EdgeStack;
let client: OpenAI;
const ajv = new Ajv2020({ allErrors: true, strict: false });
addFormats(ajv);
// xgrammar enforces a format's syntax, as a regex does: "2021-02-31" is a well-formed date it cannot rule out.
// Calendar checks of date and date-time are therefore ajv's syntactic ("fast") ones; every other format is full.
ajv.addFormat('date', fastFormats.date).addFormat('date-time', fastFormats['date-time']);

beforeAll(async () => {
  worker = await startWorker({ GRAMMAR_THREADS: '2', MAX_BATCH: '32' }, 'demo');
  edge = await startEdge([worker.url], SECRET);
  const { key } = await edge.createKey('structured-e2e', { concurrent_streams: 256, requests_per_minute: 100_000 });
  // wrangler dev rebuilds and reloads the edge when its bundler's watcher sees the project tree change (other test
  // files write into it); a request caught by a reload gets a 503, which the SDK retries as it does by default.
  // Outputs are never retried: every one that arrives is checked.
  client = new OpenAI({ baseURL: `${edge.url}/v1`, apiKey: key, maxRetries: 3, timeout: 300_000 });
});

afterAll(async () => {
  await edge?.dispose();
  await worker?.stop();
});

/** Runs tasks with at most `limit` in flight. */
async function pool<T>(tasks: (() => Promise<T>)[], limit = CONCURRENCY): Promise<T[]> {
  const results: T[] = new Array(tasks.length);
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(limit, tasks.length) }, async () => {
    while (next < tasks.length) {
      const i = next++;
      results[i] = await tasks[i]();
    }
  }));
  return results;
}

const str = (maxLength: number, minLength?: number) => ({ type: 'string', maxLength, ...(minLength ? { minLength } : {}) });
const int = (minimum: number, maximum: number) => ({ type: 'integer', minimum, maximum });
const obj = (properties: Record<string, unknown>, required = Object.keys(properties)) => ({ type: 'object', properties, required, additionalProperties: false });

/** 25 schemas; every string is bounded (a random model never closes an unbounded one). */
const SCHEMAS: Record<string, Record<string, unknown>> = {
  person: obj({ name: str(6), age: int(0, 120) }),
  nested: obj({ user: obj({ name: str(5), address: obj({ city: str(6), zip: { type: 'string', pattern: '^[0-9]{5}$' } }) }) }),
  tags: obj({ tags: { type: 'array', items: str(4), minItems: 1, maxItems: 3 } }),
  enums: obj({ color: { enum: ['red', 'green', 'blue'] }, size: { type: 'string', enum: ['S', 'M', 'L', 'XL'] } }),
  consts: obj({ version: { const: 2 }, kind: { const: 'event' } }),
  bounds: obj({ x: { type: 'number', minimum: -5, maximum: 5 }, y: { type: 'integer', exclusiveMinimum: 0, exclusiveMaximum: 10 } }),
  pattern: obj({ code: { type: 'string', pattern: '^[A-Z]{3}-[0-9]{3}$' } }),
  formats: obj({ day: { type: 'string', format: 'date' }, id: { type: 'string', format: 'uuid' }, ip: { type: 'string', format: 'ipv4' } }),
  timestamps: obj({ at: { type: 'string', format: 'date-time' }, clock: { type: 'string', format: 'time' } }),
  anyOf: obj({ value: { anyOf: [int(0, 9), str(5), { type: 'boolean' }] } }),
  refs: { ...obj({ a: { $ref: '#/$defs/point' }, b: { $ref: '#/$defs/point' } }), $defs: { point: obj({ x: int(-9, 9), y: int(-9, 9) }) } },
  optional: obj({ id: int(1, 999), note: str(6), flag: { type: 'boolean' } }, ['id']),
  orders: obj({ lines: { type: 'array', items: obj({ sku: { type: 'string', pattern: '^[A-Z]{2}[0-9]{2}$' }, qty: int(1, 9) }), minItems: 1, maxItems: 2 } }),
  nullable: obj({ maybe: { type: ['string', 'null'], maxLength: 5 } }),
  literals: obj({ ok: { type: 'boolean' }, nothing: { type: 'null' } }),
  tuple: obj({ pair: { type: 'array', prefixItems: [int(0, 9), str(4)], items: false } }),
  array: { type: 'array', items: int(0, 99), minItems: 2, maxItems: 4 },
  answer: { enum: ['yes', 'no', 'unsure'] },
  chain: { ...obj({ node: { $ref: '#/$defs/a' } }), $defs: { a: obj({ next: { $ref: '#/$defs/b' } }), b: obj({ v: int(0, 5) }) } },
  oneOf: obj({ shape: { oneOf: [obj({ kind: { const: 'circle' }, r: int(1, 9) }), obj({ kind: { const: 'square' }, side: int(1, 9) })] } }),
  lengths: obj({ word: str(4, 2), initials: { type: 'string', minLength: 2, maxLength: 3 } }),
  negative: obj({ t: int(-50, 50), dx: { type: 'integer', minimum: -3, maximum: -1 } }),
  flags: obj({ a: { type: 'boolean' }, b: { type: 'boolean' }, c: { enum: [1, 2, 3] }, d: { enum: ['x', 'y'] }, e: { type: 'null' }, f: { const: true } }),
  ipv6: obj({ addr: { type: 'string', format: 'ipv6' } }),
  patternKeys: { type: 'object', patternProperties: { '^[a-z]{2}$': int(0, 9) }, additionalProperties: false, minProperties: 1, maxProperties: 2 },
};

type Mode = { thinking: boolean; stream: boolean; temperature: number; n: number };
/** Per schema: 8 generations across both modes, streamed and not, greedy and sampled. */
const MODES: Mode[] = [
  { thinking: false, stream: false, temperature: 0, n: 1 },
  { thinking: false, stream: true, temperature: 1, n: 3 },
  { thinking: true, stream: false, temperature: 1, n: 3 },
  { thinking: true, stream: true, temperature: 0, n: 1 },
];

type Choice = { content: string | null; finish: string | null; reasoning: string };

/** One chat request; streamed requests are folded per choice. */
async function chat(body: Record<string, unknown>, stream: boolean): Promise<Choice[]> {
  if (!stream) {
    const r = await client.chat.completions.create({ model: MODEL, ...body, stream: false } as OpenAI.Chat.ChatCompletionCreateParamsNonStreaming);
    return r.choices.map((c) => ({ content: c.message.content, finish: c.finish_reason, reasoning: (c.message as any).reasoning_content ?? '' }));
  }
  const s = await client.chat.completions.create({ model: MODEL, ...body, stream: true } as OpenAI.Chat.ChatCompletionCreateParamsStreaming);
  const out: Choice[] = [];
  for await (const chunk of s) {
    for (const c of chunk.choices) {
      out[c.index] ??= { content: '', finish: null, reasoning: '' };
      out[c.index].content += c.delta.content ?? '';
      out[c.index].reasoning += (c.delta as any).reasoning_content ?? '';
      if (c.finish_reason) out[c.index].finish = c.finish_reason;
    }
  }
  return out;
}

const thinkingControl = (on: boolean) => ({ chat_template_kwargs: { enable_thinking: on } });

describe('structured outputs through the stack', () => {
  it('Should make 200 generations over 25 schemas that all validate, in both modes, streamed and not, at T 0 and 1', async () => {
    expect(Object.keys(SCHEMAS).length).toBeGreaterThanOrEqual(20);
    const tasks = Object.entries(SCHEMAS).flatMap(([name, schema], s) => MODES.map((mode, m) => async () => {
      const choices = await chat({
        messages: [{ role: 'user', content: `Fill the ${name} form (${s}.${m}).` }], n: mode.n, temperature: mode.temperature,
        seed: s * 10 + m, max_tokens: 300, response_format: { type: 'json_schema', json_schema: { name, schema, strict: true } },
        ...thinkingControl(mode.thinking),
      }, mode.stream);
      return choices.map((c) => ({ name, mode, ...c }));
    }));
    const results = (await pool(tasks)).flat();
    const failures: string[] = [];
    for (const r of results) {
      const label = `${r.name} ${JSON.stringify(r.mode)}: ${JSON.stringify(r.content)}`;
      if (r.finish !== 'stop') failures.push(`${label} finished with ${r.finish}`);
      if (r.mode.thinking && !r.reasoning) failures.push(`${label} has no reasoning`);
      let value: unknown;
      try {
        value = JSON.parse(r.content ?? '');
      } catch {
        failures.push(`${label} is not JSON`);
        continue;
      }
      const validate = ajv.compile(SCHEMAS[r.name]);
      if (!validate(value)) failures.push(`${label} does not validate: ${ajv.errorsText(validate.errors)}`);
    }
    expect(results.length).toBe(200);
    expect(failures).toEqual([]);
  });

  it('Should call the tools with valid arguments for tool_choice required and named: 100 of 100', async () => {
    const weather = { type: 'object', properties: { city: str(6), unit: { enum: ['celsius', 'fahrenheit'] } }, required: ['city'], additionalProperties: false };
    const add = obj({ a: int(-99, 99), b: int(-99, 99) });
    const tools: OpenAI.Chat.ChatCompletionTool[] = [
      { type: 'function', function: { name: 'get_weather', description: 'Weather in a city', parameters: weather } },
      { type: 'function', function: { name: 'add', description: 'Add two integers', parameters: add } },
    ];
    const params: Record<string, Record<string, unknown>> = { get_weather: weather, add };
    const cases = Array.from({ length: 25 }, (_, i) => ({
      tool_choice: i % 2 ? ('required' as const) : { type: 'function' as const, function: { name: i % 4 ? 'add' : 'get_weather' } },
      parallel_tool_calls: i % 3 !== 0, stream: i % 5 < 2, thinking: i % 2 === 0, temperature: i % 3 ? 1 : 0,
    }));
    const results = (await pool(cases.map((c, i) => async () => {
      const body = {
        messages: [{ role: 'user', content: `Use a tool (${i}).` }], tools, tool_choice: c.tool_choice, parallel_tool_calls: c.parallel_tool_calls,
        n: 4, temperature: c.temperature, seed: i, max_tokens: 300, ...thinkingControl(c.thinking),
      };
      if (!c.stream) {
        const r = await client.chat.completions.create({ model: MODEL, ...body } as OpenAI.Chat.ChatCompletionCreateParamsNonStreaming);
        return r.choices.map((ch) => ({ c, finish: ch.finish_reason, content: ch.message.content, calls: ch.message.tool_calls ?? [] }));
      }
      const s = await client.chat.completions.create({ model: MODEL, ...body, stream: true } as OpenAI.Chat.ChatCompletionCreateParamsStreaming);
      const out: { c: typeof c; finish: string | null; content: string; calls: { function: { name: string; arguments: string } }[] }[] = [];
      for await (const chunk of s) {
        for (const ch of chunk.choices) {
          out[ch.index] ??= { c, finish: null, content: '', calls: [] };
          out[ch.index].content += ch.delta.content ?? '';
          for (const t of ch.delta.tool_calls ?? []) {
            out[ch.index].calls[t.index] ??= { function: { name: '', arguments: '' } };
            out[ch.index].calls[t.index].function.name += t.function?.name ?? '';
            out[ch.index].calls[t.index].function.arguments += t.function?.arguments ?? '';
          }
          if (ch.finish_reason) out[ch.index].finish = ch.finish_reason;
        }
      }
      return out;
    }))).flat();
    const failures: string[] = [];
    for (const r of results) {
      const label = `${JSON.stringify(r.c)} → ${JSON.stringify(r.calls)} ${JSON.stringify(r.content)}`;
      if (r.finish !== 'tool_calls') failures.push(`${label}: finish ${r.finish}`);
      if (!r.calls.length) failures.push(`${label}: no tool call`);
      if ((typeof r.c.tool_choice === 'object' || !r.c.parallel_tool_calls) && r.calls.length > 1) failures.push(`${label}: several calls`);
      for (const call of r.calls as { function: { name: string; arguments: string } }[]) {
        if (typeof r.c.tool_choice === 'object' && call.function.name !== r.c.tool_choice.function.name) failures.push(`${label}: wrong function`);
        const schema = params[call.function.name];
        if (!schema) {
          failures.push(`${label}: unknown function`);
          continue;
        }
        const validate = ajv.compile(schema);
        let args: unknown;
        try {
          args = JSON.parse(call.function.arguments);
        } catch {
          failures.push(`${label}: arguments are not JSON`);
          continue;
        }
        if (!validate(args)) failures.push(`${label}: ${ajv.errorsText(validate.errors)}`);
      }
    }
    expect(results.length).toBe(100);
    expect(failures).toEqual([]);
  });

  it('Should parse with the SDK: chat.completions.parse with a JSON schema and with a zod schema', async () => {
    const schema = obj({ title: str(8), year: int(1900, 2100), genres: { type: 'array', items: { enum: ['drama', 'comedy', 'horror'] }, minItems: 1, maxItems: 2 } });
    const byJson = await client.chat.completions.parse({
      model: MODEL, messages: [{ role: 'user', content: 'A film, please.' }], temperature: 0,
      response_format: { type: 'json_schema', json_schema: { name: 'film', schema, strict: true } },
    });
    const parsed = byJson.choices[0].message.parsed as unknown;
    expect(ajv.validate(schema, parsed)).toBe(true);

    const Film = z.object({ title: z.string().max(8), year: z.number().int().min(1900).max(2100), rating: z.enum(['G', 'PG', 'R']), seen: z.boolean() });
    const byZod = await client.chat.completions.parse({
      model: MODEL, messages: [{ role: 'user', content: 'Another film.' }], temperature: 1, seed: 3,
      response_format: zodResponseFormat(Film, 'film'),
    });
    const film = byZod.choices[0].message.parsed!;
    expect(Film.parse(film)).toEqual(film);
    expect(typeof film.seen).toBe('boolean');
  });

  it('Should match regexes and choices on chat and legacy completions, 100%', async () => {
    const regex = '[A-Z]{2}-[0-9]{2,4}( [a-z]{1,3})?';
    const choices = ['alpha', 'beta', 'gamma "quoted"', 'δέλτα'];
    const chats = Array.from({ length: 12 }, (_, i) => async () => {
      const field = i % 4 === 0 ? { structured_outputs: { regex } } : i % 4 === 1 ? { guided_regex: regex } : i % 4 === 2 ? { structured_outputs: { choice: choices } } : { guided_choice: choices };
      const out = await chat({ messages: [{ role: 'user', content: `Pick (${i}).` }], n: 3, temperature: i % 3 ? 1 : 0, seed: i, max_tokens: 200, ...field, ...thinkingControl(i % 2 === 0) }, i % 3 === 0);
      return out.map((c) => ({ kind: i % 4 < 2 ? 'regex' : 'choice', text: c.content ?? '', finish: c.finish }));
    });
    const completions = Array.from({ length: 6 }, (_, i) => async () => {
      const r = await client.completions.create({
        model: MODEL, prompt: `Code number ${i}:`, max_tokens: 40, n: 2, temperature: 1, seed: i,
        ...(i % 2 ? { guided_regex: regex } : { structured_outputs: { choice: choices } }),
      } as OpenAI.CompletionCreateParamsNonStreaming);
      return r.choices.map((c) => ({ kind: i % 2 ? 'regex' : 'choice', text: c.text, finish: c.finish_reason }));
    });
    const results = (await pool([...chats, ...completions])).flat();
    const full = new RegExp(`^(?:${regex})$`);
    for (const r of results) {
      expect(r.finish, JSON.stringify(r)).toBe('stop');
      if (r.kind === 'regex') expect(r.text, JSON.stringify(r)).toMatch(full);
      else expect(choices, JSON.stringify(r)).toContain(r.text);
    }
    expect(results.length).toBe(48);
  });

  it('Should return a JSON object for json_object, length when cut mid-object, and stream constrained legacy completions', async () => {
    const out = await chat({ messages: [{ role: 'user', content: 'JSON please.' }], temperature: 0, max_tokens: 400, response_format: { type: 'json_object' }, ...thinkingControl(false) }, false);
    const value = JSON.parse(out[0].content!);
    expect(typeof value === 'object' && value !== null && !Array.isArray(value)).toBe(true);
    // cut by max_tokens mid-object: finish_reason length, and the text is a prefix that does not parse (as OpenAI)
    const pair = obj({ alpha: int(0, 9), beta: int(0, 9) });
    const cut = await chat({
      messages: [{ role: 'user', content: 'JSON, briefly.' }], temperature: 0, max_tokens: 3, ...thinkingControl(false),
      response_format: { type: 'json_schema', json_schema: { name: 'pair', schema: pair } },
    }, true);
    expect(cut[0].finish).toBe('length');
    expect(cut[0].content!.startsWith('{')).toBe(true);
    expect(() => JSON.parse(cut[0].content!)).toThrow();

    const schema = obj({ n: int(0, 999), ok: { type: 'boolean' } });
    const stream = await client.completions.create({
      model: MODEL, prompt: 'Result:', max_tokens: 60, temperature: 1, seed: 5, stream: true,
      response_format: { type: 'json_schema', json_schema: { name: 'r', schema } },
    } as unknown as OpenAI.CompletionCreateParamsStreaming);
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.text ?? '';
    expect(ajv.validate(schema, JSON.parse(text))).toBe(true);
  });

  it('Should refuse what cannot be enforced with a 400 naming the field', async () => {
    const refused = async (body: Record<string, unknown>, param: string, message: RegExp) => {
      const err = await client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'x' }], ...body } as never).then(() => undefined, (e: unknown) => e);
      expect(err, JSON.stringify(body)).toBeInstanceOf(BadRequestError);
      expect((err as BadRequestError).param).toBe(param);
      expect((err as BadRequestError).message).toMatch(message);
    };
    await refused({ response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { type: 'array', uniqueItems: true } } } }, 'response_format', /"uniqueItems"/);
    await refused({ response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { type: 'integer', multipleOf: 3 } } } }, 'response_format', /"multipleOf"/);
    await refused({ guided_regex: '(unclosed' }, 'guided_regex', /regular expression/);
    await refused({ structured_outputs: { regex: 'a(?=b)' } }, 'structured_outputs.regex', /Lookahead is not supported/);
    await refused({ guided_grammar: 'root ::= "a" |' }, 'guided_grammar', /EBNF|Expect/);
    await refused({ response_format: { type: 'json_object' }, guided_choice: ['a'] }, 'guided_choice', /Only one of/);
    await refused({ structured_outputs: { regex: 'a', choice: ['b'] } }, 'structured_outputs', /exactly one/);
    const tools = [{ type: 'function', function: { name: 'f', parameters: { type: 'object', properties: { a: { not: { type: 'string' } } } } } }];
    await refused({ tools, tool_choice: 'required' }, 'tools[0].function.parameters', /"not"/);
    await refused({ tools, tool_choice: 'required', guided_json: { type: 'object' } }, 'tool_choice', /cannot be combined/);
  });
});
