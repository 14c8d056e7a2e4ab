/**
 * @module The per-key rate limiter: one Durable Object per API key (named by the key id), so every count is exact
 * and serialised, never eventually consistent. It holds two token buckets (requests and tokens per minute), the
 * leases of the key's in-flight generations (the concurrent-stream cap) and the key's spent token quota.
 *
 * A generation is admitted with a token reservation (prompt tokens + max_tokens, as far as the edge knows them) and
 * settled once with the tokens it really used: the difference is refunded or charged, the lease released, the quota
 * charged. The token bucket may go negative after a settle (a request may use more than it reserved); it then
 * refuses until it has refilled. Limits travel with each call (they live in the key record), counters live here.
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
  /** tokens to reserve now; clamped to the bucket's capacity so a large request is delayed, not refused forever */
  tokens: number;
  /**
   * the lease's id, chosen by the caller so that it can send reserve() for it without waiting for admit()'s answer;
   * generated when absent
   */
  leaseId?: string;
};

/** A lease a lost release never gives back is reclaimed after this long (ms). */
export const LEASE_TTL_MS = 30 * 60_000;
const WINDOW_MS = 60_000;
const SETTLED_MEMORY = 256;
const REFUSALS_MEMORY = 256;

type Bucket = { level: number; at: number };
/** `streams`: the generations the request runs (prompts × n; 1 until the route has prepared it) */
type Lease = { reserved: number; streams?: number; expiresAt: number };
type Stored = {
  requests: Bucket | null;
  tokens: Bucket | null;
  leases: Record<string, Lease>;
  /** the most recent settled lease ids, so a repeated settle charges nothing */
  settled: string[];
  quotaUsed: number;
  admittedTotal?: number;
  revoked: boolean;
};

export class RateLimiter extends DurableObject {
  private state: Stored = { requests: null, tokens: null, leases: {}, settled: [], quotaUsed: 0, revoked: false };
  /** The latest refused lease ids (in memory only), so the other of admit() and reserve() answers the same. */
  private readonly refusals = new Map<string, Refused>();
  /** Added to Date.now(): tests move this object's clock forward with runInDurableObject. */
  clockOffsetMs = 0;

  constructor(ctx: DurableObjectState, env: unknown) {
    super(ctx, env as never);
    ctx.blockConcurrencyWhile(async () => {
      const stored = await ctx.storage.get<Stored>('state');
      if (stored) this.state = { ...this.state, ...stored };
    });
  }

  private now(): number {
    return Date.now() + this.clockOffsetMs;
  }

  /**
   * Takes one request, reserves tokens and a lease; or says which limit refused and for how long. A reserve() for
   * the same lease may have arrived first (two calls made one after the other do not always arrive in that order):
   * it admitted the lease, or was refused, and this call answers the same.
   */
  async admit(req: AdmitRequest): Promise<Admission> {
    const leaseId = req.leaseId ?? crypto.randomUUID();
    const now = this.now();
    const lease = this.state.leases[leaseId];
    if (lease) return { ok: true, leaseId, reserved: lease.reserved, state: this.stateAt(req.limits, now) };
    return this.refusals.get(leaseId) ?? this.admitLease(leaseId, req.tokens, req.limits, now);
  }

  private admitLease(leaseId: string, tokenCount: number, limits: RateLimits, now: number): Admission {
    this.expireLeases(now);
    const requests = refill(this.state.requests, limits.requests_per_minute, now);
    const tokens = refill(this.state.tokens, limits.tokens_per_minute, now);
    const reserve = Math.max(0, Math.min(Math.ceil(tokenCount), limits.tokens_per_minute));
    const refuse = (refusal: Refusal, retryAfterMs: number | null): Admission => {
      const refused: Refused = { ok: false, refusal, retryAfterMs, state: this.describe(limits, requests, tokens) };
      this.refusals.set(leaseId, refused);
      if (this.refusals.size > REFUSALS_MEMORY) this.refusals.delete(this.refusals.keys().next().value!);
      return refused;
    };

    if (this.state.revoked) return refuse('revoked', null);
    if (limits.quota_tokens !== null && this.state.quotaUsed >= limits.quota_tokens) return refuse('quota', null);
    if (requests.level < 1) return refuse('requests', msUntil(requests, 1, limits.requests_per_minute));
    if (tokens.level < reserve || tokens.level <= 0) {
      return refuse('tokens', msUntil(tokens, Math.max(reserve, 1), limits.tokens_per_minute));
    }
    if (this.streamsInFlight() >= limits.concurrent_streams) {
      // a stream can end any moment; the soonest lease expiry is only the worst case
      return refuse('concurrency', 1000);
    }

    requests.level -= 1;
    tokens.level -= reserve;
    this.state.requests = requests;
    this.state.tokens = tokens;
    this.state.admittedTotal = (this.state.admittedTotal ?? 0) + 1;
    this.state.leases[leaseId] = { reserved: reserve, expiresAt: now + LEASE_TTL_MS };
    this.save();
    return { ok: true, leaseId, reserved: reserve, state: this.describe(limits, requests, tokens) };
  }

  /**
   * Once the route has prepared the request: adds `tokens` to the lease's reservation and makes the lease hold
   * `streams` generations. Refused when the token bucket cannot cover the tokens now (clamped to the capacity, so any
   * request can eventually pass) or when the key's other generations leave too few streams. The lease stays until
   * settled either way.
   */
  async reserve(leaseId: string, tokens: number, streams: number, limits: RateLimits): Promise<Admission> {
    const now = this.now();
    if (!this.state.leases[leaseId] && !this.state.settled.includes(leaseId)) {
      // ahead of its admit(): admits the lease now, or answers admit()'s refusal
      const admission = this.refusals.get(leaseId) ?? this.admitLease(leaseId, 0, limits, now);
      if (!admission.ok) return admission;
    }
    const requests = refill(this.state.requests, limits.requests_per_minute, now);
    const bucket = refill(this.state.tokens, limits.tokens_per_minute, now);
    const lease = this.state.leases[leaseId];
    const want = Math.max(0, Math.min(Math.ceil(tokens), limits.tokens_per_minute));
    const refuse = (refusal: Refusal, retryAfterMs: number): Admission => ({
      ok: false, refusal, retryAfterMs, state: this.describe(limits, requests, bucket),
    });
    // against the generations of the key's prepared requests: leases still being prepared (1 each until then) would
    // otherwise refuse every request of a burst
    if (lease && this.streamsInFlight(leaseId, true) + streams > limits.concurrent_streams) return refuse('concurrency', 1000);
    if (lease && bucket.level < want) return refuse('tokens', msUntil(bucket, want, limits.tokens_per_minute));
    if (lease) {
      bucket.level -= want;
      lease.reserved += want;
      lease.streams = streams;
      this.state.tokens = bucket;
      this.save();
    }
    return { ok: true, leaseId, reserved: lease?.reserved ?? 0, state: this.describe(limits, requests, bucket) };
  }

  /**
   * Ends a lease: charges `bucketTokens` (what the generation really cost the GPU) against the token bucket, minus
   * what was reserved, and `quotaTokens` against the quota. Idempotent: a lease settles once; later calls change
   * nothing.
   */
  async settle(leaseId: string, bucketTokens: number, quotaTokens: number, limits: RateLimits): Promise<LimitState> {
    const now = this.now();
    const tokens = refill(this.state.tokens, limits.tokens_per_minute, now);
    if (!this.state.settled.includes(leaseId)) {
      // a lease that outlived LEASE_TTL_MS was reclaimed, but what it used is still charged
      const reserved = this.state.leases[leaseId]?.reserved ?? 0;
      delete this.state.leases[leaseId];
      this.state.settled = [...this.state.settled.slice(-(SETTLED_MEMORY - 1)), leaseId];
      tokens.level -= Math.max(0, Math.round(bucketTokens)) - reserved;
      this.state.tokens = tokens;
      this.state.quotaUsed += Math.max(0, Math.round(quotaTokens));
      this.save();
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

  /** Admin: the key is revoked; every later admission is refused (in-flight streams finish and settle). */
  async revoke(): Promise<void> {
    this.state.revoked = true;
    this.save();
  }

  /** Admin: forget the spent quota (e.g. at the start of a billing period). */
  async resetQuota(): Promise<void> {
    this.state.quotaUsed = 0;
    this.save();
  }

  /** Generations the key's leases hold (but `except`'s; only prepared ones when `preparedOnly`). */
  private streamsInFlight(except?: string, preparedOnly = false): number {
    let sum = 0;
    for (const [id, lease] of Object.entries(this.state.leases)) {
      if (id !== except && !(preparedOnly && lease.streams === undefined)) sum += lease.streams ?? 1;
    }
    return sum;
  }

  private expireLeases(now: number): void {
    for (const [id, lease] of Object.entries(this.state.leases)) if (lease.expiresAt <= now) delete this.state.leases[id];
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
      inFlight: this.streamsInFlight(),
      limitConcurrent: limits.concurrent_streams,
      quotaUsed: this.state.quotaUsed,
      admittedTotal: this.state.admittedTotal ?? 0,
      quotaTokens: limits.quota_tokens,
      revoked: this.state.revoked,
    };
  }

  /**
   * Persists the counters without waiting for the write: the runtime holds this call's answer until the write is
   * durable (the output gate), so no caller ever sees a count that could still be lost, while writes made close
   * together are flushed as one. Should a write fail, the runtime breaks the gate: the calls waiting on it fail and
   * the object restarts from what was stored; the failure is logged here as well.
   */
  private save(): void {
    this.ctx.storage.put('state', this.state).catch((err: unknown) => console.error('[rate-limiter] storage write failed', err));
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
