// Fault injection (the one place a fake is allowed): the real engine, in-process, wrapped so that a forward pass
// fails mid-stream. The affected streams end with `event: error` + an OpenAI-shaped JSON body, every KV block and
// sampler slot comes back, and the next request is served normally.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WorkerEngine } from '../../gpu-worker/engine.ts';
import type { KvBlocks } from '../../gpu-worker/kv-blocks.ts';
import { ErrorBodySchema } from '../../gpu-worker/protocol.ts';
import { inProcessWorker, type InProcessWorker } from './in-process.ts';
import { parseSSE, prompt } from './worker-process.ts';

let engine: WorkerEngine;
let failAtStep = Infinity;        // the step (counted from 1) that throws
let steps = 0;
let app: InProcessWorker['app'];
let kv: KvBlocks;

beforeAll(async () => {
  ({ engine, kv, app } = await inProcessWorker(
    { maxBatch: 8, maxQueue: 8, maxQueuePerTenant: 8, prefillChunk: 64, prefillPerRequest: 64 }, { prefixCache: true },
    (items, step) => (++steps === failAtStep ? Promise.reject(new Error('injected: device lost')) : step(items)),
  ));
});
afterAll(() => engine?.free());

async function post(body: object) {
  const res = await app.request('/v1/generate', { method: 'POST', body: JSON.stringify({ request_id: 'f', ...body }) });
  return parseSSE(await res.text());
}

describe('scheduler faults', () => {
  it('Should end streams with an error event when a forward pass fails, and recover', async () => {
    const freeBefore = engine.kvFreeBlocks();
    steps = 0;
    failAtStep = 20;
    const streams = await Promise.all([1, 2, 3].map((s) => post({ prompt: prompt(40, s), max_tokens: 500 })));
    for (const events of streams) {
      const last = events[events.length - 1];
      if (last.event !== 'error') continue;                       // finished before the fault
      const body = ErrorBodySchema.parse(JSON.parse(last.data));
      expect(body.error.message).toContain('injected: device lost');
      expect(body.error.type).toBe('server_error');
      expect(events.slice(0, -1).every((e) => e.event === 'message' && !JSON.parse(e.data).finish_reason)).toBe(true);
    }
    expect(streams.filter((e) => e[e.length - 1].event === 'error').length).toBeGreaterThan(0);
    kv.clear();
    expect(engine.kvFreeBlocks()).toBe(freeBefore);
    expect(engine.stats().sequences).toBe(0);

    failAtStep = Infinity;
    const ok = await post({ prompt: prompt(40, 1), max_tokens: 5 });
    expect(JSON.parse(ok[ok.length - 1].data).finish_reason).toMatch(/^(stop|length)$/);
  });
});
