/**
 * @module Usage records in D1: the schema (created by migrations/0001_usage.sql, which `npm run deploy` and the local
 * stack apply; the same statements are run here only when a query finds no table, so an un-migrated database loses
 * nothing), the idempotent insert, batched per isolate, and the per-key daily summary and the admin export read from
 * it. One record per request that reached the model or was answered from the cache.
 */
import { awaitAtMost } from './shared-wait.ts';

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

/** Creates the table and its indexes (IF NOT EXISTS: harmless where the migration ran), in one batch. */
export async function createSchema(db: D1Database): Promise<void> {
  const statements = USAGE_SCHEMA_SQL.split(';').map((s) => s.trim()).filter(Boolean);
  await db.batch(statements.map((s) => db.prepare(s)));
}

/**
 * Runs `query`; should it fail because the usage table does not exist (a database the migrations never ran on),
 * creates the table and runs it once more. No query pays for the schema where the migration ran.
 */
async function withTable<T>(db: D1Database, query: () => Promise<T>): Promise<T> {
  try {
    return await query();
  } catch (err) {
    if (!/no such table/i.test(err instanceof Error ? err.message : String(err))) throw err;
    await createSchema(db);
    return query();
  }
}

export function utcDay(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

const INSERT_SQL = `INSERT INTO usage (${COLUMNS.join(', ')}) VALUES (${COLUMNS.map(() => '?').join(', ')})
    ON CONFLICT (id) DO NOTHING`;
/** the insert prepared once per database binding (binding values makes a new statement each time) */
const inserts = new WeakMap<D1Database, D1PreparedStatement>();

/**
 * Records that end within BATCH_WINDOW_MS of the first one go to D1 together, as one batch (one transaction: one
 * commit), instead of one insert each. Each request still awaits the write that carries its own record.
 */
export const BATCH_WINDOW_MS = 5;
/** records per batch at most (a fuller batch is sent as it is and a new one opens) */
export const BATCH_RECORDS = 25;
/**
 * How long a request waits for a batch another request sends (ms; see edge/shared-wait.ts) before it inserts its
 * record itself. The insert is idempotent, so a record written both ways is written once.
 */
export const SHARED_BATCH_WAIT_MS = 5_000;

/** the batch of each database binding still taking records: `written` resolves to each record's insert result */
type Batch = { records: UsageRecord[]; written: Promise<boolean[]> };
const openBatches = new WeakMap<D1Database, Batch>();

/**
 * Writes the record unless one with its id exists (true when this write added it), in the batch of records ending
 * about now. The request whose record opens a batch sends it, from its own timer and I/O; the others wait for it
 * (at most SHARED_BATCH_WAIT_MS, then insert alone). A failed batch fails for each of its records, whose callers
 * retry as they would a single insert.
 */
export async function recordUsage(db: D1Database, record: UsageRecord, sharedWaitMs = SHARED_BATCH_WAIT_MS): Promise<boolean> {
  const open = openBatches.get(db);
  if (open) {
    const index = open.records.push(record) - 1;
    if (open.records.length >= BATCH_RECORDS) openBatches.delete(db);
    const written = await awaitAtMost(open.written.then((results) => results[index]), sharedWaitMs);
    return written === 'late' ? (await insertAll(db, [record]))[0] : written;
  }
  const batch: Batch = { records: [record], written: Promise.resolve([]) };
  batch.written = new Promise((resolve) => setTimeout(resolve, BATCH_WINDOW_MS)).then(() => {
    if (openBatches.get(db) === batch) openBatches.delete(db);
    return insertAll(db, batch.records);
  });
  openBatches.set(db, batch);
  return (await batch.written)[0];
}

/** Inserts the records in one batch (one transaction); for each, whether it was added. */
async function insertAll(db: D1Database, records: readonly UsageRecord[]): Promise<boolean[]> {
  let insert = inserts.get(db);
  if (!insert) inserts.set(db, (insert = db.prepare(INSERT_SQL)));
  const statements = records.map((record) => insert.bind(...COLUMNS.map((col) => record[col])));
  const results = await withTable(db, () => db.batch(statements));
  return results.map((result) => (result.meta.changes ?? 0) > 0);
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
  const { results } = await withTable(db, () => db
    .prepare(
      `SELECT day, model, COUNT(*) AS requests, SUM(from_cache) AS cached_requests,
        SUM(prompt_tokens) AS prompt_tokens, SUM(cached_tokens) AS cached_tokens,
        SUM(completion_tokens) AS completion_tokens, SUM(reasoning_tokens) AS reasoning_tokens,
        SUM(prompt_tokens + completion_tokens) AS total_tokens
      FROM usage WHERE key_id = ? AND day BETWEEN ? AND ?
      GROUP BY day, model ORDER BY day, model`,
    )
    .bind(keyId, from, to)
    .all<DailyUsage>());
  return results;
}

export type ExportFilter = { from: string; to: string; tenant?: string; keyId?: string; limit: number; after?: string };

/** Raw records for the admin export, oldest first, paged by (started_at, id) through `after`. */
export async function exportUsage(db: D1Database, filter: ExportFilter): Promise<UsageRecord[]> {
  const where = ['day BETWEEN ? AND ?'];
  const params: (string | number)[] = [filter.from, filter.to];
  if (filter.tenant) where.push('tenant = ?'), params.push(filter.tenant);
  if (filter.keyId) where.push('key_id = ?'), params.push(filter.keyId);
  if (filter.after) {
    const [at, id] = decodeCursor(filter.after);
    where.push('(started_at > ? OR (started_at = ? AND id > ?))');
    params.push(at, at, id);
  }
  const { results } = await withTable(db, () => db
    .prepare(`SELECT ${COLUMNS.join(', ')} FROM usage WHERE ${where.join(' AND ')}
      ORDER BY started_at, id LIMIT ?`)
    .bind(...params, filter.limit)
    .all<UsageRecord>());
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
