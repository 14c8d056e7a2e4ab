/**
 * @module What the fleet registry (edge/fleet.ts, a Durable Object) keeps and answers, and what an edge isolate's view
 * of it (edge/membership.ts) reads: member records, the last scale-up call, the membership settings and the answer
 * to a heartbeat. Plain types and one pure function, so Node code (tests, tools) can use them without workerd.
 */
import type { Heartbeat, HeartbeatAck } from '../gpu-worker/protocol.ts';

/** A member as the registry knows it; times are the object's clock (ms since the epoch). */
export type MemberRecord = Heartbeat & {
  /** first heartbeat of this instance */
  joined_at: number;
  last_seen: number;
  /** out of the fleet from then on unless another heartbeat arrives */
  expires_at: number;
};

/** The last scale-up webhook call. */
export type ScaleUpRecord = {
  requested_at: number;
  /** the webhook's HTTP status; null while the call runs or when it never answered */
  status: number | null;
  error: string | null;
};

/** What an edge isolate reads: the members not yet expired, the last scale-up call, and the object's clock. */
export type FleetView = { now: number; members: MemberRecord[]; scale_up: ScaleUpRecord | null };

export type MembershipSettings = {
  /** a member not heard from for this long is out (ms) */
  ttlMs: number;
  /** how long an isolate may route on a view before re-reading it (ms) */
  refreshMs: number;
};

/**
 * What a heartbeat is answered with: beat three times per TTL, so one lost heartbeat never takes a member out; after
 * leaving, serve on for as long as an isolate may still route on a view read before the leave (one refresh interval
 * used as it is, another while its successor is read: edge/membership.ts) plus a second for that read.
 */
export function heartbeatAck(settings: MembershipSettings): HeartbeatAck {
  return {
    ttl_ms: settings.ttlMs,
    interval_ms: Math.max(1, Math.floor(settings.ttlMs / 3)),
    leave_ms: 2 * settings.refreshMs + 1_000,
  };
}
