/**
 * @module Rate-limit middleware: asks the key's RateLimiter Durable Object to admit a generation (one request, a
 * concurrent-stream lease, quota left, then a token reservation), refuses with OpenAI's 429s, settles the lease with
 * the real token count when the request's usage settles, and puts OpenAI's x-ratelimit-* headers on every response.
 */
import type { Context, MiddlewareHandler } from 'hono';
import type { AccountsEnv } from '../edge-env.ts';
import { apiError, tooManyGenerations, type OpenAIErrorType } from '../errors.ts';
import { runAfterResponse } from '../platform.ts';
import type { LimitState, RateLimiter, Refused } from '../rate-limiter-do.ts';
import type { PreparedRequest } from '../request-lifecycle.ts';

export function limiterFor(ns: DurableObjectNamespace<RateLimiter>, keyId: string): DurableObjectStub<RateLimiter> {
  return ns.get(ns.idFromName(keyId));
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
 * Middleware factory. A request is admitted here (one request, a lease on a concurrent stream, quota left, the
 * token bucket not in debt); when the route has tokenized the prompt, its lease grows to every generation it runs
 * (prompts × n: 400 when that exceeds the key's concurrency limit, 429 while the key's other streams leave too few)
 * and reserves its tokens (prompt + each generation's max tokens; 429 if the bucket cannot cover them), and settles
 * with the tokens really used when `lifecycle.usage` resolves, which also releases the lease: at the end of the
 * stream, on abort, or on rejection. Runs after the response cache, so a cached answer reserves nothing, costs the
 * buckets nothing and is charged to the quota only.
 *
 * One round trip to the Durable Object before a worker is called: admit() is sent at once and not waited for while
 * the route validates, templates and tokenizes; reserve() follows for the same lease (its id chosen here) and the two
 * answers are awaited together. The two calls may reach the object in either order: whichever comes first admits
 * the lease or refuses it, and the other answers the same. A refused admission still decides the answer: it replaces
 * whatever the route made without a worker (a cached answer, a 400).
 */
export function rateLimit(): MiddlewareHandler<AccountsEnv> {
  return async function rateLimit(c, next) {
    const key = c.var.apiKey;
    const limiter = limiterFor(c.env.RATE_LIMITER, key.id);
    if (c.req.method !== 'POST' || !GENERATION_PATHS.has(new URL(c.req.url).pathname)) {
      const state = await limiter.peek(key.limits);
      if (state.revoked) throw revokedKey();
      await next();
      setHeaders(c, rateLimitHeaders(state));
      return;
    }
    const { lifecycle } = c.var;
    const leaseId = crypto.randomUUID();
    const admitting = limiter.admit({ limits: key.limits, tokens: 0, leaseId });
    lifecycle.leased = admitting.then((admission) => admission.ok, () => false);
    // Settling is registered with waitUntil before anything is awaited: a client that disconnects while the limiter
    // admits it (the runtime then cancels this handler) cannot leave the lease held. It waits for the request's usage,
    // which settles once whatever ends the request (edge/request-lifecycle.ts).
    runAfterResponse(
      c,
      admitting.then(async (admission) => {
        if (!admission.ok) return;
        const report = await lifecycle.usage;
        const used = report.promptTokens + report.completionTokens;
        const quota = report.outcome === 'cached' ? (c.var.cacheHit?.usage.promptTokens ?? 0) + (c.var.cacheHit?.usage.completionTokens ?? 0) : used;
        // settle is idempotent per lease, so a failed call is simply made again
        await retry(() => limiter.settle(leaseId, report.outcome === 'cached' ? 0 : used, quota, key.limits));
      }),
    );
    let state: LimitState | undefined;
    lifecycle.intercept(async (prepared) => {
      if (prepared.generations > key.limits.concurrent_streams) {
        const admission = await admitting;
        throw admission.ok ? tooManyGenerations(prepared, key.limits.concurrent_streams, 'this key runs at most') : refusal(admission);
      }
      const reserving = limiter.reserve(leaseId, reservationOf(prepared), prepared.generations, key.limits);
      const [admission, reserved] = await Promise.all([admitting, reserving]);
      if (!admission.ok) {
        // the object restarted between the two calls and forgot admit()'s refusal: reserve() took a lease; give it back
        if (reserved.ok) runAfterResponse(c, limiter.settle(leaseId, 0, 0, key.limits));
        throw refusal(admission);
      }
      if (!reserved.ok) throw refusal(reserved);
      state = reserved.state;
      return undefined;
    });
    await next();
    const admission = await admitting;
    if (!admission.ok) {
      c.set('cacheHit', undefined); // a cached answer the route found is not what the client gets
      c.res = refusal(admission).getResponse();
      return;
    }
    setHeaders(c, rateLimitHeaders(state ?? admission.state));
  };
}
