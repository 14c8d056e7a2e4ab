/**
 * @module The fleet registry: one Durable Object that knows every GPU worker which announced itself with a signed
 * heartbeat (gpu-worker/heartbeat.ts, through POST /fleet/heartbeat), and that calls the scale-up webhook at most
 * once per cool-down window when the edge finds no worker at all.
 *
 * Why a Durable Object and not KV with a TTL (docs/fleet.md#where-membership-lives): one object is strongly
 * consistent, so a worker that leaves is out for every edge isolate at its next read (KV can show a deleted key for
 * about a minute elsewhere, and its TTLs cannot be shorter than 60 s); a member's liveness is computed from its last
 * heartbeat with any TTL; concurrent heartbeats never overwrite each other; and a heartbeat costs a DO request and
 * one SQLite row instead of a KV write, which is priced ~30× a DO request. Isolates read it at most once per refresh
 * interval.
 *
 * Records are persisted (one storage row per member), so a restarted object still knows the fleet. Expired members
 * are dropped when read. Settings (TTL, webhook) travel with each call from the edge's configuration, as the rate
 * limiter's limits do.
 */
import { DurableObject } from 'cloudflare:workers';
import type { Heartbeat, HeartbeatAck } from '../gpu-worker/protocol.ts';
import { signRequest } from '../gpu-worker/signing.ts';
import { heartbeatAck, type FleetView, type MembershipSettings, type MemberRecord, type ScaleUpRecord } from './fleet-records.ts';

export type ScaleUpSettings = {
  url: string;
  /** sent as `Authorization: Bearer …` when set (a platform API's token) */
  token: string;
  /** HMAC secret of the x-q3-timestamp / x-q3-signature headers over the body */
  secret: string;
  /** at most one call per this long (ms) */
  cooldownMs: number;
};

/** What the webhook receives (JSON), signed like a worker request. */
export type ScaleUpEvent = {
  event: 'scale_up';
  reason: string;
  requested_at: string;
  /** members the registry knows, by state */
  members: Record<'loading' | 'ready' | 'draining', number>;
};

/** A webhook that does not answer within this long has failed (ms). */
export const WEBHOOK_TIMEOUT_MS = 10_000;
const MEMBER_PREFIX = 'member:';
const SCALE_UP_KEY = 'scale-up';

export class Fleet extends DurableObject {
  private readonly members = new Map<string, MemberRecord>();
  private scaleUp: ScaleUpRecord | null = null;

  constructor(ctx: DurableObjectState, env: unknown) {
    super(ctx, env as never);
    ctx.blockConcurrencyWhile(async () => {
      for (const record of (await ctx.storage.list<MemberRecord>({ prefix: MEMBER_PREFIX })).values()) this.members.set(record.url, record);
      this.scaleUp = (await ctx.storage.get<ScaleUpRecord>(SCALE_UP_KEY)) ?? null;
    });
  }

  /**
   * Records a heartbeat; `accepted` is false for one that changes nothing: older than the instance's last one (they
   * can arrive out of order), or from an instance that has already left (a replayed or late heartbeat cannot bring a
   * draining worker back; a restarted process is a new instance).
   */
  async heartbeat(beat: Heartbeat, settings: MembershipSettings): Promise<{ accepted: boolean; ack: HeartbeatAck }> {
    const now = Date.now();
    const ack = heartbeatAck(settings);
    const stored = this.members.get(beat.url);
    const known = stored && stored.instance === beat.instance && stored.expires_at > now ? stored : undefined;
    if (known && (beat.seq <= known.seq || known.state === 'draining')) return { accepted: false, ack };
    if (known?.state !== beat.state) {
      console.log(`[fleet] ${beat.url} (${beat.instance.slice(0, 8)}) ${known ? `${known.state} → ` : 'joined: '}${beat.state}`);
    }
    const record: MemberRecord = { ...beat, joined_at: known?.joined_at ?? now, last_seen: now, expires_at: now + settings.ttlMs };
    this.members.set(beat.url, record);
    await this.ctx.storage.put(MEMBER_PREFIX + beat.url, record);
    return { accepted: true, ack };
  }

  /** The members not yet expired (expired ones are forgotten here) and the last scale-up call. */
  async view(): Promise<FleetView> {
    const now = Date.now();
    const expired = [...this.members.values()].filter((m) => m.expires_at <= now);
    for (const m of expired) this.members.delete(m.url);
    if (expired.length > 0) await this.ctx.storage.delete(expired.map((m) => MEMBER_PREFIX + m.url));
    return { now, members: [...this.members.values()], scale_up: this.scaleUp };
  }

  /**
   * Calls the scale-up webhook unless it was called less than `cooldownMs` ago (whichever isolate asks), and
   * resolves once it answered (or failed) with the record of the call that counts.
   */
  async requestScaleUp(reason: string, settings: ScaleUpSettings): Promise<ScaleUpRecord> {
    const now = Date.now();
    if (this.scaleUp && now - this.scaleUp.requested_at < settings.cooldownMs) return this.scaleUp;
    const record: ScaleUpRecord = { requested_at: now, status: null, error: null };
    this.scaleUp = record; // before any await: a second caller inside this call sees it
    await this.ctx.storage.put(SCALE_UP_KEY, record);
    const { members } = await this.view();
    const count = (state: Heartbeat['state']) => members.filter((m) => m.state === state).length;
    const event: ScaleUpEvent = {
      event: 'scale_up', reason, requested_at: new Date(now).toISOString(),
      members: { loading: count('loading'), ready: count('ready'), draining: count('draining') },
    };
    try {
      const res = await callWebhook(settings, JSON.stringify(event));
      record.status = res.status;
      if (!res.ok) record.error = `answered ${res.status}: ${(await res.text()).slice(0, 200)}`;
      else await res.body?.cancel();
    } catch (err) {
      record.error = (err as Error).name === 'TimeoutError' ? `no answer within ${WEBHOOK_TIMEOUT_MS} ms` : (err as Error).message;
    }
    console.log(`[fleet] scale-up webhook (${reason}): ${record.error ?? `answered ${record.status}`}`);
    await this.ctx.storage.put(SCALE_UP_KEY, record);
    return record;
  }
}

/** POST the event to the webhook: JSON, HMAC-signed over method, path and body, plus the bearer token if any. */
async function callWebhook(settings: ScaleUpSettings, body: string): Promise<Response> {
  const url = new URL(settings.url);
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (settings.secret) Object.assign(headers, await signRequest(settings.secret, { method: 'POST', path: url.pathname + url.search, body }));
  if (settings.token) headers.authorization = `Bearer ${settings.token}`;
  return fetch(url, { method: 'POST', headers, body, signal: AbortSignal.timeout(WEBHOOK_TIMEOUT_MS) });
}
