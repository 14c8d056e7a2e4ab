// The edge's Hono env: the bindings of wrangler.toml (`Env`, generated into edge/env.d.ts by `npm run types`), the
// settings read from them (EdgeConfig), and the per-request variables edge/app.ts sets on the context, which routes
// and middleware read.
import type { MembershipSettings } from './fleet-records.ts';
import type { ScaleUpSettings } from './fleet.ts';
import type { KeyRecord } from './key-store.ts';
import type { RequestLifecycle, UsageCounts } from './request-lifecycle.ts';
import type { ThinkingDefault } from './thinking-mode.ts';
import type { UpstreamPool } from './upstream.ts';
import type { WorkerContexts } from './worker-contexts.ts';

/**
 * Read them with `c.get(name)`: hono's `c.var` copies every variable into a new object on each access, and a request
 * reads them a few dozen times.
 */
export type EdgeVariables = {
  requestId: string;
  config: EdgeConfig;
  upstream: UpstreamPool;
  /** what each worker's context holds (tokens), as the workers say */
  contexts: WorkerContexts;
  lifecycle: RequestLifecycle;
};

/** `Env`: the bindings of wrangler.toml, generated into edge/env.d.ts by `npm run types`. */
export type EdgeEnv = { Bindings: Env; Variables: EdgeVariables };

/** The deployment's settings, read from the bindings by readConfig() (edge/platform.ts). */
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
  /** fleet membership (edge/fleet.ts, edge/membership.ts) */
  membership: MembershipSettings;
  scaleUp: ScaleUpSettings & {
    /** ms a request may wait for a starting worker; 0 = 503 at once */
    waitMs: number;
    /** s: Retry-After of the 503 while no worker is live */
    retryAfterS: number;
  };
};

/** What a cache hit carries to metering and the rate limiter: the tokens the original generation cost. */
export type CacheHit = { key: string; usage: UsageCounts };

/** What the accounts layer's middleware set on the context (edge/accounts.ts). */
export type AccountsVariables = {
  /** set by apiKeyAuth() */
  apiKey: KeyRecord;
  /** set by responseCache() when it answered: what the cached answer had cost */
  cacheHit?: CacheHit;
};

export type AccountsEnv = {
  Bindings: Env;
  Variables: EdgeVariables & AccountsVariables;
};
