// OpenAI's streaming framing over hono/streaming's streamSSE: `data: {chunk}` frames sharing id/created/model,
// `usage: null` on every chunk when stream_options.include_usage asked for a final usage chunk, `data: [DONE]` last,
// and failures after the headers went out as `data: {"error": …}` frames (the openai SDK raises them as APIError).
// Also the token-logprob shapes both endpoints return (chat `logprobs.content`, legacy completions' four arrays).
import type { Context } from 'hono';
import { streamSSE, type SSEStreamingApi } from 'hono/streaming';
import type { TokenLogprob } from '../gpu-worker/protocol.ts';
import { errorBody, generationCancelledBody, type OpenAIErrorBody } from './errors.ts';
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
 * Writes the frames of one streamed response in order (writes from concurrent choices are serialised). A client that
 * stops reading for `stallMs` without disconnecting is treated as gone, so a stalled reader cannot hold its
 * generations, its lease and its usage record forever.
 */
export class ChunkStream {
  private queue: Promise<void> = Promise.resolve();
  private readonly abortController = new AbortController();
  private ended = false;

  constructor(
    private readonly stream: SSEStreamingApi,
    private readonly base: ChunkBase,
    private readonly includeUsage: boolean,
    private readonly stallMs: number,
  ) {
    stream.onAbort(() => this.abortController.abort(new DOMException('client disconnected', 'AbortError')));
  }

  /** Aborted when the client disconnects: pass it to upstream requests. */
  get signal(): AbortSignal {
    return this.abortController.signal;
  }

  get clientGone(): boolean {
    return this.abortController.signal.aborted;
  }

  /** One chunk carrying these choices (each `{index, delta | text, logprobs, finish_reason}`). */
  choices(choices: readonly object[]): Promise<void> {
    const chunk = this.includeUsage ? { ...this.base, choices, usage: null } : { ...this.base, choices };
    return this.send(JSON.stringify(chunk));
  }

  /** The extra chunk OpenAI sends before [DONE] when include_usage is on. */
  usage(usage: CompletionUsage): Promise<void> {
    if (!this.includeUsage) return Promise.resolve();
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

  private send(data: string): Promise<void> {
    if (this.ended || this.stream.aborted || this.stream.closed) return this.queue;
    this.queue = this.queue.then(() => (this.clientGone ? undefined : this.write(data))).catch(() => undefined);
    return this.queue;
  }

  private write(data: string): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const stalled = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        this.abortController.abort(new DOMException(`client read nothing for ${this.stallMs} ms`, 'AbortError'));
        this.stream.abort();
        resolve();
      }, this.stallMs);
    });
    return Promise.race([this.stream.writeSSE({ data }), stalled]).finally(() => clearTimeout(timer));
  }
}

/**
 * A streamed response: `run` writes the chunks; whatever it throws becomes an error frame. Hono sets the SSE
 * headers; `Content-Encoding: identity` keeps wrangler's dev server from buffering the stream. A client that reads
 * nothing for CLIENT_STALL_MS (or REQUEST_TIMEOUT_MS when shorter) counts as gone.
 */
export function streamChunks(
  c: Context,
  base: ChunkBase,
  includeUsage: boolean,
  run: (out: ChunkStream) => Promise<void>,
): Response {
  c.header('content-encoding', 'identity');
  const timeoutMs = (c.get('config') as { requestTimeoutMs?: number } | undefined)?.requestTimeoutMs ?? CLIENT_STALL_MS;
  const stallMs = Math.min(timeoutMs, CLIENT_STALL_MS);
  return streamSSE(c, async (stream) => {
    const out = new ChunkStream(stream, base, includeUsage, stallMs);
    try {
      await run(out);
    } catch (err) {
      if (!out.clientGone && !c.req.raw.signal?.aborted) await out.error(midStreamError(err));
    }
  });
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
