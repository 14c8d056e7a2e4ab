// An edge isolate's membership view (edge/membership.ts) over a registry whose answers the test scripts, to inject
// what the end-to-end test cannot arrange on demand (a slow or failing registry, a clock past a member's expiry): the
// registry is read at most once per refresh interval however many requests arrive; a view with a ready member (or
// beside a WORKER_URLS worker in rotation) is used while its successor is read, an empty or twice-stale one waits for
// it; a member is out at its expiry between reads; a failing registry costs a request one failed read, not
// READ_WAIT_MS; the scale-up webhook is asked for once per refresh interval and isolate, and a call stops meaning "a
// worker is starting" once a member joined after it.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { FleetView, MemberRecord, ScaleUpRecord } from '../../edge/fleet-records.ts';
import { Membership, READ_WAIT_MS, type FleetClient } from '../../edge/membership.ts';

const REFRESH_MS = 1_000;
const COOLDOWN_MS = 60_000;
const T0 = 1_800_000_000_000;
const background = (work: Promise<unknown>) => void work;

function member(url: string, state: MemberRecord['state'], joinedAt: number, expiresAt: number): MemberRecord {
  return {
    url, instance: url, seq: 1, state, model: 'm', max_context: 4096, max_batch: 64, kv_blocks_free: 10, kv_blocks_total: 10,
    running: 0, waiting: 0, joined_at: joinedAt, last_seen: joinedAt, expires_at: expiresAt,
  };
}

/** A registry that answers with `members()` after `delayMs`, or fails while `failing`. */
function registry() {
  const r = {
    reads: 0, scaleUps: 0, delayMs: 0, failing: false,
    members: [] as MemberRecord[],
    scaleUp: null as ScaleUpRecord | null,
    client: {
      view: async (): Promise<FleetView> => {
        r.reads++;
        await new Promise((res) => setTimeout(res, r.delayMs));
        if (r.failing) throw new Error('registry unavailable');
        return { now: Date.now(), members: r.members, scale_up: r.scaleUp };
      },
      requestScaleUp: async (): Promise<ScaleUpRecord> => {
        r.scaleUps++;
        r.scaleUp ??= { requested_at: Date.now(), status: 202, error: null };
        return r.scaleUp;
      },
    } satisfies FleetClient,
  };
  return r;
}

const membershipOf = (client: FleetClient) =>
  new Membership(client, { refreshMs: REFRESH_MS, scaleUp: true, scaleUpCooldownMs: COOLDOWN_MS, scaleUpWaitMs: 0, scaleUpRetryAfterS: 10 });

/** Runs `work` while fake time advances in small steps until it settles. */
async function settle<T>(work: Promise<T>): Promise<T> {
  let done = false;
  const result = work.finally(() => (done = true));
  while (!done) await vi.advanceTimersByTimeAsync(5);
  return result;
}

beforeEach(() => vi.useFakeTimers({ now: T0 }));
afterEach(() => vi.useRealTimers());

describe('an isolate\'s membership view', () => {
  it('Should read the registry once for 50 concurrent requests, and not again within the refresh interval', async () => {
    const r = registry();
    r.members = [member('http://a', 'ready', T0, T0 + 15_000)];
    const m = membershipOf(r.client);
    const views = await settle(Promise.all(Array.from({ length: 50 }, () => m.current(background))));
    expect(r.reads).toBe(1);
    expect(views.every((v) => v.length === 1)).toBe(true);
    await settle(Promise.all(Array.from({ length: 50 }, () => m.current(background))));
    vi.advanceTimersByTime(REFRESH_MS / 2);
    await settle(m.current(background));
    expect(r.reads).toBe(1);
    vi.advanceTimersByTime(REFRESH_MS);
    await settle(Promise.all(Array.from({ length: 50 }, () => m.current(background))));
    expect(r.reads).toBe(2);
  });

  it('Should route on a stale view with a ready member while the next read runs, and wait when it is twice stale', async () => {
    const r = registry();
    r.members = [member('http://a', 'ready', T0, T0 + 60_000)];
    const m = membershipOf(r.client);
    await settle(m.current(background));
    r.delayMs = 300;
    r.members = [...r.members, member('http://b', 'ready', T0, T0 + 60_000)];
    vi.advanceTimersByTime(REFRESH_MS + 1);
    expect((await m.current(background)).map((x) => x.url)).toEqual(['http://a']); // at once, no timer advanced
    await settle(new Promise((res) => setTimeout(res, 400)));
    expect((await m.current(background)).map((x) => x.url)).toEqual(['http://a', 'http://b']);
    vi.advanceTimersByTime(2 * REFRESH_MS + 1);
    r.members = [member('http://b', 'ready', T0, T0 + 60_000)];
    const started = Date.now();
    expect((await settle(m.current(background))).map((x) => x.url)).toEqual(['http://b']); // waited for the read
    expect(Date.now() - started).toBeGreaterThanOrEqual(300);
  });

  it('Should wait for the read when no member is ready, and drop a member at its expiry between reads', async () => {
    const r = registry();
    const m = membershipOf(r.client);
    expect(await settle(m.current(background))).toEqual([]);
    vi.advanceTimersByTime(REFRESH_MS);
    r.members = [member('http://a', 'ready', Date.now(), Date.now() + REFRESH_MS / 2)]; // its last heartbeat: now
    expect((await settle(m.current(background))).map((x) => x.url)).toEqual(['http://a']); // the join, at the next read
    const reads = r.reads;
    vi.advanceTimersByTime(REFRESH_MS / 2); // its expiry, inside the refresh interval: no read
    expect(await m.current(background)).toEqual([]);
    expect(r.reads).toBe(reads);
  });

  it('Should not wait for a read when no member is ready but a WORKER_URLS worker is in rotation, unless the view is twice stale', async () => {
    const r = registry();
    const m = membershipOf(r.client);
    r.delayMs = 300;
    const started = Date.now();
    expect(await settle(m.current(background, true))).toEqual([]); // never read: waited even with a fallback
    expect(Date.now() - started).toBeGreaterThanOrEqual(300);
    vi.advanceTimersByTime(REFRESH_MS);
    r.members = [member('http://a', 'ready', Date.now(), Date.now() + 60_000)];
    expect(await m.current(background, true)).toEqual([]); // stale, no ready member, the fallback: at once
    await settle(new Promise((res) => setTimeout(res, 400)));
    expect((await m.current(background, true)).map((x) => x.url)).toEqual(['http://a']); // the background read landed
    vi.advanceTimersByTime(2 * REFRESH_MS);
    r.members = [];
    expect(await settle(m.current(background, true))).toEqual([]); // twice stale: waited
    expect(r.reads).toBe(3);
  });

  it('Should give up on a failing registry after one failed read, and space the next one by the refresh interval', async () => {
    const r = registry();
    r.failing = true;
    const m = membershipOf(r.client);
    const started = Date.now();
    expect(await settle(m.current(background))).toEqual([]);
    expect(Date.now() - started).toBeLessThan(READ_WAIT_MS);
    await settle(Promise.all(Array.from({ length: 20 }, () => m.current(background))));
    expect(r.reads).toBe(1);
    r.failing = false;
    r.members = [member('http://a', 'ready', T0, T0 + 60_000)];
    vi.advanceTimersByTime(REFRESH_MS);
    expect(await settle(m.current(background))).toHaveLength(1);
    expect(r.reads).toBe(2);
  });

  it('Should ask for a scale-up once per refresh interval, and count it as starting until a member joins after it', async () => {
    const r = registry();
    const m = membershipOf(r.client);
    await settle(m.current(background));
    expect(m.starting()).toBe(false);
    for (let i = 0; i < 10; i++) m.requestScaleUp(background);
    await vi.advanceTimersByTimeAsync(1);
    expect(r.scaleUps).toBe(1);
    expect(m.starting()).toBe(true);
    vi.advanceTimersByTime(REFRESH_MS);
    m.requestScaleUp(background); // the call is known to be inside its cool-down window: not asked again
    expect(r.scaleUps).toBe(1);
    r.members = [member('http://a', 'loading', Date.now(), Date.now() + 15_000)];
    await settle(m.current(background));
    expect(m.starting()).toBe(true); // loading
    r.members = [member('http://a', 'ready', r.members[0].joined_at, Date.now() + 15_000)];
    vi.advanceTimersByTime(REFRESH_MS);
    await settle(m.current(background));
    expect(m.starting()).toBe(false); // answered: a member joined after the call
  });
});
