// Structured output in the real worker (demo checkpoint, Qwen3's vocabulary and tokenizer.json, one grammar thread):
// the format applies from the first token, or after the think block (reasoning identical to an unconstrained run,
// the thinking budget's forced close handing over to the format, a prompt already inside <think>, a first token
// that skips thinking); constrained and unconstrained sequences share batches without changing the unconstrained
// ones; invalid formats are 400s naming `param`; a compilation over the time limit is a 400 while a constrained
// stream on the same grammar thread carries on (its matcher is rebuilt by replay); no tokenizer.json → 400.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getTokenizer } from '../../edge/tokenizer/index.js';
import { END_THINK_ID, THINK_START_ID, type StructuredOutputInput } from '../../gpu-worker/protocol.ts';
import { generate, parseSSE, signedFetch, startWorker, type Worker } from './worker-process.ts';

const tok = getTokenizer();
const chatPrompt = (text: string, thinking: boolean) =>
  tok.encode(`<|im_start|>user\n${text}<|im_end|>\n<|im_start|>assistant\n${thinking ? '' : '<think>\n\n</think>\n\n'}`);
const THINKING = chatPrompt('Hello', true);
const DIRECT = chatPrompt('Hello', false);
const CODE = '[A-Z]{3}-[0-9]{4}';
const PERSON = {
  type: 'object', additionalProperties: false, required: ['name', 'age'],
  properties: { name: { type: 'string', maxLength: 6 }, age: { type: 'integer', minimum: 0, maximum: 120 } },
};
const DIGITS = { type: 'array', items: { type: 'integer', minimum: 0, maximum: 9 }, minItems: 30 };
const regex = (pattern: string, extra: Partial<StructuredOutputInput> = {}): StructuredOutputInput => ({ format: { type: 'regex', pattern }, param: 'guided_regex', ...extra });
const schema = (json_schema: object, extra: Partial<StructuredOutputInput> = {}): StructuredOutputInput => ({ format: { type: 'json_schema', json_schema: json_schema as Record<string, unknown> }, param: 'response_format', ...extra });

function expectPerson(text: string): void {
  const value = JSON.parse(text);
  expect(Object.keys(value).sort(), text).toEqual(['age', 'name']);
  expect(value.name.length).toBeLessThanOrEqual(6);
  expect(Number.isInteger(value.age) && value.age >= 0 && value.age <= 120, text).toBe(true);
}

let w: Worker;
beforeAll(async () => {
  w = await startWorker({ GRAMMAR_THREADS: '1', GRAMMAR_COMPILE_TIMEOUT_MS: '3000' }, 'demo');
});
afterAll(async () => {
  await w?.stop();
});

describe('structured output in the worker', () => {
  it('Should constrain from the first token, greedy and sampled', async () => {
    const free = await generate(w, { prompt: DIRECT, max_tokens: 40 });
    expect(tok.decode(free.tokens)).not.toMatch(new RegExp(`^${CODE}$`));    // the demo script is not a code
    for (const sampling of [{ temperature: 0 }, { temperature: 1, seed: 1 }, { temperature: 1.5, top_k: 50, seed: 2 }]) {
      const r = await generate(w, { prompt: DIRECT, max_tokens: 40, sampling, structured_output: regex(CODE) });
      expect(r.final!.finish_reason).toBe('stop');
      expect(tok.decode(r.tokens)).toMatch(new RegExp(`^${CODE}$`));
    }
  });

  it('Should leave thinking free and apply the format after </think>', async () => {
    const free = await generate(w, { prompt: THINKING, max_tokens: 100 });
    const end = free.tokens.indexOf(END_THINK_ID);
    expect(free.tokens[0]).toBe(THINK_START_ID);
    const r = await generate(w, { prompt: THINKING, max_tokens: 100, structured_output: schema(PERSON, { after_think: true }) });
    expect(r.tokens.slice(0, end + 1)).toEqual(free.tokens.slice(0, end + 1));      // the same reasoning
    expect(r.final!.finish_reason).toBe('stop');
    expectPerson(tok.decode(r.tokens.slice(end + 1)).trimStart());
  });

  it('Should hand the thinking budget\'s forced close over to the format', async () => {
    const inject = tok.encode('\n\nTime is up.\n</think>\n\n');
    const r = await generate(w, {
      prompt: THINKING, max_tokens: 100, structured_output: schema(PERSON, { after_think: true }),
      thinking_budget: { max_thinking_tokens: 3, inject_ids: inject },
    });
    expect(r.tokens.slice(4, 4 + inject.length)).toEqual(inject);
    expectPerson(tok.decode(r.tokens.slice(4 + inject.length)));
  });

  it('Should wait for </think> when the prompt already ends inside <think>, and constrain a first token that skips thinking', async () => {
    const inside = await generate(w, { prompt: [...THINKING, THINK_START_ID], max_tokens: 100, structured_output: regex(CODE, { after_think: true }) });
    const end = inside.tokens.indexOf(END_THINK_ID);
    expect(end).toBeGreaterThan(5);
    expect(tok.decode(inside.tokens.slice(end + 1)).trimStart()).toMatch(new RegExp(`^${CODE}$`));
    // After "Hello" the demo model has no reason to open <think>: the first token is the format's.
    const skip = await generate(w, { prompt: tok.encode('Hello'), max_tokens: 40, structured_output: regex(CODE, { after_think: true }) });
    expect(skip.tokens[0]).not.toBe(THINK_START_ID);
    expect(tok.decode(skip.tokens)).toMatch(new RegExp(`^${CODE}$`));
  });

  it('Should batch constrained and unconstrained sequences without changing the unconstrained ones', async () => {
    const alone = await generate(w, { prompt: THINKING, max_tokens: 60, sampling: { temperature: 0.8, seed: 9 } });
    const [free, ...constrained] = await Promise.all([
      generate(w, { prompt: THINKING, max_tokens: 60, sampling: { temperature: 0.8, seed: 9 } }),
      ...[0, 1, 2, 3].map((i) => generate(w, { prompt: chatPrompt(`q${i}`, i % 2 === 0), max_tokens: 80, sampling: { temperature: 1, seed: i }, structured_output: i % 2 ? regex(CODE) : schema(PERSON, { after_think: true }) })),
    ]);
    expect(free.tokens).toEqual(alone.tokens);
    constrained.forEach((r, i) => {
      const text = tok.decode(r.tokens);
      if (i % 2) expect(text).toMatch(new RegExp(`^${CODE}$`));
      else expectPerson(text.slice(text.indexOf('</think>') + '</think>'.length).trimStart());
    });
  });

  it('Should refuse invalid formats with a 400 naming param, and keep serving', async () => {
    const cases: [StructuredOutputInput, RegExp][] = [
      [regex('a(?=b)'), /Lookahead is not supported/],
      [{ format: { type: 'grammar', grammar: 'root ::= "a" |' }, param: 'guided_grammar' }, /EBNF parser error/],
      [schema({ $ref: '#/$defs/missing' }), /Cannot find field \$defs/],
      [schema({ type: 'foo' }), /Unsupported type "foo"/],
    ];
    for (const [spec, message] of cases) {
      const r = await generate(w, { prompt: DIRECT, max_tokens: 10, structured_output: spec });
      expect(r.status).toBe(400);
      expect(r.error!.error.param).toBe(spec.param);
      expect(r.error!.error.message).toMatch(message);
    }
    const ok = await generate(w, { prompt: DIRECT, max_tokens: 40, structured_output: regex(CODE) });
    expect(tok.decode(ok.tokens)).toMatch(new RegExp(`^${CODE}$`));
  });

  it('Should refuse a grammar that compiles past the time limit while a constrained stream on the same thread carries on', async () => {
    const res = await signedFetch(w.url, '/v1/generate', JSON.stringify({
      request_id: 'long', prompt: DIRECT, max_tokens: 400, sampling: { temperature: 1, seed: 4 }, structured_output: schema(DIGITS),
    }));
    const reader = res.body!.getReader();
    let text = '';
    while (!text.includes('"tokens":[')) text += new TextDecoder().decode((await reader.read()).value);
    // this one takes tens of seconds to compile; the limit is 3 s
    const slow = await generate(w, { prompt: DIRECT, max_tokens: 10, structured_output: regex('[^"]{1,300}', { param: 'structured_outputs.regex' }) });
    expect(slow.status).toBe(400);
    expect(slow.error!.error).toMatchObject({ param: 'structured_outputs.regex', message: expect.stringMatching(/longer than 3000 ms/) });
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      text += new TextDecoder().decode(value);
    }
    const events = parseSSE(text).map((e) => JSON.parse(e.data));
    expect(parseSSE(text).every((e) => e.event === 'message')).toBe(true);
    const digits = JSON.parse(tok.decode(events.flatMap((e) => e.tokens)));
    expect(digits.length).toBeGreaterThanOrEqual(30);
    expect(digits.every((d: number) => Number.isInteger(d) && d >= 0 && d <= 9)).toBe(true);
    expect(w.log()).toMatch(/grammar thread replaced \(grammar thread stopped\); 1 matcher\(s\) replay their tokens/);
    const after = await generate(w, { prompt: DIRECT, max_tokens: 40, structured_output: regex(CODE) });
    expect(tok.decode(after.tokens)).toMatch(new RegExp(`^${CODE}$`));
  });

  it('Should answer 400 when the checkpoint has no tokenizer.json', async () => {
    const tiny = await startWorker({}, 'tiny');
    try {
      const r = await generate(tiny, { prompt: [1, 2, 3], max_tokens: 5, structured_output: regex('a+') });
      expect(r.status).toBe(400);
      expect(r.error!.error).toMatchObject({ param: 'guided_regex', message: expect.stringMatching(/tokenizer\.json/) });
    } finally {
      await tiny.stop();
    }
  });
});
