/**
 * @module The API key store: key records in KV, stored under the SHA-256 of the secret (never the secret itself),
 * with their limits and model allow-list; issuing, reading, listing and rewriting them. The auth middleware
 * (middleware/auth.ts) and the admin API (admin.ts) use it.
 */
import type { RateLimits } from './rate-limiter-do.ts';
import { toHex } from '../gpu-worker/signing.ts';
import { awaitAtMost } from './shared-wait.ts';
import { array, int, nullable, num, object, string, type Issue } from './validate.ts';

export const DEFAULT_LIMITS: RateLimits = {
  requests_per_minute: 600,
  tokens_per_minute: 2_000_000,
  concurrent_streams: 32,
  quota_tokens: null,
};

export type KeyRecord = {
  /** public handle for admin calls and usage rows: "key_" + the first 16 hex digits of the hash */
  id: string;
  /** SHA-256 of the secret, lowercase hex */
  hash: string;
  /** the first characters of the secret, to recognise it in listings ("sk-dev-Ab…") */
  hint: string;
  tenant: string;
  name: string;
  /** models this key may call; null = every served model */
  models: string[] | null;
  limits: RateLimits;
  /** Unix ms */
  created_at: number;
  revoked_at: number | null;
};

// A stored record is checked as it is read (written by another version, or by hand): its declared fields only, limits
// without unknown ones. Without zod (edge/validate.ts): every request reads a key record.
const positiveInt = int({ gt: 0 });
const limitsCheck = object(
  { requests_per_minute: positiveInt, tokens_per_minute: positiveInt, concurrent_streams: positiveInt, quota_tokens: nullable(int({ min: 0 })) },
  'strict',
);
const keyRecordCheck = object({
  id: string, hash: string, hint: string, tenant: string, name: string, models: nullable(array(string)), limits: limitsCheck,
  created_at: num(), revoked_at: nullable(num()),
});

/** The record as stored, its declared fields only, or null when it is not one. */
export function keyRecordOf(raw: unknown): KeyRecord | null {
  const issues: Issue[] = [];
  const record = keyRecordCheck(raw, issues) as KeyRecord;
  return issues.length === 0 ? record : null;
}

/** Secrets are "sk-" and 16–200 URL-safe characters (what `bearerAuth` also accepts). */
export const KEY_PATTERN = /^sk-[A-Za-z0-9._~+/-]{16,200}$/;
const RECORD_PREFIX = 'key:';

const encoder = new TextEncoder();

export async function sha256Hex(text: string): Promise<string> {
  return toHex(await crypto.subtle.digest('SHA-256', encoder.encode(text)));
}

/** Compares two strings in time independent of where they differ (both are hashed first: equal lengths). */
export async function constantTimeEqual(a: string, b: string): Promise<boolean> {
  const [da, db] = await Promise.all([
    crypto.subtle.digest('SHA-256', encoder.encode(a)),
    crypto.subtle.digest('SHA-256', encoder.encode(b)),
  ]);
  const subtle = crypto.subtle as SubtleCrypto & { timingSafeEqual?: (x: ArrayBuffer, y: ArrayBuffer) => boolean };
  if (subtle.timingSafeEqual) return subtle.timingSafeEqual(da, db) && a.length === b.length;
  const x = new Uint8Array(da), y = new Uint8Array(db);
  let diff = 0;
  for (let i = 0; i < x.length; i++) diff |= x[i] ^ y[i];
  return diff === 0 && a.length === b.length;
}

export function keyIdOf(hash: string): string {
  return `key_${hash.slice(0, 16)}`;
}

export function generateSecret(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(24));
  return `sk-${btoa(String.fromCharCode(...bytes)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '')}`;
}

export async function readKeyByHash(kv: KVNamespace, hash: string): Promise<KeyRecord | null> {
  return keyRecordOf(await kv.get(RECORD_PREFIX + hash, 'json'));
}

/**
 * How long an isolate authenticates with a key record it has read (ms) before reading KV again. A revocation is not
 * delayed by it: the admin API revokes in the key's rate limiter first, which every API request consults, so the key
 * is refused at once everywhere. Changed limits or models reach other isolates within twice this window (see
 * authenticatedKey; on top of KV's own propagation, up to ~60 s at other locations); the isolate that made the change
 * sees it at once.
 */
export const KEY_CACHE_MS = 10_000;
const KEY_CACHE_ENTRIES = 1024;
/** hash → the record as read and checked, until when it serves as it is, and whether a re-read is under way */
const recentKeys = new Map<string, { record: KeyRecord; until: number; refreshing: boolean }>();

/**
 * hash → the KV read under way for a key not in memory (seen for the first time, or read more than two windows ago),
 * which the requests for it arriving meanwhile share: a burst of a cold key's requests costs one KV read, not one each.
 */
const readsUnderWay = new Map<string, Promise<KeyRecord | null>>();
/**
 * How long a request waits for the read another request makes (ms) before it reads KV itself: that request's I/O goes
 * if it is cancelled (edge/shared-wait.ts).
 */
export const SHARED_READ_WAIT_MS = 2_000;

/** Runs work after the response (Workers: waitUntil); the caller's request keeps it alive. */
export type Background = (work: Promise<unknown>) => void;

/**
 * The record of the key whose secret hashes to `hash`, or null: from this isolate's recent reads, else from KV. A
 * record read less than KEY_CACHE_MS ago serves as it is; one read less than twice that ago still serves while one
 * request re-reads it in the `background` (so a busy key costs one KV read per window, not one per request arriving
 * after it lapsed, and none of them waits for it); an older one, or one without `background`, is read again first,
 * in one KV read that the requests arriving while it is under way share.
 * A record is kept only when its stored hash equals `hash`, compared in constant time, so a corrupt or mis-keyed
 * record authenticates nothing else. Unknown keys are not remembered: a key issued a moment ago works.
 */
export async function authenticatedKey(kv: KVNamespace, hash: string, now = Date.now(), background?: Background): Promise<KeyRecord | null> {
  const recent = recentKeys.get(hash);
  if (recent && recent.until > now) return recent.record;
  if (recent && background && recent.until + KEY_CACHE_MS > now) {
    if (!recent.refreshing) {
      recent.refreshing = true;
      background(readAuthenticated(kv, hash, now).finally(() => (recent.refreshing = false)));
    }
    return recent.record;
  }
  return sharedRead(kv, hash, now);
}

/**
 * readAuthenticated(), or the read of it another request has under way. Should that one fail or be late, the read
 * another request has started since is shared instead, or this request reads itself.
 */
async function sharedRead(kv: KVNamespace, hash: string, now: number): Promise<KeyRecord | null> {
  const underWay = readsUnderWay.get(hash);
  if (underWay) {
    const shared = await awaitAtMost(underWay, SHARED_READ_WAIT_MS).catch(() => 'late' as const);
    if (shared !== 'late') return shared;
    const newer = readsUnderWay.get(hash);
    if (newer && newer !== underWay) return sharedRead(kv, hash, now);
  }
  const read = readAuthenticated(kv, hash, now);
  readsUnderWay.set(hash, read);
  try {
    return await read;
  } finally {
    if (readsUnderWay.get(hash) === read) readsUnderWay.delete(hash);
  }
}

/** Reads the record from KV and remembers it (or forgets the key when it is gone or does not match). */
async function readAuthenticated(kv: KVNamespace, hash: string, now: number): Promise<KeyRecord | null> {
  const record = await readKeyByHash(kv, hash);
  if (!record || !(await constantTimeEqual(record.hash, hash))) {
    recentKeys.delete(hash);
    return null;
  }
  recentKeys.delete(hash); // re-inserted: the map stays in order of reading, oldest first
  recentKeys.set(hash, { record, until: now + KEY_CACHE_MS, refreshing: false });
  if (recentKeys.size > KEY_CACHE_ENTRIES) recentKeys.delete(recentKeys.keys().next().value!);
  return record;
}

/** By public id: the id is a prefix of the hash, so one prefix listing finds the record. */
export async function readKeyById(kv: KVNamespace, id: string): Promise<KeyRecord | null> {
  const m = /^key_([0-9a-f]{16})$/.exec(id);
  if (!m) return null;
  const { keys } = await kv.list({ prefix: RECORD_PREFIX + m[1] });
  for (const { name } of keys) {
    const record = await readKeyByHash(kv, name.slice(RECORD_PREFIX.length));
    if (record?.id === id) return record;
  }
  return null;
}

export async function writeKey(kv: KVNamespace, record: KeyRecord): Promise<void> {
  recentKeys.delete(record.hash);
  await kv.put(RECORD_PREFIX + record.hash, JSON.stringify(record), {
    metadata: { id: record.id, tenant: record.tenant, revoked: record.revoked_at !== null },
  });
}

export async function listKeys(kv: KVNamespace, tenant?: string): Promise<KeyRecord[]> {
  const records: KeyRecord[] = [];
  let cursor: string | undefined;
  do {
    const page = await kv.list<{ tenant?: string }>({ prefix: RECORD_PREFIX, cursor });
    const wanted = page.keys.filter((k) => !tenant || k.metadata?.tenant === tenant);
    const found = await Promise.all(wanted.map((k) => readKeyByHash(kv, k.name.slice(RECORD_PREFIX.length))));
    for (const r of found) if (r) records.push(r);
    cursor = page.list_complete ? undefined : page.cursor;
  } while (cursor);
  return records.sort((a, b) => a.created_at - b.created_at);
}

export type IssueKeyInput = {
  /** a caller-chosen secret matching KEY_PATTERN; generated when absent */
  key?: string;
  tenant: string;
  name?: string;
  models?: string[] | null;
  limits?: Partial<RateLimits>;
};

/**
 * Stores a new key and returns its record with the secret (the only time it is seen); null when a key with this
 * secret exists. The admin API's create, and a way for tests and scripts to seed a key straight into KV.
 */
export async function issueKey(kv: KVNamespace, input: IssueKeyInput): Promise<{ record: KeyRecord; secret: string } | null> {
  const secret = input.key ?? generateSecret();
  if (!KEY_PATTERN.test(secret)) throw new Error('an API key must be "sk-" followed by 16–200 URL-safe characters');
  const hash = await sha256Hex(secret);
  if (await readKeyByHash(kv, hash)) return null;
  const record: KeyRecord = {
    id: keyIdOf(hash),
    hash,
    hint: secret.slice(0, 8),
    tenant: input.tenant,
    name: input.name ?? '',
    models: input.models ?? null,
    limits: { ...DEFAULT_LIMITS, ...input.limits },
    created_at: Date.now(),
    revoked_at: null,
  };
  await writeKey(kv, record);
  return { record, secret };
}
