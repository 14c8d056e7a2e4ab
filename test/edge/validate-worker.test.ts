// Proves edge/validate-worker.ts reads what workers send as gpu-worker/protocol.ts's zod schemas do: on seeded random
// edits of real frames and error bodies both accept the same ones with the same output (declared fields, in order)
// and refuse the rest; and edge/key-store.ts's check of a stored key record (accepted with its declared fields only,
// refused when a field is missing, mistyped or a limit unknown).
import { isDeepStrictEqual } from 'node:util';
import { describe, expect, it } from 'vitest';
import { ErrorBodySchema, GenerateEventSchema } from '../../gpu-worker/protocol.ts';
import { keyRecordOf } from '../../edge/key-store.ts';
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
