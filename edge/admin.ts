/**
 * @module The admin API behind `Authorization: Bearer <ADMIN_TOKEN>` (create a key — the secret is shown once —,
 * list, inspect, change limits or models, revoke, export usage) and the per-key GET /v1/usage. Keys live in KV
 * (key-store.ts), counters in the key's RateLimiter, usage in D1 (usage.ts).
 */
import { Hono, type MiddlewareHandler } from 'hono';
import type { AccountsEnv } from './edge-env.ts';
import { apiError, invalidRequest } from './errors.ts';
import { constantTimeEqual, issueKey, listKeys, readKeyById, writeKey, type KeyRecord } from './key-store.ts';
import { apiKeyAuth } from './middleware/auth.ts';
import { limiterFor } from './middleware/rate-limit.ts';
import { requiredSecrets } from './middleware/required-secrets.ts';
import { runAfterResponse } from './platform.ts';
import { jsonBody } from './validate-request.ts';
import { cursorOf, dailyUsage, exportUsage, toCsv, utcDay } from './usage.ts';

const DAY = /^\d{4}-\d{2}-\d{2}$/;
const MAX_EXPORT_ROWS = 10_000;

/** The record as admins see it: never the hash, let alone the secret. */
function publicKey(record: KeyRecord) {
  const { hash: _, ...rest } = record;
  return { object: 'api_key', ...rest };
}

/** [from, to] from ?from=&to= (UTC days, inclusive); the last 30 days by default. */
function dayRange(query: (name: string) => string | undefined): { from: string; to: string } {
  const to = query('to') ?? utcDay(Date.now());
  const from = query('from') ?? utcDay(Date.parse(`${to}T00:00:00Z`) - 29 * 86_400_000);
  for (const [param, value] of [['from', from], ['to', to]]) {
    if (!DAY.test(value) || Number.isNaN(Date.parse(`${value}T00:00:00Z`))) {
      throw invalidRequest(`${param} must be a UTC date YYYY-MM-DD`, param);
    }
  }
  return { from, to };
}

/** Middleware factory: 401 unless the bearer token equals ADMIN_TOKEN (compared in constant time; set: requiredSecrets). */
export function adminAuth(): MiddlewareHandler<AccountsEnv> {
  return async function adminAuth(c, next) {
    const given = /^Bearer\s+(\S+)\s*$/i.exec(c.req.header('authorization') ?? '')?.[1];
    if (!given || !(await constantTimeEqual(given, c.env.ADMIN_TOKEN))) {
      throw apiError(401, 'Invalid admin token.', {
        type: 'authentication_error',
        code: 'invalid_admin_token',
        headers: { 'www-authenticate': 'Bearer' },
      });
    }
    await next();
  };
}

export function adminRoutes(): Hono<AccountsEnv> {
  const app = new Hono<AccountsEnv>();
  app.use('/admin/*', requiredSecrets('ADMIN_TOKEN'), adminAuth());

  app.post('/admin/keys', jsonBody(async () => (await import('./schemas.ts')).createKeySchema), async function createKey(c) {
    const issued = await issueKey(c.env.KEYS, c.req.valid('json'));
    if (!issued) {
      throw apiError(409, 'This API key already exists.', { type: 'invalid_request_error', param: 'key', code: 'key_exists' });
    }
    const { record, secret } = issued;
    // the only time the secret leaves the edge
    return c.json({ ...publicKey(record), key: secret }, 201);
  });

  app.get('/admin/keys', async function listApiKeys(c) {
    const records = await listKeys(c.env.KEYS, c.req.query('tenant') || undefined);
    return c.json({ object: 'list', data: records.map(publicKey) });
  });

  app.get('/admin/keys/:id', async function getApiKey(c) {
    const record = await findKey(c.env.KEYS, c.req.param('id'));
    const state = await limiterFor(c.env.RATE_LIMITER, record.id).peek(record.limits);
    return c.json({ ...publicKey(record), quota_used: state.quotaUsed, in_flight: state.inFlight, requests_admitted: state.admittedTotal });
  });

  app.patch('/admin/keys/:id', jsonBody(async () => (await import('./schemas.ts')).updateKeySchema), async function updateApiKey(c) {
    const record = await findKey(c.env.KEYS, c.req.param('id'));
    const body = c.req.valid('json');
    const updated: KeyRecord = {
      ...record,
      name: body.name ?? record.name,
      models: body.models === undefined ? record.models : body.models,
      limits: { ...record.limits, ...body.limits },
    };
    await writeKey(c.env.KEYS, updated);
    const limiter = limiterFor(c.env.RATE_LIMITER, record.id);
    if (body.reset_quota) await limiter.resetQuota();
    const state = await limiter.peek(updated.limits);
    return c.json({ ...publicKey(updated), quota_used: state.quotaUsed, in_flight: state.inFlight, requests_admitted: state.admittedTotal });
  });

  app.delete('/admin/keys/:id', async function revokeApiKey(c) {
    const record = await findKey(c.env.KEYS, c.req.param('id'));
    const revoked: KeyRecord = { ...record, revoked_at: record.revoked_at ?? Date.now() };
    // the limiter refuses at once everywhere; the KV record follows as other locations' caches expire
    await limiterFor(c.env.RATE_LIMITER, record.id).revoke();
    await writeKey(c.env.KEYS, revoked);
    return c.json(publicKey(revoked));
  });

  // this isolate's view of the GPU workers: in rotation or not, failures in the window, busy, in-flight streams, and
  // for fleet members their state and last heartbeat's figures (membership re-read as a request would)
  app.get('/admin/workers', async function listWorkers(c) {
    await c.var.upstream.refreshMembers((work) => runAfterResponse(c, work));
    return c.json({ object: 'list', data: c.var.upstream.snapshot() });
  });

  app.get('/admin/usage', async function exportUsageRecords(c) {
    const { from, to } = dayRange((n) => c.req.query(n));
    const limit = Math.min(MAX_EXPORT_ROWS, Math.max(1, Number(c.req.query('limit') ?? MAX_EXPORT_ROWS) || MAX_EXPORT_ROWS));
    const records = await exportUsage(c.env.USAGE, {
      from, to, limit, tenant: c.req.query('tenant') || undefined, keyId: c.req.query('key_id') || undefined,
      after: c.req.query('after') || undefined,
    });
    const next = records.length === limit ? cursorOf(records[records.length - 1]) : null;
    if (c.req.query('format') === 'csv') {
      if (next) c.header('x-next-cursor', next);
      return c.body(toCsv(records), 200, { 'content-type': 'text/csv; charset=utf-8' });
    }
    return c.json({ object: 'list', from, to, data: records, next_cursor: next });
  });

  return app;
}

async function findKey(kv: KVNamespace, id: string): Promise<KeyRecord> {
  const record = await readKeyById(kv, id);
  if (!record) throw apiError(404, `No API key with id ${id}.`, { type: 'invalid_request_error', param: 'id', code: 'key_not_found' });
  return record;
}

/** GET /v1/usage: the calling key's own usage per UTC day and model; it never sees another key's. */
export function usageRoutes(): Hono<AccountsEnv> {
  const app = new Hono<AccountsEnv>();
  app.get('/v1/usage', apiKeyAuth(), async function keyUsage(c) {
    const key = c.var.apiKey;
    const { from, to } = dayRange((n) => c.req.query(n));
    const days = await dailyUsage(c.env.USAGE, key.id, from, to);
    return c.json({ object: 'list', key_id: key.id, tenant: key.tenant, from, to, data: days });
  });
  return app;
}
