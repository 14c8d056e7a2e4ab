// What a request goes through between the routes and the extension middleware (edge/app.ts's SEAMS): the prepared
// request a route hands over before any worker is contacted, the interceptors that may answer it (the response
// cache), and the one usage report that settles however the request ends.
import type { ThinkingDecision } from './thinking-mode.ts';

/** What a route knows once the request is validated, templated and tokenised, before a worker is contacted. */
export type PreparedRequest = {
  endpoint: 'chat.completions' | 'completions';
  model: string;
  /** token ids of each prompt sent to the workers (one for chat; one per prompt for batched completions) */
  prompts: readonly (readonly number[])[];
  thinking?: ThinkingDecision;
  stream: boolean;
  /** upstream generations (prompts × n) */
  generations: number;
  /** tokens per generation */
  maxTokens: number;
  /** canonical JSON of everything that decides the output: a cache key (routes compute it when it is read) */
  readonly fingerprint: string;
  /** temperature 0 or an explicit seed */
  deterministic: boolean;
};

/**
 * How a request ended. completed: the whole answer went out. failed: a worker or the edge failed it (no worker, a
 * timeout, a worker dying mid-stream). aborted: the client left (or stopped reading). cancelled: a worker cut the
 * generation short (its shutdown grace ran out). cached: the response cache answered. rejected: refused (4xx).
 */
export type UsageOutcome = 'completed' | 'failed' | 'aborted' | 'cancelled' | 'cached' | 'rejected';

/** Tokens a request used so far. */
export type UsageCounts = Pick<UsageReport, 'promptTokens' | 'completionTokens' | 'reasoningTokens' | 'cachedTokens'>;

const NO_TOKENS: UsageCounts = { promptTokens: 0, completionTokens: 0, reasoningTokens: 0, cachedTokens: 0 };

export type UsageReport = {
  outcome: UsageOutcome;
  endpoint: PreparedRequest['endpoint'] | 'other';
  model: string;
  status: number;
  promptTokens: number;
  completionTokens: number;
  reasoningTokens: number;
  cachedTokens: number;
  thinking?: ThinkingDecision;
};

export type Interceptor = (prepared: PreparedRequest) => Promise<Response | undefined>;

/**
 * Decides whether a prepared request may be answered at all, after the interceptors: the rate limiter's admission.
 * It runs for an answer an interceptor found (`cached`) as for one a worker will make, and refuses by throwing; or it
 * lets the request go ahead while it decides (RequestLifecycle.goAheadOf).
 */
export type Gate = (prepared: PreparedRequest, cached: boolean) => Promise<void>;

/**
 * Per-request hooks between the routes and the extension middleware (edge/app.ts's SEAMS). `usage` resolves exactly
 * once whatever ends the request: the route settles it, and when the route cannot (the client left before it
 * finished, the runtime cancelled the handler, the response body was cut off), requestContext() (edge/app.ts) settles
 * it from the counts the route tracked so far.
 */
export class RequestLifecycle {
  prepared?: PreparedRequest;
  /** the authenticated key's tenant (set by auth); sent to the workers, which share their capacity among tenants */
  tenant?: string;
  /** the prepared request passed every interceptor and goes to the workers */
  admitted = false;
  /**
   * Set by the rate limiter (edge/middleware/rate-limit.ts) when it asks for a lease, which it does before the request
   * settles or not at all: resolves true once the lease is granted. Every request holding a lease gets exactly one
   * usage record (edge/middleware/metering.ts).
   */
  leased?: Promise<boolean>;
  /**
   * The streamed body settles usage itself when the client leaves or it ends (edge/sse.ts); otherwise the app watches
   * the body for that (edge/app.ts).
   */
  bodySettles = false;
  readonly usage: Promise<UsageReport>;
  /**
   * When the request reached the edge, was prepared, was admitted and had its first worker tokens (ms; 0 until then).
   * On Workers the clock moves only with I/O, so the differences time the waits: the client's body and the worker's
   * answer, the rate limiter's round trip, and the CPU of the requests queued before them on the isolate.
   */
  readonly timing = { arrived: Date.now(), prepared: 0, admitted: 0, firstTokens: 0 };
  private resolveUsage!: (report: UsageReport) => void;
  private settled = false;
  private progress?: () => UsageCounts;
  private readonly interceptors: Interceptor[] = [];
  private readonly gates: Gate[] = [];
  /** decisions a gate let the request go ahead of (goAheadOf); aborts the worker calls when one refuses */
  private pendingDecisions: Promise<void>[] = [];
  private refused?: AbortController;

  constructor() {
    this.usage = new Promise((resolve) => (this.resolveUsage = resolve));
  }

  get isSettled(): boolean {
    return this.settled;
  }

  intercept(interceptor: Interceptor): void {
    this.interceptors.push(interceptor);
  }

  gate(gate: Gate): void {
    this.gates.push(gate);
  }

  /**
   * Records the prepared request; returns a Response when an interceptor (e.g. the response cache) answers it. The
   * gates run last, whoever answers; a refusal is thrown.
   */
  async prepare(prepared: PreparedRequest): Promise<Response | undefined> {
    this.prepared = prepared;
    this.timing.prepared = Date.now();
    let answer: Response | undefined;
    for (const interceptor of this.interceptors) {
      answer = await interceptor(prepared);
      if (answer) break;
    }
    for (const gate of this.gates) await gate(prepared, answer !== undefined);
    if (answer) {
      this.settle({ outcome: 'cached', status: answer.status, ...NO_TOKENS });
      return answer;
    }
    this.admitted = true;
    this.timing.admitted = Date.now();
    return undefined;
  }

  /**
   * A gate lets the request go ahead while `decision` is still being made (the rate limiter, when the key has room):
   * the route starts its worker calls at once and answers only once every such decision passed (decided()); one that
   * refuses aborts the calls (workerSignal()) and its error is the answer.
   */
  goAheadOf(decision: Promise<void>): void {
    const refused = (this.refused ??= new AbortController());
    this.pendingDecisions.push(decision);
    decision.catch((err: unknown) => refused.abort(err));
  }

  /** The signal for the worker calls: the client's, and aborted as well when a decision gone ahead of refuses. */
  workerSignal(client: AbortSignal | undefined): AbortSignal | undefined {
    if (!this.refused) return client;
    return client ? AbortSignal.any([client, this.refused.signal]) : this.refused.signal;
  }

  /** Resolves once every decision the request went ahead of passed; rejects with the first refusal. */
  async decided(): Promise<void> {
    if (this.pendingDecisions.length > 0) await Promise.all(this.pendingDecisions);
  }

  /**
   * The `Server-Timing` header of a generation once its first tokens arrived: `edge` from arrival to the prepared
   * request (body, validation, template, tokens), `admission` the interceptors and gates (cache lookup, the rate
   * limiter's Durable Object, unless the request went ahead of its answer), `worker` from there to the first tokens
   * (signing, the worker's prefill, and an admission the request went ahead of). Browsers' developer tools show it;
   * bench/edge-overhead.mjs reads it.
   */
  serverTiming(): string {
    const { arrived, prepared, admitted, firstTokens } = this.timing;
    return `edge;dur=${prepared - arrived}, admission;dur=${admitted - prepared}, worker;dur=${firstTokens - admitted}`;
  }

  /** The route's live token counts, read if the request ends before the route settles it. */
  track(progress: () => UsageCounts): void {
    this.progress = progress;
  }

  /** Tokens used so far: what the route tracked, or none before its generations started. */
  counts(): UsageCounts {
    return this.progress?.() ?? NO_TOKENS;
  }

  /** The request ended without the route settling it; the tokens tracked so far are charged. */
  end(outcome: UsageOutcome, status: number): void {
    this.settle({ outcome, status, ...this.counts() });
  }

  /** The first call wins; endpoint, model and thinking default to the prepared request's. */
  settle(report: Omit<UsageReport, 'endpoint' | 'model'> & Partial<Pick<UsageReport, 'endpoint' | 'model'>>): void {
    if (this.settled) return;
    this.settled = true;
    this.resolveUsage({
      endpoint: this.prepared?.endpoint ?? 'other',
      model: this.prepared?.model ?? '',
      thinking: this.prepared?.thinking,
      ...report,
    });
  }
}
