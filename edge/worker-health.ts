// The edge's view of each GPU worker's health: in rotation or taken out, failures counted per worker in a sliding
// time window (a worker that dies under 20 streams is one incident, not 20 escalating ones), active /ready probes
// that re-admit a worker on its first success, and the worker's own "busy" hints (503 + Retry-After), which
// reorder routing but never take anyone out.
//
// The rules:
// - A failure (connection failure, 5xx, broken stream, timeout) is recorded in the window and triggers one check
//   probe of GET /ready. A failed check takes the worker out; so do FAILURE_THRESHOLD failures inside the window.
// - A worker taken out is probed every PROBE_INTERVAL_MS and re-admitted on the first 200 from /ready.
// - Timeouts never take out the last worker in rotation: a slow request (a huge prompt) says little about the
//   worker, and without it nobody is served. Only a worker that refuses connections or says it is not ready is
//   taken out when it is the last one.
//
// On Workers, timers and fetches belong to a request: probes run inside the request that needs them, kept alive by
// its waitUntil (`Background`), for at most PROBE_LOOP_MS each; a later request restarts a loop that has lapsed.
// State is per isolate, like the rest of the pool.

/** failures are counted over this window (ms) */
export const FAILURE_WINDOW_MS = 10_000;
/** failures inside the window that take a worker out even when its /ready still answers */
export const FAILURE_THRESHOLD = 3;
/** a worker taken out is probed this often (ms) */
export const PROBE_INTERVAL_MS = 250;
/** a /ready probe not answered within this long has failed (ms) */
export const PROBE_TIMEOUT_MS = 2_000;
/** one probe loop's longest life inside one request's background time (Workers keep waitUntil work ~30 s) (ms) */
const PROBE_LOOP_MS = 20_000;
/** a loop whose last probe started longer ago than this has lapsed (its request ended) (ms) */
const LOOP_LAPSED_MS = PROBE_INTERVAL_MS + PROBE_TIMEOUT_MS + 1_000;
const FAILURE_LOG_LIMIT = 64;

export type FailureKind = 'unreachable' | 'timeout' | 'worker-error' | 'protocol' | 'refused';

/** Keeps background work alive after the response (Workers: executionCtx.waitUntil). */
export type Background = (work: Promise<unknown>) => void;

export type ProbeResult = 'ready' | 'not-ready' | 'unreachable' | 'timeout';

export type WorkerHealthSnapshot = {
  url: string;
  /** in rotation */
  healthy: boolean;
  /** failures inside the window */
  failures: number;
  /** the worker asked to wait (queue full, draining) and is tried last until then */
  busy: boolean;
  lastError: string | null;
};

type State = {
  url: string;
  up: boolean;
  /** failure times (ms), oldest first */
  failures: number[];
  lastError: string | null;
  busyUntil: number;
  /** a check probe is running */
  checking: boolean;
  /** when the out-of-rotation probe loop last started a probe (ms); 0 = none */
  loopTick: number;
};

const noBackground: Background = (work) => void work.catch(() => undefined);

export class WorkerHealth {
  private readonly states = new Map<string, State>();

  constructor(
    urls: readonly string[],
    private readonly probe: (url: string) => Promise<ProbeResult> = probeReady,
  ) {
    this.track(urls);
  }

  /** Follows the pool's workers as fleet members come and go: new ones start in rotation, departed ones are forgotten. */
  track(urls: readonly string[]): void {
    const wanted = new Set(urls);
    for (const url of this.states.keys()) if (!wanted.has(url)) this.states.delete(url);
    for (const url of wanted) {
      if (!this.states.has(url)) this.states.set(url, { url, up: true, failures: [], lastError: null, busyUntil: 0, checking: false, loopTick: 0 });
    }
  }

  isUp(url: string): boolean {
    return this.state(url).up;
  }

  isBusy(url: string, now = Date.now()): boolean {
    return this.state(url).busyUntil > now;
  }

  /** The worker answered 503 + Retry-After: tried last for that long; nothing else changes. */
  busy(url: string, retryAfterS: number, now = Date.now()): void {
    this.state(url).busyUntil = now + retryAfterS * 1000;
  }

  /** Records a failure; may take the worker out (see the rules at the top). */
  failed(url: string, kind: FailureKind, message: string, background: Background = noBackground, now = Date.now()): void {
    const s = this.state(url);
    s.failures = [...this.recent(s, now), now].slice(-FAILURE_LOG_LIMIT);
    s.lastError = message;
    if (!s.up) return;
    if (s.failures.length >= FAILURE_THRESHOLD && !(kind === 'timeout' && this.lastUp(s))) {
      this.takeOut(s, background, `${s.failures.length} failures in ${FAILURE_WINDOW_MS} ms`);
      return;
    }
    if (s.checking) return;
    s.checking = true;
    background(
      this.probe(url).then((result) => {
        s.checking = false;
        if (!s.up || result === 'ready') return;
        if (result === 'timeout' && this.lastUp(s)) return;
        this.takeOut(s, background, `/ready ${result} after a failure`);
      }),
    );
  }

  /** Restarts the probe loop of every worker out of rotation whose loop has lapsed. */
  probeOutOfRotation(background: Background = noBackground, now = Date.now()): void {
    for (const s of this.states.values()) {
      if (!s.up && now - s.loopTick > LOOP_LAPSED_MS) this.startLoop(s, background, now);
    }
  }

  /** Seconds a client should wait when nothing is in rotation. */
  retryAfterS(): number {
    return Math.max(1, Math.ceil(PROBE_INTERVAL_MS / 1000));
  }

  snapshot(now = Date.now()): WorkerHealthSnapshot[] {
    return [...this.states.values()].map((s) => ({
      url: s.url, healthy: s.up, failures: this.recent(s, now).length, busy: s.busyUntil > now, lastError: s.lastError,
    }));
  }

  private state(url: string): State {
    const s = this.states.get(url);
    if (!s) throw new Error(`unknown worker ${url}`);
    return s;
  }

  private recent(s: State, now: number): number[] {
    return s.failures.filter((at) => now - at < FAILURE_WINDOW_MS);
  }

  private lastUp(s: State): boolean {
    return s.up && [...this.states.values()].every((o) => o === s || !o.up);
  }

  private takeOut(s: State, background: Background, why: string): void {
    if (!s.up) return;
    s.up = false;
    console.warn(`[edge] worker ${s.url} taken out of rotation (${why}; last error ${s.lastError}); probing /ready`);
    this.startLoop(s, background, Date.now());
  }

  private startLoop(s: State, background: Background, now: number): void {
    s.loopTick = now;
    background(this.loop(s, now));
  }

  /** Probes /ready until the worker answers 200 (then it is back in rotation) or the loop's time is up. */
  private async loop(s: State, startedAt: number): Promise<void> {
    for (;;) {
      const tick = Date.now();
      if (s.up || tick - startedAt > PROBE_LOOP_MS || this.states.get(s.url) !== s) return; // back, lapsed, or gone
      s.loopTick = tick;
      if ((await this.probe(s.url)) === 'ready') {
        s.up = true;
        s.failures = [];
        s.busyUntil = 0;
        console.warn(`[edge] worker ${s.url} is ready again: back in rotation`);
        return;
      }
      await new Promise((r) => setTimeout(r, Math.max(0, PROBE_INTERVAL_MS - (Date.now() - tick))));
    }
  }
}

/** GET /ready: 200 = ready; 503 = loading or draining; anything else, or no answer in time, has failed. */
export async function probeReady(url: string): Promise<ProbeResult> {
  try {
    const res = await fetch(`${url}/ready`, { signal: AbortSignal.timeout(PROBE_TIMEOUT_MS) });
    await res.body?.cancel();
    return res.status === 200 ? 'ready' : 'not-ready';
  } catch (err) {
    return (err as Error).name === 'TimeoutError' ? 'timeout' : 'unreachable';
  }
}
