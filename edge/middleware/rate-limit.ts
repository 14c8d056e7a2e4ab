/**
 * @module Rate-limit middleware: asks the key's RateLimiter Durable Object to admit a generation (one request, a
 * concurrent-stream lease, quota left and a token reservation, in one call), refuses with OpenAI's 429s, settles the
 * lease with the real token count when the request's usage settles, and puts OpenAI's x-ratelimit-* headers on every
 * response.
 */
import type { Context, MiddlewareHandler } from 'hono';
import type { AccountsEnv } from '../edge-env.ts';
import { apiError, tooManyGenerations, type OpenAIErrorType } from '../errors.ts';
import { KeyAdmissions } from '../key-admissions.ts';
import { runAfterResponse } from '../platform.ts';
import type { Admission, LimitState, RateLimiter, Refused } from '../rate-limiter-do.ts';
import type { PreparedRequest } from '../request-lifecycle.ts';

/**
 * Each key's Durable Object id (idFromName hashes the name) and its admissions in this isolate (edge/key-admissions.ts),
 * kept for the isolate's life. Stubs are made per request: a stub's calls are I/O of the request that made it.
 */
const limiterKeys = new WeakMap<DurableObjectNamespace<RateLimiter>, Map<string, { id: DurableObjectId; admissions: KeyAdmissions }>>();

function limiterKey(ns: DurableObjectNamespace<RateLimiter>, keyId: string): { id: DurableObjectId; admissions: KeyAdmissions } {
  let keys = limiterKeys.get(ns);
  if (!keys) limiterKeys.set(ns, (keys = new Map()));
  let entry = keys.get(keyId);
  if (!entry) {
    if (keys.size >= 10_000) keys.clear();
    keys.set(keyId, (entry = { id: ns.idFromName(keyId), admissions: new KeyAdmissions() }));
  }
  return entry;
}

export function limiterFor(ns: DurableObjectNamespace<RateLimiter>, keyId: string): DurableObjectStub<RateLimiter> {
  return ns.get(limiterKey(ns, keyId).id);
}

/** Go-style duration as OpenAI writes it: "12ms", "1.5s", "6m0s". */
export function formatReset(ms: number): string {
  if (ms < 1000) return `${Math.ceil(ms)}ms`;
  const s = Math.ceil(ms / 10) / 100;
  if (s < 60) return `${+s.toFixed(2)}s`;
  const m = Math.floor(s / 60);
  return `${m}m${+(s - m * 60).toFixed(2)}s`;
}

export function rateLimitHeaders(state: LimitState): Record<string, string> {
  return {
    'x-ratelimit-limit-requests': String(state.limitRequests),
    'x-ratelimit-limit-tokens': String(state.limitTokens),
    'x-ratelimit-remaining-requests': String(state.remainingRequests),
    'x-ratelimit-remaining-tokens': String(state.remainingTokens),
    'x-ratelimit-reset-requests': formatReset(state.resetRequestsMs),
    'x-ratelimit-reset-tokens': formatReset(state.resetTokensMs),
  };
}

/** Tokens a prepared request may use: its prompts once (n choices share one prefill) plus every generation's budget. */
export function reservationOf(prepared: PreparedRequest): number {
  return prepared.prompts.reduce((sum, p) => sum + p.length, 0) + prepared.generations * prepared.maxTokens;
}

export const revokedKey = () =>
  apiError(401, 'This API key has been revoked.', {
    type: 'invalid_request_error', code: 'invalid_api_key', headers: { 'www-authenticate': 'Bearer' },
  });

function refusal(admission: Refused) {
  const { state } = admission;
  if (admission.refusal === 'revoked') return revokedKey();
  const headers = rateLimitHeaders(state);
  if (admission.refusal === 'quota') {
    return apiError(429, `You exceeded your current quota of ${state.quotaTokens} tokens (${state.quotaUsed} used). Ask your administrator to raise it.`, {
      type: 'insufficient_quota' as OpenAIErrorType,
      code: 'insufficient_quota',
      headers: { ...headers, 'x-should-retry': 'false' },
    });
  }
  const waitMs = Math.max(1, admission.retryAfterMs ?? 1000);
  const retry = { 'retry-after': String(Math.ceil(waitMs / 1000)), 'retry-after-ms': String(waitMs) };
  const message = {
    requests: `Rate limit reached on requests per min (RPM): Limit ${state.limitRequests}. Please try again in ${formatReset(waitMs)}.`,
    tokens: `Rate limit reached on tokens per min (TPM): Limit ${state.limitTokens}, Remaining ${state.remainingTokens}. Please try again in ${formatReset(waitMs)}.`,
    concurrency: `Too many concurrent requests on this key: Limit ${state.limitConcurrent}. Please try again when one has finished.`,
  }[admission.refusal as 'requests' | 'tokens' | 'concurrency'];
  return apiError(429, message, {
    type: 'rate_limit_error',
    code: admission.refusal === 'concurrency' ? 'concurrency_limit_exceeded' : 'rate_limit_exceeded',
    headers: { ...headers, ...retry },
  });
}

function setHeaders(c: Context, headers: Record<string, string>): void {
  try {
    for (const [k, v] of Object.entries(headers)) c.res.headers.set(k, v);
  } catch {
    // immutable headers (a fetched or cached Response): copy it once
    c.res = new Response(c.res.body, c.res);
    for (const [k, v] of Object.entries(headers)) c.res.headers.set(k, v);
  }
}

async function retry<T>(call: () => Promise<T>, attempts = 3): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await call();
    } catch (err) {
      if (i >= attempts) throw err;
      await new Promise((r) => setTimeout(r, 50 * i));
    }
  }
}

/** Generation endpoints: the ones admitted and settled; every other path only reports the counters. */
const GENERATION_PATHS = new Set(['/v1/chat/completions', '/v1/completions']);

/**
 * Middleware factory. A generation request is admitted by the key's limiter in one call, made when the route has
 * tokenized the prompt (lifecycle gate): one request, a lease on every generation it runs (prompts × n: 400 when that
 * exceeds the key's concurrency limit, 429 while the key's other streams leave too few), quota left, and its tokens
 * reserved (prompt + each generation's max tokens; 429 if the bucket cannot cover them). The lease settles with the
 * tokens really used when `lifecycle.usage` resolves, which also releases it: at the end of the stream, on abort, or
 * on rejection. The gate runs after the response cache, so a cached answer reserves nothing, costs the buckets
 * nothing and is charged to the quota only; a refusal replaces it.
 *
 * A request the route answers without preparing it (a 400, a 404 for a model the key may not use) is admitted once
 * it has been answered, taking a lease on one stream that settles at once: it counts against the request limit and
 * leaves a usage record ("rejected"), and a refusal (revoked, over a limit) replaces the route's answer. A request
 * whose client left before it was admitted takes no lease and leaves no record.
 *
 * The admissions of one key go to its limiter one call at a time, those that arrive meanwhile together in the next
 * (edge/key-admissions.ts): one round trip serves a burst; the settles of streams ending together go the same way. When the key's counters as this isolate last heard them
 * leave room for the request after every admission still unanswered, the request goes ahead while its own admission
 * is decided (lifecycle.goAheadOf): its worker calls start at once, and the route answers only once it is admitted;
 * a refusal (a race lost to another isolate, a revocation or a changed limit since then) cancels those calls and is
 * the answer. A key at or over a limit, as far as this isolate knows, waits for its answer first, so such a tenant's
 * request does not reach a worker. So at most one round trip to the Durable Object before a worker is called (none
 * on the request's path while the key has room), and one (not waited for) after the response.
 */
export function rateLimit(): MiddlewareHandler<AccountsEnv> {
  return async function rateLimit(c, next) {
    const key = c.get('apiKey');
    const { id, admissions } = limiterKey(c.env.RATE_LIMITER, key.id);
    // made when this request calls the object itself: an admission that rides on another request's call needs none
    // until its settle, after the response
    let stub: DurableObjectStub<RateLimiter> | undefined;
    const limiter = () => (stub ??= c.env.RATE_LIMITER.get(id));
    if (c.req.method !== 'POST' || !GENERATION_PATHS.has(c.req.path)) {
      const state = await limiter().peek(key.limits);
      if (state.revoked) throw revokedKey();
      await next();
      setHeaders(c, rateLimitHeaders(state));
      return;
    }
    const lifecycle = c.get('lifecycle');
    const leaseId = crypto.randomUUID();
    let admitting: Promise<Admission> | undefined;
    /**
     * Asks for the lease. Only while the request has not settled: the usage record is decided when it settles
     * (edge/middleware/metering.ts), so a lease asked later would have none.
     */
    const admit = (tokens: number, streams: number): Promise<Admission> => {
      const asked = admissions.admit(limiter, { limits: key.limits, tokens, streams, leaseId });
      admitting = asked;
      lifecycle.leased = asked.then((admission) => admission.ok, () => false);
      // Settling is registered with waitUntil as the lease is asked for: a client that disconnects while the limiter
      // answers (the runtime may then cancel this handler) cannot leave the lease held. It waits for the request's
      // usage, which settles once whatever ends the request (edge/request-lifecycle.ts).
      runAfterResponse(
        c,
        asked.then(async (admission) => {
          if (!admission.ok) return;
          const report = await lifecycle.usage;
          const used = report.promptTokens + report.completionTokens;
          const quota = report.outcome === 'cached' ? (c.get('cacheHit')?.usage.promptTokens ?? 0) + (c.get('cacheHit')?.usage.completionTokens ?? 0) : used;
          // settle is idempotent per lease, so a failed call is simply made again; the settles of the key's streams
          // that end together go in one call
          const settle = { leaseId, bucketTokens: report.outcome === 'cached' ? 0 : used, quotaTokens: quota, limits: key.limits };
          await retry(() => admissions.settle(limiter, settle));
        }),
      );
      return asked;
    };
    let state: LimitState | undefined;
    lifecycle.gate(async (prepared, cached) => {
      if (lifecycle.isSettled) throw Object.assign(new Error('the client left before its request was admitted'), { name: 'AbortError' });
      const tooMany = !cached && prepared.generations > key.limits.concurrent_streams;
      const [tokens, streams] = cached || tooMany ? [0, 1] : [reservationOf(prepared), prepared.generations];
      // judged before this admission counts as unanswered
      const goAhead = !cached && !tooMany && admissions.headroom(key.limits, tokens, streams);
      const decided = admit(tokens, streams).then((admission) => {
        if (!admission.ok) {
          c.set('cacheHit', undefined); // a cached answer the route found is not what the client gets
          throw refusal(admission);
        }
        state = admission.state;
        if (tooMany) throw tooManyGenerations(prepared, key.limits.concurrent_streams, 'this key runs at most');
      });
      if (goAhead) lifecycle.goAheadOf(decided);
      else await decided;
    });
    await next();
    if (!admitting) {
      if (lifecycle.isSettled) return; // the client left before anything was admitted
      const admission = await admit(0, 1);
      if (!admission.ok) {
        c.res = refusal(admission).getResponse();
        return;
      }
      state = admission.state;
    }
    if (state) setHeaders(c, rateLimitHeaders(state));
  };
}
