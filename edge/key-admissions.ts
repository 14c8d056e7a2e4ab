/**
 * @module One API key's admissions and settles in this isolate, sent to the key's rate limiter
 * (edge/rate-limiter-do.ts) one call at a time each: the admissions that arrive while a call is being answered wait
 * and go together in the next one (admitAll), which the object decides one by one in their order, as it would
 * separate calls; settles likewise (settleAll). A burst of a busy key's requests thus costs a few round trips to its
 * Durable Object, not one each, as does the burst of their ends. The admissions' answers also tell the isolate the
 * key's counters, from which headroom() judges whether a request may start its worker calls before its own answer
 * has come (edge/middleware/rate-limit.ts).
 */
import type { Admission, AdmitRequest, LimitState, RateLimiter, RateLimits, SettleRequest } from './rate-limiter-do.ts';
import { awaitAtMost } from './shared-wait.ts';

/**
 * How long an admission or settle waits for the call another request makes for it (ms) before it asks alone: that
 * request's I/O goes if it is cancelled (edge/shared-wait.ts). Asking again is harmless: the lease id makes it the same
 * lease, and a lease settles once.
 */
export const SHARED_CALL_WAIT_MS = 2_000;
/**
 * How long after an answer its counters still serve to judge headroom (ms): as long as the isolate authenticates with
 * a key record it read (KEY_CACHE_MS, edge/key-store.ts), whose limits they are.
 */
export const KNOWN_STATE_MS = 10_000;

type Limiter = () => DurableObjectStub<RateLimiter>;

/**
 * The requests of one call. `answers` is made and settled by the request that opened the batch (its I/O), and the
 * others only chain on it: a request may await another's promise, but not settle one another request made.
 */
type Batch<Req, Answer> = { reqs: Req[]; answers: Promise<Answer[]> };

/** Calls of one kind to one key's limiter, one at a time: those asked for meanwhile go together in the next. */
class OneCallAtATime<Req, Answer> {
  /** the batch taking requests, sent once the call before it has been answered */
  private next?: Batch<Req, Answer>;
  /** settles when the latest batch's call has been answered */
  private answering?: Promise<void>;

  /** `send`: the call for a batch, made through the stub of the request that opened it */
  constructor(private readonly send: (limiter: DurableObjectStub<RateLimiter>, reqs: Req[]) => Promise<Answer[]>) {}

  /**
   * `req`'s answer, from the key's next call. The request that opens a batch sends it, through its own stub
   * (`limiter()` makes it: a request that rides on another's call never needs one), once the call before it has been
   * answered; the others wait for it at most SHARED_CALL_WAIT_MS, then ask alone.
   */
  async call(limiter: Limiter, req: Req): Promise<Answer> {
    const batch = this.next ?? this.open(limiter);
    const index = batch.reqs.push(req) - 1;
    const answer = await awaitAtMost(batch.answers.then((answers) => answers[index]), SHARED_CALL_WAIT_MS);
    return answer === 'late' ? (await this.send(limiter(), [req]))[0] : answer;
  }

  private open(limiter: Limiter): Batch<Req, Answer> {
    const previous = this.answering;
    const batch: Batch<Req, Answer> = { reqs: [], answers: Promise.resolve([]) };
    batch.answers = (async () => {
      // at least one microtask: the request opening the batch has joined it by then
      await (previous && awaitAtMost(previous, SHARED_CALL_WAIT_MS));
      if (this.next === batch) this.next = undefined; // the requests arriving from now on go in the next call
      return this.send(limiter(), batch.reqs);
    })();
    this.next = batch;
    this.answering = batch.answers.then(() => undefined, () => undefined);
    return batch;
  }
}

export class KeyAdmissions {
  /** the key's counters as the latest answer gave them, and when (ms): this isolate's view, blind to the others' */
  private known?: { state: LimitState; at: number };
  /** what the admissions asked for and not yet answered take, once admitted: the known counters do not count them */
  private readonly unanswered = { requests: 0, tokens: 0, streams: 0 };
  private readonly admissions = new OneCallAtATime<AdmitRequest, Admission>((limiter, reqs) => limiter.admitAll(reqs));
  private readonly settles = new OneCallAtATime<SettleRequest, LimitState>((limiter, reqs) => limiter.settleAll(reqs));

  /** Admits `req` with the other admissions waiting for the key's next call (see OneCallAtATime.call). */
  async admit(limiter: Limiter, req: AdmitRequest): Promise<Admission> {
    const taken = { requests: 1, tokens: reservedOf(req), streams: Math.max(1, req.streams) };
    this.count(taken, 1);
    try {
      const admission = await this.admissions.call(limiter, req);
      this.known = { state: admission.state, at: Date.now() };
      return admission;
    } finally {
      this.count(taken, -1);
    }
  }

  /** Settles `req`'s lease with the other settles waiting for the key's next call (see OneCallAtATime.call). */
  settle(limiter: Limiter, req: SettleRequest): Promise<LimitState> {
    return this.settles.call(limiter, req);
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
