// The edge's side of POST /v1/generate: a pool of GPU workers (WORKER_URLS, plus the fleet's members when
// membership is on: edge/membership.ts), HMAC-signed requests, routing by rendezvous hash of the prompt's leading
// token block (requests sharing a system prompt land on the worker whose prefix cache holds it), least-loaded
// fallback, retry on another worker until the first token, timeouts, scale from zero when no worker is live, and
// the worker's SSE frames parsed and validated against gpu-worker/protocol.ts. Members get the same health rules
// as static workers (edge/worker-health.ts); a member that is draining or has expired is never routed to.
//
// Whose fault a failure is decides what happens to it: a worker's 4xx is the client's (the client gets the same
// error, with the parameter named as the client sent it, and the worker's health is untouched); a worker's 503 with
// Retry-After is backpressure (another worker is tried, else the client gets 503 + Retry-After, and nothing is marked
// unhealthy); only connection failures, 5xx, broken streams and timeouts count against a worker.
import { HTTPException } from 'hono/http-exception';
import { GENERATE_PATH } from '../gpu-worker/protocol-basics.ts';
import type { ErrorBody, GenerateEvent, GenerateRequestInput } from '../gpu-worker/protocol.ts';
import { signRequest } from '../gpu-worker/signing.ts';
import { apiError, noHealthyWorker, upstreamTimeout, workersBusy } from './errors.ts';
import { parseErrorBody, parseGenerateEvent } from './validate-worker.ts';
import type { Member, Membership } from './membership.ts';
import { WorkerHealth, type Background, type FailureKind, type ProbeResult, type WorkerHealthSnapshot } from './worker-health.ts';

/**
 * Leading prompt tokens that pick the worker. A system prompt (or tool list) longer than this always maps to one
 * worker whatever follows; prompts without one spread by their first words. Load, not the hash, decides when the
 * preferred worker runs LOAD_SLACK streams more than the least-loaded one.
 */
export const ROUTING_BLOCK_TOKENS = 64;
/** workers tried for one request before giving up */
export const MAX_ATTEMPTS = 3;
/**
 * Token ids a worker can send: the rows of Qwen3's embedding (config.json vocab_size, the same for every dense Qwen3
 * size). The tokenizer names the first 151,669; the padded rows above decode to nothing but still count as tokens.
 */
export const MODEL_VOCAB_SIZE = 151_936;
/**
 * In-flight streams the preferred worker may carry above the least-loaded one before affinity yields to load. A
 * fleet member reports its batch size (MAX_BATCH) and may then carry half of it more: streams batched on one GPU
 * cost little extra per step, while losing the cached prefix costs a prefill (docs/fleet.md#how-the-edge-finds-workers).
 */
export const LOAD_SLACK = 8;
/** while a request waits for a starting worker, the pool looks for one this often (ms) */
const HOLD_POLL_MS = 100;
export type UpstreamOptions = {
  urls: readonly string[];
  secret: string;
  timeoutMs: number;
  /** GET /ready of a worker (tests replace it) */
  probe?: (url: string) => Promise<ProbeResult>;
  /** whether a worker's context holds this many tokens (edge/worker-contexts.ts); unset: every worker does */
  holds?: (url: string, tokens: number) => boolean;
  /** the fleet registry's members join the WORKER_URLS workers */
  membership?: Membership;
};

/**
 * A worker the pool knows: from WORKER_URLS (`fixed`), or a fleet member (`member`: its last heartbeat). A member
 * that left stays here, unrouted, until its in-flight streams have ended.
 */
type WorkerSlot = { url: string; key: number; inflight: number; fixed: boolean; member?: Member };

/** One worker as this isolate sees it: health, in-flight streams, and for members what their last heartbeat said. */
export type WorkerSnapshot = WorkerHealthSnapshot & {
  inflight: number;
  source: 'WORKER_URLS' | 'fleet';
  /** members: loading | ready | draining; WORKER_URLS workers: null */
  state: Member['state'] | null;
  /** tokens one sequence may hold (members; null when unknown) */
  max_context: number | null;
  max_batch: number | null;
  running: number | null;
  waiting: number | null;
  kv_blocks_free: number | null;
  /** ms until a member is out unless it heartbeats again */
  expires_in_ms: number | null;
};

/**
 * A worker failed, misbehaved, was busy or cut the generation; failures before the first token are retried on
 * another worker. Neither `busy` (the worker's 503 + Retry-After: its queue is full or it is draining, or it
 * cancelled the request before its first token) nor `cancelled` (it cut a started generation short, finish_reason
 * "cancelled", e.g. when its shutdown grace ran out) is held against the worker.
 */
export class UpstreamError extends Error {
  constructor(
    message: string,
    readonly kind: FailureKind | 'busy' | 'cancelled',
    /** busy: seconds the worker asked to wait */
    readonly retryAfterS = 1,
  ) {
    super(message);
    this.name = 'UpstreamError';
  }
}

/**
 * The client's names for the worker's request fields, for a worker's 400 naming one: e.g. chat's `prompt` is the
 * client's `messages`. Unlisted fields keep their name, `sampling.` dropped (`sampling.top_p` is `top_p`).
 */
export type ClientParams = Partial<Record<string, string | null>>;

export type GenerateOptions = {
  params?: ClientParams;
  /** keeps health probes alive after the response (Workers: waitUntil); without it they simply run */
  background?: Background;
};

export class UpstreamPool {
  private workers: WorkerSlot[];
  readonly health: WorkerHealth;
  private readonly membership?: Membership;

  constructor(private readonly options: UpstreamOptions) {
    this.workers = options.urls.map((url) => ({ url, key: hashString(url), inflight: 0, fixed: true }));
    this.health = new WorkerHealth(options.urls, options.probe);
    this.membership = options.membership;
  }

  snapshot(now = Date.now()): WorkerSnapshot[] {
    const health = new Map(this.health.snapshot(now).map((h) => [h.url, h]));
    return this.workers.map((w) => {
      const m = w.member;
      return {
        ...health.get(w.url)!, inflight: w.inflight, source: w.fixed ? 'WORKER_URLS' : 'fleet', state: m?.state ?? null,
        max_context: m?.max_context ?? null, max_batch: m?.max_batch ?? null, running: m?.running ?? null,
        waiting: m?.waiting ?? null, kv_blocks_free: m?.kv_blocks_free ?? null, expires_in_ms: m ? Math.max(0, m.expiresAt - now) : null,
      };
    });
  }

  /** The largest context (tokens) among the ready members' last heartbeats; undefined when none says. */
  largestMemberContext(now = Date.now()): number | undefined {
    const contexts = this.workers.flatMap((w) => (w.member && inFleet(w, now) && w.member.max_context !== null ? [w.member.max_context] : []));
    return contexts.length > 0 ? Math.max(...contexts) : undefined;
  }

  /** Re-reads the fleet's members (at most once per refresh interval; edge/membership.ts) and makes them workers. */
  async refreshMembers(background: Background = (work) => void work.catch(() => undefined)): Promise<void> {
    if (!this.membership) return;
    const fallback = this.workers.some((w) => w.fixed && this.health.isUp(w.url));
    const members = await this.membership.current(background, fallback);
    const byUrl = new Map(members.map((m) => [m.url, m]));
    const kept = this.workers.filter((w) => w.fixed || byUrl.has(w.url) || w.inflight > 0);
    for (const w of kept) w.member = byUrl.get(w.url);
    for (const m of members) {
      if (!kept.some((w) => w.url === m.url)) kept.push({ url: m.url, key: hashString(m.url), inflight: 0, fixed: false, member: m });
    }
    this.workers = kept;
    this.health.track(kept.map((w) => w.url));
  }

  /**
   * Workers in rotation in the order to try them: the prompt's rendezvous winner first (unless overloaded), then
   * least loaded; workers that said they are busy go last. The rendezvous is among the workers in the fleet now
   * (WORKER_URLS, ready members), so a member joining or leaving moves only the prompts it wins or won.
   */
  order(prompt: readonly number[], now = Date.now()): string[] {
    const key = hashIds(prompt, ROUTING_BLOCK_TOKENS);
    const fleet = this.workers.filter((w) => inFleet(w, now));
    const healthy = fleet.filter((w) => this.health.isUp(w.url));
    if (healthy.length === 0) return [];
    const byLoad = [...healthy].sort((a, b) => a.inflight - b.inflight || score(b.key, key) - score(a.key, key));
    const preferred = fleet.reduce((best, w) => (score(w.key, key) > score(best.key, key) ? w : best));
    const usePreferred = this.health.isUp(preferred.url) && preferred.inflight - byLoad[0].inflight < slackOf(preferred) &&
      !(preferred.member && preferred.member.waiting > 0);
    const ordered = usePreferred ? [preferred, ...byLoad.filter((w) => w !== preferred)] : byLoad;
    const busy = (w: WorkerSlot) => (this.health.isBusy(w.url, now) ? 1 : 0);
    return ordered.sort((a, b) => busy(a) - busy(b)).map((w) => w.url);
  }

  /** Whether a worker's context holds `tokens`: a member says so in its heartbeat, a WORKER_URLS worker through `holds`. */
  private holds(url: string, tokens: number): boolean {
    const maxContext = this.workers.find((w) => w.url === url)?.member?.max_context;
    return maxContext != null ? maxContext >= tokens : (this.options.holds?.(url, tokens) ?? true);
  }

  /**
   * Nothing in rotation. Without membership: 503 at once. With it, and no worker in the fleet at all, the registry
   * is asked to call the scale-up webhook (once per cool-down window); while a worker is starting (the call is in
   * its window, or a member is loading) the request waits up to SCALE_UP_WAIT_MS for one to be ready; else 503 with
   * Retry-After.
   */
  private async awaitWorker(prompt: readonly number[], signal: AbortSignal | undefined, background: Background): Promise<string[]> {
    const membership = this.membership;
    const outOfRotation = () => noHealthyWorker('every worker is out of rotation until its /ready answers', this.health.retryAfterS());
    if (!membership) throw this.workers.length === 0 ? noHealthyWorker('WORKER_URLS is empty') : outOfRotation();
    if (!this.workers.some((w) => inFleet(w, Date.now()))) membership.requestScaleUp(background);
    const deadline = Date.now() + membership.options.scaleUpWaitMs;
    while (membership.starting() && Date.now() < deadline) {
      await abortableSleep(Math.min(HOLD_POLL_MS, deadline - Date.now()), signal);
      await this.refreshMembers(background);
      this.health.probeOutOfRotation(background);
      const candidates = this.order(prompt);
      if (candidates.length > 0) return candidates;
    }
    if (this.workers.some((w) => inFleet(w, Date.now()))) throw outOfRotation();
    const retryAfterS = membership.options.scaleUpRetryAfterS;
    if (membership.starting()) throw noHealthyWorker('no worker is live yet; one is starting', retryAfterS);
    const why = membership.scaleUpError();
    if (why) throw noHealthyWorker(`no worker is live, and the scale-up webhook failed (${why})`, retryAfterS);
    throw noHealthyWorker('no worker is live: WORKER_URLS is empty and no worker has joined the fleet', retryAfterS);
  }

  /**
   * Starts a generation and returns once the first token (or the final frame) arrived. A failure before that is
   * retried on the next worker, except a timeout: the request itself may be what is slow, and trying it on every
   * worker in turn would hold each of them up. A connection lost before the first token is tried once more on the
   * same worker first (a pooled connection the worker had just closed as idle looks exactly like that). A worker's
   * 4xx is the client's fault and is passed through (an HTTPException); busy workers (503 + Retry-After) are skipped
   * without blame.
   */
  async generate(body: GenerateRequestInput, signal?: AbortSignal, options: GenerateOptions = {}): Promise<UpstreamStream> {
    const background = options.background ?? ((work) => void work.catch(() => undefined));
    await this.refreshMembers(background);
    this.health.probeOutOfRotation(options.background);
    let inRotation = this.order(body.prompt);
    if (inRotation.length === 0) inRotation = await this.awaitWorker(body.prompt, signal, background);
    // only workers whose context holds the prompt and the completion (an omitted max_tokens needs one token)
    const tokens = body.prompt.length + (body.max_tokens ?? 1);
    const candidates = inRotation.filter((url) => this.holds(url, tokens));
    if (candidates.length === 0) throw noHealthyWorker(`no worker in rotation holds ${tokens} tokens`, this.health.retryAfterS());
    const text = JSON.stringify(body);
    const errors: UpstreamError[] = [];
    const tries = candidates.slice(0, MAX_ATTEMPTS);
    const reconnected = new Set<string>();
    for (let i = 0; i < tries.length; i++) {
      const url = tries[i];
      signal?.throwIfAborted();
      const slot = this.workers.find((w) => w.url === url);
      if (!slot) continue; // a member that left the fleet while an earlier try ran
      try {
        return await this.attempt(slot, text, options, signal);
      } catch (err) {
        if (!(err instanceof UpstreamError) || signal?.aborted) throw err;
        errors.push(err);
        if (err.kind === 'busy') {
          this.health.busy(url, err.retryAfterS);
          continue; // backpressure: the next worker may have room
        }
        console.warn(`[edge] worker ${url} failed before the first token: ${err.message}`);
        if (err.kind === 'timeout') break;
        if (err.kind === 'unreachable' && !reconnected.has(url)) {
          reconnected.add(url);
          i--;
        }
      }
    }
    if (errors.length === 0) throw noHealthyWorker('the workers chosen for this request left the fleet before it reached them');
    if (errors.every((e) => e.kind === 'busy')) throw workersBusy(Math.min(...errors.map((e) => e.retryAfterS)));
    if (errors.at(-1)?.kind === 'timeout') throw upstreamTimeout(this.options.timeoutMs);
    throw noHealthyWorker(errors.map((e) => e.message).join('; '));
  }

  private async attempt(slot: WorkerSlot, body: string, options: GenerateOptions, clientSignal?: AbortSignal): Promise<UpstreamStream> {
    const controller = new AbortController();
    const onClientAbort = () => controller.abort(clientSignal?.reason);
    clientSignal?.addEventListener('abort', onClientAbort, { once: true });
    const timer = new IdleTimer(this.options.timeoutMs, () => controller.abort(new UpstreamError('timed out', 'timeout')));
    slot.inflight++;
    let released = false;
    /** Ends this attempt's hold on the worker; a failure (not the client's leaving) is recorded against it. */
    const release = (failure?: UpstreamError) => {
      if (released) return;
      released = true;
      slot.inflight--;
      timer.stop();
      clientSignal?.removeEventListener('abort', onClientAbort);
      if (failure && failure.kind !== 'busy' && failure.kind !== 'cancelled' && !clientSignal?.aborted) {
        this.health.failed(slot.url, failure.kind, failure.message, options.background);
      }
    };
    try {
      const headers: Record<string, string> = { 'content-type': 'application/json' };
      if (this.options.secret) Object.assign(headers, await signRequest(this.options.secret, { method: 'POST', path: GENERATE_PATH, body }));
      const res = await fetch(slot.url + GENERATE_PATH, { method: 'POST', headers, body, signal: controller.signal });
      if (!res.ok) await rejectResponse(res, options.params ?? {});
      if (!res.headers.get('content-type')?.startsWith('text/event-stream') || !res.body) {
        throw new UpstreamError(`answered ${res.status} with ${res.headers.get('content-type') ?? 'no content type'}`, 'protocol');
      }
      const frames = new WorkerFrames(res.body);
      const first: GenerateEvent[] = [];
      for (;;) {
        const event = frames.take() ?? (await frames.next());
        if (!event) throw new UpstreamError('closed the stream before the first token', 'protocol');
        if (event.finish_reason === 'cancelled' && event.tokens.length === 0 && first.length === 0) {
          throw new UpstreamError('cancelled the request before its first token (shutting down?)', 'busy', 1);
        }
        first.push(event);
        if (event.tokens.length > 0 || event.finish_reason) break;
      }
      timer.reset();
      return new UpstreamStream(slot.url, first, frames, controller, timer, release);
    } catch (err) {
      const failure = toUpstreamError(err, controller.signal, clientSignal);
      release(failure instanceof UpstreamError ? failure : undefined);
      controller.abort();
      throw failure;
    }
  }
}

/**
 * One worker's token stream after its first token. Read it with `next()` (or iterate it; leaving the loop early
 * cancels the generation); `cancel()` aborts the worker request at once.
 */
export class UpstreamStream implements AsyncIterable<GenerateEvent> {
  /** the final frame was returned: what comes next is the end, or for finish_reason "cancelled" its error */
  private last?: GenerateEvent;

  constructor(
    readonly worker: string,
    private readonly buffered: GenerateEvent[],
    private readonly frames: WorkerFrames,
    private readonly controller: AbortController,
    private readonly timer: IdleTimer,
    private readonly release: (failure?: UpstreamError) => void,
  ) {}

  cancel(): void {
    this.controller.abort();
    this.release();
  }

  /**
   * The next event, or undefined after the final one. One event carries the ids of every frame that had arrived
   * (one engine step's, or what piled up while the edge was busy); the final one carries finish_reason. A worker
   * that fails, misbehaves or cut the generation short (finish_reason "cancelled") makes it throw UpstreamError.
   */
  async next(): Promise<GenerateEvent | undefined> {
    if (this.last) {
      if (this.last.finish_reason === 'cancelled') throw new UpstreamError('cut the generation short (finish_reason "cancelled")', 'cancelled');
      return undefined;
    }
    try {
      let event = this.buffered.shift() ?? this.frames.take();
      // read here rather than through frames.next(): one await per worker frame on the hot path, not three
      while (!event) {
        const { done, value } = await this.frames.read();
        if (done) throw new UpstreamError('closed the stream before finishing', 'protocol');
        this.frames.append(value);
        event = this.frames.take();
      }
      this.timer.reset();
      if (event.finish_reason) {
        this.last = event;
        this.release();
        void this.frames.drain(); // read the chunked terminator so the connection can be reused
      }
      return event;
    } catch (err) {
      const failure = toUpstreamError(err, this.controller.signal);
      this.controller.abort();
      this.release(failure instanceof UpstreamError ? failure : undefined);
      throw failure;
    }
  }

  [Symbol.asyncIterator](): AsyncIterator<GenerateEvent> {
    return {
      next: async () => {
        const value = await this.next();
        return value ? { value, done: false } : { value: undefined, done: true };
      },
      return: async () => {
        if (!this.last) this.cancel(); // the consumer stopped early (stop string, client gone)
        return { value: undefined, done: true };
      },
    };
  }
}

/**
 * Reads `data:` frames off the worker's SSE body; `event: error` frames and invalid frames throw. Frames that arrived
 * together come out as one event: a run of token-only frames joined, with the frame after them when it carries no
 * logprobs (the final one, say), so the edge does its per-event work (detokenise, split, one SSE write) once for them.
 *
 * Frames are parsed as their bytes arrive. A worker's token frames (all of a stream's but the last) are read straight
 * off the bytes when they have the exact form the worker writes, `data: {"tokens":[ids]}` (scanTokenFrames): no text
 * decoding, no JSON.parse and no schema for the one frame per generated token; any other frame goes through the text
 * path (decoded, split on blank lines, parsed and validated).
 */
export class WorkerFrames {
  /** text of a frame not complete yet */
  private text = '';
  /** the decoder may hold the start of a character: the last bytes it was given did not end in ASCII */
  private decoderHolds = false;
  /** parsed frames not taken yet, from `head` on */
  private frames: GenerateEvent[] = [];
  private head = 0;
  /** a frame that threw: thrown by take() once the frames before it went out; nothing after it is read */
  private failure?: unknown;
  private readonly decoder = new TextDecoder();
  /** the body read into a buffer of ours (a byte stream: the runtime's fetch bodies), else the body's default reader */
  private readonly byob?: ReadableStreamBYOBReader;
  private readonly reader?: ReadableStreamDefaultReader<Uint8Array>;
  /** what the next BYOB read fills: the buffer the last read returned (a read transfers it) */
  private buffer = new ArrayBuffer(READ_BUFFER_BYTES);

  constructor(body: ReadableStream<Uint8Array>) {
    try {
      this.byob = body.getReader({ mode: 'byob' });
    } catch {
      this.reader = body.getReader(); // not a byte stream (a Response built on a stream of JavaScript's own)
    }
  }

  /** The worker's next bytes; pass them to append() before the next read (a BYOB read reuses their buffer). */
  read(): Promise<ReadableStreamReadResult<Uint8Array>> {
    return this.byob ? this.byob.read(new Uint8Array(this.buffer)) : this.reader!.read();
  }

  /** Parses the complete frames in what the worker sent next. */
  append(bytes: Uint8Array): void {
    if (this.byob) this.buffer = bytes.buffer as ArrayBuffer;
    if (this.failure !== undefined || bytes.length === 0) return;
    const start = this.text === '' && !this.decoderHolds ? scanTokenFrames(bytes, this.frames) : 0;
    if (start === bytes.length) return;
    const decoded = this.decoder.decode(start === 0 ? bytes : bytes.subarray(start), { stream: true });
    this.decoderHolds = bytes[bytes.length - 1] >= 0x80;
    this.text += decoded.includes('\r') ? decoded.replace(/\r\n?/g, '\n') : decoded;
    for (;;) {
      const end = this.text.indexOf('\n\n');
      if (end === -1) return;
      const block = this.text.slice(0, end);
      this.text = this.text.slice(end + 2);
      try {
        const frame = parseFrame(block);
        if (frame) this.frames.push(frame); // else a comment or keep-alive
      } catch (err) {
        this.failure = err;
        this.text = '';
        return;
      }
    }
  }

  /** The complete frames read so far as one event, or undefined when none is complete. */
  take(): GenerateEvent | undefined {
    let event: GenerateEvent | undefined;
    while (this.head < this.frames.length) {
      const next = this.frames[this.head];
      if (!event) event = next;
      else if (next.logprobs) break; // not joined: the next take() starts with it
      else event = { ...next, tokens: event.tokens.concat(next.tokens) };
      this.head++;
      if (!isTokensOnly(event)) break;
    }
    if (this.head === this.frames.length && this.head > 0) {
      this.frames = [];
      this.head = 0;
    }
    if (!event && this.failure !== undefined) throw this.failure;
    return event;
  }

  /** Reads on until take() has an event; undefined at the end of the body (callers try take() first, which needs no await). */
  async next(): Promise<GenerateEvent | undefined> {
    for (;;) {
      const { done, value } = await this.read();
      if (done) return undefined;
      this.append(value);
      const event = this.take();
      if (event) return event;
    }
  }

  async drain(): Promise<void> {
    try {
      for (let read; !(read = await this.read()).done; ) this.buffer = read.value.buffer as ArrayBuffer;
    } catch {
      // the worker went away after its final frame: nothing was lost
    }
  }
}

/**
 * Bytes one read of a worker's body takes at most. A token frame is ~25 bytes; a read finds more only when frames
 * piled up while the edge was busy, and the rest then waits for the next read.
 */
const READ_BUFFER_BYTES = 4096;
/** `data: {"tokens":[`, as bytes: how the worker's token frames start */
const TOKENS_FRAME_HEAD = Array.from('data: {"tokens":[', (ch) => ch.charCodeAt(0));
/** the most digits a token id can have (MODEL_VOCAB_SIZE - 1 has six) */
const MAX_ID_DIGITS = String(MODEL_VOCAB_SIZE - 1).length;

/**
 * Reads the token frames at the start of `bytes` that are exactly `data: {"tokens":[id,id,…]}` + blank line, ids in
 * the vocabulary written as JSON writes them (no sign, no leading zero, no spaces), into `frames`; returns how many
 * bytes they took. It stops at the first byte it does not expect: that frame, and what follows, take the text path,
 * which parses them (and refuses what is wrong) the general way. So only what the general way would read exactly so
 * is read here.
 */
function scanTokenFrames(bytes: Uint8Array, frames: GenerateEvent[]): number {
  let taken = 0;
  frames: while (bytes.length - taken >= TOKENS_FRAME_HEAD.length + 4) {
    let at = taken;
    for (const byte of TOKENS_FRAME_HEAD) if (bytes[at++] !== byte) break frames;
    const tokens: number[] = [];
    if (bytes[at] !== 0x5d) {
      for (;;) {
        const first = bytes[at] - 0x30;
        if (!(first >= 0 && first <= 9)) break frames;
        let id = first;
        let digits = 1;
        for (let d = bytes[++at] - 0x30; d >= 0 && d <= 9; d = bytes[++at] - 0x30) {
          if (first === 0 || ++digits > MAX_ID_DIGITS) break frames;
          id = id * 10 + d;
        }
        if (id >= MODEL_VOCAB_SIZE) break frames;
        tokens.push(id);
        if (bytes[at] !== 0x2c) break;
        at++;
      }
    }
    // `]}` and the blank line
    if (bytes[at] !== 0x5d || bytes[at + 1] !== 0x7d || bytes[at + 2] !== 0x0a || bytes[at + 3] !== 0x0a) break;
    frames.push({ tokens });
    taken = at + 4;
  }
  return taken;
}

/** Token ids and nothing else: all of a stream's frames but the last (and those with logprobs). */
function isTokensOnly(event: GenerateEvent): boolean {
  return event.finish_reason === undefined && event.logprobs === undefined && event.usage === undefined && event.stop_token_id === undefined;
}

function parseFrame(block: string): GenerateEvent | undefined {
  let name = 'message';
  let data: string;
  if (block.startsWith('data: ') && !block.includes('\n')) {
    data = block.slice(6); // nearly every frame: one data line
  } else {
    const lines: string[] = [];
    for (const line of block.split('\n')) {
      if (line.startsWith('event:')) name = line.slice(6).trim();
      else if (line.startsWith('data:')) lines.push(line.slice(line.startsWith('data: ') ? 6 : 5));
    }
    if (lines.length === 0) return undefined; // comment or keep-alive
    data = lines.join('\n');
  }
  let json: unknown;
  try {
    json = JSON.parse(data);
  } catch {
    throw new UpstreamError(`sent a frame that is not JSON: ${data.slice(0, 80)}`, 'protocol');
  }
  if (name === 'error') {
    const body = parseErrorBody(json);
    throw new UpstreamError(body ? body.error.message : 'sent an error frame', 'worker-error');
  }
  const event = tokensOnly(json) ?? parseGenerateEvent(json);
  if (!event) throw new UpstreamError(`sent a frame outside the protocol: ${JSON.stringify(json).slice(0, 80)}`, 'protocol');
  const bad = event.tokens.find(outsideVocabulary) ??
    event.logprobs?.flatMap((l) => [l.token, ...(l.top ?? []).map((t) => t.token)]).find(outsideVocabulary);
  if (bad !== undefined) throw new UpstreamError(`sent token id ${bad}, outside the model's vocabulary (0 to ${MODEL_VOCAB_SIZE - 1})`, 'protocol');
  return event;
}

const outsideVocabulary = (id: number) => !(id >= 0 && id < MODEL_VOCAB_SIZE);

/**
 * A frame that carries token ids and nothing else (all but a stream's last), as the protocol's schema would accept it,
 * checked without the schema's generic walk: this runs once per generated token.
 */
function tokensOnly(json: unknown): GenerateEvent | undefined {
  if (typeof json !== 'object' || json === null) return undefined;
  let fields = 0;
  for (const _ in json) fields++;
  const { tokens } = json as { tokens?: unknown };
  if (fields !== 1 || !Array.isArray(tokens) || !tokens.every(Number.isSafeInteger)) return undefined;
  return { tokens };
}

/** Worker statuses that mean the request itself is wrong: the client gets the same status. */
const CLIENT_ERROR_STATUSES = new Set([400, 413, 422]);

/**
 * A non-2xx answer. 400 / 413 / 422 are the client's (passed through with the parameter renamed for the client);
 * 503 and 429 are backpressure (`busy`, with the worker's Retry-After); everything else (5xx, and 401 / 404 from a
 * worker that is misconfigured or not ours) is the worker's failure.
 */
async function rejectResponse(res: Response, params: ClientParams): Promise<never> {
  const text = await res.text().catch(() => '');
  let body: ErrorBody | undefined;
  try {
    body = parseErrorBody(JSON.parse(text));
  } catch {
    body = undefined;
  }
  const message = body ? body.error.message : text.slice(0, 200) || res.statusText;
  if (CLIENT_ERROR_STATUSES.has(res.status)) {
    const workerParam = body ? (body.error.param ?? null) : null;
    throw apiError(res.status as 400 | 413 | 422, message, { type: 'invalid_request_error', param: clientParam(workerParam, params) });
  }
  if (res.status === 503 || res.status === 429) {
    const retryAfter = Number(res.headers.get('retry-after'));
    throw new UpstreamError(`is busy (${res.status}): ${message}`, 'busy', Number.isFinite(retryAfter) && retryAfter > 0 ? Math.ceil(retryAfter) : 1);
  }
  throw new UpstreamError(`answered ${res.status}: ${message}`, res.status === 401 || res.status === 403 ? 'refused' : 'worker-error');
}

/** The client's name of a worker request field (see ClientParams). */
export function clientParam(workerParam: string | null, params: ClientParams): string | null {
  if (workerParam === null) return null;
  if (workerParam in params) return params[workerParam] ?? null;
  const field = workerParam.split('.')[0];
  if (field !== workerParam && field in params) return params[field] ?? null; // e.g. thinking_budget.inject_ids
  return workerParam.startsWith('sampling.') ? workerParam.slice('sampling.'.length) : workerParam;
}

function toUpstreamError(err: unknown, signal: AbortSignal, clientSignal?: AbortSignal): unknown {
  if (clientSignal?.aborted) return clientSignal.reason ?? err;
  if (signal.reason instanceof UpstreamError) return signal.reason;
  if (signal.aborted) return err; // cancelled by the edge itself (stop string, client gone): not the worker's fault
  if (err instanceof UpstreamError || err instanceof HTTPException || !(err instanceof Error)) return err; // HTTPException: the client's error
  return new UpstreamError(`unreachable: ${err.message}`, 'unreachable');
}

/**
 * Aborts after `ms` without a reset: the time to the first token, then the longest silence between frames. A reset
 * (one per frame) only notes the time; the one timer re-arms itself for the rest of the window when it fires early.
 */
class IdleTimer {
  private handle: ReturnType<typeof setTimeout> | undefined;
  private lastReset = Date.now();

  constructor(
    private readonly ms: number,
    private readonly onExpire: () => void,
  ) {
    this.arm(ms);
  }

  reset(): void {
    this.lastReset = Date.now();
  }

  stop(): void {
    if (this.handle !== undefined) clearTimeout(this.handle);
    this.handle = undefined;
  }

  private arm(delayMs: number): void {
    this.handle = setTimeout(() => {
      const idleMs = Date.now() - this.lastReset;
      if (idleMs >= this.ms) this.onExpire();
      else this.arm(this.ms - idleMs);
    }, delayMs);
  }
}

/** Routable unless it is health's business: a WORKER_URLS worker, or a ready member whose heartbeat has not expired. */
function inFleet(w: WorkerSlot, now: number): boolean {
  return w.member ? w.member.state === 'ready' && w.member.expiresAt > now : w.fixed;
}

function slackOf(w: WorkerSlot): number {
  return w.member ? Math.max(LOAD_SLACK, Math.floor(w.member.max_batch / 2)) : LOAD_SLACK;
}

/** Resolves after `ms`, or rejects with the signal's reason once it aborts. */
function abortableSleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    signal?.throwIfAborted();
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, Math.max(0, ms));
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

// --- rendezvous hashing --------------------------------------------------------------------------------------------

function hashString(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/** FNV-1a over the first `limit` ids (each as a 32-bit word). */
export function hashIds(ids: readonly number[], limit: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < Math.min(ids.length, limit); i++) h = Math.imul(h ^ ids[i], 0x01000193);
  return h >>> 0;
}

/** Highest-random-weight score of a worker for a key (murmur3's finaliser over both). */
function score(workerKey: number, key: number): number {
  let h = (workerKey ^ Math.imul(key, 0x9e3779b1)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}
