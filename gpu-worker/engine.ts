/**
 * @module The worker's only door to the native engine: loads the N-API addon, reports load progress, and exposes
 * the batched forward pass, the refcounted KV allocator and per-sequence sampler state. Typed arrays in and out,
 * never JSON; everything above this file sees the `WorkerEngine` interface, so a test may wrap it to inject faults.
 */
import { loadAddon, type Device, type Engine, type LoadOptions } from '../native/addon/index.ts';

export type { BatchItem, Device, ModelInfo, SampledToken, Sampling, Stats } from '../native/addon/index.ts';

/** The subset of the addon's engine that the scheduler drives (continuous batching, not one-shot generate). */
export type WorkerEngine = Pick<
  Engine,
  'info' | 'stats' | 'step' | 'forward' | 'sample' | 'kvAlloc' | 'kvRetain' | 'kvRelease' | 'kvFreeBlocks' | 'seqBegin' | 'seqForce' | 'seqEnd' | 'free'
>;

export interface EngineOptions {
  device: Device;
  threads: number;              // 0 = all cores
  kvCacheMiB?: number;          // undefined = engine default
  maxContext?: number;          // tokens; undefined = config's max_position_embeddings
  yarnFactor?: number;          // > 0 turns YaRN on
  onProgress?: (stage: string, fraction: number) => void;
}

/** Loads a checkpoint directory; resolves once weights and the KV pool are ready. */
export async function loadEngine(modelDir: string, opts: EngineOptions): Promise<WorkerEngine> {
  const addon = loadAddon();
  const load: LoadOptions = { device: opts.device, threads: opts.threads, onProgress: opts.onProgress };
  if (opts.kvCacheMiB) load.kvCacheMiB = opts.kvCacheMiB;
  if (opts.maxContext) load.maxContext = opts.maxContext;
  if (opts.yarnFactor && opts.yarnFactor > 0) load.yarnFactor = opts.yarnFactor;
  return addon.load(modelDir, load);
}

/** True when the addon was built with CUDA and a device is visible. */
export function cudaAvailable(): boolean {
  return loadAddon().cudaAvailable();
}
