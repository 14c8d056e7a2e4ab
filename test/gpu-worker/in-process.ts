/**
 * Test helper: the worker's scheduler and HTTP app over the real engine inside the test process (no child process),
 * with a hook around every forward pass, so a test can record each step's batch or make one step fail (the one
 * fault a test injects). Not a test file itself.
 */
import { loadEngine, type BatchItem, type SampledToken, type WorkerEngine } from '../../gpu-worker/engine.ts';
import { createApp, type WorkerState } from '../../gpu-worker/http.ts';
import { KvBlocks } from '../../gpu-worker/kv-blocks.ts';
import { WorkerMetrics } from '../../gpu-worker/metrics.ts';
import { Scheduler, type SchedulerOptions } from '../../gpu-worker/scheduler.ts';
import { demoModel } from './worker-process.ts';

type Step = WorkerEngine['step'];

export interface InProcessWorker {
  engine: WorkerEngine;          // the real engine, without the hook
  kv: KvBlocks;
  scheduler: Scheduler;
  metrics: WorkerMetrics;        // the scheduler's counters (preemptions, rejections, …)
  app: ReturnType<typeof createApp>;
}

/** Loads the tiny checkpoint on the CPU (1 thread) and builds the scheduler; `hook` runs instead of each step. */
export async function inProcessWorker(
  options: Omit<SchedulerOptions, 'maxContext' | 'eosIds'>,
  kvOptions: { prefixCache: boolean },
  hook: (items: BatchItem[], step: Step) => Promise<(SampledToken | null)[]>,
): Promise<InProcessWorker> {
  const engine = await loadEngine(demoModel('tiny'), { device: 'cpu', threads: 1 });
  const hooked: WorkerEngine = {
    info: () => engine.info(), stats: () => engine.stats(), free: () => engine.free(),
    step: (items) => hook(items, (i) => engine.step(i)),
    kvAlloc: (n) => engine.kvAlloc(n), kvRetain: (ids) => engine.kvRetain(ids), kvRelease: (ids) => engine.kvRelease(ids),
    kvFreeBlocks: () => engine.kvFreeBlocks(), seqBegin: (id, p, s) => engine.seqBegin(id, p, s),
    seqForce: (id, t) => engine.seqForce(id, t), seqEnd: (id) => engine.seqEnd(id),
    forward: (items) => engine.forward(items), sample: (items, masks) => engine.sample(items, masks),  // constrained steps
  };
  const info = engine.info();
  const kv = new KvBlocks(hooked, info.kvBlockSize, info.kvBlocks, kvOptions.prefixCache);
  const metrics = new WorkerMetrics();
  const scheduler = new Scheduler(hooked, kv, metrics, { ...options, maxContext: info.maxContext, eosIds: info.eosIds });
  const state: WorkerState = { modelName: 'tiny', metrics, secret: null, load: { stage: 'ready', fraction: 1 }, info, scheduler };
  return { engine, kv, scheduler, metrics, app: createApp(state) };
}
