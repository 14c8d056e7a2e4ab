/**
 * @module Metering: exactly one usage record per request that reached the model or was answered from the response
 * cache, written to D1 from the request's `lifecycle.usage` (edge/app.ts), which resolves once when the response has
 * ended: completed, failed mid-stream (a dying worker: what arrived counts), aborted by the client (what was
 * generated counts), or cached. Requests rejected before `lifecycle.prepare` write nothing. The write is registered
 * with waitUntil before the response leaves, so a disconnecting client cannot lose it, and it is idempotent on the
 * edge's own request id (INSERT … ON CONFLICT DO NOTHING).
 */
import type { MiddlewareHandler } from 'hono';
import type { AccountsEnv } from '../accounts.ts';
import type { PreparedRequest } from '../app.ts';
import { runAfterResponse } from '../platform.ts';
import { recordUsage, utcDay, type UsageRecord } from '../usage.ts';

/** "thinking" | "non-thinking" for chat; "raw" for legacy completions, whose prompt is the client's own text. */
export function modeOf(prepared: PreparedRequest): string {
  if (!prepared.thinking) return 'raw';
  return prepared.thinking.enabled ? 'thinking' : 'non-thinking';
}

export function metering(): MiddlewareHandler<AccountsEnv> {
  return async function metering(c, next) {
    const id = `usg_${crypto.randomUUID().replace(/-/g, '')}`;
    const startedAt = Date.now();
    try {
      await next();
    } finally {
      const { lifecycle, apiKey } = c.var;
      const written = lifecycle.usage.then(async (report) => {
        const prepared = lifecycle.prepared;
        if (!prepared || report.outcome === 'rejected') return;
        const hit = report.outcome === 'cached' ? c.var.cacheHit : undefined;
        const tokens = hit?.usage ?? report;
        const record: UsageRecord = {
          id,
          request_id: c.var.requestId,
          key_id: apiKey.id,
          tenant: apiKey.tenant,
          model: prepared.model,
          mode: modeOf(prepared),
          endpoint: new URL(c.req.url).pathname,
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
    }
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
