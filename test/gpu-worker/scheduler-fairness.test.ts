// Fair scheduling (scheduler.ts, fair-queue.ts). In-process, on the real engine with every step's batch recorded:
// decode tokens are never skipped for prefill, no sequence takes more than its per-step prefill cap, tenants take
// turns at prefill chunks and at batch slots (requests without a tenant are one tenant), one tenant cannot fill the
// wait queue, and every stream equals its solo run. Through real worker processes: a short request behind a long
// prompt gets its first token within 2x its solo time-to-first-token plus one prefill chunk's time.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BatchItem } from '../../gpu-worker/engine.ts';
import { toTask } from '../../gpu-worker/http.ts';
import { ErrorBodySchema, GenerateRequestSchema, type GenerateRequestInput } from '../../gpu-worker/protocol.ts';
import type { SchedulerOptions } from '../../gpu-worker/scheduler.ts';
import type { Outcome } from '../../gpu-worker/task.ts';
import { inProcessWorker, type InProcessWorker } from './in-process.ts';
import { generate, prompt, startWorker, type Generated, type Worker } from './worker-process.ts';

type Options = Omit<SchedulerOptions, 'maxContext' | 'eosIds'>;
type Recorded = { seqId: number; pos: number; n: number; sample: boolean; first: number[] };

/** An in-process worker whose steps are recorded, and optionally held until `release()`. */
async function recordingWorker(options: Options) {
  const steps: Recorded[][] = [];
  let gate: Promise<void> = Promise.resolve();
  let open = () => {};
  const w: InProcessWorker = await inProcessWorker(options, { prefixCache: false }, async (items: BatchItem[], step) => {
    steps.push(items.map((i) => ({ seqId: i.seqId, pos: i.pos, n: i.tokens.length, sample: i.sample, first: Array.from(i.tokens.slice(0, 4)) })));
    await gate;
    return step(items);
  });
  return {
    ...w, steps,
    hold() {
      gate = new Promise((r) => (open = r));
    },
    release() {
      open();
    },
  };
}
type Recording = Awaited<ReturnType<typeof recordingWorker>>;

interface Stream {
  req: GenerateRequestInput & { prompt: number[] };
  tokens: number[];
  firstTokenStep?: number;   // steps recorded when the first token came back
  done: Promise<Outcome>;
}

/** Submits a request straight to the scheduler; the stream collects its tokens. */
function submit(w: Recording, req: Stream['req']): Stream {
  const stream = { req, tokens: [] as number[] } as Stream;
  stream.done = new Promise((resolve, reject) => {
    w.scheduler.submit(toTask(GenerateRequestSchema.parse(req)), {
      tokens: (batch) => {
        stream.firstTokenStep ??= w.steps.length;
        stream.tokens.push(...batch.map((t) => t.token));
      },
      finish: resolve,
      fail: reject,
    });
  });
  return stream;
}

/** The engine's id for a stream: the sequence whose first prefill item (at step `from` or later) starts with its prompt. */
function seqIdOf(w: Recording, s: Stream, from = 0): number {
  const item = w.steps.slice(from).flat().find((i) => i.pos === 0 && i.first.every((t, k) => t === s.req.prompt[k]));
  if (!item) throw new Error(`${s.req.request_id} never ran`);
  return item.seqId;
}

/** Indices of the steps that carry the sequence, and its token count in each. */
function appearances(w: Recording, seqId: number): { step: number; item: Recorded }[] {
  return w.steps.flatMap((items, step) => items.filter((i) => i.seqId === seqId).map((item) => ({ step, item })));
}

/** Every request alone, one after another: the reference token streams. */
async function aloneRuns(w: Recording, reqs: Stream['req'][]): Promise<number[][]> {
  const out: number[][] = [];
  for (const req of reqs) {
    const s = submit(w, { ...req, tenant: undefined });
    await s.done;
    out.push(s.tokens);
  }
  return out;
}

describe('scheduler fairness (in-process, every step recorded)', () => {
  let w: Recording;
  afterAll(() => w?.engine.free());

  it('Should feed every decoding sequence in every step and cap each prefill chunk, even for a lone long prompt', async () => {
    w = await recordingWorker({ maxBatch: 8, maxQueue: 16, maxQueuePerTenant: 8, prefillChunk: 64, prefillPerRequest: 16 });
    const decoder = submit(w, { request_id: 'd', prompt: prompt(20, 1), max_tokens: 120, ignore_eos: true, tenant: 'a' });
    while (!decoder.tokens.length) await new Promise((r) => setTimeout(r, 1));
    const long = submit(w, { request_id: 'l', prompt: prompt(600, 2), max_tokens: 4, tenant: 'b' });
    const short = submit(w, { request_id: 's', prompt: prompt(13, 3), max_tokens: 4, tenant: 'c' });
    await Promise.all([decoder.done, long.done, short.done]);

    for (const items of w.steps) {
      expect(items.reduce((sum, i) => sum + i.n, 0)).toBeLessThanOrEqual(64);
      for (const i of items) expect(i.n).toBeLessThanOrEqual(16);
    }
    // the decoder: one token in every step from its first sample to its end, whatever else the step carries
    const d = appearances(w, seqIdOf(w, decoder));
    const firstSample = d.findIndex((a) => a.item.sample);
    const decoding = d.slice(firstSample + 1);
    expect(decoding.length).toBe(119);
    decoding.forEach((a, k) => {
      expect(a.item.n).toBe(1);
      expect(a.step).toBe(decoding[0].step + k);              // no step without it
    });
    // the long prompt: 16 tokens per step even once it prefills alone, in consecutive steps
    const l = appearances(w, seqIdOf(w, long)).filter((a) => a.item.pos < 600);
    expect(l.map((a) => a.item.n)).toEqual([...Array(37).fill(16), 600 - 37 * 16]);
    expect(l[l.length - 1].step - l[0].step).toBe(37);
    // the short prompt arrived with it and was prefilled in one step, the first the long prompt took part in
    const s = appearances(w, seqIdOf(w, short)).filter((a) => a.item.pos < 13);
    expect(s).toHaveLength(1);
    expect(s[0].step).toBe(l[0].step);
    expect(short.firstTokenStep).toBe(s[0].step + 1);
    expect(d[d.length - 1].step).toBeGreaterThan(l[l.length - 1].step);  // the decoder outlived the long prefill
  });

  it('Should share prefill chunks round-robin among tenants, whatever their backlog, with every stream equal to its solo run', async () => {
    w.engine.free();
    w = await recordingWorker({ maxBatch: 8, maxQueue: 16, maxQueuePerTenant: 8, prefillChunk: 32, prefillPerRequest: 16 });
    const reqs = [
      ...[1, 2, 3].map((k) => ({ request_id: `a${k}`, prompt: prompt(160, 10 + k), max_tokens: 6, tenant: 'a' })),
      { request_id: 'b1', prompt: prompt(160, 20), max_tokens: 6, tenant: 'b' },
      { request_id: 'c1', prompt: prompt(150, 30), max_tokens: 6 },        // the anonymous tenant
    ];
    const alone = await aloneRuns(w, reqs);
    const from = w.steps.length;
    w.hold();                                     // a1's first step is planned alone; the rest queue behind it
    const streams = reqs.map((req) => submit(w, req));
    w.release();
    await Promise.all(streams.map((s) => s.done));
    streams.forEach((s, i) => expect(s.tokens, s.req.request_id).toEqual(alone[i]));

    const tenantOf = new Map(streams.map((s) => [seqIdOf(w, s, from), s.req.tenant ?? '']));
    // chunks per tenant until the first tenant runs out of prompt: round robin keeps them within one of each other
    const served = new Map<string, number>([['a', 0], ['b', 0], ['', 0]]);
    const remaining = new Map(streams.map((s) => [seqIdOf(w, s, from), s.req.prompt.length]));
    for (const items of w.steps.slice(from)) {
      const pending = new Set([...remaining].filter(([, left]) => left > 0).map(([id]) => tenantOf.get(id)!));
      if (pending.size < 3) break;
      for (const i of items) {
        if (!tenantOf.has(i.seqId) || remaining.get(i.seqId)! <= 0) continue;
        remaining.set(i.seqId, remaining.get(i.seqId)! - i.n);
        served.set(tenantOf.get(i.seqId)!, served.get(tenantOf.get(i.seqId)!)! + 1);
      }
      const counts = [...served.values()];
      expect(Math.max(...counts) - Math.min(...counts), JSON.stringify([...served])).toBeLessThanOrEqual(1);
    }
    expect(Math.min(...served.values())).toBeGreaterThanOrEqual(5);
    // so the single requests of b and of the anonymous tenant finish their prompts before a's second one starts
    const [, a2, a3, b1, c1] = streams;
    for (const single of [b1, c1]) for (const later of [a2, a3]) expect(single.firstTokenStep!).toBeLessThan(later.firstTokenStep!);
  });

  it('Should give batch slots to tenants in turn (a request behind another tenant\'s backlog of five is admitted next)', async () => {
    w.engine.free();
    w = await recordingWorker({ maxBatch: 2, maxQueue: 16, maxQueuePerTenant: 8, prefillChunk: 64, prefillPerRequest: 64 });
    const backlog = [1, 2, 3, 4, 5].map((k) => ({ request_id: `n${k}`, prompt: prompt(40, 40 + k), max_tokens: 6 }));  // anonymous
    const other = { request_id: 'x', prompt: prompt(40, 50), max_tokens: 6, tenant: 'x' };
    const alone = await aloneRuns(w, [...backlog, other]);
    const from = w.steps.length;
    const streams = [...backlog, other].map((req) => submit(w, req));
    await Promise.all(streams.map((s) => s.done));
    streams.forEach((s, i) => expect(s.tokens, s.req.request_id).toEqual(alone[i]));
    const admitted = streams.map((s) => appearances(w, seqIdOf(w, s, from))[0].step);
    const x = admitted[5];
    expect(admitted.filter((step) => step < x)).toHaveLength(1);   // only n1, which was alone when it came
    expect(admitted[1]).toBeGreaterThan(x);
  });

  it('Should take a batch slot from a tenant holding all of them with long prompts for a newly arrived tenant, at the next step', async () => {
    w.engine.free();
    w = await recordingWorker({ maxBatch: 4, maxQueue: 16, maxQueuePerTenant: 8, prefillChunk: 32, prefillPerRequest: 16 });
    const longs = [1, 2, 3, 4].map((k) => ({ request_id: `a${k}`, prompt: prompt(400, 60 + k), max_tokens: 4, tenant: 'a' }));
    const short = { request_id: 'b', prompt: prompt(13, 70), max_tokens: 4, tenant: 'b' };
    const alone = await aloneRuns(w, [...longs, short]);
    const from = w.steps.length;
    const preemptedBefore = w.metrics.preemptions;
    const streams = longs.map((req) => submit(w, req));
    while (w.steps.length < from + 3) await new Promise((r) => setTimeout(r, 1));
    w.hold();                                  // the step in flight when b arrives is the last one b is not in
    const arrived = w.steps.length;
    const b = submit(w, short);
    w.release();
    await Promise.all([...streams, b].map((s) => s.done));
    [...streams, b].forEach((s, i) => expect(s.tokens, s.req.request_id).toEqual(alone[i]));

    // a held all 4 slots with prompts that take 50 steps to prefill; b ran in the step after it arrived
    expect(appearances(w, seqIdOf(w, b, from))[0].step).toBeLessThanOrEqual(arrived);
    expect(w.metrics.preemptions - preemptedBefore).toBe(1);
    // the slot came from a sequence of a with no prefill done yet, so no prompt token of a was computed twice
    const prefilled = streams.map((s) => appearances(w, seqIdOf(w, s, from)).filter((a) => a.item.pos < 400).reduce((n, a) => n + a.item.n, 0));
    expect(prefilled).toEqual([400, 400, 400, 400]);
  });

  it('Should not take a slot for a newcomer whose prompt would not fit the KV pool even with the slot\'s blocks back', async () => {
    w?.engine.free();
    w = await recordingWorker({ maxBatch: 2, maxQueue: 16, maxQueuePerTenant: 8, prefillChunk: 32, prefillPerRequest: 16 });
    const longs = [1, 2].map((k) => ({ request_id: `a${k}`, prompt: prompt(200, 80 + k), max_tokens: 4, tenant: 'a' }));
    const big = { request_id: 'b', prompt: prompt(320, 90), max_tokens: 4, tenant: 'b' };
    const alone = await aloneRuns(w, [...longs, big]);
    const perLong = w.kv.blocksFor(200 + 4);
    const needBig = w.kv.blocksFor(320 + 4);
    // hold the rest of the pool so that both of a's prompts fit and b's fits only once both are done
    const hog = w.kv.alloc(w.kv.availableBlocks() - 2 * perLong - 2)!;
    expect(perLong + 2 + 1).toBeLessThan(needBig);            // one slot's blocks back would not be enough for b
    expect(2 * perLong + 2).toBeGreaterThanOrEqual(needBig);   // both would
    const from = w.steps.length;
    const preemptedBefore = w.metrics.preemptions;
    const streams = longs.map((req) => submit(w, req));
    while (w.steps.length < from + 3) await new Promise((r) => setTimeout(r, 1));
    const b = submit(w, big);
    await Promise.all([...streams, b].map((s) => s.done));
    w.kv.release(hog);
    [...streams, b].forEach((s, i) => expect(s.tokens, s.req.request_id).toEqual(alone[i]));

    // no slot was taken (taking one would re-admit the victim at the next step, over and over), a's prompts were
    // each prefilled once, and b started after both of them were done
    expect(w.metrics.preemptions - preemptedBefore).toBe(0);
    const prefilled = streams.map((s) => appearances(w, seqIdOf(w, s, from)).filter((a) => a.item.pos < 200).reduce((n, a) => n + a.item.n, 0));
    expect(prefilled).toEqual([200, 200]);
    const lastOfA = Math.max(...streams.map((s) => appearances(w, seqIdOf(w, s, from)).at(-1)!.step));
    expect(appearances(w, seqIdOf(w, b, from))[0].step).toBeGreaterThan(lastOfA);
  });

  it('Should refuse a tenant\'s request once it holds its share of the queue, and keep taking other tenants\'', async () => {
    w.engine.free();
    w = await recordingWorker({ maxBatch: 1, maxQueue: 4, maxQueuePerTenant: 2, prefillChunk: 64, prefillPerRequest: 64 });
    w.hold();
    const post = (id: string, tenant?: string) => w.app.request('/v1/generate', {
      method: 'POST', body: JSON.stringify({ request_id: id, prompt: prompt(30, id.length), max_tokens: 4, tenant }),
    });
    const accepted = [await post('a0', 'a'), await post('a1', 'a'), await post('a2', 'a')];   // a0 runs, two wait
    const own = await post('a3', 'a');
    expect(own.status).toBe(503);
    expect(Number(own.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    const ownBody = ErrorBodySchema.parse(await own.json());
    expect(ownBody.error).toMatchObject({ type: 'service_unavailable', code: 'tenant_queue_full' });
    expect(ownBody.error.message).toContain('for this tenant');

    accepted.push(await post('b0', 'b'), await post('anonymous'));               // the queue still has room for others
    const full = await post('c0', 'c');
    expect(full.status).toBe(503);
    expect(ErrorBodySchema.parse(await full.json()).error.code).toBe('queue_full');
    for (const res of accepted) expect(res.status).toBe(200);
    w.release();
    for (const res of accepted) expect(await res.text()).toContain('"finish_reason"');
    expect(w.scheduler.gauges()).toMatchObject({ running: 0, waiting: 0 });
  });
});

describe('scheduler fairness (real worker processes): a short request behind a long prompt', () => {
  const LONG = 4000;          // the tiny checkpoint's context is 4096 (16k: ~90 s of prefill per run on this CPU engine)
  const CHUNK = 256;          // PREFILL_CHUNK; the per-request cap is its default, a quarter of it
  let w: Worker;
  let ref: Worker;
  beforeAll(async () => {
    [w, ref] = await Promise.all([startWorker({ PREFILL_CHUNK: String(CHUNK) }), startWorker({ PREFIX_CACHE: '0' })]);
  });
  afterAll(async () => {
    await Promise.all([w?.stop(), ref?.stop()]);
  });

  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

  it('Should give it its first token within 2x its solo TTFT plus one prefill chunk, and every stream its solo tokens', async () => {
    const long = { request_id: 'long', prompt: prompt(LONG, 101), max_tokens: 8, tenant: 'bulk' };
    const short = (i: number) => ({ request_id: `short-${i}`, prompt: prompt(13, 7), max_tokens: 8, tenant: 'interactive' });
    const longAlone = await generate(ref, long);
    const shortAlone = await generate(ref, short(0));
    const solo: number[] = [];
    for (let i = 0; i < 6; i++) solo.push((await generate(w, short(i))).ttftMs!);
    const soloMs = median(solo.slice(1));                               // the first one warms up

    const longRun = generate(w, long);
    const started: Promise<Generated>[] = [];
    let longDone = false;
    void longRun.then(() => (longDone = true));
    await new Promise((r) => setTimeout(r, 200));                       // the long prompt is prefilling
    // a short request every 50 ms while it prefills, each started without waiting for the one before to finish (the
    // AVX-512 attention prefills the 4000 tokens in ~0.6 s on a fast machine, and waiting for each short request's 8
    // tokens let only 2 start in time there)
    while (!longDone && started.length < 5) {
      started.push(generate(w, short(started.length)));
      await new Promise((r) => setTimeout(r, 50));
    }
    const behind = await Promise.all(started);
    const longResult = await longRun;
    expect(longResult.tokens).toEqual(longAlone.tokens);
    for (const r of behind) expect(r.tokens).toEqual(shortAlone.tokens);
    const waited = behind.filter((r) => r.firstTokenAt! < longResult.firstTokenAt!);
    expect(waited.length).toBeGreaterThanOrEqual(3);

    // one prefill chunk: PREFILL_CHUNK tokens at the long prompt's deepest positions (its blocks are cached now, so
    // only the fresh tail of this prompt is prefilled)
    const chunk: number[] = [];
    for (let i = 0; i < 3; i++) {
      const tail = { request_id: `chunk-${i}`, prompt: [...long.prompt.slice(0, LONG - CHUNK), ...prompt(CHUNK, 300 + i)], max_tokens: 1 };
      const r = await generate(w, tail);
      expect(r.final!.usage!.cached_tokens).toBe(LONG - CHUNK);
      chunk.push(r.ttftMs!);
    }
    const chunkMs = median(chunk);
    const bound = 2 * soloMs + chunkMs;
    const ttfts = waited.map((r) => r.ttftMs!);
    console.log(`short request TTFT behind a ${LONG}-token prompt: ${ttfts.map((t) => t.toFixed(0)).join(', ')} ms; ` +
      `solo ${soloMs.toFixed(1)} ms, one ${CHUNK}-token chunk ${chunkMs.toFixed(0)} ms, bound ${bound.toFixed(0)} ms; ` +
      `long prompt TTFT ${longResult.ttftMs!.toFixed(0)} ms (alone on the reference worker ${longAlone.ttftMs!.toFixed(0)} ms)`);
    for (const t of ttfts) expect(t).toBeLessThanOrEqual(bound);
  });
});
