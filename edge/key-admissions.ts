/**
 * @module One API key's admissions in this isolate, sent to the key's rate limiter (edge/rate-limiter-do.ts) one call
 * at a time: the admissions that arrive while a call is being answered wait and go together in the next one
 * (admitAll), which the object decides one by one in their order, as it would separate calls. A burst of a busy key's
 * requests thus costs a few round trips to its Durable Object, not one each. The answers also tell the isolate the
 * key's counters, from which headroom() judges whether a request may start its worker calls before its own answer
 * has come (edge/middleware/rate-limit.ts).
 */
import type { Admission, AdmitRequest, LimitState, RateLimiter, RateLimits } from './rate-limiter-do.ts';
import { awaitAtMost } from './shared-wait.ts';

/**
 * How long an admission waits for the call another request makes for it (ms) before it asks alone: that request's
 * I/O goes if it is cancelled (edge/shared-wait.ts). Asking again is harmless: the lease id makes it the same lease.
 */
export const SHARED_CALL_WAIT_MS = 2_000;
/**
 * How long after an answer its counters still serve to judge headroom (ms): as long as the isolate authenticates with
 * a key record it read (KEY_CACHE_MS, edge/key-store.ts), whose limits they are.
 */
export const KNOWN_STATE_MS = 10_000;

type Waiting = { req: AdmitRequest; resolve: (admission: Admission) => void; reject: (err: unknown) => void };

export class KeyAdmissions {
  /** the key's counters as the latest answer gave them, and when (ms): this isolate's view, blind to the others' */
  private known?: { state: LimitState; at: number };
  /** what the admissions asked for and not yet answered take, once admitted: the known counters do not count them */
  private readonly unanswered = { requests: 0, tokens: 0, streams: 0 };
  /** admissions for the next call */
  private waiting: Waiting[] = [];
  /** the call being answered */
  private answering?: Promise<unknown>;

  /**
   * Admits `req` with the other admissions waiting for the key's next call. The first one to wait sends that call
   * through its own request's `limiter` stub, once the call before it has been answered.
   */
  async admit(limiter: DurableObjectStub<RateLimiter>, req: AdmitRequest): Promise<Admission> {
    const taken = { requests: 1, tokens: reservedOf(req), streams: Math.max(1, req.streams) };
    this.count(taken, 1);
    try {
      let waiting!: Waiting;
      const answer = new Promise<Admission>((resolve, reject) => (waiting = { req, resolve, reject }));
      this.waiting.push(waiting);
      if (this.waiting.length === 1) void this.sendNext(limiter);
      let admission = await awaitAtMost(answer, SHARED_CALL_WAIT_MS);
      if (admission === 'late') {
        this.waiting = this.waiting.filter((w) => w !== waiting);
        admission = (await limiter.admitAll([req]))[0];
      }
      this.known = { state: admission.state, at: Date.now() };
      return admission;
    } finally {
      this.count(taken, -1);
    }
  }

  /**
   * Whether the key's known counters leave room for one more request taking `tokens` and `streams` after every
   * admission still unanswered: then it may start before its answer comes, which will almost always admit it (only
   * another isolate's admissions, a revocation or a changed limit since the last answer can make it refuse).
   */
  headroom(limits: RateLimits, tokens: number, streams: number, now = Date.now()): boolean {
    const known = this.known;
    if (!known || now - known.at > KNOWN_STATE_MS) return false;
    const { state } = known;
    const sameLimits = state.limitRequests === limits.requests_per_minute && state.limitTokens === limits.tokens_per_minute
      && state.limitConcurrent === limits.concurrent_streams && state.quotaTokens === limits.quota_tokens;
    if (!sameLimits || state.revoked) return false;
    const { requests, tokens: reserved, streams: held } = this.unanswered;
    const reserve = Math.min(Math.max(0, Math.ceil(tokens)), limits.tokens_per_minute);
    if (state.quotaTokens !== null && state.quotaUsed + reserved + reserve >= state.quotaTokens) return false;
    return state.remainingRequests - requests >= 1 && state.remainingTokens - reserved >= Math.max(reserve, 1)
      && state.inFlight + held + streams <= state.limitConcurrent;
  }

  private async sendNext(limiter: DurableObjectStub<RateLimiter>): Promise<void> {
    if (this.answering) await awaitAtMost(this.answering, SHARED_CALL_WAIT_MS).catch(() => undefined);
    const batch = this.waiting;
    this.waiting = [];
    if (batch.length === 0) return;
    let call: Promise<Admission[]> | undefined;
    try {
      call = this.answering = limiter.admitAll(batch.map((w) => w.req));
      const answers = await call;
      batch.forEach((w, i) => w.resolve(answers[i]));
    } catch (err) {
      for (const w of batch) w.reject(err);
    } finally {
      if (this.answering === call) this.answering = undefined;
    }
  }

  private count(taken: { requests: number; tokens: number; streams: number }, sign: 1 | -1): void {
    this.unanswered.requests += sign * taken.requests;
    this.unanswered.tokens += sign * taken.tokens;
    this.unanswered.streams += sign * taken.streams;
  }
}

/** The tokens the limiter reserves for `req` (it clamps them to the bucket's capacity). */
function reservedOf(req: AdmitRequest): number {
  return Math.min(Math.max(0, Math.ceil(req.tokens)), req.limits.tokens_per_minute);
}
