// One context limit through the whole stack: the edge in workerd as deployed (helpers/edge-stack.ts)
// in front of real worker processes on copies of the demo checkpoint. `long` runs Qwen's YaRN setting (YARN_FACTOR=4 on
// a 32,768-token original window: 131,072 tokens); `window` is a small checkpoint whose original window is 1,024
// tokens, stretched by YaRN (factor 4) to 4,096, so a 1,500-token prompt runs past its original window at modest CPU
// cost. The edge learns both contexts from the workers: nothing caps them at 40,960, a prompt only `long` holds goes
// to `long`, one that no worker holds is refused before any worker is called.
import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
// @ts-expect-error plain ESM script without types
import { DEMO_ANSWER } from '../../scripts/gen-demo-script.mjs';
import { UpstreamPool } from '../../edge/upstream.ts';
import { send, startEdge, type EdgeStack, type Json } from '../helpers/edge-stack.ts';
import { demoModel, metrics, SECRET, startWorker, type Worker } from '../gpu-worker/worker-process.ts';

const MODEL = 'qwen3-8b-awq';
const dir = mkdtempSync(join(tmpdir(), 'q3-yarn-window-'));
let long: Worker;
let window: Worker;
let edge: EdgeStack;
let key: string;

/** The demo checkpoint with a 1,024-token original window and YaRN factor 4 in its config.json (weights shared). */
function smallWindowCheckpoint(): string {
  const demo = demoModel('demo');
  const config = JSON.parse(readFileSync(join(demo, 'config.json'), 'utf8'));
  config.max_position_embeddings = 4_096;
  config.rope_scaling = { rope_type: 'yarn', factor: 4.0, original_max_position_embeddings: 1_024 };
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config, null, 2));
  for (const file of ['model.safetensors', 'generation_config.json']) symlinkSync(join(demo, file), join(dir, file));
  return dir;
}

const generateCalls = async (w: Worker) => (await metrics(w)).get('vllm:request_success_total') ?? 0;
/** a user message of about `tokens` tokens */
const longText = (tokens: number, salt = '') => `${salt} ${' hello'.repeat(tokens)}`;
const chat = (body: Json) => send(edge.url, key, '/v1/chat/completions', { model: MODEL, chat_template_kwargs: { enable_thinking: false }, ...body });
const get = async (path: string) => (await fetch(edge.url + path, { headers: { authorization: `Bearer ${key}` } })).json() as Promise<Json>;
const post = async (path: string, body: Json) =>
  (await fetch(edge.url + path, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: JSON.stringify(body) })).json() as Promise<Json>;

beforeAll(async () => {
  [long, window] = await Promise.all([
    startWorker({ YARN_FACTOR: '4', KV_CACHE_MIB: '64' }, 'demo'),
    startWorker({ MODEL_DIR: smallWindowCheckpoint(), YARN_FACTOR: '4', KV_CACHE_MIB: '16' }, 'demo'),
  ]);
  edge = await startEdge([long.url, window.url], SECRET);
  ({ key } = await edge.createKey('long-context', { tokens_per_minute: 10_000_000 }));
});

afterAll(async () => {
  await edge?.dispose();
  await Promise.all([long?.stop(), window?.stop()]);
  rmSync(dir, { recursive: true, force: true });
});

describe('one context limit, learned from the workers', () => {
  it('publishes each worker\'s own context, and the edge reports the largest: 131,072 with YARN_FACTOR=4', async () => {
    expect(await (await fetch(`${long.url}/ready`)).json()).toMatchObject({ max_context: 131_072 });
    expect(await (await fetch(`${window.url}/ready`)).json()).toMatchObject({ max_context: 4_096 });
    expect((await get('/v1/models')).data[0].max_model_len).toBe(131_072);
  });

  it('serves a prompt past the small checkpoint\'s original window, with max_tokens omitted (up to its context)', async () => {
    // both workers hold it: pick a prompt the edge's rendezvous routing sends to the small one (same order function)
    const pool = new UpstreamPool({ urls: [long.url, window.url], secret: SECRET, timeoutMs: 1_000 });
    let messages: Json[] = [];
    for (let salt = 0; ; salt++) {
      messages = [{ role: 'user', content: longText(1_500, `window ${salt}`) }];
      const { tokens: ids } = await post('/tokenize', { model: MODEL, messages, chat_template_kwargs: { enable_thinking: false } });
      if (pool.order(ids)[0] === window.url) break;
    }
    const before = await generateCalls(window);
    const answer = await chat({ messages });
    expect(answer.status, JSON.stringify(answer.error)).toBe(200);
    expect(answer.usage!.prompt_tokens).toBeGreaterThan(1_024);
    expect(answer).toMatchObject({ finish: 'stop', content: DEMO_ANSWER });
    expect(await generateCalls(window)).toBe(before + 1);
  });

  it('accepts a completion budget past 40,960 tokens and sends a prompt only the 131,072-token worker holds to it', async () => {
    const windowCalls = await generateCalls(window);
    const longCalls = await generateCalls(long);
    const budget = await chat({ messages: [{ role: 'user', content: 'hi' }], max_completion_tokens: 100_000 });
    expect(budget.status, JSON.stringify(budget.error)).toBe(200);
    const beyond = await chat({ messages: [{ role: 'user', content: longText(4_500, 'beyond') }] });
    expect(beyond.status, JSON.stringify(beyond.error)).toBe(200);
    expect(beyond.usage!.prompt_tokens).toBeGreaterThan(4_096);
    expect(beyond.content).toBe(DEMO_ANSWER);
    expect(await generateCalls(window)).toBe(windowCalls); // neither went to the 4,096-token worker
    expect(await generateCalls(long)).toBe(longCalls + 2);
  });

  it('refuses a prompt longer than every worker\'s context with 400 context_length_exceeded, calling no worker', async () => {
    const before = [await generateCalls(long), await generateCalls(window)];
    const res = await chat({ messages: [{ role: 'user', content: longText(131_100) }] });
    expect(res.status).toBe(400);
    const { error } = res.error!;
    expect(error).toMatchObject({ type: 'invalid_request_error', param: 'messages', code: 'context_length_exceeded' });
    expect(error.message).toContain('maximum context length is 131072 tokens');
    expect([await generateCalls(long), await generateCalls(window)]).toEqual(before);
  });
});
