// Proves edge/validate-worker.ts reads what workers send as gpu-worker/protocol.ts's zod schemas do: on seeded random
// edits of real frames and error bodies both accept the same ones with the same output (declared fields, in order)
// and refuse the rest; and edge/key-store.ts's check of a stored key record (accepted with its declared fields only,
// refused when a field is missing, mistyped or a limit unknown) and its per-isolate cache of the records it read.
import { isDeepStrictEqual } from 'node:util';
import { describe, expect, it } from 'vitest';
import { ErrorBodySchema, GenerateEventSchema } from '../../gpu-worker/protocol.ts';
import { authenticatedKey, KEY_CACHE_MS, keyRecordOf, sha256Hex, type KeyRecord } from '../../edge/key-store.ts';
import { parseErrorBody, parseGenerateEvent } from '../../edge/validate-worker.ts';
import { mutate, type Json } from '../helpers/json-mutations.ts';
import { random } from '../helpers/tokenizer-corpus.ts';

const FRAMES: Json[] = [
  { tokens: [1, 2, 3] },
  { tokens: [], finish_reason: 'stop', stop_token_id: 151645, usage: { prompt_tokens: 30, completion_tokens: 6, cached_tokens: 0 } },
  { tokens: [5], logprobs: [{ token: 5, logprob: -0.1, top: [{ token: 5, logprob: -0.1 }, { token: 7, logprob: -2.5 }] }], finish_reason: 'length', usage: { prompt_tokens: 1, completion_tokens: 1, cached_tokens: 1 } },
];
const ERRORS: Json[] = [
  { error: { message: 'request queue is full', type: 'service_unavailable', code: 'queue_full' } },
  { error: { message: 'max_tokens: too many', type: 'invalid_request_error', param: 'max_tokens', code: null } },
];
const FIELDS = ['tokens', 'logprobs', 'finish_reason', 'stop_token_id', 'usage', 'token', 'logprob', 'top', 'error', 'message', 'type', 'param', 'code', 'other'];

function expectSame(ours: unknown, reference: { success: boolean; data?: unknown }, body: unknown): boolean {
  const shown = JSON.stringify(body)?.slice(0, 300);
  expect(ours !== undefined, shown).toBe(reference.success);
  if (reference.success) {
    expect(isDeepStrictEqual(ours, reference.data), shown).toBe(true);
    expect(JSON.stringify(ours), shown).toBe(JSON.stringify(reference.data));
  }
  return reference.success;
}

describe('what workers send, read without zod as the protocol schemas read it', () => {
  /** How many of `count` random edits of `bases` both accepted (each compared). */
  function fuzz(ours: (json: unknown) => unknown, schema: { safeParse(json: unknown): { success: boolean; data?: unknown } }, bases: Json[], seed: number, count: number): number {
    const rand = random(seed);
    let accepted = 0;
    for (let i = 0; i < count; i++) {
      const body = mutate(bases[i % bases.length], rand, FIELDS);
      accepted += expectSame(ours(body), schema.safeParse(body), body) ? 1 : 0;
    }
    return accepted;
  }

  it('Should accept and refuse 3,000 random frames exactly as GenerateEventSchema does', () => {
    const accepted = fuzz(parseGenerateEvent, GenerateEventSchema, FRAMES, 5, 3000);
    expect(accepted).toBeGreaterThan(300);
    expect(accepted).toBeLessThan(2700);
  });

  it('Should accept and refuse 2,000 random error bodies exactly as ErrorBodySchema does', () => {
    const accepted = fuzz(parseErrorBody, ErrorBodySchema, ERRORS, 6, 2000);
    expect(accepted).toBeGreaterThan(200);
    expect(accepted).toBeLessThan(1800);
  });
});

describe('a stored key record', () => {
  const record = {
    id: 'key_0123456789abcdef', hash: '0123456789abcdef'.repeat(4), hint: 'sk-dev-Ab', tenant: 'acme', name: 'ci', models: null,
    limits: { requests_per_minute: 600, tokens_per_minute: 2_000_000, concurrent_streams: 32, quota_tokens: null }, created_at: 1, revoked_at: null,
  };

  it('Should be read with its declared fields only', () => {
    expect(keyRecordOf({ ...record, extra: 1 })).toEqual(record);
    expect(JSON.stringify(keyRecordOf({ extra: 1, ...record }))).toBe(JSON.stringify(record));
    expect(keyRecordOf({ ...record, models: ['qwen3-8b-awq'], revoked_at: 5, limits: { ...record.limits, quota_tokens: 0 } })).not.toBeNull();
  });

  it.each<[string, unknown]>([
    ['not an object', 'x'],
    ['null (no record in KV)', null],
    ['a missing field', { ...record, hint: undefined }],
    ['a mistyped field', { ...record, created_at: '1' }],
    ['a model list that is not strings', { ...record, models: [1] }],
    ['a limit that is not a positive integer', { ...record, limits: { ...record.limits, concurrent_streams: 0 } }],
    ['an unknown limit', { ...record, limits: { ...record.limits, burst: 5 } }],
    ['a missing quota (null is the unlimited one)', { ...record, limits: { ...record.limits, quota_tokens: undefined } }],
  ])('Should be refused when it is %s', (_, raw) => {
    expect(keyRecordOf(raw)).toBeNull();
  });
});

describe('the key records an isolate has read', () => {
  /** A KV namespace holding one record, counting its reads; `stored` may be changed or removed between calls. */
  async function fakeKeys() {
    const hash = await sha256Hex(`sk-cache-${crypto.randomUUID()}`);
    const kv = {
      reads: 0,
      stored: {
        id: `key_${hash.slice(0, 16)}`, hash, hint: 'sk-cache', tenant: 'acme', name: '', models: null,
        limits: { requests_per_minute: 600, tokens_per_minute: 2_000_000, concurrent_streams: 32, quota_tokens: null }, created_at: 1, revoked_at: null,
      } as KeyRecord | null,
      async get(key: string) {
        kv.reads++;
        return key === `key:${hash}` ? structuredClone(kv.stored) : null;
      },
    };
    return { kv, hash, namespace: kv as unknown as KVNamespace };
  }

  it('Should read KV once per window, a lapsed record serving while one request re-reads it in the background', async () => {
    const { kv, hash, namespace } = await fakeKeys();
    const t0 = 1_000_000;
    expect((await authenticatedKey(namespace, hash, t0))?.tenant).toBe('acme');
    expect(kv.reads).toBe(1);
    expect((await authenticatedKey(namespace, hash, t0 + KEY_CACHE_MS - 1))?.tenant).toBe('acme');
    expect(kv.reads).toBe(1);
    // lapsed: 32 requests at once get the record they had without waiting, and one of them re-reads it
    kv.stored = { ...kv.stored!, limits: { ...kv.stored!.limits, concurrent_streams: 4 } };
    const background: Promise<unknown>[] = [];
    const lapsed = await Promise.all(Array.from({ length: 32 }, () => authenticatedKey(namespace, hash, t0 + KEY_CACHE_MS + 5, (work) => background.push(work))));
    expect(lapsed.map((r) => r?.limits.concurrent_streams)).toEqual(Array(32).fill(32));
    expect(background).toHaveLength(1);
    await Promise.all(background);
    expect(kv.reads).toBe(2);
    expect((await authenticatedKey(namespace, hash, t0 + KEY_CACHE_MS + 6))?.limits.concurrent_streams).toBe(4);
    expect(kv.reads).toBe(2);
  });

  it('Should share one KV read among the requests that arrive together for a key it does not hold, and read again after a failed one', async () => {
    const { kv, hash, namespace } = await fakeKeys();
    const t0 = 3_000_000;
    const first = await Promise.all(Array.from({ length: 32 }, () => authenticatedKey(namespace, hash, t0)));
    expect(first.map((r) => r?.tenant)).toEqual(Array(32).fill('acme'));
    expect(kv.reads).toBe(1);
    // older than two windows: read first, once for the burst
    const later = await Promise.all(Array.from({ length: 32 }, () => authenticatedKey(namespace, hash, t0 + 3 * KEY_CACHE_MS, () => {})));
    expect(later.every((r) => r?.tenant === 'acme')).toBe(true);
    expect(kv.reads).toBe(2);
    // a read that fails fails only its own request: the ones sharing it read again, and share that read
    const { kv: failing, hash: failingHash, namespace: failingNamespace } = await fakeKeys();
    const get = failing.get;
    failing.get = async (key: string) => {
      failing.get = get;
      failing.reads++;
      throw new Error('KV unavailable');
    };
    const outcomes = await Promise.allSettled(Array.from({ length: 4 }, () => authenticatedKey(failingNamespace, failingHash, t0)));
    expect(outcomes.map((o) => o.status)).toEqual(['rejected', 'fulfilled', 'fulfilled', 'fulfilled']);
    expect(failing.reads).toBe(2);
  });

  it('Should read KV first when nothing can refresh in the background or the record is older than two windows, and forget a key gone from KV', async () => {
    const { kv, hash, namespace } = await fakeKeys();
    const t0 = 2_000_000;
    await authenticatedKey(namespace, hash, t0);
    kv.stored = { ...kv.stored!, tenant: 'renamed' };
    expect((await authenticatedKey(namespace, hash, t0 + KEY_CACHE_MS))?.tenant).toBe('renamed'); // no background
    kv.stored = { ...kv.stored!, tenant: 'again' };
    const background: Promise<unknown>[] = [];
    expect((await authenticatedKey(namespace, hash, t0 + 3 * KEY_CACHE_MS, (work) => background.push(work)))?.tenant).toBe('again');
    expect(background).toHaveLength(0);
    expect(kv.reads).toBe(3);
    // removed from KV: the background re-read forgets it, and the next request is refused
    kv.stored = null;
    expect((await authenticatedKey(namespace, hash, t0 + 4 * KEY_CACHE_MS + 1, (work) => background.push(work)))?.tenant).toBe('again');
    await Promise.all(background);
    expect(await authenticatedKey(namespace, hash, t0 + 4 * KEY_CACHE_MS + 2, (work) => background.push(work))).toBeNull();
    // a record stored under another key's hash authenticates nothing
    const other = await fakeKeys();
    other.kv.stored = { ...other.kv.stored!, hash: hash };
    expect(await authenticatedKey(other.namespace, other.hash, t0)).toBeNull();
  });
});
