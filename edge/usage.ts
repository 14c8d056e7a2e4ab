/**
 * @module Usage records in D1: the schema (the same statements as migrations/0001_usage.sql, run once per isolate so
 * `wrangler dev` and tests need no migration step), the idempotent insert, and the per-key daily summary and the
 * admin export read from it. One record per request that reached the model or was answered from the cache.
 */

/** How a metered request ended (see UsageOutcome in request-lifecycle.ts; "cached": the response cache answered, no worker ran). */
export type UsageStatus = 'completed' | 'aborted' | 'failed' | 'cancelled' | 'rejected' | 'cached';

export type UsageRecord = {
  /** the edge's own id for this request: the idempotency key of the write */
  id: string;
  /** x-request-id as the client saw it (client-chosen ids are echoed, so it need not be unique) */
  request_id: string;
  key_id: string;
  tenant: string;
  model: string;
  /** "thinking" | "non-thinking" as the edge decided, or the endpoint's own mode name */
  mode: string;
  /** "/v1/chat/completions" | "/v1/completions" */
  endpoint: string;
  prompt_tokens: number;
  /** prompt tokens the worker served from its prefix cache */
  cached_tokens: number;
  /** includes reasoning_tokens */
  completion_tokens: number;
  reasoning_tokens: number;
  /** ms from the request reaching the edge to the response's end */
  latency_ms: number;
  status: UsageStatus;
  /** HTTP status of the response (499: the client went away) */
  http_status: number;
  /** 1 when the response cache answered and no worker ran */
  from_cache: 0 | 1;
  /** Unix ms */
  started_at: number;
  /** UTC date of started_at, YYYY-MM-DD */
  day: string;
};

export const USAGE_SCHEMA_SQL = `CREATE TABLE IF NOT EXISTS usage (
  id TEXT PRIMARY KEY,
  request_id TEXT NOT NULL,
  key_id TEXT NOT NULL,
  tenant TEXT NOT NULL,
  model TEXT NOT NULL,
  mode TEXT NOT NULL,
  endpoint TEXT NOT NULL,
  prompt_tokens INTEGER NOT NULL,
  cached_tokens INTEGER NOT NULL,
  completion_tokens INTEGER NOT NULL,
  reasoning_tokens INTEGER NOT NULL,
  latency_ms INTEGER NOT NULL,
  status TEXT NOT NULL,
  http_status INTEGER NOT NULL,
  from_cache INTEGER NOT NULL,
  started_at INTEGER NOT NULL,
  day TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS usage_key_day ON usage (key_id, day);
CREATE INDEX IF NOT EXISTS usage_tenant_day ON usage (tenant, day);
CREATE INDEX IF NOT EXISTS usage_started_at ON usage (started_at);`;

const COLUMNS = [
  'id', 'request_id', 'key_id', 'tenant', 'model', 'mode', 'endpoint', 'prompt_tokens', 'cached_tokens',
  'completion_tokens', 'reasoning_tokens', 'latency_ms', 'status', 'http_status', 'from_cache', 'started_at', 'day',
] as const satisfies readonly (keyof UsageRecord)[];

const ready = new WeakSet<D1Database>();

/**
 * Creates the table once per isolate and database binding (IF NOT EXISTS: harmless after the migration ran). Only the
 * fact that it succeeded is shared between requests, never the promise: on Workers a promise belongs to the request
 * that made it, and another request awaiting it hangs when that request is cancelled.
 */
export async function ensureSchema(db: D1Database): Promise<void> {
  if (ready.has(db)) return;
  const statements = USAGE_SCHEMA_SQL.split(';').map((s) => s.trim()).filter(Boolean);
  await db.batch(statements.map((s) => db.prepare(s)));
  ready.add(db);
}

export function utcDay(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

const INSERT_SQL = `INSERT INTO usage (${COLUMNS.join(', ')}) VALUES (${COLUMNS.map(() => '?').join(', ')})
    ON CONFLICT (id) DO NOTHING`;
/** the insert prepared once per database binding (binding values makes a new statement each time) */
const inserts = new WeakMap<D1Database, D1PreparedStatement>();

/** Writes the record unless one with this request id exists; true when this call wrote it. */
export async function recordUsage(db: D1Database, record: UsageRecord): Promise<boolean> {
  await ensureSchema(db);
  let insert = inserts.get(db);
  if (!insert) inserts.set(db, (insert = db.prepare(INSERT_SQL)));
  const result = await insert.bind(...COLUMNS.map((col) => record[col])).run();
  return (result.meta.changes ?? 0) > 0;
}

export type DailyUsage = {
  day: string;
  model: string;
  requests: number;
  cached_requests: number;
  prompt_tokens: number;
  cached_tokens: number;
  completion_tokens: number;
  reasoning_tokens: number;
  total_tokens: number;
};

/** One key's usage per UTC day and model, days in [from, to] (YYYY-MM-DD, inclusive). */
export async function dailyUsage(db: D1Database, keyId: string, from: string, to: string): Promise<DailyUsage[]> {
  await ensureSchema(db);
  const { results } = await db
    .prepare(
      `SELECT day, model, COUNT(*) AS requests, SUM(from_cache) AS cached_requests,
        SUM(prompt_tokens) AS prompt_tokens, SUM(cached_tokens) AS cached_tokens,
        SUM(completion_tokens) AS completion_tokens, SUM(reasoning_tokens) AS reasoning_tokens,
        SUM(prompt_tokens + completion_tokens) AS total_tokens
      FROM usage WHERE key_id = ? AND day BETWEEN ? AND ?
      GROUP BY day, model ORDER BY day, model`,
    )
    .bind(keyId, from, to)
    .all<DailyUsage>();
  return results;
}

export type ExportFilter = { from: string; to: string; tenant?: string; keyId?: string; limit: number; after?: string };

/** Raw records for the admin export, oldest first, paged by (started_at, id) through `after`. */
export async function exportUsage(db: D1Database, filter: ExportFilter): Promise<UsageRecord[]> {
  await ensureSchema(db);
  const where = ['day BETWEEN ? AND ?'];
  const params: (string | number)[] = [filter.from, filter.to];
  if (filter.tenant) where.push('tenant = ?'), params.push(filter.tenant);
  if (filter.keyId) where.push('key_id = ?'), params.push(filter.keyId);
  if (filter.after) {
    const [at, id] = decodeCursor(filter.after);
    where.push('(started_at > ? OR (started_at = ? AND id > ?))');
    params.push(at, at, id);
  }
  const { results } = await db
    .prepare(`SELECT ${COLUMNS.join(', ')} FROM usage WHERE ${where.join(' AND ')}
      ORDER BY started_at, id LIMIT ?`)
    .bind(...params, filter.limit)
    .all<UsageRecord>();
  return results;
}

export function cursorOf(record: UsageRecord): string {
  return `${record.started_at}.${record.id}`;
}

function decodeCursor(cursor: string): [number, string] {
  const dot = cursor.indexOf('.');
  return [Number(cursor.slice(0, dot)) || 0, cursor.slice(dot + 1)];
}

/** CSV of records, header first; fields quoted only where needed. */
export function toCsv(records: UsageRecord[]): string {
  const cell = (v: unknown) => {
    const s = String(v);
    return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
  };
  return [COLUMNS.join(','), ...records.map((r) => COLUMNS.map((col) => cell(r[col])).join(','))].join('\n') + '\n';
}
