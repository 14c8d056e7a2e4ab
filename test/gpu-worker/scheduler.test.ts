// scheduler.ts through the real worker process (CPU engine, tiny checkpoint): 32 concurrent streams of four tenants
// equal each request run alone (greedy and seeded sampling, chunked prefill, logprobs), nothing lost, duplicated or swapped;
// a cancelled stream gives back its KV blocks; SIGTERM drains in-flight streams, then cancels the rest.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generate, metrics, prompt, signedFetch, startWorker, type Generated, type Worker } from './worker-process.ts';

let w: Worker;
beforeAll(async () => {
  w = await startWorker({ MAX_BATCH: '32', PREFILL_CHUNK: '64' });
});
afterAll(async () => {
  await w?.stop();
});

/** 32 requests of different prompt lengths (3..~700 tokens) and budgets, from three tenants and the anonymous one; a
 * few sample with a seed. */
const requests = Array.from({ length: 32 }, (_, i) => ({
  request_id: `r${i}`,
  tenant: i % 4 ? `t${i % 3}` : undefined,
  prompt: prompt(3 + ((i * 37) % 700), i + 1),
  max_tokens: 8 + ((i * 13) % 48),
  sampling: i % 5 === 4 ? { temperature: 0.8, top_k: 40, seed: 1000 + i } : { temperature: 0 },
  logprobs: i % 8 === 3 ? 2 : undefined,
}));

function expectWellFormed(r: Generated, maxTokens: number) {
  expect(r.status).toBe(200);
  expect(r.error).toBeUndefined();
  const last = r.events[r.events.length - 1];
  expect(last.finish_reason).toMatch(/^(stop|length)$/);
  expect(r.events.filter((e) => e.finish_reason)).toHaveLength(1);
  const stopCounted = last.finish_reason === 'stop' ? 1 : 0;
  expect(last.usage!.completion_tokens).toBe(r.tokens.length + stopCounted);
  expect(last.usage!.completion_tokens).toBeLessThanOrEqual(maxTokens);
  if (last.finish_reason === 'length') expect(r.tokens.length).toBe(maxTokens);
}

describe('scheduler (continuous batching)', () => {
  it('Should give every one of 32 concurrent streams exactly the tokens it gets alone', async () => {
    const alone: Generated[] = [];
    for (const req of requests) alone.push(await generate(w, req));
    alone.forEach((r, i) => expectWellFormed(r, requests[i].max_tokens));

    const together = await Promise.all(requests.map((req) => generate(w, req)));
    together.forEach((r, i) => {
      expectWellFormed(r, requests[i].max_tokens);
      expect(r.tokens, `stream ${i}`).toEqual(alone[i].tokens);
      expect(r.final!.finish_reason).toBe(alone[i].final!.finish_reason);
      expect(r.final!.stop_token_id).toBe(alone[i].final!.stop_token_id);
      if (requests[i].logprobs) {
        const lp = r.events.flatMap((e) => e.logprobs ?? []);
        expect(lp.map((l) => l.token)).toEqual(r.tokens);
        for (const l of lp) expect(l.top).toHaveLength(2);
      }
    });
    const m = await metrics(w);
    expect(m.get('vllm:num_requests_running')).toBe(0);
    expect(m.get('vllm:num_requests_waiting')).toBe(0);
  });

  it('Should run past eos to max_tokens with ignore_eos, stopping only on stop_token_ids', async () => {
    const req = { prompt: prompt(3, 1), max_tokens: 400 };
    const normal = await generate(w, req);
    expect(normal.final!.finish_reason).toBe('stop');
    const eos = normal.final!.stop_token_id!;
    const past = await generate(w, { ...req, ignore_eos: true });
    expect(past.final!.finish_reason).toBe('length');
    expect(past.tokens.slice(0, normal.tokens.length + 1)).toEqual([...normal.tokens, eos]);
    const own = await generate(w, { ...req, ignore_eos: true, stop_token_ids: [past.tokens[normal.tokens.length + 3]] });
    expect(own.final!.finish_reason).toBe('stop');
    expect(own.tokens.length).toBeLessThanOrEqual(normal.tokens.length + 3);
  });

  it('Should free a cancelled stream\'s KV blocks and slot within a step', async () => {
    const long = { prompt: prompt(100, 77), max_tokens: 3000, sampling: { temperature: 0 } };
    await generate(w, { ...long, max_tokens: 1 });                  // its prompt blocks are now in the prefix cache
    const before = (await metrics(w)).get('q3_worker_kv_blocks_used')!;

    const abort = new AbortController();
    const res = await signedFetch(w.url, '/v1/generate', JSON.stringify({ request_id: 'c', ...long }), { signal: abort.signal });
    const reader = res.body!.getReader();
    let seen = '';
    while (!seen.includes('"tokens"')) seen += new TextDecoder().decode((await reader.read()).value);
    expect(seen).not.toContain('finish_reason');
    const during = (await metrics(w)).get('q3_worker_kv_blocks_used')!;
    expect(during).toBeGreaterThan(before);
    abort.abort();

    const t0 = Date.now();
    let m = await metrics(w);
    while (m.get('vllm:num_requests_running')! > 0 || m.get('q3_worker_kv_blocks_used') !== before) {
      expect(Date.now() - t0).toBeLessThan(5000);
      await new Promise((r) => setTimeout(r, 10));
      m = await metrics(w);
    }
    expect(m.get('vllm:request_success_total{model_name="q3-worker-test-tiny",finished_reason="cancelled"}')).toBe(1);
  });
});

describe('scheduler (graceful shutdown)', () => {
  it('Should stop admitting on SIGTERM but let an in-flight stream finish, then exit 0', async () => {
    const x = await startWorker({ SHUTDOWN_GRACE_MS: '20000' });
    const res = await signedFetch(x.url, '/v1/generate',
      JSON.stringify({ request_id: 's', prompt: prompt(50, 3), max_tokens: 3000, ignore_eos: true }));
    const reader = res.body!.getReader();
    let text = new TextDecoder().decode((await reader.read()).value);   // the stream has started
    const code = x.stop('SIGTERM');
    while (!x.log().includes('draining')) await new Promise((r) => setTimeout(r, 5));
    expect((await fetch(`${x.url}/ready`)).status).toBe(503);
    const refused = await generate(x, { prompt: [1, 2, 3], max_tokens: 2 });
    expect(refused.status).toBe(503);
    expect(refused.headers.get('retry-after')).toBeTruthy();
    for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) text += new TextDecoder().decode(chunk.value);
    expect(text).toContain('"finish_reason":"length"');
    expect(await code).toBe(0);
  });

  it('Should cancel streams still running when the grace period ends', async () => {
    const x = await startWorker({ SHUTDOWN_GRACE_MS: '1' });
    const res = await signedFetch(x.url, '/v1/generate', JSON.stringify({ request_id: 'g', prompt: prompt(50, 5), max_tokens: 4000, ignore_eos: true }));
    const reader = res.body!.getReader();
    await reader.read();                                            // the stream has started
    const code = x.stop('SIGTERM');
    let text = '';
    for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) text += new TextDecoder().decode(chunk.value);
    expect(text).toContain('"finish_reason":"cancelled"');
    expect(await code).toBe(0);
  });
});
