// How many tokens each GPU worker's context holds. The worker is the authority (its MAX_CONTEXT, or the checkpoint's
// context times the YaRN factor) and publishes it on GET /ready as `max_context`; the edge keeps what each worker
// said, per isolate. The first request of an isolate waits for one round of /ready answers (it started with the
// isolate's worker pool, next to tokenisation); afterwards a value older than CONTEXT_TTL_MS is refreshed in the
// background. `set()` is the only way in, so a membership record can feed it the same way later.
//
// The edge uses it to refuse a prompt that no worker can hold (400 context_length_exceeded before any worker is
// called), to send a request only to workers whose context holds it, and to report `max_model_len`.
import { awaitAtMost } from './shared-wait.ts';

/** a learned context is re-read after this long (ms) */
export const CONTEXT_TTL_MS = 60_000;
/** a worker whose /ready gave no context is asked again after this long (ms), in the background */
export const CONTEXT_RETRY_MS = 1_000;
/** GET /ready answered later than this gives nothing (ms) */
export const CONTEXT_PROBE_TIMEOUT_MS = 2_000;
/**
 * How long a request waits for another request's /ready read before it asks itself (ms; see edge/shared-wait.ts). A
 * read that settles in time is shared; one that does not is not waited for past this, from this request's own timer.
 */
export const SHARED_READ_WAIT_MS = CONTEXT_PROBE_TIMEOUT_MS + 500;

/** GET /ready's `max_context` (tokens), or undefined when the worker does not say (not ready, unreachable, old). */
export type ReadContext = (url: string) => Promise<number | undefined>;

/** checkedAt: when the last /ready answer (or failure) came; unset until the first one */
type Entry = { tokens?: number; checkedAt?: number; reading?: Promise<void> };

export class WorkerContexts {
  private readonly entries = new Map<string, Entry>();

  constructor(
    private readonly urls: readonly string[],
    private readonly read: ReadContext = readMaxContext,
    private readonly sharedReadWaitMs = SHARED_READ_WAIT_MS,
  ) {}

  /** Records what a worker's context holds (tokens). */
  set(url: string, tokens: number, now = Date.now()): void {
    this.entries.set(url, { ...this.entries.get(url), tokens, checkedAt: now });
  }

  /** A worker's context (tokens), if known. */
  get(url: string): number | undefined {
    return this.entries.get(url)?.tokens;
  }

  /**
   * The largest context among the workers (tokens), undefined while none is known. Workers never asked are asked
   * and awaited (the first requests of an isolate); stale ones, and ones that did not say, are asked again in the
   * background while the value in hand serves.
   */
  async largest(background?: (work: Promise<unknown>) => void, now = Date.now()): Promise<number | undefined> {
    const firstRound: Promise<void>[] = [];
    for (const url of this.urls) {
      const entry = this.entries.get(url);
      if (!entry) firstRound.push(this.refresh(url));
      else if (entry.checkedAt === undefined) firstRound.push(this.awaitShared(url, entry.reading!));
      else if (!entry.reading && now - entry.checkedAt > (entry.tokens === undefined ? CONTEXT_RETRY_MS : CONTEXT_TTL_MS)) {
        background?.(this.refresh(url));
      }
    }
    await Promise.all(firstRound);
    let largest: number | undefined;
    for (const url of this.urls) {
      const tokens = this.get(url);
      if (tokens !== undefined && (largest === undefined || tokens > largest)) largest = tokens;
    }
    return largest;
  }

  /** Another request's first read of a worker, or this request's own once it has waited sharedReadWaitMs. */
  private async awaitShared(url: string, reading: Promise<void>): Promise<void> {
    const outcome = await awaitAtMost(reading, this.sharedReadWaitMs);
    // Still unanswered, and nobody has started a newer read: ask here, with this request's own I/O.
    if (outcome === 'late' && this.entries.get(url)?.checkedAt === undefined) {
      const current = this.entries.get(url)!.reading;
      await (current === reading ? this.refresh(url) : this.awaitShared(url, current!));
    }
  }

  private refresh(url: string): Promise<void> {
    const entry: Entry = { ...this.entries.get(url) };
    entry.reading = this.read(url)
      .catch(() => undefined)
      .then((tokens) => {
        this.entries.set(url, { tokens: tokens ?? entry.tokens, checkedAt: Date.now() });
      });
    this.entries.set(url, entry);
    return entry.reading;
  }
}

/** GET /ready → `max_context`: a positive integer, else undefined. */
export async function readMaxContext(url: string): Promise<number | undefined> {
  const res = await fetch(`${url}/ready`, { signal: AbortSignal.timeout(CONTEXT_PROBE_TIMEOUT_MS) });
  const body = (await res.json().catch(() => null)) as { max_context?: unknown } | null;
  const tokens = body?.max_context;
  return typeof tokens === 'number' && Number.isInteger(tokens) && tokens > 0 ? tokens : undefined;
}
