// The only module that touches Workers specifics: it reads the env bindings ([vars] in wrangler.toml, secrets from
// .dev.vars / `wrangler secret put`; their type `Env` is generated from wrangler.toml into edge/env.d.ts) into a typed
// EdgeConfig, keeps the isolate-wide worker pool, and wraps executionCtx.waitUntil. Routes take EdgeConfig and plain Web APIs, so `app.request(path, init, env)` tests them in Node.
import type { Context } from 'hono';
import type { EdgeEnv } from './app.ts';
import { parseThinkingDefault, type ThinkingDefault } from './thinking-mode.ts';
import { UpstreamPool } from './upstream.ts';
import { WorkerContexts } from './worker-contexts.ts';

export type EdgeConfig = {
  modelId: string;
  thinkingDefault: ThinkingDefault;
  workerUrls: string[];
  workerSecret: string;
  /** bytes */
  maxBodyBytes: number;
  /** ms a worker gets to produce its first token, and the longest silence allowed between two of its frames */
  requestTimeoutMs: number;
  presencePenaltyDefault: number;
  /** Default of the request field `split_special_tokens` (edge/prompt-text.ts). */
  splitSpecialTokens: boolean;
  /** generations one request may ask for (prompts × n) */
  maxGenerations: number;
};

export const DEFAULTS = {
  modelId: 'qwen3-8b-awq',
  maxBodyBytes: 4 * 1024 * 1024,
  requestTimeoutMs: 60_000,
  presencePenaltyDefault: 0,
  maxGenerations: 64,
} as const;

const configs = new WeakMap<object, EdgeConfig>();

/** EdgeConfig from the bindings object (parsed once per env object). */
export function readConfig(env: Partial<Env> | undefined): EdgeConfig {
  const bindings = env ?? {};
  const cached = configs.get(bindings);
  if (cached) return cached;
  const config: EdgeConfig = {
    modelId: bindings.MODEL_ID?.trim() || DEFAULTS.modelId,
    thinkingDefault: parseThinkingDefault(bindings.THINKING_DEFAULT),
    workerUrls: (bindings.WORKER_URLS ?? '')
      .split(',')
      .map((url) => url.trim().replace(/\/+$/, ''))
      .filter((url) => url.length > 0),
    workerSecret: bindings.WORKER_SECRET ?? '',
    maxBodyBytes: positiveNumber(bindings.MAX_BODY_BYTES, DEFAULTS.maxBodyBytes),
    requestTimeoutMs: positiveNumber(bindings.REQUEST_TIMEOUT_MS, DEFAULTS.requestTimeoutMs),
    presencePenaltyDefault: finiteNumber(bindings.PRESENCE_PENALTY_DEFAULT, DEFAULTS.presencePenaltyDefault),
    splitSpecialTokens: bindings.SPLIT_SPECIAL_TOKENS?.trim().toLowerCase() !== 'false',
    maxGenerations: Math.floor(positiveNumber(bindings.MAX_GENERATIONS_PER_REQUEST, DEFAULTS.maxGenerations)),
  };
  if (typeof bindings === 'object') configs.set(bindings, config);
  return config;
}

function positiveNumber(value: string | undefined, fallback: number): number {
  const n = Number(value);
  return value !== undefined && value.trim() !== '' && Number.isFinite(n) && n > 0 ? n : fallback;
}

function finiteNumber(value: string | undefined, fallback: number): number {
  const n = Number(value);
  return value !== undefined && value.trim() !== '' && Number.isFinite(n) ? n : fallback;
}

const pools = new Map<string, UpstreamPool>();

/** The isolate-wide pool for this worker list, so health marks and in-flight counts outlive one request. */
export function poolFor(config: EdgeConfig): UpstreamPool {
  const key = `${config.workerUrls.join(',')}\n${config.workerSecret}\n${config.requestTimeoutMs}`;
  let pool = pools.get(key);
  if (!pool) {
    const known = contextsFor(config);
    pool = new UpstreamPool({
      urls: config.workerUrls, secret: config.workerSecret, timeoutMs: config.requestTimeoutMs,
      holds: (url, tokens) => (known.get(url) ?? Infinity) >= tokens,   // a worker that has not said decides itself
    });
    pools.set(key, pool);
  }
  return pool;
}

const contexts = new Map<string, WorkerContexts>();

/** The isolate-wide record of what each worker's context holds, for this worker list. */
export function contextsFor(config: EdgeConfig): WorkerContexts {
  const key = config.workerUrls.join(',');
  let known = contexts.get(key);
  if (!known) {
    known = new WorkerContexts(config.workerUrls);
    contexts.set(key, known);
  }
  return known;
}

/** The largest context among the request's workers (tokens; undefined while none is known), refreshed after the response. */
export function largestContext(c: Context<EdgeEnv, any, any>): Promise<number | undefined> {
  return c.var.contexts.largest((work) => runAfterResponse(c, work));
}

/** Keeps work (metering writes, cache puts) alive after the response; runs it unawaited where there is no ctx. */
export function runAfterResponse(c: Context, work: Promise<unknown>): void {
  const guarded = work.catch((err: unknown) => console.error('[edge] background task failed', err));
  try {
    c.executionCtx.waitUntil(guarded);
  } catch {
    // app.request() in Node has no ExecutionContext: the promise still runs
  }
}
