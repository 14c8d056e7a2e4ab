/**
 * @module The per-key rate limiter: one Durable Object per API key (named by the key id), so every count is exact
 * and serialised, never eventually consistent. It holds two token buckets (requests and tokens per minute), the
 * leases of the key's in-flight generations (the concurrent-stream cap) and the key's spent token quota.
 *
 * A generation is admitted with a token reservation (prompt tokens + max_tokens, as far as the edge knows them) and
 * settled once with the tokens it really used: the difference is refunded or charged, the lease released, the quota
 * charged. The token bucket may go negative after a settle (a request may use more than it reserved); it then
 * refuses until it has refilled. Limits travel with each call (they live in the key record), counters live here.
 *
 * The state in memory is authoritative: every admission and settle decides from it, so admission is exact while the
 * object lives (it never admits past a limit, and a lease is counted once and released once). Storage is its copy,
 * for a restart: changes are written FLUSH_DELAY_MS after the first one since the last write, all together in one
 * commit, and answers do not wait for that commit. A burst of admissions and settles thus costs one commit, not one
 * each, and a lease admitted and settled between two flushes is never written at all (its charges are, in the
 * counters). The trade: a crash of the object (or of its machine, or a code update that resets it) forgets the changes of
 * at most its last FLUSH_DELAY_MS, and restarts from the last flush. Forgotten admissions give their requests and
 * reserved tokens back and their leases are gone (their settles then charge nothing: neither bucket nor quota);
 * forgotten settles lose their charges and their leases come back, holding their streams until LEASE_TTL_MS
 * reclaims them. Admin changes (revoke, quota reset) are written at once and answered only when durable. The object
 * is evicted only when idle, which is seconds after its last call and so after its last flush.
 */
import { DurableObject } from 'cloudflare:workers';

export type RateLimits = {
  requests_per_minute: number;
  tokens_per_minute: number;
  /** in-flight generations (streamed or not; a request with prompts × n generations holds that many) */
  concurrent_streams: number;
  /** lifetime token quota (prompt + completion); null = none */
  quota_tokens: number | null;
};

/** What the response headers report; durations in ms. */
export type LimitState = {
  limitRequests: number;
  limitTokens: number;
  remainingRequests: number;
  remainingTokens: number;
  /** ms until the requests bucket is full again */
  resetRequestsMs: number;
  /** ms until the tokens bucket is full again */
  resetTokensMs: number;
  inFlight: number;
  limitConcurrent: number;
  quotaUsed: number;
  quotaTokens: number | null;
  /** requests ever admitted (each took a lease; each leaves one usage record) */
  admittedTotal: number;
  /** revoked here: effective at once everywhere, unlike the KV record, which other locations may cache ~60 s */
  revoked: boolean;
};

export type Refusal = 'requests' | 'tokens' | 'concurrency' | 'quota' | 'revoked';

export type Refused = {
  ok: false;
  refusal: Refusal;
  /** ms until a retry can succeed; null = never by waiting (quota) */
  retryAfterMs: number | null;
  state: LimitState;
};
export type Admission = { ok: true; leaseId: string; reserved: number; state: LimitState } | Refused;

export type AdmitRequest = {
  limits: RateLimits;
  /**
   * tokens to reserve: the prompt plus every generation's max tokens (0 for a request that never reached a worker);
   * clamped to the bucket's capacity so a large request is delayed, not refused forever
   */
  tokens: number;
  /** generations the lease holds: prompts × n (1 for a request that never reached a worker) */
  streams: number;
  /** the lease's id, chosen by the caller so that it can register the lease's settle before the answer comes */
  leaseId?: string;
};

/** One lease's end: what its generation really cost the GPU (`bucketTokens`) and the quota (`quotaTokens`). */
export type SettleRequest = { leaseId: string; bucketTokens: number; quotaTokens: number; limits: RateLimits };

/** A lease a lost release never gives back is reclaimed after this long (ms); its settle, if it comes, still charges. */
export const LEASE_TTL_MS = 30 * 60_000;
/**
 * How long after a change, with no write pending, the changes so far are written (ms): the admissions and settles
 * within it share one commit. A crash forgets at most this long of changes (see the module comment).
 */
export const FLUSH_DELAY_MS = 10;
const WINDOW_MS = 60_000;

type Bucket = { level: number; at: number };
/** `streams`: the generations the request runs (absent in leases stored before it existed: 1) */
type Lease = { reserved: number; streams?: number; expiresAt: number };
/** The counters: one small record, rewritten with every change. */
type Counters = {
  requests: Bucket | null;
  tokens: Bucket | null;
  quotaUsed: number;
  admittedTotal?: number;
  revoked: boolean;
};
type State = Counters & {
  /** the leases in flight; a settle removes its lease, so a repeated settle finds nothing to charge */
  leases: Record<string, Lease>;
  /** leases reclaimed by LEASE_TTL_MS that were never settled: a late settle still charges what they used */
  reclaimed: Record<string, Lease>;
};

/**
 * Storage: the counters under one key and each lease under a key of its own, so that a flush writes the counters and
 * the leases that changed, however many streams are in flight. Writes made in one turn are committed together
 * (atomically), so the counters and the leases they account for never disagree.
 */
const COUNTERS_KEY = 'counters';
const LEASE_PREFIX = 'lease:';
const RECLAIMED_PREFIX = 'reclaimed:';
/** where versions before the per-lease keys stored everything, as one record: read once and rewritten */
const ONE_RECORD_KEY = 'state';
/** keys one put or delete may name */
const KEYS_PER_CALL = 128;

/** The limiter's state as stored: either layout (an older version's one record is moved into the current one). */
export async function loadState(storage: DurableObjectStorage): Promise<State> {
  const [counters, leases, reclaimed, oneRecord] = await Promise.all([
    storage.get<Counters>(COUNTERS_KEY),
    storage.list<Lease>({ prefix: LEASE_PREFIX }),
    storage.list<Lease>({ prefix: RECLAIMED_PREFIX }),
    storage.get<Partial<State> & { settled?: unknown }>(ONE_RECORD_KEY),
  ]);
  const state: State = { requests: null, tokens: null, quotaUsed: 0, revoked: false, ...counters, leases: {}, reclaimed: {} };
  for (const [key, lease] of leases) state.leases[key.slice(LEASE_PREFIX.length)] = lease;
  for (const [key, lease] of reclaimed) state.reclaimed[key.slice(RECLAIMED_PREFIX.length)] = lease;
  if (oneRecord) {
    // the settled-id list of still older versions is dropped: a lease's absence says it now
    const { settled: _, leases: oldLeases = {}, reclaimed: oldReclaimed = {}, ...oldCounters } = oneRecord;
    Object.assign(state, oldCounters);
    Object.assign(state.leases, oldLeases);
    Object.assign(state.reclaimed, oldReclaimed);
    write(storage, {
      [COUNTERS_KEY]: countersOf(state), ...prefixed(LEASE_PREFIX, state.leases), ...prefixed(RECLAIMED_PREFIX, state.reclaimed),
    }, [ONE_RECORD_KEY]);
  }
  return state;
}

function countersOf(state: State): Counters {
  const { requests, tokens, quotaUsed, admittedTotal, revoked } = state;
  return { requests, tokens, quotaUsed, admittedTotal, revoked };
}

function prefixed(prefix: string, leases: Record<string, Lease>): Record<string, Lease> {
  return Object.fromEntries(Object.entries(leases).map(([id, lease]) => [prefix + id, lease]));
}

/**
 * Writes and deletes without waiting, committed together (one turn). `confirmed`: the runtime holds every answer the
 * object gives until they are durable (the output gate); otherwise answers go out before (the flush's trade, see
 * the module comment). Should a write fail, the runtime breaks the object: calls in progress fail and it restarts
 * from what was stored; the failure is logged here as well.
 */
function write(storage: DurableObjectStorage, entries: Record<string, unknown>, deletions: readonly string[] = [], confirmed = true): void {
  const options = { allowUnconfirmed: !confirmed };
  if (deletions.length === 1) storage.delete(deletions[0], options).catch(writeFailed);
  else for (let i = 0; i < deletions.length; i += KEYS_PER_CALL) storage.delete(deletions.slice(i, i + KEYS_PER_CALL), options).catch(writeFailed);
  const keys = Object.keys(entries);
  if (keys.length === 0) return;
  if (keys.length <= KEYS_PER_CALL) return void storage.put(entries, options).catch(writeFailed);
  for (let i = 0; i < keys.length; i += KEYS_PER_CALL) {
    storage.put(Object.fromEntries(keys.slice(i, i + KEYS_PER_CALL).map((key) => [key, entries[key]])), options).catch(writeFailed);
  }
}

function writeFailed(err: unknown): void {
  console.error('[rate-limiter] storage write failed', err);
}

export class RateLimiter extends DurableObject {
  private state: State = { requests: null, tokens: null, leases: {}, reclaimed: {}, quotaUsed: 0, revoked: false };
  /** generations the leases hold (the sum over state.leases, kept as they change: read on every call) */
  private streams = 0;
  /** no lease expires, and no reclaimed one is forgotten, before this time (ms): expireLeases() has nothing to do */
  private nextExpiryAt = 0;
  /** storage keys changed since the last flush: the lease to write there, or null to delete it */
  private unwritten = new Map<string, Lease | null>();
  private countersChanged = false;
  private flushTimer: ReturnType<typeof setTimeout> | undefined;
  /** Added to Date.now(): tests move this object's clock forward with runInDurableObject. */
  clockOffsetMs = 0;
  /** FLUSH_DELAY_MS; tests hold writes back longer with runInDurableObject */
  flushDelayMs = FLUSH_DELAY_MS;

  constructor(ctx: DurableObjectState, env: unknown) {
    super(ctx, env as never);
    ctx.blockConcurrencyWhile(async () => {
      this.state = await loadState(ctx.storage);
      for (const lease of Object.values(this.state.leases)) this.streams += lease.streams ?? 1;
    });
  }

  private now(): number {
    return Date.now() + this.clockOffsetMs;
  }

  /**
   * Takes one request, a lease on `streams` generations and a reservation of `tokens`; or says which limit refused
   * and for how long. Each request is admitted once, when the route has tokenized the prompt (or, for a request that
   * never got that far, when it has been answered). Asked again for a lease it holds, it answers the same.
   */
  async admit(req: AdmitRequest): Promise<Admission> {
    return (await this.admitAll([req]))[0];
  }

  /**
   * admit() for each request, in their order, in one call: the edge sends the admissions of one key that arrived
   * while its previous call was answered together (edge/key-admissions.ts), one round trip for all of them.
   */
  async admitAll(reqs: AdmitRequest[]): Promise<Admission[]> {
    const now = this.now();
    this.expireLeases(now);
    return reqs.map((req) => this.decide(req, now));
  }

  private decide(req: AdmitRequest, now: number): Admission {
    const leaseId = req.leaseId ?? crypto.randomUUID();
    const { limits } = req;
    const held = this.state.leases[leaseId];
    if (held) return { ok: true, leaseId, reserved: held.reserved, state: this.stateAt(limits, now) };
    const requests = refill(this.state.requests, limits.requests_per_minute, now);
    const tokens = refill(this.state.tokens, limits.tokens_per_minute, now);
    const reserve = Math.max(0, Math.min(Math.ceil(req.tokens), limits.tokens_per_minute));
    const streams = Math.max(1, req.streams);
    const refuse = (refusal: Refusal, retryAfterMs: number | null): Refused => ({
      ok: false, refusal, retryAfterMs, state: this.describe(limits, requests, tokens),
    });

    if (this.state.revoked) return refuse('revoked', null);
    if (limits.quota_tokens !== null && this.state.quotaUsed >= limits.quota_tokens) return refuse('quota', null);
    if (requests.level < 1) return refuse('requests', msUntil(requests, 1, limits.requests_per_minute));
    if (tokens.level < reserve || tokens.level <= 0) {
      return refuse('tokens', msUntil(tokens, Math.max(reserve, 1), limits.tokens_per_minute));
    }
    if (this.streams + streams > limits.concurrent_streams) {
      // a stream can end any moment; the soonest lease expiry is only the worst case
      return refuse('concurrency', 1000);
    }

    requests.level -= 1;
    tokens.level -= reserve;
    this.state.requests = requests;
    this.state.tokens = tokens;
    this.state.admittedTotal = (this.state.admittedTotal ?? 0) + 1;
    const lease: Lease = { reserved: reserve, streams, expiresAt: now + LEASE_TTL_MS };
    this.state.leases[leaseId] = lease;
    this.streams += streams;
    this.nextExpiryAt = Math.min(this.nextExpiryAt, now + LEASE_TTL_MS);
    this.changed(LEASE_PREFIX + leaseId, lease);
    return { ok: true, leaseId, reserved: reserve, state: this.describe(limits, requests, tokens) };
  }

  /**
   * Ends a lease: charges `bucketTokens` (what the generation really cost the GPU) against the token bucket, minus
   * what was reserved, and `quotaTokens` against the quota. Idempotent: a lease settles once (it is gone after), so a
   * settle repeated after a lost answer changes nothing.
   */
  async settle(leaseId: string, bucketTokens: number, quotaTokens: number, limits: RateLimits): Promise<LimitState> {
    return (await this.settleAll([{ leaseId, bucketTokens, quotaTokens, limits }]))[0];
  }

  /**
   * settle() for each lease, in their order, in one call: the edge sends the settles of one key that arrived while its
   * previous call was answered together (edge/key-admissions.ts), one round trip for all of them.
   */
  async settleAll(reqs: SettleRequest[]): Promise<LimitState[]> {
    const now = this.now();
    return reqs.map((req) => this.end(req, now));
  }

  private end({ leaseId, bucketTokens, quotaTokens, limits }: SettleRequest, now: number): LimitState {
    const tokens = refill(this.state.tokens, limits.tokens_per_minute, now);
    const live = this.state.leases[leaseId];
    const lease = live ?? this.state.reclaimed[leaseId];
    if (lease) {
      if (live) this.streams -= lease.streams ?? 1;
      delete this.state.leases[leaseId];
      delete this.state.reclaimed[leaseId];
      tokens.level -= Math.max(0, Math.round(bucketTokens)) - lease.reserved;
      this.state.tokens = tokens;
      this.state.quotaUsed += Math.max(0, Math.round(quotaTokens));
      this.changed((live ? LEASE_PREFIX : RECLAIMED_PREFIX) + leaseId, null);
    }
    const requests = refill(this.state.requests, limits.requests_per_minute, now);
    return this.describe(limits, requests, tokens);
  }

  /** The counters as headers would show them, changing nothing. */
  async peek(limits: RateLimits): Promise<LimitState> {
    const now = this.now();
    this.expireLeases(now);
    return this.stateAt(limits, now);
  }

  /** Admin: the key is revoked; every later admission is refused (in-flight streams finish and settle). Durable when answered. */
  async revoke(): Promise<void> {
    this.state.revoked = true;
    this.changed();
    await this.sync();
  }

  /** Admin: forget the spent quota (e.g. at the start of a billing period). Durable when answered. */
  async resetQuota(): Promise<void> {
    this.state.quotaUsed = 0;
    this.changed();
    await this.sync();
  }

  /** Writes every change not yet written now; answers once they are durable. */
  async sync(): Promise<void> {
    if (this.flushTimer !== undefined) this.flush(true);
  }

  /** Leases past their TTL stop counting; they are kept (one more TTL) for a settle that may still come. */
  private expireLeases(now: number): void {
    if (now < this.nextExpiryAt) return;
    let next = Infinity;
    const { reclaimed } = this.state;
    for (const [id, lease] of Object.entries(reclaimed)) {
      if (lease.expiresAt + LEASE_TTL_MS > now) {
        next = Math.min(next, lease.expiresAt + LEASE_TTL_MS);
        continue;
      }
      delete reclaimed[id];
      this.changed(RECLAIMED_PREFIX + id, null);
    }
    for (const [id, lease] of Object.entries(this.state.leases)) {
      if (lease.expiresAt > now) {
        next = Math.min(next, lease.expiresAt);
        continue;
      }
      delete this.state.leases[id];
      this.streams -= lease.streams ?? 1;
      reclaimed[id] = lease;
      this.changed(RECLAIMED_PREFIX + id, lease);
      this.changed(LEASE_PREFIX + id, null);
      next = Math.min(next, lease.expiresAt + LEASE_TTL_MS);
    }
    this.nextExpiryAt = next;
  }

  private stateAt(limits: RateLimits, now: number): LimitState {
    return this.describe(limits, refill(this.state.requests, limits.requests_per_minute, now), refill(this.state.tokens, limits.tokens_per_minute, now));
  }

  private describe(limits: RateLimits, requests: Bucket, tokens: Bucket): LimitState {
    return {
      limitRequests: limits.requests_per_minute,
      limitTokens: limits.tokens_per_minute,
      remainingRequests: Math.max(0, Math.floor(requests.level)),
      remainingTokens: Math.max(0, Math.floor(tokens.level)),
      resetRequestsMs: msUntil(requests, limits.requests_per_minute, limits.requests_per_minute),
      resetTokensMs: msUntil(tokens, limits.tokens_per_minute, limits.tokens_per_minute),
      inFlight: this.streams,
      limitConcurrent: limits.concurrent_streams,
      quotaUsed: this.state.quotaUsed,
      admittedTotal: this.state.admittedTotal ?? 0,
      quotaTokens: limits.quota_tokens,
      revoked: this.state.revoked,
    };
  }

  /**
   * Notes a change to write at the next flush: the counters, and the lease stored under `key` (null: delete it).
   * The first change since the last flush schedules the next one.
   */
  private changed(key?: string, lease?: Lease | null): void {
    this.countersChanged = true;
    // a lease that ends before its flush was never written: nothing to write, nothing to delete
    if (key !== undefined && !lease && this.unwritten.get(key)) this.unwritten.delete(key);
    else if (key !== undefined) this.unwritten.set(key, lease ?? null);
    this.flushTimer ??= setTimeout(() => this.flush(), this.flushDelayMs);
  }

  /** Writes every change since the last flush in one commit (see write(); `confirmed` for the admin calls). */
  private flush(confirmed = false): void {
    clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    const entries: Record<string, unknown> = this.countersChanged ? { [COUNTERS_KEY]: countersOf(this.state) } : {};
    const deletions: string[] = [];
    for (const [key, lease] of this.unwritten) {
      if (lease) entries[key] = lease;
      else deletions.push(key);
    }
    this.unwritten.clear();
    this.countersChanged = false;
    write(this.ctx.storage, entries, deletions, confirmed);
  }
}

/** The bucket's level now: it refills `capacity` per minute, continuously, up to `capacity`. */
function refill(bucket: Bucket | null, capacity: number, now: number): Bucket {
  if (!bucket) return { level: capacity, at: now };
  const elapsed = Math.max(0, now - bucket.at);
  return { level: Math.min(capacity, bucket.level + (elapsed * capacity) / WINDOW_MS), at: now };
}

/** ms until the bucket holds `amount` (0 when it already does). */
function msUntil(bucket: Bucket, amount: number, capacity: number): number {
  const missing = Math.min(amount, capacity) - bucket.level;
  return missing <= 0 ? 0 : Math.ceil((missing * WINDOW_MS) / capacity);
}
