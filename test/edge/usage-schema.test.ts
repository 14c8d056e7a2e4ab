// The usage table is created two ways, by `wrangler d1 migrations apply` (migrations/0001_usage.sql) and by
// edge/usage.ts when a query finds no table; both must create the same table. Also the rate-limit header formats.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { formatReset, rateLimitHeaders } from '../../edge/middleware/rate-limit.ts';
import { toCsv, USAGE_SCHEMA_SQL, type UsageRecord } from '../../edge/usage.ts';

const statements = (sql: string) =>
  sql
    .split('\n')
    .filter((line) => !line.trim().startsWith('--'))
    .join('\n')
    .split(';')
    .map((s) => s.replace(/\s+/g, ' ').trim())
    .filter(Boolean);

describe('usage schema', () => {
  it('Should create the same table and indexes from the migration and from edge/usage.ts', () => {
    const migration = readFileSync(join(import.meta.dirname, '..', '..', 'migrations', '0001_usage.sql'), 'utf8');
    expect(statements(USAGE_SCHEMA_SQL)).toEqual(statements(migration));
    expect(statements(migration)[0]).toMatch(/^CREATE TABLE IF NOT EXISTS usage \( id TEXT PRIMARY KEY,/);
  });

  it('Should export CSV with a header row and quote only fields that need it', () => {
    const row = {
      id: 'usg_1', request_id: 'req,"x"', key_id: 'key_0', tenant: 't', model: 'm', mode: 'thinking', endpoint: '/v1/chat/completions',
      prompt_tokens: 1, cached_tokens: 0, completion_tokens: 2, reasoning_tokens: 1, latency_ms: 3, status: 'completed',
      http_status: 200, from_cache: 0, started_at: 0, day: '1970-01-01',
    } satisfies UsageRecord;
    const [header, line] = toCsv([row]).trim().split('\n');
    expect(header.split(',')).toHaveLength(17);
    expect(line).toBe('usg_1,"req,""x""",key_0,t,m,thinking,/v1/chat/completions,1,0,2,1,3,completed,200,0,0,1970-01-01');
  });
});

describe('rate-limit headers', () => {
  it('Should write reset durations the way OpenAI does', () => {
    expect(formatReset(0)).toBe('0ms');
    expect(formatReset(12)).toBe('12ms');
    expect(formatReset(1000)).toBe('1s');
    expect(formatReset(1500)).toBe('1.5s');
    expect(formatReset(20_000)).toBe('20s');
    expect(formatReset(360_000)).toBe('6m0s');
  });

  it('Should carry all six x-ratelimit headers', () => {
    const headers = rateLimitHeaders({
      limitRequests: 3, limitTokens: 60, remainingRequests: 1, remainingTokens: 7, resetRequestsMs: 40_000, resetTokensMs: 53_000,
      inFlight: 0, limitConcurrent: 10, quotaUsed: 0, quotaTokens: null, admittedTotal: 0, revoked: false,
    });
    expect(headers).toEqual({
      'x-ratelimit-limit-requests': '3', 'x-ratelimit-limit-tokens': '60', 'x-ratelimit-remaining-requests': '1',
      'x-ratelimit-remaining-tokens': '7', 'x-ratelimit-reset-requests': '40s', 'x-ratelimit-reset-tokens': '53s',
    });
  });
});
