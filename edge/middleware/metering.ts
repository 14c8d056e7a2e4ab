/**
 * @module Metering: exactly one usage record per request that took a lease from the key's rate limiter (it was
 * authenticated and within its limits), written to D1 from the request's `lifecycle.usage`
 * (edge/request-lifecycle.ts), which resolves once whatever ends the request: completed, failed (no worker, a
 * timeout, a worker dying mid-stream: what arrived counts), aborted by the client (what was generated counts),
 * cancelled by the worker, rejected (invalid, or refused by a worker: zero tokens), or cached. Requests refused
 * before a lease (unauthenticated, over a limit) write nothing. Runs before the rate limiter and registers the write
 * with waitUntil before anything is awaited, so neither a disconnecting client nor a cancelled handler can lose it;
 * the write is idempotent on the edge's own id for the request (INSERT … ON CONFLICT DO NOTHING). Records of
 * requests ending within a few ms of each other go to D1 in one batch (recordUsage in edge/usage.ts); each request's
 * waitUntil awaits the batch that carries its own record, and a failed batch is retried per record, as one insert is.
 */
import type { MiddlewareHandler } from 'hono';
import type { AccountsEnv } from '../edge-env.ts';
import { runAfterResponse } from '../platform.ts';
import type { PreparedRequest } from '../request-lifecycle.ts';
import { recordUsage, utcDay, type UsageRecord } from '../usage.ts';

/** "thinking" | "non-thinking" for chat; "raw" for legacy completions, whose prompt is the client's own text. */
export function modeOf(prepared: PreparedRequest): string {
  if (!prepared.thinking) return 'raw';
  return prepared.thinking.enabled ? 'thinking' : 'non-thinking';
}

export function metering(): MiddlewareHandler<AccountsEnv> {
  return async function metering(c, next) {
    const startedAt = Date.now();
    // registered before the handler runs: a client that disconnects (or a runtime that cancels the handler) while it
    // runs cannot keep the record from being written
    const written = c.get('lifecycle').usage.then(async (report) => {
      const lifecycle = c.get('lifecycle');
      const apiKey = c.get('apiKey');
      const prepared = lifecycle.prepared;
      // with a rate limiter: every request that held a lease; without one: those admitted to the model or the cache
      const recorded = lifecycle.leased ? await lifecycle.leased : !!prepared && (lifecycle.admitted || report.outcome === 'cached');
      if (!recorded) return;
      const hit = report.outcome === 'cached' ? c.get('cacheHit') : undefined;
      const tokens = hit?.usage ?? report;
      const record: UsageRecord = {
        // made once the request has ended (not while streams start): every retry of the write carries it
        id: `usg_${crypto.randomUUID().replace(/-/g, '')}`,
        request_id: c.get('requestId'),
        key_id: apiKey.id,
        tenant: apiKey.tenant,
        model: prepared?.model ?? '',
        mode: prepared ? modeOf(prepared) : '',
        endpoint: c.req.path,
        prompt_tokens: count(tokens.promptTokens),
        // a cached answer served every prompt token from cache
        cached_tokens: count(hit ? tokens.promptTokens : tokens.cachedTokens),
        completion_tokens: count(tokens.completionTokens),
        reasoning_tokens: count(tokens.reasoningTokens),
        latency_ms: Math.max(0, Date.now() - startedAt),
        status: report.outcome,
        http_status: report.status,
        from_cache: report.outcome === 'cached' ? 1 : 0,
        started_at: startedAt,
        day: utcDay(startedAt),
      };
      await writeWithRetry(c.env.USAGE, record);
    });
    runAfterResponse(c, written);
    await next();
  };
}

function count(n: number | undefined): number {
  return Number.isFinite(n) && (n as number) > 0 ? Math.round(n as number) : 0;
}

async function writeWithRetry(db: D1Database, record: UsageRecord, attempts = 3): Promise<void> {
  for (let i = 1; ; i++) {
    try {
      await recordUsage(db, record);
      return;
    } catch (err) {
      if (i >= attempts) {
        console.error('[metering] usage record lost', JSON.stringify(record), err);
        throw err;
      }
      await new Promise((r) => setTimeout(r, 50 * i));
    }
  }
}
