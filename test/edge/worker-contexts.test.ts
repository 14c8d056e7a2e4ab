// The edge's record of each worker's context (edge/worker-contexts.ts) with a scripted /ready reader and clock: the
// first request of an isolate waits for one round of answers, later ones never wait; stale values are refreshed in
// the background; a worker that did not say is asked again after a short pause, not on every request; set() feeds it
// without any /ready call; a request does not wait past its own deadline for another request's first read. Through
// the app (stub workers publishing `max_context` on /ready): the limit is the largest context the workers report, a
// prompt too long for all of them is a 400 before any worker is called, an omitted max_tokens is left for the worker
// to fill, and /v1/models and /tokenize report the workers' context.
import { afterAll, describe, expect, it } from 'vitest';
import { createApp } from '../../edge/app.ts';
import { CONTEXT_RETRY_MS, CONTEXT_TTL_MS, WorkerContexts } from '../../edge/worker-contexts.ts';
import { closeStubs, scripted, STUB_SECRET, stubWorker, type Stub } from '../helpers/stub-worker.ts';

afterAll(closeStubs);

/** A /ready reader whose answers the test sets, counting calls per worker and able to hold them until released. */
function scriptedReader(answers: Record<string, number | undefined>) {
  const calls: string[] = [];
  let gate: Promise<void> | undefined;
  let open = () => {};
  return {
    calls,
    answers,
    hold() {
      gate = new Promise((r) => (open = r));
    },
    release: () => open(),
    read: async (url: string) => {
      calls.push(url);
      await gate;
      return answers[url];
    },
  };
}

describe('WorkerContexts', () => {
  it('waits for the first round of /ready answers, then answers from what it learned', async () => {
    const reader = scriptedReader({ a: 40_960, b: 131_072 });
    const contexts = new WorkerContexts(['a', 'b'], reader.read);
    reader.hold();
    const first = contexts.largest(undefined, 0);
    const second = contexts.largest(undefined, 0); // arrives during the first round: waits for it too, asks nobody twice
    let settled = false;
    void first.then(() => (settled = true));
    await new Promise((r) => setTimeout(r, 20));
    expect(settled).toBe(false);
    reader.release();
    expect(await first).toBe(131_072);
    expect(await second).toBe(131_072);
    expect(contexts.get('a')).toBe(40_960);
    expect(await contexts.largest(undefined, 1_000)).toBe(131_072);
    expect(reader.calls).toEqual(['a', 'b']);
  });

  it('refreshes a stale value in the background and serves the old one meanwhile', async () => {
    const reader = scriptedReader({ a: 8_192 });
    const contexts = new WorkerContexts(['a'], reader.read);
    const t0 = Date.now();
    expect(await contexts.largest(undefined, t0)).toBe(8_192);
    const answered = Date.now(); // the answer's time, a few ms after t0 on a loaded machine, is what ages
    reader.answers.a = 32_768;
    reader.hold();
    const background: Promise<unknown>[] = [];
    expect(await contexts.largest((work) => background.push(work), t0 + CONTEXT_TTL_MS - 1)).toBe(8_192); // fresh: nothing asked
    expect(background).toHaveLength(0);
    expect(await contexts.largest((work) => background.push(work), answered + CONTEXT_TTL_MS + 1)).toBe(8_192); // stale: old value, asked behind
    expect(background).toHaveLength(1);
    expect(await contexts.largest((work) => background.push(work), answered + CONTEXT_TTL_MS + 2)).toBe(8_192); // one refresh at a time
    expect(background).toHaveLength(1);
    reader.release();
    await Promise.all(background);
    expect(await contexts.largest(undefined, Date.now())).toBe(32_768);
  });

  it('does not make requests wait for a worker that did not say; asks it again later in the background', async () => {
    const reader = scriptedReader({ up: 4_096, down: undefined });
    const contexts = new WorkerContexts(['up', 'down'], reader.read);
    const t0 = Date.now();
    expect(await contexts.largest(undefined, t0)).toBe(4_096);
    reader.hold(); // from now on /ready hangs: a request that waited for it would hang too
    const background: Promise<unknown>[] = [];
    expect(await contexts.largest((work) => background.push(work), t0 + 1)).toBe(4_096);
    expect(background).toHaveLength(0);
    expect(await contexts.largest((work) => background.push(work), t0 + CONTEXT_RETRY_MS + 50)).toBe(4_096);
    expect(background).toHaveLength(1);
    expect(reader.calls).toEqual(['up', 'down', 'down']);
    reader.answers.down = 16_384;
    reader.release();
    await Promise.all(background);
    expect(await contexts.largest(undefined, Date.now())).toBe(16_384);
  });

  it('does not wait past its own deadline for a first read another request started (that request may be gone)', async () => {
    // On Workers, a cancelled request's I/O never settles: its /ready read stays pending for everyone who shares it.
    const calls: string[] = [];
    const read = (url: string) => {
      calls.push(url);
      return calls.length === 1 ? new Promise<number | undefined>(() => {}) : Promise.resolve(24_576);
    };
    const contexts = new WorkerContexts(['a'], read, 50);
    void contexts.largest(undefined, 0); // the first request: its read never answers
    const started = Date.now();
    expect(await contexts.largest(undefined, 0)).toBe(24_576); // the second asks itself after 50 ms
    expect(Date.now() - started).toBeGreaterThanOrEqual(45);
    expect(calls).toEqual(['a', 'a']);
    expect(await contexts.largest(undefined, 1)).toBe(24_576); // learned: nobody waits or asks again
    expect(calls).toEqual(['a', 'a']);
  });

  it('knows nothing while no worker says, and takes a value from set() without asking', async () => {
    const reader = scriptedReader({});
    const contexts = new WorkerContexts(['a', 'b'], reader.read);
    expect(await contexts.largest(undefined, Date.now())).toBeUndefined();
    const fed = new WorkerContexts(['a'], reader.read);
    fed.set('a', 65_536);
    reader.calls.length = 0;
    expect(await fed.largest(undefined, Date.now())).toBe(65_536);
    expect(reader.calls).toEqual([]);
  });
});

describe('the edge uses the workers\' context', () => {
  const app = createApp();
  const MODEL = 'qwen3-8b-awq';
  const env = (stubs: Stub[]) => ({ MODEL_ID: MODEL, WORKER_URLS: stubs.map((s) => s.url).join(','), WORKER_SECRET: STUB_SECRET, THINKING_DEFAULT: 'off' });
  /** a user message of about `tokens` tokens */
  const longText = (tokens: number) => ' hello'.repeat(tokens);
  const chat = (bindings: object, body: object) =>
    app.request('/v1/chat/completions', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: MODEL, ...body }) }, bindings);
  const reply = () => scripted(['ok']);

  it('refuses a prompt too long for every worker with 400 context_length_exceeded, before any worker is called', async () => {
    const small = await stubWorker(reply());
    small.maxContext = 2_048;
    const bindings = env([small]);
    const tooLong = await chat(bindings, { messages: [{ role: 'user', content: longText(2_100) }] });
    expect(tooLong.status).toBe(400);
    expect(((await tooLong.json()) as { error: object }).error).toMatchObject({ param: 'messages', code: 'context_length_exceeded' });
    const overBudget = await chat(bindings, { messages: [{ role: 'user', content: 'hi' }], max_tokens: 2_040 });
    expect(overBudget.status).toBe(400);
    const err = ((await overBudget.json()) as { error: { param: string; code: string; message: string } }).error;
    expect(err).toMatchObject({ param: 'max_tokens', code: 'context_length_exceeded' });
    expect(err.message).toContain('maximum context length is 2048 tokens');
    expect(small.requests).toEqual([]);
    expect(small.readyProbes).toBeGreaterThan(0); // it was asked for its context, nothing else
  });

  it('leaves an omitted max_tokens to the worker, and accepts what the largest context holds past any edge default', async () => {
    const big = await stubWorker(reply());
    big.maxContext = 131_072;
    const bindings = env([big]);
    const omitted = await chat(bindings, { messages: [{ role: 'user', content: 'hi' }] });
    expect(omitted.status).toBe(200);
    expect(big.requests.at(-1)).not.toHaveProperty('max_tokens');
    const large = await chat(bindings, { messages: [{ role: 'user', content: 'hi' }], max_completion_tokens: 100_000 });
    expect(large.status).toBe(200);
    expect(big.requests.at(-1)!.max_tokens).toBe(100_000);
  });

  it('sends a request only to workers whose context holds it', async () => {
    const small = await stubWorker(reply());
    const big = await stubWorker(reply());
    small.maxContext = 2_048;
    big.maxContext = 8_192;
    const bindings = env([small, big]);
    // short prompts spread over both (by a hash of their first words, so a few may all land on one worker: sent until
    // the small one has had one); one that only the big worker holds goes there every time
    for (let i = 0; i < 40 && small.requests.length === 0; i++) {
      expect((await chat(bindings, { messages: [{ role: 'user', content: `short ${i}` }], max_tokens: 8 })).status).toBe(200);
    }
    expect(small.requests.length).toBeGreaterThan(0);
    const before = small.requests.length;
    for (let i = 0; i < 4; i++) {
      expect((await chat(bindings, { messages: [{ role: 'user', content: `${i}${longText(2_500)}` }], max_tokens: 8 })).status).toBe(200);
    }
    expect(small.requests.length).toBe(before);
    // holding the prompt is not enough: prompt + max_tokens must fit too
    expect((await chat(bindings, { messages: [{ role: 'user', content: 'x' }], max_tokens: 2_040 })).status).toBe(200);
    expect(small.requests.length).toBe(before);
    expect(big.requests.at(-1)!.max_tokens).toBe(2_040);
  });

  it('reports the largest context the workers publish as max_model_len', async () => {
    const a = await stubWorker(reply());
    const b = await stubWorker(reply());
    a.maxContext = 40_960;
    b.maxContext = 131_072;
    const bindings = env([a, b]);
    const models = (await (await app.request('/v1/models', {}, bindings)).json()) as { data: { max_model_len: number }[] };
    expect(models.data[0].max_model_len).toBe(131_072);
    const tokenized = await app.request('/tokenize', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: MODEL, prompt: 'hi' }) }, bindings);
    expect(((await tokenized.json()) as { max_model_len: number }).max_model_len).toBe(131_072);
  });
});
