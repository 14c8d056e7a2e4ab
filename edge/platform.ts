// The only module that touches Workers specifics: it reads the env bindings ([vars] in wrangler.toml, secrets from
// .dev.vars / `wrangler secret put`; their type `Env` is generated from wrangler.toml into edge/env.d.ts) into a typed
// EdgeConfig, keeps the isolate-wide worker pool, and wraps executionCtx.waitUntil. Routes take EdgeConfig and plain Web APIs, so `app.request(path, init, env)` tests them in Node.
import type { Context } from 'hono';
import type { EdgeConfig, EdgeEnv } from './edge-env.ts';
import type { Fleet } from './fleet.ts';
import type { MembershipSettings } from './fleet-records.ts';
import { Membership } from './membership.ts';
import { parseThinkingDefault } from './thinking-mode.ts';
import { UpstreamPool } from './upstream.ts';
import { WorkerContexts } from './worker-contexts.ts';

export const DEFAULTS = {
  modelId: 'qwen3-8b-awq',
  maxBodyBytes: 4 * 1024 * 1024,
  requestTimeoutMs: 60_000,
  presencePenaltyDefault: 0,
  maxGenerations: 64,
  memberTtlMs: 15_000,
  membershipRefreshMs: 2_000,
  scaleUpCooldownMs: 60_000,
  scaleUpWaitMs: 0,
  scaleUpRetryAfterS: 10,
} as const;

/** Secrets the edge reads when they are set (`wrangler secret put`); Env names only the required ones. */
type OptionalSecrets = {
  /** sent to the scale-up webhook as `Authorization: Bearer …` (a GPU platform's API token) */
  SCALE_UP_TOKEN?: string;
  /** HMAC secret of the webhook's signature headers; default WORKER_SECRET */
  SCALE_UP_SECRET?: string;
};

type Bindings = Partial<Env> & OptionalSecrets;

const configs = new WeakMap<object, EdgeConfig>();

/** EdgeConfig from the bindings object (parsed once per env object). */
export function readConfig(env: Partial<Env> | undefined): EdgeConfig {
  const bindings: Bindings = env ?? {};
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
    membership: membershipSettings(bindings),
    scaleUp: {
      url: bindings.SCALE_UP_URL?.trim() ?? '',
      token: bindings.SCALE_UP_TOKEN ?? '',
      secret: bindings.SCALE_UP_SECRET || bindings.WORKER_SECRET || '',
      cooldownMs: positiveNumber(bindings.SCALE_UP_COOLDOWN_MS, DEFAULTS.scaleUpCooldownMs),
      waitMs: Math.max(0, finiteNumber(bindings.SCALE_UP_WAIT_MS, DEFAULTS.scaleUpWaitMs)),
      retryAfterS: Math.ceil(positiveNumber(bindings.SCALE_UP_RETRY_AFTER_S, DEFAULTS.scaleUpRetryAfterS)),
    },
  };
  if (typeof bindings === 'object') configs.set(bindings, config);
  return config;
}

/** The refresh interval stays below half the TTL, so a member's expiry is always seen before it matters. */
function membershipSettings(bindings: Bindings): MembershipSettings {
  const ttlMs = positiveNumber(bindings.MEMBER_TTL_MS, DEFAULTS.memberTtlMs);
  return { ttlMs, refreshMs: Math.min(positiveNumber(bindings.MEMBERSHIP_REFRESH_MS, DEFAULTS.membershipRefreshMs), ttlMs / 2) };
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

/**
 * The isolate-wide pool for this worker list, so health marks, in-flight counts and the fleet's membership view
 * outlive one request. With the FLEET binding, the fleet's members join the WORKER_URLS workers.
 */
export function poolFor(config: EdgeConfig, fleet?: DurableObjectNamespace<Fleet>): UpstreamPool {
  const key = `${config.workerUrls.join(',')}\n${config.workerSecret}\n${config.requestTimeoutMs}\n${fleet ? JSON.stringify([config.membership, config.scaleUp]) : ''}`;
  let pool = pools.get(key);
  if (!pool) {
    const known = contextsFor(config);
    const membership = fleet && new Membership(
      {
        view: () => fleetStub(fleet).view(),
        requestScaleUp: (reason) => fleetStub(fleet).requestScaleUp(reason, config.scaleUp),
      },
      {
        refreshMs: config.membership.refreshMs, scaleUp: config.scaleUp.url !== '', scaleUpCooldownMs: config.scaleUp.cooldownMs,
        scaleUpWaitMs: config.scaleUp.waitMs, scaleUpRetryAfterS: config.scaleUp.retryAfterS,
      },
    );
    pool = new UpstreamPool({
      urls: config.workerUrls, secret: config.workerSecret, timeoutMs: config.requestTimeoutMs, membership,
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

/**
 * The largest context among the request's workers (tokens; undefined while none is known), refreshed after the
 * response: the WORKER_URLS workers' from their /ready, the fleet's ready members' from their heartbeats.
 */
export async function largestContext(c: Context<EdgeEnv, any, any>): Promise<number | undefined> {
  const background = (work: Promise<unknown>) => runAfterResponse(c, work);
  const [fixed] = await Promise.all([c.get('contexts').largest(background), c.get('upstream').refreshMembers(background)]);
  const member = c.get('upstream').largestMemberContext();
  return fixed === undefined || member === undefined ? (fixed ?? member) : Math.max(fixed, member);
}

/** The fleet registry's one object (a fleet serves one model; each deployment has its own namespace). */
export function fleetStub(ns: DurableObjectNamespace<Fleet>): DurableObjectStub<Fleet> {
  return ns.get(ns.idFromName('fleet'));
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
