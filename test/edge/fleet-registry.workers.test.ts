// The fleet registry inside workerd (wrangler.toml's FLEET Durable Object, real local storage): what POST
// /fleet/heartbeat refuses (unsigned, wrongly signed, stale, not JSON, not a heartbeat, too large: each an error in
// OpenAI's shape, the registry untouched), what it records (a member's join, heartbeats out of order or repeated
// ignored, a draining instance never brought back by a later heartbeat, a restarted process taken as a new
// instance), a member dropped one TTL after its last heartbeat, and the scale-up webhook called at most once per
// cool-down window however many callers ask, its failure kept. The webhook is a stand-in for fetch (the registry's
// only outbound call); everything else is the code as deployed.
/// <reference types="@cloudflare/vitest-pool-workers/types" />
import { env as workerEnv } from 'cloudflare:workers';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createApp } from '../../edge/app.ts';
import type { Fleet, ScaleUpSettings } from '../../edge/fleet.ts';
import { fleetStub } from '../../edge/platform.ts';
import { HEARTBEAT_PATH, type Heartbeat } from '../../gpu-worker/protocol.ts';
import { signRequest } from '../../gpu-worker/signing.ts';

type Json = Record<string, any>;
const SECRET = 'fleet-registry-secret';
const TTL_MS = 1_000;
const REFRESH_MS = 100;
const app = createApp();
const env = { ...(workerEnv as unknown as Record<string, unknown>), WORKER_SECRET: SECRET, MEMBER_TTL_MS: String(TTL_MS), MEMBERSHIP_REFRESH_MS: String(REFRESH_MS) };
const FLEET = (workerEnv as unknown as { FLEET: DurableObjectNamespace<Fleet> }).FLEET;

let members = 0;
/** A heartbeat of a new worker URL (each test its own members: the registry is one object). */
function beat(overrides: Partial<Heartbeat> = {}): Heartbeat {
  return {
    url: `http://member-${++members}.test:8790`, instance: crypto.randomUUID(), seq: 1, state: 'loading', model: 'qwen3-8b-awq',
    max_context: null, max_batch: 64, kv_blocks_free: 0, kv_blocks_total: 0, running: 0, waiting: 0, ...overrides,
  };
}

/** POST /fleet/heartbeat with `body` (a heartbeat or raw text), signed with `secret` unless it is null. */
async function post(body: Heartbeat | string, secret: string | null = SECRET, nowS?: number): Promise<{ status: number; json: Json }> {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (secret !== null) Object.assign(headers, await signRequest(secret, { method: 'POST', path: HEARTBEAT_PATH, body: text }, nowS));
  const res = await app.fetch(new Request(`http://edge${HEARTBEAT_PATH}`, { method: 'POST', headers, body: text }), env);
  return { status: res.status, json: (await res.json()) as Json };
}

const registry = () => fleetStub(FLEET);
const memberOf = async (url: string) => (await registry().view()).members.find((m) => m.url === url);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('POST /fleet/heartbeat', () => {
  it('Should refuse a heartbeat that is unsigned, wrongly signed, stale, not JSON, not a heartbeat or too large, and record none', async () => {
    const b = beat();
    const cases: [string, Promise<{ status: number; json: Json }>, number, Json][] = [
      ['unsigned', post(b, null), 401, { type: 'authentication_error', code: 'invalid_signature' }],
      ['another secret', post(b, 'not-the-secret'), 401, { type: 'authentication_error', code: 'invalid_signature' }],
      ['signed ten minutes ago', post(b, SECRET, Math.floor(Date.now() / 1000) - 600), 401, { type: 'authentication_error' }],
      ['not JSON', post('{"url":'), 400, { type: 'invalid_request_error' }],
      ['an unknown state', post({ ...b, state: 'sleeping' as Heartbeat['state'] }), 400, { type: 'invalid_request_error', param: 'state' }],
      ['a URL with another scheme', post({ ...b, url: 'ftp://member.test' }), 400, { type: 'invalid_request_error', param: 'url' }],
      ['an unknown field', post({ ...b, extra: 1 } as Heartbeat), 400, { type: 'invalid_request_error' }],
      ['too large', post({ ...b, model: 'x'.repeat(20_000) }), 413, {}],
    ];
    for (const [what, answer, status, error] of cases) {
      const { status: got, json } = await answer;
      expect(got, what).toBe(status);
      expect(json.error, what).toMatchObject({ message: expect.any(String), ...error });
      expect(Object.keys(json.error).sort(), what).toEqual(['code', 'message', 'param', 'type']);
    }
    expect(await memberOf(b.url)).toBeUndefined();
  });

  it('Should record a member, ignore older or repeated heartbeats, and never bring a draining instance back', async () => {
    const b = beat();
    const first = await post(b);
    expect(first.status).toBe(200);
    expect(first.json).toEqual({ accepted: true, ttl_ms: TTL_MS, interval_ms: Math.floor(TTL_MS / 3), leave_ms: 2 * REFRESH_MS + 1_000 });
    const joinedAt = (await memberOf(b.url))!.joined_at;
    expect((await post(b)).json.accepted).toBe(false); // the same heartbeat again
    expect((await post({ ...b, seq: 3, state: 'ready', max_context: 40_960, running: 2 })).json.accepted).toBe(true);
    expect((await post({ ...b, seq: 2, state: 'loading' })).json.accepted).toBe(false); // arrived late
    expect(await memberOf(b.url)).toMatchObject({ state: 'ready', seq: 3, running: 2, max_context: 40_960, joined_at: joinedAt });
    expect((await post({ ...b, seq: 4, state: 'draining' })).json.accepted).toBe(true);
    expect((await post({ ...b, seq: 5, state: 'ready' })).json.accepted).toBe(false); // left: stays left
    expect(await memberOf(b.url)).toMatchObject({ state: 'draining', seq: 4 });
  });

  it('Should take a restarted process on the same URL as a new member, and strip a trailing slash from the URL', async () => {
    const b = beat();
    await post({ ...b, url: `${b.url}/`, state: 'ready' });
    await post({ ...b, seq: 2, state: 'draining' });
    const old = (await memberOf(b.url))!;
    expect(old.state).toBe('draining');
    await sleep(5);
    const restarted = await post({ ...b, instance: crypto.randomUUID(), seq: 1, state: 'ready' });
    expect(restarted.json.accepted).toBe(true);
    const now = (await memberOf(b.url))!;
    expect(now).toMatchObject({ state: 'ready', seq: 1 });
    expect(now.instance).not.toBe(old.instance);
    expect(now.joined_at).toBeGreaterThan(old.joined_at);
  });

  it('Should drop a member one TTL after its last heartbeat, and keep one that beats', async () => {
    const quiet = beat({ state: 'ready' });
    const beating = beat({ state: 'ready' });
    await post(quiet);
    await post(beating);
    for (let seq = 2; seq <= 6; seq++) {
      await sleep(TTL_MS / 4);
      await post({ ...beating, seq });
    }
    expect(await memberOf(quiet.url)).toBeUndefined(); // 1.25 s without a heartbeat, TTL 1 s
    expect(await memberOf(beating.url)).toMatchObject({ state: 'ready', seq: 6 });
  });
});

describe('the scale-up webhook', () => {
  const calls: { url: string; headers: Headers; body: Json }[] = [];
  let answer = () => new Response('{"accepted":true}', { status: 202 });
  const realFetch = globalThis.fetch;
  beforeAll(() => {
    vi.spyOn(globalThis, 'fetch').mockImplementation(async (input: RequestInfo | URL, init?: RequestInit) => {
      const request = new Request(input, init);
      if (!request.url.startsWith('https://gpu-platform.test/')) return realFetch(input, init);
      calls.push({ url: request.url, headers: request.headers, body: (await request.json()) as Json });
      return answer();
    });
  });
  afterAll(() => vi.restoreAllMocks());

  const settings = (cooldownMs: number): ScaleUpSettings => ({ url: 'https://gpu-platform.test/v1/pods/p1/start', token: 'platform-key', secret: SECRET, cooldownMs });

  it('Should call the webhook once per cool-down window however many callers ask, signed and with the bearer token', async () => {
    const fleet = FLEET.get(FLEET.idFromName('scale-up-once'));
    const records = await Promise.all(Array.from({ length: 10 }, () => fleet.requestScaleUp('no_live_worker', settings(60_000))));
    expect(calls).toHaveLength(1);
    expect(new Set(records.map((r) => r.requested_at)).size).toBe(1); // all answered with the one call
    const call = calls[0];
    expect(call.headers.get('authorization')).toBe('Bearer platform-key');
    expect(call.headers.get('x-q3-signature')).toMatch(/^[0-9a-f]{64}$/);
    expect(call.body).toMatchObject({ event: 'scale_up', reason: 'no_live_worker', members: { loading: 0, ready: 0, draining: 0 } });
    expect((await fleet.view()).scale_up).toMatchObject({ status: 202, error: null });
  });

  it('Should keep a failed call in the record, and call again once the window has passed', async () => {
    calls.length = 0;
    const fleet = FLEET.get(FLEET.idFromName('scale-up-failing'));
    answer = () => new Response('no capacity', { status: 500 });
    const failed = await fleet.requestScaleUp('no_live_worker', settings(200));
    expect(failed).toMatchObject({ status: 500, error: expect.stringContaining('answered 500: no capacity') });
    expect((await fleet.requestScaleUp('no_live_worker', settings(200))).requested_at).toBe(failed.requested_at); // inside the window
    expect(calls).toHaveLength(1);
    await sleep(250);
    answer = () => new Response('{}', { status: 200 });
    expect(await fleet.requestScaleUp('no_live_worker', settings(200))).toMatchObject({ status: 200, error: null });
    expect(calls).toHaveLength(2);
  });
});
