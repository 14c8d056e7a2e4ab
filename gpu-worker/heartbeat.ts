/**
 * @module Fleet membership, the worker's side: signed heartbeats to the edge (EDGE_URL + /fleet/heartbeat) from the
 * moment the process listens — `loading`, then `ready` with its load (running, waiting, free KV blocks) — at the
 * interval the edge asks for, and on SIGTERM one `draining` heartbeat before the worker stops admitting. The edge's
 * answer to that one says how long to keep serving: edge isolates re-read membership every few seconds, and a
 * request routed on an older view in that time is still served rather than turned away.
 */
import { HEARTBEAT_PATH, HeartbeatAckSchema, type Heartbeat, type HeartbeatAck, type MemberState } from './protocol.ts';
import { signRequest } from './signing.ts';

/** What the worker reports about itself in each heartbeat. */
export type MemberReport = Omit<Heartbeat, 'url' | 'instance' | 'seq' | 'state'>;

export interface HeartbeatOptions {
  /** the edge's base URL */
  edgeUrl: string;
  /** where the edge reaches this worker */
  publicUrl: string;
  secret: string;
  report: () => MemberReport;
  log: (message: string) => void;
}

/** heartbeat interval until the edge has named one (ms) */
const FIRST_INTERVAL_MS = 1_000;
/** a heartbeat not answered within this long has failed (ms) */
export const SEND_TIMEOUT_MS = 5_000;

export class FleetHeartbeat {
  private readonly instance = crypto.randomUUID();
  private readonly url: string;
  private seq = 0;
  private state: MemberState = 'loading';
  private ack?: HeartbeatAck;
  private timer?: NodeJS.Timeout;
  private stopped = false;
  /** the state and sequence number the edge last acknowledged (answers can arrive out of order); a change is logged */
  private acknowledged?: MemberState;
  private acknowledgedSeq = 0;
  private failing = false;

  constructor(private readonly options: HeartbeatOptions) {
    this.url = options.edgeUrl.replace(/\/+$/, '') + HEARTBEAT_PATH;
  }

  start(): void {
    void this.beat();
  }

  /** The model is loaded: say so now rather than at the next beat. */
  ready(): void {
    this.state = 'ready';
    clearTimeout(this.timer);
    void this.beat();
  }

  /**
   * Leaves the fleet: no more heartbeats, one `draining` heartbeat now. Resolves with how long to keep serving
   * before draining (ms); 0 when the edge could not be told (it then routes here until the worker's heartbeats
   * expire, and a draining worker's 503 sends those requests elsewhere).
   */
  async leave(): Promise<number> {
    this.stopped = true;
    clearTimeout(this.timer);
    this.state = 'draining';
    try {
      const ack = await this.send();
      return ack.leave_ms;
    } catch (err) {
      this.options.log(`fleet: could not tell ${this.options.edgeUrl} that this worker leaves (${(err as Error).message})`);
      return 0;
    }
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  /** One heartbeat, then the next one `interval_ms` after this one began (a slow answer does not stretch the gap). */
  private async beat(): Promise<void> {
    if (this.stopped) return;
    const began = performance.now();
    let failed = false;
    try {
      await this.send();
      if (this.failing) this.options.log(`fleet: heartbeats reach ${this.options.edgeUrl} again`);
      this.failing = false;
    } catch (err) {
      if (!this.failing) this.options.log(`fleet: heartbeat to ${this.options.edgeUrl} failed (${(err as Error).message}); retrying`);
      this.failing = failed = true;
    }
    if (this.stopped) return;
    clearTimeout(this.timer);
    // a lost heartbeat is retried soon: the TTL allows two to be lost, not two in a row plus a slow third
    const interval = (this.ack?.interval_ms ?? FIRST_INTERVAL_MS) / (failed ? 4 : 1);
    this.timer = setTimeout(() => void this.beat(), Math.max(0, interval - (performance.now() - began)));
    this.timer.unref();
  }

  /** One signed heartbeat with the current state; resolves with the edge's answer. */
  private async send(): Promise<HeartbeatAck> {
    const state = this.state;
    const beat: Heartbeat = { url: this.options.publicUrl, instance: this.instance, seq: ++this.seq, state, ...this.options.report() };
    const body = JSON.stringify(beat);
    const headers = { 'content-type': 'application/json', ...(await signRequest(this.options.secret, { method: 'POST', path: new URL(this.url).pathname, body })) };
    const res = await fetch(this.url, { method: 'POST', headers, body, signal: AbortSignal.timeout(SEND_TIMEOUT_MS) });
    const text = await res.text();
    if (!res.ok) throw new Error(`${res.status}: ${text.slice(0, 200)}`);
    const ack = HeartbeatAckSchema.parse(JSON.parse(text));
    this.ack = ack;
    const newer = beat.seq > this.acknowledgedSeq;
    this.acknowledgedSeq = Math.max(this.acknowledgedSeq, beat.seq);
    if (newer && this.acknowledged !== state) {
      this.acknowledged = state;
      this.options.log(`fleet: ${state} at ${this.options.edgeUrl} as ${this.options.publicUrl} (heartbeat every ${ack.interval_ms} ms, out after ${ack.ttl_ms} ms without one)`);
    }
    return ack;
  }
}
