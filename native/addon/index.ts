/** @module Typed loader for the N-API addon (native/build/qwen3_addon.node), built by `npm install`. */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FinishReason, Sampling as WireSampling } from '../../gpu-worker/protocol.ts';

export type Device = 'auto' | 'cpu' | 'cuda';

export interface LoadOptions {
  device?: Device;
  threads?: number;            // CPU threads; 0/undefined = all cores
  kvBlockSize?: number;        // tokens per KV block (default 16)
  kvBlocks?: number;           // pool size in blocks (default: derived from kvCacheMiB)
  kvCacheMiB?: number;
  maxContext?: number;         // tokens one sequence may hold (default: config's max_position_embeddings)
  yarnFactor?: number;         // > 0 turns YaRN on, overriding config.json
  yarnOriginal?: number;       // original_max_position_embeddings for the override
  // CUDA backend only (ignored on the CPU), as qwen3.h's q3_load_options.cuda_*:
  cudaGemvMax?: number;        // matmuls of at most this many rows (1..16) use the GEMV; 0/undefined = 4; -1 = never
  cudaGraphs?: boolean;        // false: decode passes run eagerly instead of replaying a CUDA graph (default true)
  cudaHostSampling?: boolean;  // true: logits come back and are sampled on the host (default: sampled on the device)
  // CPU backend only, as q3_load_options.cpu_head: the lm_head of samples with skip_logprob that need only their
  // top-k (auto: screened where AVX-512 VNNI runs; docs/cpu-head-screen.md)
  cpuHead?: 'auto' | 'screened' | 'full';
  onProgress?: (stage: string, fraction: number) => void;
}

export interface ModelInfo {
  hiddenSize: number; intermediateSize: number; layers: number; heads: number; kvHeads: number; headDim: number;
  vocabSize: number; groupSize: number; maxContext: number; ropeTheta: number; rmsNormEps: number;
  tieWordEmbeddings: boolean; yarn: boolean; yarnFactor: number; yarnAttentionFactor: number;
  kvBlockSize: number; kvBlocks: number; eosIds: number[]; weightBytesPerToken: number; kvBytesPerToken: number;
  device: string;
}

/**
 * A sequence's sampling: the wire's fields exactly as a request carries them (gpu-worker/protocol.ts; each optional
 * here, with the same defaults: greedy, no top-k/top-p/min-p, no penalties, a random seed) and the number of top
 * logprobs to report (0..20), and skip_logprob: true when the caller ignores each token's logprob (then NaN), which
 * lets the CPU backend compute only the logits a greedy or top-k sample depends on (q3_sampling.skip_logprob). The
 * addon turns it into q3_sampling; nothing else converts it.
 */
export type Sampling = Partial<WireSampling> & { logprobs?: number; skip_logprob?: boolean };

export interface SampledToken {
  token: number;
  logprob: number;
  forced: boolean;
  top?: { token: number; logprob: number }[];  // present when logprobs > 0
}

export interface BatchItem {
  seqId: number;
  tokens: Int32Array;          // tokens to feed at positions pos..pos+n-1
  pos: number;
  blockTable: Int32Array;      // KV blocks covering positions 0..pos+n-1
  sample: boolean;             // sample one token after the last fed token
  maskRow?: number;            // row of the call's token masks that constrains this sample (structured outputs)
}

/**
 * Token masks for step() / sample(): rows of maskWords(vocabSize) 32-bit words, bit t % 32 of word t / 32 set when
 * token t may be sampled (xgrammar's bitmask layout). May live on a SharedArrayBuffer filled by other threads; it
 * is read only while sampling, so it must be final when sample() is called.
 */
export type TokenMasks = Int32Array;

export const maskWords = (vocabSize: number): number => Math.ceil(vocabSize / 32);

export interface Stats {
  prefillTokens: number; decodeTokens: number; steps: number; prefillSeconds: number; decodeSeconds: number;
  kvBlocksTotal: number; kvBlocksUsed: number; sequences: number;
  headScreenedRows: number;  // samples that ran on the screened lm_head
  headExactRows: number;     // fp16 head rows computed for them
}

export interface GenerateParams {
  maxTokens: number;
  stopIds?: number[];
  sampling?: Sampling;
}

export interface Generation {
  /** Resolves when generation ends; tokens arrive through onTokens before that. */
  done: Promise<{ finishReason: FinishReason }>;
  /** Stops generation within one step. */
  cancel(): void;
}

export interface Engine {
  info(): ModelInfo;
  stats(): Stats;
  /** Streams tokens (batched per event-loop turn) without blocking the event loop. */
  generate(prompt: Int32Array, params: GenerateParams, onTokens: (tokens: SampledToken[]) => void): Generation;
  /** One forward pass over a batch; resolves with one entry per item (null where sample is false). */
  step(items: BatchItem[], masks?: TokenMasks): Promise<(SampledToken | null)[]>;
  /**
   * step() in two halves, so token masks can be filled while the forward pass runs: forward() keeps the logits of
   * the sampled items, sample() (with the same items, before any other step/forward) draws from them.
   */
  forward(items: BatchItem[]): Promise<void>;
  sample(items: BatchItem[], masks?: TokenMasks): Promise<(SampledToken | null)[]>;
  /** Logits of the last position [vocab], or of every position [n * vocab]. */
  logits(tokens: Int32Array, allPositions: boolean): Promise<Float32Array>;
  kvAlloc(n: number): Int32Array | null;   // null when fewer than n blocks are free
  kvRetain(ids: Int32Array): void;
  kvRelease(ids: Int32Array): void;
  kvFreeBlocks(): number;
  seqBegin(seqId: number, prompt: Int32Array, sampling: Sampling): void;
  seqForce(seqId: number, tokens: Int32Array): void;
  seqEnd(seqId: number): void;
  /** Releases the weights and KV pool; the engine is unusable afterwards. */
  free(): void;
}

export interface Addon {
  load(modelDir: string, options?: LoadOptions): Promise<Engine>;
  measureReadBandwidth(threads: number, bytes: number): number;  // GB/s
  cudaAvailable(): boolean;
}

export const addonPath = join(dirname(fileURLToPath(import.meta.url)), '..', 'build', 'qwen3_addon.node');

export function loadAddon(): Addon {
  const require = createRequire(import.meta.url);
  return require(addonPath) as Addon;
}
