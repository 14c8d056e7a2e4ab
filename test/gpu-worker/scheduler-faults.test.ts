// Fault injection (the one place a fake is allowed): the real engine, in-process, wrapped so that a forward pass
// fails mid-stream. The affected streams end with `event: error` + an OpenAI-shaped JSON body, every KV block and
// sampler slot comes back, and the next request is served normally.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadEngine, type WorkerEngine } from '../../gpu-worker/engine.ts';
import { createApp, type WorkerState } from '../../gpu-worker/http.ts';
import { KvBlocks } from '../../gpu-worker/kv-blocks.ts';
import { WorkerMetrics } from '../../gpu-worker/metrics.ts';
import { ErrorBodySchema } from '../../gpu-worker/protocol.ts';
import { Scheduler } from '../../gpu-worker/scheduler.ts';
import { demoModel, parseSSE, prompt } from './worker-process.ts';

let engine: WorkerEngine;
let failAtStep = Infinity;        // the step (counted from 1) that throws
let steps = 0;
let app: ReturnType<typeof createApp>;
let kv: KvBlocks;

beforeAll(async () => {
  engine = await loadEngine(demoModel('tiny'), { device: 'cpu', threads: 1 });
  const faulty: WorkerEngine = {
    info: () => engine.info(), stats: () => engine.stats(), free: () => engine.free(),
    step: (items) => (++steps === failAtStep ? Promise.reject(new Error('injected: device lost')) : engine.step(items)),
    kvAlloc: (n) => engine.kvAlloc(n), kvRetain: (ids) => engine.kvRetain(ids), kvRelease: (ids) => engine.kvRelease(ids),
    kvFreeBlocks: () => engine.kvFreeBlocks(), seqBegin: (id, p, s) => engine.seqBegin(id, p, s),
    seqForce: (id, t) => engine.seqForce(id, t), seqEnd: (id) => engine.seqEnd(id),
  };
  const info = engine.info();
  kv = new KvBlocks(faulty, info.kvBlockSize, info.kvBlocks, true);
  const metrics = new WorkerMetrics();
  const scheduler = new Scheduler(faulty, kv, metrics, {
    maxBatch: 8, maxQueue: 8, prefillChunk: 64, maxContext: info.maxContext, eosIds: info.eosIds,
  });
  const state: WorkerState = { modelName: 'tiny', metrics, secret: null, load: { stage: 'ready', fraction: 1 }, info, scheduler };
  app = createApp(state);
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
