// http.ts through the real worker process: /health, /ready and /metrics shapes; 400 naming the bad field; 401 for a
// missing, wrong, stale or tampered signature; 503 + Retry-After when the wait queue is full; SSE frame shape.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorBodySchema, GenerateEventSchema } from '../../gpu-worker/protocol.ts';
import { signRequest } from '../../gpu-worker/signing.ts';
import { SECRET, generate, metrics, parseSSE, prompt, signedFetch, startWorker, type Worker } from './worker-process.ts';

let w: Worker;
beforeAll(async () => {
  w = await startWorker({ MAX_BATCH: '1', MAX_QUEUE: '2', PREFILL_CHUNK: '64' });
});
afterAll(async () => {
  await w?.stop();
});

const ok = { request_id: 'h', prompt: [1, 2, 3], max_tokens: 4 };

describe('http: probes', () => {
  it('Should answer /health, /ready and /metrics', async () => {
    const health = (await (await fetch(`${w.url}/health`)).json()) as { device: string };
    expect(health).toMatchObject({ status: 'ok', model: 'q3-worker-test-tiny', load: { stage: 'ready', fraction: 1 } });
    expect(health.device).toMatch(/cpu/);
    const ready = await fetch(`${w.url}/ready`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({ ready: true, max_context: 4096 });

    const res = await fetch(`${w.url}/metrics`);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
    const text = await res.text();
    for (const name of ['vllm:num_requests_running', 'vllm:num_requests_waiting', 'vllm:kv_cache_usage_perc',
      'q3_worker_kv_blocks_used', 'q3_worker_kv_blocks_total', 'vllm:prefix_cache_queries', 'vllm:prefix_cache_hits',
      'vllm:generation_tokens', 'vllm:time_to_first_token_seconds', 'vllm:inter_token_latency_seconds']) {
      expect(text).toContain(`# TYPE ${name} `);
    }
    for (const line of text.split('\n').filter((l) => l && !l.startsWith('#'))) expect(line).toMatch(/^[a-zA-Z_:][\w:]*(\{.*\})? -?[\d.e+-]+$/);
    const m = await metrics(w);
    expect(m.get('q3_worker_kv_blocks_total')).toBeGreaterThan(0);
    expect(m.get('vllm:time_to_first_token_seconds_bucket')).toBeDefined();
  });
});

describe('http: generate', () => {
  it('Should stream data frames matching the protocol, the last with finish_reason and usage', async () => {
    const res = await signedFetch(w.url, '/v1/generate', JSON.stringify({ ...ok, logprobs: 3 }));
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    expect(res.headers.get('x-request-id')).toBe('h');
    const events = parseSSE(await res.text());
    const frames = events.map((e) => GenerateEventSchema.parse(JSON.parse(e.data)));
    expect(events.every((e) => e.event === 'message')).toBe(true);
    const last = frames[frames.length - 1];
    expect(last.usage).toMatchObject({ prompt_tokens: 3, cached_tokens: 0 });
    for (const f of frames) expect(f.logprobs?.map((l) => l.token)).toEqual(f.tokens);
  });

  const bad: [string, unknown, string | null][] = [
    ['not JSON', '{"prompt": [1,', null],
    ['prompt of the wrong type', { ...ok, prompt: 'hello' }, 'prompt'],
    ['empty prompt', { ...ok, prompt: [] }, 'prompt'],
    ['fractional token id', { ...ok, prompt: [1, 2.5] }, 'prompt'],
    ['token id >= vocab', { ...ok, prompt: [1, 1024] }, 'prompt'],
    ['negative token id', { ...ok, prompt: [-1] }, 'prompt'],
    ['max_tokens 0', { ...ok, max_tokens: 0 }, 'max_tokens'],
    ['prompt + max_tokens over the context', { ...ok, max_tokens: 4094 }, 'max_tokens'],
    ['prompt as long as the context', { ...ok, prompt: prompt(4096, 1) }, 'prompt'],
    ['request_id missing', { prompt: [1], max_tokens: 1 }, 'request_id'],
    ['temperature < 0', { ...ok, sampling: { temperature: -1 } }, 'sampling.temperature'],
    ['top_k not a number', { ...ok, sampling: { top_k: 'x' } }, 'sampling.top_k'],
    ['top_p 0', { ...ok, sampling: { top_p: 0 } }, 'sampling.top_p'],
    ['logprobs 21', { ...ok, logprobs: 21 }, 'logprobs'],
    ['stop id >= vocab', { ...ok, stop_token_ids: [5000] }, 'stop_token_ids'],
    ['empty inject_ids', { ...ok, thinking_budget: { max_thinking_tokens: 4, inject_ids: [] } }, 'thinking_budget.inject_ids'],
    ['inject id >= vocab', { ...ok, thinking_budget: { max_thinking_tokens: 4, inject_ids: [9999], end_think_id: 5, think_start_id: 6 } },
      'thinking_budget.inject_ids'],
  ];
  for (const [what, body, param] of bad) {
    it(`Should answer 400 naming the field for ${what}`, async () => {
      const res = await signedFetch(w.url, '/v1/generate', typeof body === 'string' ? body : JSON.stringify(body));
      expect(res.status).toBe(400);
      const err = ErrorBodySchema.parse(await res.json());
      expect(err.error.type).toBe('invalid_request_error');
      expect(err.error.param).toBe(param);
    });
  }

  it('Should say context_length_exceeded when the prompt, or prompt + max_tokens, does not fit the context', async () => {
    for (const [body, param] of [[{ ...ok, max_tokens: 4094 }, 'max_tokens'], [{ ...ok, prompt: prompt(4096, 1) }, 'prompt']] as const) {
      const res = await signedFetch(w.url, '/v1/generate', JSON.stringify(body));
      expect(ErrorBodySchema.parse(await res.json()).error).toMatchObject({ param, code: 'context_length_exceeded' });
    }
  });

  it('Should generate up to the context when max_tokens is omitted', async () => {
    // 4,090 prompt tokens in a 4,096-token context: 6 tokens, then "length" (eos ignored so that only the context ends it)
    const r = await generate(w, { request_id: 'to-the-context', prompt: prompt(4090, 3), ignore_eos: true });
    expect(r.status).toBe(200);
    expect(r.final).toMatchObject({ finish_reason: 'length', usage: { prompt_tokens: 4090, completion_tokens: 6 } });
    expect(r.tokens).toHaveLength(6);
  });

  it('Should answer 400 for unknown fields', async () => {
    const res = await signedFetch(w.url, '/v1/generate', JSON.stringify({ ...ok, temprature: 1 }));
    expect(res.status).toBe(400);
    expect(ErrorBodySchema.parse(await res.json()).error.message).toContain('temprature');
  });
});

describe('http: signature', () => {
  const body = JSON.stringify(ok);
  const post = (headers: Record<string, string>) =>
    fetch(`${w.url}/v1/generate`, { method: 'POST', body, headers: { 'content-type': 'application/json', ...headers } });

  it('Should answer 401 for a missing, wrong, stale or tampered signature', async () => {
    const fresh = await signRequest(SECRET, { method: 'POST', path: '/v1/generate', body });
    const cases = [
      {},
      await signRequest('wrong-secret', { method: 'POST', path: '/v1/generate', body }),
      await signRequest(SECRET, { method: 'POST', path: '/v1/generate', body }, Math.floor(Date.now() / 1000) - 120),
      await signRequest(SECRET, { method: 'POST', path: '/v1/generate', body: body.replace('4', '5') }),
      { ...fresh, 'x-q3-signature': fresh['x-q3-signature'].replace(/^./, (c) => (c === '0' ? '1' : '0')) },
    ];
    for (const headers of cases) {
      const res = await post(headers);
      expect(res.status).toBe(401);
      expect(ErrorBodySchema.parse(await res.json()).error.type).toBe("authentication_error");
    }
    expect((await post(fresh)).status).toBe(200);
  });
});

describe('http: backpressure', () => {
  it('Should answer 503 with Retry-After once MAX_QUEUE requests wait', async () => {
    // MAX_BATCH=1, MAX_QUEUE=2: long prompts keep the single slot busy while a burst arrives.
    const burst = Array.from({ length: 12 }, (_, i) =>
      generate(w, { request_id: `b${i}`, prompt: prompt(3000, i + 1), max_tokens: 16 }));
    const results = await Promise.all(burst);
    const refused = results.filter((r) => r.status === 503);
    expect(refused.length).toBeGreaterThanOrEqual(1);
    for (const r of refused) {
      expect(Number(r.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
      expect(r.error!.error.type).toBe('service_unavailable');
    }
    for (const r of results.filter((x) => x.status !== 503)) expect(r.final?.finish_reason).toMatch(/^(stop|length)$/);
    expect((await metrics(w)).get('q3_worker_rejected_requests_total')).toBe(refused.length);
  });
});
