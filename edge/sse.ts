// OpenAI's streaming framing: `data: {chunk}` frames sharing id/created/model,
// `usage: null` on every chunk when stream_options.include_usage asked for a final usage chunk, `data: [DONE]` last,
// and failures after the headers went out as `data: {"error": …}` frames (the openai SDK raises them as APIError).
// Also the token-logprob shapes both endpoints return (chat `logprobs.content`, legacy completions' four arrays).
import type { Context } from 'hono';
import type { TokenLogprob } from '../gpu-worker/protocol.ts';
import { CLIENT_CLOSED, errorBody, generationCancelledBody, type OpenAIErrorBody } from './errors.ts';
import type { RequestLifecycle } from './request-lifecycle.ts';
import { UpstreamError } from './upstream.ts';
import type { Qwen3Tokenizer } from './tokenizer/index.js';

export type CompletionUsage = {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  prompt_tokens_details: { cached_tokens: number };
  completion_tokens_details?: { reasoning_tokens: number };
};

/**
 * A stream whose client has read nothing for this long (while frames wait) counts as gone (ms). Well inside the
 * ~30 s Workers give waitUntil work after a response ends: a response the runtime abandoned without cancelling it
 * (its client disconnected just before it started) still settles its usage and lease in time.
 */
export const CLIENT_STALL_MS = 10_000;

/** What every chunk of one response shares. */
export type ChunkBase = { id: string; object: 'chat.completion.chunk' | 'text_completion'; created: number; model: string };

/**
 * Writes the frames of one streamed response, in order, straight into the response body: each frame is encoded and
 * queued on the body's stream at once (frames from concurrent choices keep the order of the calls), and a write waits
 * only while the client has not yet taken the frame before it. One frame per generated token goes through here, so
 * nothing else stands between it and the client: no TransformStream, no extra reader, no timer per frame.
 *
 * A client that cancels the body, or takes nothing for `stallMs` while frames wait without disconnecting, is treated
 * as gone (`signal` aborts), so a stalled reader cannot hold its generations, its lease and its usage record forever.
 */
export class ChunkStream {
  readonly body: ReadableStream<Uint8Array>;
  private controller!: ReadableStreamDefaultController<Uint8Array>;
  private readonly abortController = new AbortController();
  /** the client is gone (read once per frame, so a field rather than the signal's binding) */
  private left = false;
  /** `data: {"id":…,"object":…,"created":…,"model":…,"choices":`: what every chunk's frame starts with */
  private readonly chunkHead: string;
  /** what every chunk's frame ends with: `}` (`,"usage":null}` with include_usage) and the blank line */
  private readonly chunkTail: string;
  /** per choice index: the chunk head followed by `[{"index":N,` */
  private readonly choiceHeads: string[] = [];
  /** nothing more is written: [DONE] or an error frame went out, or the client is gone */
  private ended = false;
  private closed = false;
  /** while the client has not taken the last frame: since when (ms), and what lets the waiting writes go on */
  private waiting?: { since: number; room: Promise<void>; resume: () => void };
  private watchdog?: ReturnType<typeof setTimeout>;
  /** settles the pending pull: the stream then calls pull again once the client has taken a frame */
  private pullDone?: () => void;

  constructor(
    private readonly base: ChunkBase,
    private readonly includeUsage: boolean,
    private readonly stallMs: number,
  ) {
    this.chunkHead = `data: ${JSON.stringify(base).slice(0, -1)},"choices":`;
    this.chunkTail = `${includeUsage ? ',"usage":null}' : '}'}\n\n`;
    this.body = new ReadableStream<Uint8Array>(
      {
        start: (controller) => {
          this.controller = controller;
        },
        // The pull promise stays pending until a write has to wait for room (write()): while it is pending the
        // stream calls pull no more, so a client that keeps up costs no call back into this object per frame.
        pull: () => {
          this.resume();
          return new Promise<void>((resolve) => (this.pullDone = resolve));
        },
        cancel: () => this.gone(new DOMException('client disconnected', 'AbortError')),
      },
      { highWaterMark: 1 },
    );
  }

  /** Aborted when the client disconnects: pass it to upstream requests. */
  get signal(): AbortSignal {
    return this.abortController.signal;
  }

  get clientGone(): boolean {
    return this.left;
  }

  /** One chunk carrying these choices (each `{index, delta | text, logprobs, finish_reason}`). */
  choices(choices: readonly object[]): Promise<void> {
    return this.write(this.chunkHead + JSON.stringify(choices) + this.chunkTail) ?? RESOLVED;
  }

  /** One chunk per choice object, written together (one write): what one worker event produced for one choice. */
  chunks(choices: readonly object[]): Promise<void> {
    if (choices.length === 0) return RESOLVED;
    let frames = '';
    for (const choice of choices) frames += `${this.chunkHead}[${JSON.stringify(choice)}]${this.chunkTail}`;
    return this.write(frames) ?? RESOLVED;
  }

  /**
   * One chunk per choice body, written together, for choice `index`: each body is a choice object's JSON without
   * its opening `{"index":N,` (`"delta":{…},"logprobs":null,"finish_reason":null}`), so the frames are the same bytes
   * as chunks() writes for those objects. The per-token way to write: nothing else is built or serialised. Returns
   * undefined when there is nothing to wait for (the client took the frames before), a promise while it has not.
   */
  choiceBodies(index: number, bodies: readonly string[]): Promise<void> | undefined {
    if (bodies.length === 0) return undefined;
    const head = (this.choiceHeads[index] ??= `${this.chunkHead}[{"index":${index},`);
    let frames = '';
    for (const body of bodies) frames += `${head}${body}]${this.chunkTail}`;
    return this.write(frames);
  }

  /** The extra chunk OpenAI sends before [DONE] when include_usage is on. */
  usage(usage: CompletionUsage): Promise<void> {
    if (!this.includeUsage) return RESOLVED;
    return this.send(JSON.stringify({ ...this.base, choices: [], usage }));
  }

  done(): Promise<void> {
    const sent = this.send('[DONE]');
    this.ended = true;
    return sent;
  }

  /** Ends the stream with an error frame; nothing is written after it. */
  error(body: OpenAIErrorBody): Promise<void> {
    const sent = this.send(JSON.stringify(body));
    this.ended = true;
    return sent;
  }

  /** Ends the body once the client has taken what was written. */
  close(): void {
    this.ended = true;
    this.stopWatchdog();
    if (this.closed || this.clientGone) return;
    this.closed = true;
    this.controller.close();
  }

  /** JSON never holds a raw line break, so one `data:` line carries each frame. */
  private send(data: string): Promise<void> {
    return this.write(`data: ${data}\n\n`) ?? RESOLVED;
  }

  /** Queues whole frames on the body (one enqueue); undefined unless the client has not taken the frames before. */
  private write(frames: string): Promise<void> | undefined {
    if (this.ended || this.clientGone) return undefined;
    this.controller.enqueue(encoder.encode(frames));
    if ((this.controller.desiredSize ?? 1) > 0) return undefined;
    if (!this.waiting) {
      let resume!: () => void;
      const room = new Promise<void>((resolve) => (resume = resolve));
      this.waiting = { since: Date.now(), room, resume };
      this.pullDone?.();
      this.pullDone = undefined;
      this.watchdog ??= setTimeout(() => this.checkStall(), this.stallMs);
    }
    return this.waiting.room;
  }

  private resume(): void {
    const waiting = this.waiting;
    this.waiting = undefined;
    waiting?.resume();
  }

  /** The one timer of the stream: fires at most every `stallMs` while frames wait, and ends it if they still do. */
  private checkStall(): void {
    this.watchdog = undefined;
    if (!this.waiting) return;
    const waitedMs = Date.now() - this.waiting.since;
    if (waitedMs >= this.stallMs) {
      this.gone(new DOMException(`client read nothing for ${this.stallMs} ms`, 'AbortError'));
      this.closed = true;
      this.controller.close();
      return;
    }
    this.watchdog = setTimeout(() => this.checkStall(), this.stallMs - waitedMs);
  }

  private gone(reason: DOMException): void {
    this.ended = true;
    this.stopWatchdog();
    if (this.left) return void this.resume();
    this.left = true;
    this.abortController.abort(reason);
    this.resume();
  }

  private stopWatchdog(): void {
    if (this.watchdog !== undefined) clearTimeout(this.watchdog);
    this.watchdog = undefined;
  }
}

const encoder = new TextEncoder();
const RESOLVED = Promise.resolve();

/**
 * A streamed response: `run` writes the chunks; whatever it throws becomes an error frame. The SSE headers are
 * hono's streamSSE's; `Content-Encoding: identity` keeps wrangler's dev server from buffering the stream. A client
 * that reads nothing for CLIENT_STALL_MS (or REQUEST_TIMEOUT_MS when shorter) counts as gone. The body settles the
 * request's usage itself (the app then does not watch it): aborted when the client leaves, failed when it ends without
 * the route having settled it.
 */
export function streamChunks(
  c: Context,
  base: ChunkBase,
  includeUsage: boolean,
  run: (out: ChunkStream) => Promise<void>,
): Response {
  const timeoutMs = (c.get('config') as { requestTimeoutMs?: number } | undefined)?.requestTimeoutMs ?? CLIENT_STALL_MS;
  const out = new ChunkStream(base, includeUsage, Math.min(timeoutMs, CLIENT_STALL_MS));
  const lifecycle = c.get('lifecycle') as RequestLifecycle | undefined;
  if (lifecycle) {
    lifecycle.bodySettles = true;
    out.signal.addEventListener('abort', () => lifecycle.end('aborted', CLIENT_CLOSED), { once: true });
  }
  void (async () => {
    try {
      await run(out);
    } catch (err) {
      if (!out.clientGone && !c.req.raw.signal?.aborted) await out.error(midStreamError(err));
    } finally {
      out.close();
      lifecycle?.end('failed', 500); // no-op when the route settled it, as it does however its generations end
    }
  })();
  c.header('content-type', 'text/event-stream');
  c.header('cache-control', 'no-cache');
  c.header('connection', 'keep-alive');
  c.header('content-encoding', 'identity');
  return c.newResponse(out.body);
}

/** The error frame for a failure after the response started. */
export function midStreamError(err: unknown): OpenAIErrorBody {
  if (err instanceof UpstreamError && err.kind === 'cancelled') return generationCancelledBody();
  if (err instanceof UpstreamError) {
    return errorBody(`The inference worker failed mid-stream: ${err.message}`, { type: 'server_error', code: 'upstream_error' }, 502);
  }
  console.error('[edge] stream failed', err);
  return errorBody('The server had an error while streaming the response.', { type: 'server_error' }, 500);
}

// --- logprobs ------------------------------------------------------------------------------------------------------

export type ChatTopLogprob = { token: string; logprob: number; bytes: number[] };
export type ChatTokenLogprob = ChatTopLogprob & { top_logprobs: ChatTopLogprob[] };

function tokenEntry(tokenizer: Qwen3Tokenizer, id: number, logprob: number): ChatTopLogprob {
  return { token: tokenizer.decode([id]), logprob, bytes: Array.from(tokenizer.tokenBytes(id)) };
}

/** Worker logprobs → chat's `logprobs.content` entries (token text, raw UTF-8 bytes, top alternatives). */
export function chatLogprobs(tokenizer: Qwen3Tokenizer, entries: readonly TokenLogprob[], topN: number): ChatTokenLogprob[] {
  return entries.map((e) => ({
    ...tokenEntry(tokenizer, e.token, e.logprob),
    top_logprobs: (e.top ?? []).slice(0, topN).map((t) => tokenEntry(tokenizer, t.token, t.logprob)),
  }));
}

export type CompletionLogprobs = {
  tokens: string[];
  token_logprobs: number[];
  top_logprobs: Record<string, number>[];
  text_offset: number[];
};

/** Worker logprobs → legacy completions' parallel arrays; `offset` is the text length before these tokens. */
export function completionLogprobs(tokenizer: Qwen3Tokenizer, entries: readonly TokenLogprob[], topN: number, offset: number): CompletionLogprobs {
  const out: CompletionLogprobs = { tokens: [], token_logprobs: [], top_logprobs: [], text_offset: [] };
  let position = offset;
  for (const e of entries) {
    const text = tokenizer.decode([e.token]);
    out.tokens.push(text);
    out.token_logprobs.push(e.logprob);
    out.top_logprobs.push(Object.fromEntries((e.top ?? []).slice(0, topN).map((t) => [tokenizer.decode([t.token]), t.logprob])));
    out.text_offset.push(position);
    position += text.length;
  }
  return out;
}
