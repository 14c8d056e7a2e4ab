/**
 * @module Response cache: a deterministic generation (temperature 0 or an explicit seed) is answered again from the
 * Workers Cache API without reaching a worker. The key is a SHA-256 of the tenant, endpoint, model, mode and the
 * route's fingerprint (prompt token ids, sampling, stop, tools, thinking options, stream shape), looked up through a
 * synthetic GET because the Cache API stores only GETs. Streamed and non-streamed requests have separate entries
 * (the stream shape is in the fingerprint); a streamed hit is replayed as SSE, frame by frame, under a fresh
 * completion id. Only responses that completed (200, read to the end, usage outcome "completed") are stored, for
 * RESPONSE_CACHE_TTL_S seconds. Entries are per tenant: one tenant cannot learn what another asked.
 * `cache-control: no-store` on the request bypasses the cache; `no-cache` skips the lookup but stores the answer.
 * Every generation response says `x-cache: HIT` or `MISS`.
 */
import type { Context, MiddlewareHandler } from 'hono';
import { toHex } from '../../gpu-worker/signing.ts';
import { tapBody } from '../body-tap.ts';
import type { AccountsEnv } from '../edge-env.ts';
import { runAfterResponse } from '../platform.ts';
import type { PreparedRequest, UsageCounts } from '../request-lifecycle.ts';
import { modeOf } from './metering.ts';

export const DEFAULT_TTL_S = 3600;
/** larger answers are served but not stored (bytes) */
export const MAX_ENTRY_BYTES = 4 * 1024 * 1024;
const CACHE_NAME = 'qwen3-responses';
const USAGE_HEADER = 'x-cached-usage';
const HEADERS_HEADER = 'x-cached-headers';
/** the route's own x- headers (e.g. x-thinking-mode) travel with the entry; these are per response and do not */
const PER_RESPONSE = /^x-(ratelimit-|request-id$|cache$|should-retry$)/;
const encoder = new TextEncoder();

export async function cacheKeyOf(tenant: string, prepared: PreparedRequest): Promise<string> {
  const material = JSON.stringify(['v1', tenant, prepared.endpoint, prepared.model, modeOf(prepared), prepared.fingerprint]);
  const digest = await crypto.subtle.digest('SHA-256', encoder.encode(material));
  return toHex(digest);
}

/** The Cache API stores GETs only: each key becomes its own synthetic URL. */
function syntheticRequest(key: string): Request {
  return new Request(`https://response-cache.internal/v1/${key}`, { method: 'GET' });
}

function openCache(): Promise<Cache> | null {
  return typeof caches === 'undefined' ? null : caches.open(CACHE_NAME);
}

function ttlOf(c: Context<AccountsEnv>): number {
  const ttl = Number(c.env.RESPONSE_CACHE_TTL_S);
  return Number.isFinite(ttl) && ttl > 0 ? Math.floor(ttl) : DEFAULT_TTL_S;
}

/** The completion id in a stored body ("chatcmpl-…" / "cmpl-…"), so a replay can carry a fresh one. */
function responseIdOf(body: string): string | null {
  return /"id":"((?:chatcmpl|cmpl)-[A-Za-z0-9]+)"/.exec(body)?.[1] ?? null;
}

function withFreshId(body: string): string {
  const old = responseIdOf(body);
  if (!old) return body;
  const fresh = `${old.slice(0, old.indexOf('-'))}-${crypto.randomUUID().replace(/-/g, '')}`;
  return body.replaceAll(`"${old}"`, `"${fresh}"`);
}

/** A stored answer as the client's response: JSON as it was, SSE replayed one event per chunk. */
function replay(stored: string, contentType: string, extra: Record<string, string>): Response {
  const body = withFreshId(stored);
  const headers = new Headers({ ...extra, 'content-type': contentType, 'x-cache': 'HIT' });
  if (!contentType.startsWith('text/event-stream')) return new Response(body, { status: 200, headers });
  headers.set('cache-control', 'no-cache');
  headers.set('content-encoding', 'identity');
  const events = body.split(/(?<=\n\n)/);
  let i = 0;
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (i < events.length) controller.enqueue(encoder.encode(events[i++]));
      else controller.close();
    },
  });
  return new Response(stream, { status: 200, headers });
}

function concat(chunks: Uint8Array[], size: number): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(size);
  let at = 0;
  for (const chunk of chunks) out.set(chunk, at), (at += chunk.byteLength);
  return out;
}

function setHeader(c: Context, name: string, value: string): void {
  try {
    c.res.headers.set(name, value);
  } catch {
    c.res = new Response(c.res.body, c.res);
    c.res.headers.set(name, value);
  }
}

export function responseCache(): MiddlewareHandler<AccountsEnv> {
  return async function responseCache(c, next) {
    const directives = (c.req.header('cache-control') ?? '').toLowerCase();
    const noStore = directives.includes('no-store');
    const noLookup = noStore || directives.includes('no-cache');
    // set by the interceptor when the prepared request is deterministic
    const entry: { cache: Promise<Cache> | null; key: string | null } = { cache: null, key: null };

    if (!noStore) {
      c.get('lifecycle').intercept(async (prepared) => {
        if (!prepared.deterministic) return undefined;
        const cache = openCache();
        if (!cache) return undefined;
        const key = await cacheKeyOf(c.get('apiKey').tenant, prepared);
        Object.assign(entry, { cache, key });
        if (noLookup) return undefined;
        const hit = await (await cache).match(syntheticRequest(key));
        if (!hit) return undefined;
        const usage = JSON.parse(hit.headers.get(USAGE_HEADER) ?? 'null') as UsageCounts | null;
        const contentType = hit.headers.get('content-type') ?? 'application/json';
        const extra = JSON.parse(hit.headers.get(HEADERS_HEADER) ?? '{}') as Record<string, string>;
        const stored = await hit.text();
        if (!usage) return undefined;
        c.set('cacheHit', { key, usage });
        return replay(stored, contentType, extra);
      });
    }

    await next();

    const lifecycle = c.get('lifecycle');
    if (!lifecycle.prepared) return;
    if (c.get('cacheHit')) {
      setHeader(c, 'x-cache', 'HIT');
      return;
    }
    setHeader(c, 'x-cache', 'MISS');
    const { cache: store, key: storeKey } = entry;
    if (!store || !storeKey || c.res.status !== 200 || !c.res.body) return;

    // tee the answer as it goes out; store it once it was read to the end and the generation completed
    const chunks: Uint8Array[] = [];
    let size = 0;
    let bodyComplete!: (complete: boolean) => void;
    const bodyDone = new Promise<boolean>((resolve) => (bodyComplete = resolve));
    const contentType = c.res.headers.get('content-type') ?? 'application/json';
    const extra = Object.fromEntries([...c.res.headers].filter(([name]) => name.startsWith('x-') && !PER_RESPONSE.test(name)));
    c.res = new Response(
      tapBody(
        c.res.body,
        (chunk) => {
          size += chunk.byteLength;
          if (size <= MAX_ENTRY_BYTES) chunks.push(chunk);
        },
        bodyComplete,
      ),
      c.res,
    );
    const ttl = ttlOf(c);
    runAfterResponse(
      c,
      Promise.all([bodyDone, lifecycle.usage]).then(async ([complete, report]) => {
        if (!complete || report.outcome !== 'completed' || size > MAX_ENTRY_BYTES) return;
        const usage: UsageCounts = {
          promptTokens: report.promptTokens,
          completionTokens: report.completionTokens,
          reasoningTokens: report.reasoningTokens,
          cachedTokens: report.cachedTokens,
        };
        const stored = new Response(concat(chunks, size), {
          headers: {
            'content-type': contentType,
            'cache-control': `max-age=${ttl}`,
            [USAGE_HEADER]: JSON.stringify(usage),
            [HEADERS_HEADER]: JSON.stringify(extra),
          },
        });
        await (await store).put(syntheticRequest(storeKey), stored);
      }),
    );
  };
}
