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

/**
 * The admissions of one call. `answers` is made and settled by the request that opened the batch (its I/O), and the
 * others only chain on it: a request may await another's promise, but not settle one another request made.
 */
type Batch = { reqs: AdmitRequest[]; answers: Promise<Admission[]> };

export class KeyAdmissions {
  /** the key's counters as the latest answer gave them, and when (ms): this isolate's view, blind to the others' */
  private known?: { state: LimitState; at: number };
  /** what the admissions asked for and not yet answered take, once admitted: the known counters do not count them */
  private readonly unanswered = { requests: 0, tokens: 0, streams: 0 };
  /** the batch taking admissions, sent once the call before it has been answered */
  private next?: Batch;
  /** settles when the latest batch's call has been answered */
  private answering?: Promise<void>;

  /**
   * Admits `req` with the other admissions waiting for the key's next call. The request that opens a batch sends it,
   * through its own stub (`limiter()` makes it: a request whose admission rides on another's call never needs one
   * before its answer), once the call before it has been answered.
   */
  async admit(limiter: () => DurableObjectStub<RateLimiter>, req: AdmitRequest): Promise<Admission> {
    const taken = { requests: 1, tokens: reservedOf(req), streams: Math.max(1, req.streams) };
    this.count(taken, 1);
    try {
      const batch = this.next ?? this.open(limiter);
      const index = batch.reqs.push(req) - 1;
      let admission = await awaitAtMost(batch.answers.then((answers) => answers[index]), SHARED_CALL_WAIT_MS);
      if (admission === 'late') admission = (await limiter().admitAll([req]))[0];
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

  private open(limiter: () => DurableObjectStub<RateLimiter>): Batch {
    const previous = this.answering;
    const batch: Batch = { reqs: [], answers: Promise.resolve([]) };
    batch.answers = (async () => {
      // at least one microtask: the request opening the batch has joined it by then
      await (previous && awaitAtMost(previous, SHARED_CALL_WAIT_MS));
      if (this.next === batch) this.next = undefined; // the admissions arriving from now on go in the next call
      return limiter().admitAll(batch.reqs);
    })();
    this.next = batch;
    this.answering = batch.answers.then(() => undefined, () => undefined);
    return batch;
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
