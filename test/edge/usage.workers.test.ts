// Usage records in workerd's real local D1 (edge/usage.ts): records ending together share one batch, each caller
// learns whether its own record was written; a database the migrations never ran on gets its table at the first
// query that misses it, losing nothing; a batch that fails fails for each of its records; a request whose record
// waits on a batch that never settles (its sender cancelled) writes the record itself. The database is wrapped only to
// count its batches and to inject those faults; the statements run on the real D1.
/// <reference types="@cloudflare/vitest-pool-workers/types" />
import { env as workerEnv } from 'cloudflare:workers';
import { beforeEach, describe, expect, it } from 'vitest';
import { BATCH_RECORDS, recordUsage, type UsageRecord } from '../../edge/usage.ts';

const db = (workerEnv as unknown as Env).USAGE;

type Counted = { db: D1Database; batches: number[] };

/** The real database, with its batch() calls counted (statements per call); `fault` may replace a call. */
function counted(fault?: (call: number) => Promise<D1Result[]> | undefined): Counted {
  const batches: number[] = [];
  const wrapper = {
    prepare: (sql: string) => db.prepare(sql),
    batch: (statements: D1PreparedStatement[]) => {
      batches.push(statements.length);
      return fault?.(batches.length) ?? db.batch(statements);
    },
  } as unknown as D1Database;
  return { db: wrapper, batches };
}

let n = 0;
function record(keyId: string, fields: Partial<UsageRecord> = {}): UsageRecord {
  const startedAt = Date.now();
  return {
    id: `usg_test_${++n}_${crypto.randomUUID()}`, request_id: `req-${n}`, key_id: keyId, tenant: 't', model: 'qwen3-8b-awq',
    mode: 'thinking', endpoint: '/v1/chat/completions', prompt_tokens: n, cached_tokens: 0, completion_tokens: 2 * n,
    reasoning_tokens: 0, latency_ms: 1, status: 'completed', http_status: 200, from_cache: 0, started_at: startedAt,
    day: new Date(startedAt).toISOString().slice(0, 10), ...fields,
  };
}

async function rows(keyId: string): Promise<{ id: string; prompt_tokens: number }[]> {
  const { results } = await db.prepare('SELECT id, prompt_tokens FROM usage WHERE key_id = ? ORDER BY id').bind(keyId).all<{ id: string; prompt_tokens: number }>();
  return results;
}

describe('usage records in D1', () => {
  beforeEach(async () => {
    // every test starts from a database without the table; those after the first create it with a record of their
    // own ('warm') before what they count
    await db.prepare('DROP TABLE IF EXISTS usage').run();
  });

  it('Should create the table when an insert finds none (an un-migrated database) and lose no record', async () => {
    const { db: wrapped, batches } = counted();
    const records = Array.from({ length: 3 }, () => record('no-table'));
    expect(await Promise.all(records.map((r) => recordUsage(wrapped, r)))).toEqual([true, true, true]);
    // the batch of three failed on the missing table, the schema was created, the same batch ran again
    expect(batches).toEqual([3, 4, 3]);
    expect((await rows('no-table')).map((r) => r.id)).toEqual(records.map((r) => r.id).sort());
  });

  it('Should write the records of concurrent requests in one batch, each once, and report a record already there as not written', async () => {
    await recordUsage(db, record('warm'));
    const { db: wrapped, batches } = counted();
    const records = Array.from({ length: 20 }, () => record('burst'));
    expect(await Promise.all(records.map((r) => recordUsage(wrapped, r)))).toEqual(records.map(() => true));
    expect(batches).toEqual([20]);
    const stored = await rows('burst');
    expect(stored.map((r) => r.id)).toEqual(records.map((r) => r.id).sort());
    // a record written again (a retry after a lost answer) adds nothing and says so
    expect(await Promise.all([recordUsage(wrapped, records[0]), recordUsage(wrapped, record('burst'))])).toEqual([false, true]);
    expect(batches).toEqual([20, 2]);
    expect(await rows('burst')).toHaveLength(21);
  });

  it(`Should send a full batch at ${BATCH_RECORDS} records and open a new one`, async () => {
    await recordUsage(db, record('warm'));
    const { db: wrapped, batches } = counted();
    const records = Array.from({ length: BATCH_RECORDS + 3 }, () => record('full'));
    await Promise.all(records.map((r) => recordUsage(wrapped, r)));
    expect(batches).toEqual([BATCH_RECORDS, 3]);
    expect(await rows('full')).toHaveLength(BATCH_RECORDS + 3);
  });

  it('Should fail a failed batch for each of its records, so each caller retries its own', async () => {
    await recordUsage(db, record('warm'));
    const { db: wrapped } = counted((call) => (call === 1 ? Promise.reject(new Error('D1_ERROR: storage overloaded')) : undefined));
    const records = Array.from({ length: 4 }, () => record('failed'));
    const outcomes = await Promise.allSettled(records.map((r) => recordUsage(wrapped, r)));
    expect(outcomes.map((o) => o.status)).toEqual(['rejected', 'rejected', 'rejected', 'rejected']);
    expect(await rows('failed')).toEqual([]);
    expect(await Promise.all(records.map((r) => recordUsage(wrapped, r)))).toEqual([true, true, true, true]);
    expect(await rows('failed')).toHaveLength(4);
  });

  it('Should write its record itself when the batch it joined never settles (the request sending it was cancelled)', async () => {
    await recordUsage(db, record('warm'));
    const { db: wrapped, batches } = counted((call) => (call === 1 ? new Promise<never>(() => {}) : undefined));
    const stuck = record('stuck');
    const joined = record('stuck');
    void recordUsage(wrapped, stuck);
    expect(await recordUsage(wrapped, joined, 50)).toBe(true);
    expect(batches).toEqual([2, 1]);
    expect((await rows('stuck')).map((r) => r.id)).toEqual([joined.id]);
  });
});
