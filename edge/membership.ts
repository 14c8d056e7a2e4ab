/**
 * @module An edge isolate's view of the fleet registry (edge/fleet.ts): the members the worker pool routes to,
 * re-read at most once per refresh interval, and the scale-from-zero state (a scale-up call in its cool-down window,
 * a member still loading).
 *
 * Reading rules (per isolate; docs/fleet.md#how-the-edge-finds-workers):
 * - A view younger than `refreshMs` is used as it is.
 * - An older one starts one read, run in the background of the request that noticed (its waitUntil), and is used
 *   meanwhile; the request waits for the read only when the view is older than twice the interval, was never read,
 *   or has no ready member while no WORKER_URLS worker is in rotation either (then there is nothing else to route
 *   to).
 * - Each member carries its expiry (last heartbeat + TTL, moved to this isolate's clock), applied at every use: a
 *   worker that stopped heartbeating is out within one TTL whatever the view's age.
 * A request never awaits a promise that another request created (if that request is cancelled, the promise may never
 * settle); it polls the view's fields instead.
 */
import type { FleetView, MemberRecord, ScaleUpRecord } from './fleet-records.ts';
import type { Background } from './worker-health.ts';

/** The registry as an isolate reaches it (a Durable Object stub in production; tests may inject faults). */
export type FleetClient = {
  view(): Promise<FleetView>;
  requestScaleUp(reason: string): Promise<ScaleUpRecord>;
};

export type MembershipOptions = {
  /** re-read the registry at most this often (ms) */
  refreshMs: number;
  /** scale-up webhook configured (SCALE_UP_URL) */
  scaleUp: boolean;
  /** at most one webhook call per this long (ms); also how long a call counts as "a worker is starting" */
  scaleUpCooldownMs: number;
  /** how long a request may wait for a starting worker before its 503 (ms); 0 = answer at once */
  scaleUpWaitMs: number;
  /** Retry-After of that 503 (s) */
  scaleUpRetryAfterS: number;
};

/** A member with its expiry on this isolate's clock. */
export type Member = MemberRecord & { expiresAt: number };

/** The longest a request waits for a registry read before routing on what it has (ms). */
export const READ_WAIT_MS = 5_000;
const POLL_MS = 10;

export class Membership {
  private members: Member[] = [];
  /** the last scale-up call, its time on this isolate's clock */
  private scaleUp: (ScaleUpRecord & { at: number }) | null = null;
  /** this isolate's clock minus the registry's, at the last read (ms) */
  private offsetMs = 0;
  /** when the view was read (ms); -Infinity = never */
  private readAt = -Infinity;
  /** when the running read began (ms); 0 = none running */
  private readingSince = 0;
  /** when a read last failed (ms): reads are spaced by the refresh interval even when they fail */
  private failedAt = -Infinity;
  private scaleUpAskedAt = -Infinity;

  constructor(
    private readonly client: FleetClient,
    readonly options: MembershipOptions,
  ) {}

  /**
   * The members not yet expired (any state), re-read per the rules at the top; `fallback`: a WORKER_URLS worker is in
   * rotation, so a view without a ready member still leaves the request somewhere to go.
   */
  async current(background: Background, fallback = false, now = Date.now()): Promise<Member[]> {
    const age = now - this.readAt;
    if (age >= this.options.refreshMs) {
      this.startRead(background, now);
      const mustWait = age >= 2 * this.options.refreshMs || (!fallback && !this.live(now).some((m) => m.state === 'ready'));
      if (mustWait) await this.awaitRead(now);
    }
    return this.live(Date.now());
  }

  /**
   * A worker is on its way: a member is loading, or a scale-up call in its cool-down window has neither failed nor
   * been answered by a member joining since.
   */
  starting(now = Date.now()): boolean {
    if (this.live(now).some((m) => m.state === 'loading')) return true;
    const call = this.scaleUp;
    if (!call || call.error !== null || now - call.at >= this.options.scaleUpCooldownMs) return false;
    return !this.members.some((m) => m.joined_at >= call.requested_at);
  }

  /** The last scale-up call's failure, if it failed. */
  scaleUpError(): string | null {
    return this.scaleUp?.error ?? null;
  }

  /**
   * No worker at all: asks the registry to call the scale-up webhook (it calls once per cool-down window whoever
   * asks). This isolate asks at most once per refresh interval, and not while it knows of a call in the window.
   */
  requestScaleUp(background: Background, now = Date.now()): void {
    if (!this.options.scaleUp || now - this.scaleUpAskedAt < this.options.refreshMs) return;
    if (this.scaleUp && now - this.scaleUp.at < this.options.scaleUpCooldownMs) return;
    this.scaleUpAskedAt = now;
    this.scaleUp = { requested_at: now - this.offsetMs, status: null, error: null, at: now }; // starting, until told otherwise
    background(
      this.client.requestScaleUp('no_live_worker').then(
        (record) => (this.scaleUp = { ...record, at: record.requested_at + this.offsetMs }),
        (err: Error) => {
          console.warn(`[edge] asking the fleet registry to scale up failed: ${err.message}`);
          if (this.scaleUp) this.scaleUp.error = err.message;
        },
      ),
    );
  }

  private live(now: number): Member[] {
    return this.members.filter((m) => m.expiresAt > now);
  }

  private startRead(background: Background, now: number): void {
    if (this.readingSince !== 0 && now - this.readingSince < READ_WAIT_MS) return;
    if (now - this.failedAt < this.options.refreshMs) return;
    this.readingSince = now;
    background(this.read(now));
  }

  private async read(startedAt: number): Promise<void> {
    try {
      const view = await this.client.view();
      const now = Date.now();
      this.offsetMs = now - view.now;
      this.members = view.members.map((m) => ({ ...m, expiresAt: m.expires_at + this.offsetMs }));
      if (view.scale_up && !(this.scaleUp && this.scaleUp.at > view.scale_up.requested_at + this.offsetMs)) {
        this.scaleUp = { ...view.scale_up, at: view.scale_up.requested_at + this.offsetMs };
      }
      this.readAt = now;
    } catch (err) {
      this.failedAt = Date.now();
      console.warn(`[edge] reading the fleet registry failed: ${(err as Error).message}`);
    } finally {
      if (this.readingSince === startedAt) this.readingSince = 0;
    }
  }

  /** Until a read that began at or after `since` has finished (or failed), at most READ_WAIT_MS. */
  private async awaitRead(since: number): Promise<void> {
    const limit = since + READ_WAIT_MS;
    while (this.readAt < since && this.failedAt < since && Date.now() < limit) {
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
  }
}
