// API keys, rate limits, quotas, the response cache and usage metering inside workerd with the real local KV,
// Durable Objects, D1 and Cache API: the edge app built with accountsMiddleware() + mountAccounts() and called with
// an ExecutionContext, so every waitUntil (usage writes, lease releases, cache puts) can be awaited. The cache runs
// against the real GPU worker of worker.global-setup.ts (calls counted on the way out); concurrency, aborts and a
// worker dying mid-stream use a fake worker speaking gpu-worker/protocol.ts, because timing must be controlled.
/// <reference types="@cloudflare/vitest-pool-workers/types" />
import { env as workerEnv } from 'cloudflare:workers';
import { createExecutionContext, runInDurableObject, waitOnExecutionContext } from 'cloudflare:test';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { issueKey } from '../../edge/key-store.ts';
import type { GenerateRequest } from '../../gpu-worker/protocol.ts';
import { accountsMiddleware, mountAccounts } from '../../edge/accounts.ts';
import { createApp } from '../../edge/app.ts';
import { LEASE_TTL_MS, loadState, type RateLimiter } from '../../edge/rate-limiter-do.ts';
import { getTokenizer } from '../../edge/tokenizer/index.js';

type Json = Record<string, any>;
const ADMIN_TOKEN = 'adm-test-0123456789';
const MODEL = 'qwen3-8b-awq';
const app = createApp({ extensions: accountsMiddleware() });
mountAccounts(app);

const env: Env = workerEnv;
const bindings = workerEnv as unknown as Record<string, unknown>;
const realEnv = { ...bindings, ADMIN_TOKEN };
let fakeWorkers = 0;
/** Bindings whose WORKER_URLS is a fresh fake worker (its own upstream pool: no cool-down leaks between tests). */
function fakeEnv(): Record<string, unknown> {
  return { ...bindings, ADMIN_TOKEN, WORKER_URLS: `http://fake-worker-${++fakeWorkers}.test`, WORKER_SECRET: 'fake-worker-secret' };
}

// --- the fake worker and the count of /v1/generate calls -----------------------------------------------------------

/** What the fake worker does for one request: send `tokens`, optionally stop at a gate after `gateAfter` of them. */
type Script = { tokens: number[]; gateAfter?: number; gate?: Promise<void>; atGate?: () => void; die?: boolean };
let script: (req: GenerateRequest) => Script = () => ({ tokens: OK_TOKENS(3) });
let generateCalls = 0;
/** the signal of each /v1/generate call, by the request id in its body */
const generateSignals = new Map<string, AbortSignal | null | undefined>();
const promptLengths = new Map<string, number>();
const OK = getTokenizer().encode(' ok');
const OK_TOKENS = (n: number) => Array.from({ length: n }, () => OK[0]);
const EOS = 151645;

function fakeWorker(body: string, signal: AbortSignal | null | undefined): Response {
  const req = JSON.parse(body) as GenerateRequest;
  promptLengths.set(req.request_id, req.prompt.length);
  generateSignals.set(req.request_id, signal);
  const s = script(req);
  const encoder = new TextEncoder();
  const frame = (data: unknown) => encoder.encode(`data: ${JSON.stringify(data)}\n\n`);
  // pull-based with no read-ahead: a frame is made only when the edge asks for it, so when the gate is reached the
  // edge has taken every frame before it, and a worker dying there loses nothing already sent
  let i = 0;
  const stream = new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        if (i === s.gateAfter) {
          s.atGate?.();
          await s.gate;
          if (signal?.aborted) return;
          if (s.die) return controller.error(new Error('worker died'));
        }
        if (i < s.tokens.length) {
          controller.enqueue(frame({ tokens: [s.tokens[i++]] }));
          return;
        }
        const usage = { prompt_tokens: req.prompt.length, completion_tokens: s.tokens.length + 1, cached_tokens: 0 };
        controller.enqueue(frame({ tokens: [], finish_reason: 'stop', stop_token_id: EOS, usage }));
        controller.close();
      },
      cancel() {},
    },
    { highWaterMark: 0 },
  );
  return new Response(stream, { headers: { 'content-type': 'text/event-stream' } });
}

const realFetch = globalThis.fetch;
beforeAll(() => {
  vi.spyOn(globalThis, 'fetch').mockImplementation(async (input: RequestInfo | URL, init?: RequestInit) => {
    const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
    if (url.endsWith('/v1/generate')) generateCalls++;
    if (url.startsWith('http://fake-worker-') && url.endsWith('/ready')) return Response.json({ ready: true }); // the edge's health probe
    if (url.startsWith('http://fake-worker-')) return fakeWorker(String(init?.body), init?.signal);
    return realFetch(input, init);
  });
});
afterAll(() => vi.restoreAllMocks());

// --- helpers -------------------------------------------------------------------------------------------------------

type Call = { res: Response; settled: () => Promise<void> };

/** One request through the app; `settled()` waits for its waitUntil work (read the body first). */
async function call(envFor: Record<string, unknown>, path: string, init: RequestInit = {}): Promise<Call> {
  const ctx = createExecutionContext();
  const res = await app.fetch(new Request(`http://edge${path}`, init), envFor, ctx);
  return { res, settled: () => waitOnExecutionContext(ctx) };
}

const adminHeaders = { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' };

async function createKey(body: Json): Promise<{ key: string; id: string; record: Json }> {
  const { res } = await call(realEnv, '/admin/keys', { method: 'POST', headers: adminHeaders, body: JSON.stringify(body) });
  expect(res.status).toBe(201);
  const record = await res.json<Json>();
  return { key: record.key, id: record.id, record };
}

function chatInit(key: string, body: Json, headers: Record<string, string> = {}): RequestInit {
  return {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'hi' }], reasoning_effort: 'none', ...body }),
  };
}

/** A finished chat request: status, headers, body text, after its waitUntil work settled. */
async function chat(envFor: Record<string, unknown>, key: string, body: Json = {}, headers: Record<string, string> = {}) {
  const { res, settled } = await call(envFor, '/v1/chat/completions', chatInit(key, body, headers));
  const text = await res.text();
  await settled();
  return { status: res.status, headers: res.headers, text, json: () => JSON.parse(text) as Json };
}

async function usageRows(keyId: string): Promise<Json[]> {
  const { results } = await env.USAGE.prepare('SELECT * FROM usage WHERE key_id = ? ORDER BY started_at').bind(keyId).all<Json>();
  return results;
}

/** Waits until `check` passes (it throws until then), for at most 10 s. */
async function eventually(check: () => Promise<void>): Promise<void> {
  for (const deadline = Date.now() + 10_000; ; await new Promise((resolve) => setTimeout(resolve, 10))) {
    try {
      return await check();
    } catch (err) {
      if (Date.now() > deadline) throw err;
    }
  }
}

function limiter(keyId: string) {
  return env.RATE_LIMITER.get(env.RATE_LIMITER.idFromName(keyId));
}

/**
 * Runs `work` while counting the calls of `method` the limiter of key `keyId` answers (admitAll, the edge's one per
 * batch of admissions; settleAll, one per batch of settles) and their sizes; `hold` (optional) is awaited before each
 * is decided.
 */
async function countCalls<T>(
  keyId: string, work: () => Promise<T>, hold?: () => Promise<void>, method: 'admitAll' | 'settleAll' = 'admitAll',
): Promise<{ result: T; sizes: number[] }> {
  const sizes: number[] = [];
  let target: RateLimiter | undefined;
  await runInDurableObject(limiter(keyId), async (instance: RateLimiter) => {
    target = instance;
  });
  // RPC finds methods on the class's prototype: wrapped there, for this key's object only
  const proto = Object.getPrototypeOf(target) as Record<typeof method, (this: RateLimiter, reqs: unknown[]) => Promise<unknown[]>>;
  const original = proto[method];
  proto[method] = async function (this: RateLimiter, reqs) {
    if (this === target) {
      sizes.push(reqs.length);
      await hold?.();
    }
    return original.call(this, reqs);
  };
  try {
    return { result: await work(), sizes };
  } finally {
    proto[method] = original;
  }
}

/** SSE data payloads of a body text. */
function frames(text: string): string[] {
  return text.split('\n\n').flatMap((block) => block.split('\n').filter((l) => l.startsWith('data: ')).map((l) => l.slice(6)));
}

function streamedContent(text: string): string {
  return frames(text)
    .filter((f) => f !== '[DONE]')
    .map((f) => JSON.parse(f) as Json)
    .flatMap((chunk) => (chunk.choices ?? []).map((ch: Json) => ch.delta?.content ?? ''))
    .join('');
}

// --- tests ---------------------------------------------------------------------------------------------------------

describe('admin API', () => {
  it('Should refuse a missing or wrong admin token with 401 in the OpenAI error shape', async () => {
    for (const authorization of [undefined, 'Bearer wrong-token', `Bearer ${ADMIN_TOKEN}x`]) {
      const { res } = await call(realEnv, '/admin/keys', { headers: authorization ? { authorization } : {} });
      expect(res.status).toBe(401);
      expect((await res.json<Json>()).error).toMatchObject({ type: 'authentication_error', code: 'invalid_admin_token' });
    }
    // no ADMIN_TOKEN: the admin API is shut for everyone (test/edge/required-secrets.test.ts)
    const unset = await call({ ...bindings }, '/admin/keys', { headers: adminHeaders });
    expect(unset.res.status).toBe(500);
    expect((await unset.res.json<Json>()).error).toMatchObject({ type: 'server_error', code: 'missing_secret' });
  });

  it('Should create a key shown once, refuse a duplicate with 409, list it without secrets and change its limits', async () => {
    const chosen = 'sk-dev-chosen-key-0123456789';
    const { key, id, record } = await createKey({ key: chosen, tenant: 'dev', name: 'development key' });
    expect(key).toBe(chosen);
    expect(id).toMatch(/^key_[0-9a-f]{16}$/);
    expect(record).toMatchObject({ tenant: 'dev', name: 'development key', models: null, revoked_at: null });
    expect(record).not.toHaveProperty('hash');

    const again = await call(realEnv, '/admin/keys', { method: 'POST', headers: adminHeaders, body: JSON.stringify({ key: chosen, tenant: 'dev' }) });
    expect(again.res.status).toBe(409);
    expect((await again.res.json<Json>()).error.code).toBe('key_exists');

    const generated = await createKey({ tenant: 'dev' });
    expect(generated.key).toMatch(/^sk-[A-Za-z0-9_-]{32}$/);

    const list = await (await call(realEnv, '/admin/keys?tenant=dev', { headers: adminHeaders })).res.json<Json>();
    const ids = list.data.map((k: Json) => k.id);
    expect(ids).toEqual(expect.arrayContaining([id, generated.id]));
    expect(JSON.stringify(list)).not.toContain(chosen);
    expect(JSON.stringify(list)).not.toContain(generated.key);

    const patched = await call(realEnv, `/admin/keys/${id}`, {
      method: 'PATCH', headers: adminHeaders, body: JSON.stringify({ limits: { requests_per_minute: 7 } }),
    });
    expect(patched.res.status).toBe(200);
    expect((await patched.res.json<Json>()).limits.requests_per_minute).toBe(7);
    const shown = await (await call(realEnv, `/admin/keys/${id}`, { headers: adminHeaders })).res.json<Json>();
    expect(shown).toMatchObject({ id, quota_used: 0, in_flight: 0 });
    expect(shown.limits.requests_per_minute).toBe(7);
  });
});

describe('API keys', () => {
  it('Should answer 401 invalid_api_key without a key, with an unknown key and with a revoked key', async () => {
    const env1 = fakeEnv();
    const none = await call(env1, '/v1/models');
    expect(none.res.status).toBe(401);
    expect((await none.res.json<Json>()).error).toMatchObject({ code: 'invalid_api_key' });
    const unknown = await chat(env1, 'sk-unknown-key-000000000000');
    expect(unknown.status).toBe(401);
    expect(unknown.json().error.code).toBe('invalid_api_key');

    const { key, id } = await createKey({ tenant: 'revocation' });
    expect((await chat(env1, key)).status).toBe(200);
    const revoked = await call(realEnv, `/admin/keys/${id}`, { method: 'DELETE', headers: adminHeaders });
    expect(revoked.res.status).toBe(200);
    expect((await revoked.res.json<Json>()).revoked_at).toBeTypeOf('number');
    const after = await chat(env1, key);
    expect(after.status).toBe(401);
    expect(after.json().error).toMatchObject({ type: 'invalid_request_error', code: 'invalid_api_key' });
  });

  it('Should refuse a key revoked in its rate limiter at once, even where KV still serves the old record', async () => {
    const { key, id } = await createKey({ tenant: 'revocation' });
    const envR = fakeEnv();
    const deterministic = { temperature: 0, max_tokens: 4 };
    expect((await chat(envR, key, deterministic)).headers.get('x-cache')).toBe('MISS');
    expect((await chat(envR, key, deterministic)).headers.get('x-cache')).toBe('HIT');
    await limiter(id).revoke(); // KV untouched: a location whose KV cache is stale
    const after = await chat(envR, key);
    expect(after.status).toBe(401);
    expect(after.json().error.code).toBe('invalid_api_key');
    // the admission is not awaited while the route works, but its refusal still decides what the client gets: not
    // the cached answer, not the route's 400
    const cached = await chat(envR, key, deterministic);
    expect(cached.status).toBe(401);
    expect(cached.headers.get('x-cache')).not.toBe('HIT');
    const invalid = await chat(envR, key, { n: 99 });
    expect(invalid.status).toBe(401);
    const models = await call(envR, '/v1/models', { headers: { authorization: `Bearer ${key}` } });
    expect(models.res.status).toBe(401);
  });

  it('Should answer 404 model_not_found for a model the key may not use, before any worker is asked', async () => {
    const { key } = await createKey({ tenant: 'restricted', models: ['some-other-model'] });
    const before = generateCalls;
    const res = await chat(fakeEnv(), key);
    expect(res.status).toBe(404);
    expect(res.json().error).toMatchObject({ code: 'model_not_found', param: 'model' });
    expect(generateCalls).toBe(before);
    // seeded straight into KV, as a test or script without the admin token would
    const allowed = await issueKey(env.KEYS, { tenant: 'restricted', models: [MODEL] });
    expect((await chat(fakeEnv(), allowed!.secret)).status).toBe(200);
  });

  it("Should keep keys isolated: /v1/usage shows the caller's own usage only", async () => {
    const a = await createKey({ tenant: 'tenant-a' });
    const b = await createKey({ tenant: 'tenant-b' });
    const envAB = fakeEnv();
    for (let i = 0; i < 2; i++) expect((await chat(envAB, a.key)).status).toBe(200);
    expect((await chat(envAB, b.key)).status).toBe(200);

    const usageOf = async (key: string, query = '') => {
      const { res } = await call(envAB, `/v1/usage${query}`, { headers: { authorization: `Bearer ${key}` } });
      expect(res.status).toBe(200);
      return res.json<Json>();
    };
    const ua = await usageOf(a.key, `?key_id=${b.id}`); // a foreign key id in the query changes nothing
    expect(ua).toMatchObject({ key_id: a.id, tenant: 'tenant-a' });
    expect(ua.data.reduce((n: number, d: Json) => n + d.requests, 0)).toBe(2);
    const ub = await usageOf(b.key);
    expect(ub.key_id).toBe(b.id);
    expect(ub.data.reduce((n: number, d: Json) => n + d.requests, 0)).toBe(1);
    expect(ub.data[0]).toMatchObject({ model: MODEL, prompt_tokens: expect.any(Number), completion_tokens: 4 });
    const unauthenticated = await call(envAB, '/v1/usage');
    expect(unauthenticated.res.status).toBe(401);
  });

  it("Should send the key's tenant in every worker request (the signed body), never a tenant the client names", async () => {
    const { key } = await createKey({ tenant: 'tenant-w' });
    const seen: (string | undefined)[] = [];
    const previous = script;
    script = (req) => (seen.push(req.tenant), previous(req));
    try {
      const envW = fakeEnv();
      expect((await chat(envW, key, { tenant: 'someone-else', n: 2 })).status).toBe(200);
      const completions = await call(envW, '/v1/completions', {
        method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
        body: JSON.stringify({ model: MODEL, prompt: 'hi', max_tokens: 4, tenant: 'someone-else' }),
      });
      expect(completions.res.status).toBe(200);
      await completions.res.text();
      await completions.settled();
    } finally {
      script = previous;
    }
    expect(seen).toEqual(['tenant-w', 'tenant-w', 'tenant-w']);
  });
});

describe('rate limits', () => {
  it('Should put x-ratelimit-* headers on every response, 429 over the request limit, and recover after the window', async () => {
    const { key, id } = await createKey({ tenant: 'rpm', limits: { requests_per_minute: 3 } });
    const envR = fakeEnv();
    const models = await call(envR, '/v1/models', { headers: { authorization: `Bearer ${key}` } });
    expect(models.res.headers.get('x-ratelimit-limit-requests')).toBe('3');
    expect(models.res.headers.get('x-ratelimit-remaining-requests')).toBe('3');

    const remaining: (string | null)[] = [];
    for (let i = 0; i < 3; i++) {
      const ok = await chat(envR, key);
      expect(ok.status).toBe(200);
      for (const h of ['limit-requests', 'limit-tokens', 'remaining-requests', 'remaining-tokens', 'reset-requests', 'reset-tokens']) {
        expect(ok.headers.get(`x-ratelimit-${h}`), h).toBeTruthy();
      }
      remaining.push(ok.headers.get('x-ratelimit-remaining-requests'));
    }
    expect(remaining).toEqual(['2', '1', '0']);

    const before = generateCalls;
    const limited = await chat(envR, key);
    expect(limited.status).toBe(429);
    expect(generateCalls).toBe(before);
    expect(limited.json().error).toMatchObject({ type: 'rate_limit_error', code: 'rate_limit_exceeded' });
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(Number(limited.headers.get('retry-after'))).toBeLessThanOrEqual(20);
    expect(limited.headers.get('x-ratelimit-limit-requests')).toBe('3');
    expect(limited.headers.get('x-ratelimit-remaining-requests')).toBe('0');
    expect(limited.headers.get('x-ratelimit-reset-requests')).toMatch(/^\d+(\.\d+)?s$|^\d+ms$/);

    // one window later (the limiter's clock moved, not the test's) the bucket is full again
    await runInDurableObject(limiter(id), async (instance: RateLimiter) => {
      instance.clockOffsetMs += 60_000;
    });
    const recovered = await chat(envR, key);
    expect(recovered.status).toBe(200);
    expect(recovered.headers.get('x-ratelimit-remaining-requests')).toBe('2');
  });

  it('Should refuse over the token limit once the prompt is tokenized, charging what requests really used', async () => {
    const { key } = await createKey({ tenant: 'tpm', limits: { tokens_per_minute: 60 } });
    const envT = fakeEnv();
    const first = await chat(envT, key, { max_tokens: 40 });
    expect(first.status).toBe(200);
    const used = first.json().usage.total_tokens;
    // the reservation (prompt + 40) was refunded down to what was used
    expect(Number(first.headers.get('x-ratelimit-remaining-tokens'))).toBeLessThan(60);
    const beforeSecond = generateCalls;
    const second = await chat(envT, key, { max_tokens: 60 - used + 1 });
    expect(second.status).toBe(429);
    expect(generateCalls).toBe(beforeSecond); // known to lack the tokens: it waited for its refusal, no worker call
    expect(second.json().error.code).toBe('rate_limit_exceeded');
    expect(second.json().error.message).toMatch(/tokens per min/);
    expect(second.headers.get('x-ratelimit-limit-tokens')).toBe('60');
    expect(Number(second.headers.get('x-ratelimit-remaining-tokens'))).toBe(60 - used);
    expect(second.headers.get('retry-after')).toBeTruthy();
  });

  it('Should answer 429 insufficient_quota once the quota is spent, until an admin resets it', async () => {
    const { key, id } = await createKey({ tenant: 'quota', limits: { quota_tokens: 10 } });
    const envQ = fakeEnv();
    const first = await chat(envQ, key);
    expect(first.status).toBe(200);
    const beforeSpent = generateCalls;
    const spent = await chat(envQ, key);
    expect(spent.status).toBe(429);
    expect(generateCalls).toBe(beforeSpent); // known to be over its quota: no worker call
    expect(spent.json().error).toMatchObject({ type: 'insufficient_quota', code: 'insufficient_quota' });
    expect(spent.headers.get('x-should-retry')).toBe('false');
    const shown = await (await call(realEnv, `/admin/keys/${id}`, { headers: adminHeaders })).res.json<Json>();
    expect(shown.quota_used).toBe(first.json().usage.total_tokens);
    await call(realEnv, `/admin/keys/${id}`, { method: 'PATCH', headers: adminHeaders, body: JSON.stringify({ reset_quota: true }) });
    expect((await chat(envQ, key)).status).toBe(200);
  });

  it('Should admit exactly 10 of 50 concurrent streams on a key limited to 10, and release each when it ends', async () => {
    const { key, id } = await createKey({ tenant: 'streams', limits: { concurrent_streams: 10 } });
    const envS = fakeEnv();
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    script = () => ({ tokens: OK_TOKENS(4), gateAfter: 1, gate });
    const batches = await countCalls(id, () => Promise.all(
      Array.from({ length: 50 }, () => call(envS, '/v1/chat/completions', chatInit(key, { stream: true }))),
    ));
    const calls = batches.result;
    const statuses = calls.map((c) => c.res.status);
    expect(statuses.filter((s) => s === 200)).toHaveLength(10);
    expect(statuses.filter((s) => s === 429)).toHaveLength(40);
    // the 50 admissions reached the limiter in a few calls (those arriving while one was answered went together)
    expect(batches.sizes.reduce((a, b) => a + b, 0)).toBe(50);
    expect(batches.sizes.length).toBeLessThan(10);
    const refused = calls.find((c) => c.res.status === 429)!;
    expect((await refused.res.json<Json>()).error.code).toBe('concurrency_limit_exceeded');
    expect(refused.res.headers.get('retry-after')).toBe('1');

    // the 10 streams end together: their settles reach the limiter in a few calls too
    const settles = await countCalls(id, async () => {
      open();
      await Promise.all(calls.map(async (c) => {
        if (c !== refused) await c.res.text();
        await c.settled();
      }));
    }, undefined, 'settleAll');
    expect(settles.sizes.reduce((a, b) => a + b, 0)).toBe(10);
    expect(settles.sizes.length).toBeLessThan(10);
    script = () => ({ tokens: OK_TOKENS(3) });
    const shown = await (await call(realEnv, `/admin/keys/${id}`, { headers: adminHeaders })).res.json<Json>();
    expect(shown.in_flight).toBe(0);
    expect((await chat(envS, key, { stream: true })).status).toBe(200);
  });

  it('Should start the worker call while the admission is decided when the key has room, and cancel it when the answer refuses', async () => {
    const { key, id, record } = await createKey({ tenant: 'ahead', limits: { requests_per_minute: 4 } });
    const envA = fakeEnv();
    // the first request waits for its answer: nothing is known of the key yet
    let open!: () => void;
    let held = new Promise<void>((r) => (open = r));
    const first = await countCalls(id, async () => {
      const before = generateCalls;
      const pending = chat(envA, key);
      await new Promise((r) => setTimeout(r, 50));
      expect(generateCalls).toBe(before);
      open();
      return pending;
    }, () => held);
    expect(first.result.status).toBe(200);
    expect(first.result.headers.get('x-ratelimit-remaining-requests')).toBe('3');

    // known to have room: the worker is called while the limiter's answer is held back, and it admits
    held = new Promise<void>((r) => (open = r));
    const second = await countCalls(id, async () => {
      const before = generateCalls;
      const pending = chat(envA, key);
      await eventually(async () => expect(generateCalls).toBe(before + 1));
      open();
      return pending;
    }, () => held);
    expect(second.sizes).toEqual([1]);
    expect(second.result.status).toBe(200);
    expect(second.result.headers.get('x-ratelimit-remaining-requests')).toBe('2');

    // another isolate takes the rest of the minute's requests: this one still thinks there is room, goes ahead, and
    // the refusal cancels its worker call: 429, no lease held, no usage record
    const other = await limiter(id).admitAll([1, 2].map((i) => ({ limits: record.limits, tokens: 0, streams: 1, leaseId: `other-${i}` })));
    expect(other.every((a) => a.ok)).toBe(true);
    held = new Promise<void>((r) => (open = r));
    const third = await countCalls(id, async () => {
      const before = generateCalls;
      const pending = call(envA, '/v1/chat/completions', chatInit(key, {}, { 'x-request-id': 'ahead-refused' }));
      await eventually(async () => expect(generateCalls).toBe(before + 1));
      open();
      const { res, settled } = await pending;
      const text = await res.text();
      await settled();
      return { status: res.status, text };
    }, () => held);
    expect(third.result.status).toBe(429);
    expect(JSON.parse(third.result.text).error.code).toBe('rate_limit_exceeded');
    expect(generateSignals.get('ahead-refused')?.aborted).toBe(true);
    await eventually(async () => expect((await usageRows(id)).map((r) => r.status)).toEqual(['completed', 'completed']));
    const shown = await (await call(realEnv, `/admin/keys/${id}`, { headers: adminHeaders })).res.json<Json>();
    expect(shown.in_flight).toBe(2); // the other isolate's two leases, not this request's

    // now known to be out of requests: the next one waits for its answer and never reaches a worker
    const before = generateCalls;
    const fourth = await chat(envA, key);
    expect(fourth.status).toBe(429);
    expect(generateCalls).toBe(before);
  });

  it('Should admit a lease in one call, refuse by the limit that applies, and charge each settle once, a reclaimed lease too', async () => {
    const limits = { requests_per_minute: 3, tokens_per_minute: 1000, concurrent_streams: 4, quota_tokens: null };
    const stub = limiter(`lease-${crypto.randomUUID()}`);
    const first = await stub.admit({ limits, tokens: 100, streams: 2, leaseId: 'lease-a' });
    expect(first).toMatchObject({ ok: true, reserved: 100 });
    expect(first.state).toMatchObject({ remainingRequests: 2, remainingTokens: 900, inFlight: 2, admittedTotal: 1 });
    // asked again for a lease it holds (a repeated call), it answers the same and takes nothing more
    const again = await stub.admit({ limits, tokens: 100, streams: 2, leaseId: 'lease-a' });
    expect(again).toMatchObject({ ok: true, reserved: 100 });
    expect(again.state).toMatchObject({ remainingRequests: 2, inFlight: 2, admittedTotal: 1 });
    // refusals take nothing: three more streams would exceed four; 950 tokens exceed what the bucket holds
    expect(await stub.admit({ limits, tokens: 10, streams: 3, leaseId: 'lease-b' })).toMatchObject({ ok: false, refusal: 'concurrency' });
    expect(await stub.admit({ limits, tokens: 950, streams: 1, leaseId: 'lease-c' })).toMatchObject({ ok: false, refusal: 'tokens' });
    const second = await stub.admit({ limits, tokens: 50, streams: 2, leaseId: 'lease-d' });
    expect(second.state).toMatchObject({ remainingRequests: 1, inFlight: 4, admittedTotal: 2 });
    // a settle charges what was used instead of what was reserved, once
    const settled = await stub.settle('lease-a', 30, 30, limits);
    expect(settled).toMatchObject({ inFlight: 2, quotaUsed: 30 });
    expect(settled.remainingTokens).toBeGreaterThanOrEqual(1000 - 50 - 30);
    expect(await stub.settle('lease-a', 30, 30, limits)).toMatchObject({ inFlight: 2, quotaUsed: 30 });
    expect(await stub.admit({ limits, tokens: 0, streams: 1, leaseId: 'lease-e' })).toMatchObject({ ok: true });
    expect(await stub.admit({ limits, tokens: 0, streams: 1, leaseId: 'lease-f' })).toMatchObject({ ok: false, refusal: 'requests' });
    // leases past their TTL stop counting; a late settle still charges once
    await runInDurableObject(stub, async (instance: RateLimiter) => {
      instance.clockOffsetMs += LEASE_TTL_MS + 1;
    });
    expect((await stub.peek(limits)).inFlight).toBe(0);
    expect((await stub.settle('lease-d', 40, 40, limits)).quotaUsed).toBe(70);
    expect((await stub.settle('lease-d', 40, 40, limits)).quotaUsed).toBe(70);
    expect((await stub.peek(limits)).admittedTotal).toBe(3);
  });

  it('Should decide settles sent together in their order, each lease once', async () => {
    const limits = { requests_per_minute: 10, tokens_per_minute: 1000, concurrent_streams: 4, quota_tokens: null };
    const stub = limiter(`settles-${crypto.randomUUID()}`);
    await stub.admitAll(['lease-a', 'lease-b'].map((leaseId) => ({ limits, tokens: 100, streams: 2, leaseId })));
    const together = await stub.settleAll([
      { leaseId: 'lease-a', bucketTokens: 30, quotaTokens: 30, limits },
      { leaseId: 'lease-b', bucketTokens: 0, quotaTokens: 5, limits },
      { leaseId: 'lease-b', bucketTokens: 50, quotaTokens: 50, limits }, // repeated: charges nothing
      { leaseId: 'lease-unknown', bucketTokens: 50, quotaTokens: 50, limits },
    ]);
    expect(together.map((s) => [s.inFlight, s.quotaUsed])).toEqual([[2, 30], [0, 35], [0, 35], [0, 35]]);
    // 1000 - 200 reserved + 200 refunded - 30 - 0 used (plus what refilled meanwhile)
    expect(together[3].remainingTokens).toBeGreaterThanOrEqual(970);
    expect(await stub.settleAll([])).toEqual([]);
  });

  it('Should store its counters and each lease under a key of their own, read back alike after a restart, and move an older version\'s one record into them', async () => {
    const limits = { requests_per_minute: 100, tokens_per_minute: 10_000, concurrent_streams: 10, quota_tokens: null };
    const stub = limiter(`storage-${crypto.randomUUID()}`);
    await stub.admit({ limits, tokens: 100, streams: 2, leaseId: 'lease-a' });
    await stub.admit({ limits, tokens: 50, streams: 1, leaseId: 'lease-b' });
    await stub.settle('lease-a', 80, 80, limits);
    // written by the flush timer (FLUSH_DELAY_MS) without being asked
    await eventually(() => runInDurableObject(stub, async (_instance: RateLimiter, state) => {
      expect([...(await state.storage.list()).keys()].sort()).toEqual(['counters', 'lease:lease-b']);
    }));
    await runInDurableObject(stub, async (_instance: RateLimiter, state) => {
      const restarted = await loadState(state.storage);
      expect(restarted).toMatchObject({ quotaUsed: 80, admittedTotal: 2, revoked: false, reclaimed: {} });
      expect(restarted.leases).toEqual({ 'lease-b': { reserved: 50, streams: 1, expiresAt: expect.any(Number) } });
      expect(restarted.tokens!.level).toBeCloseTo(10_000 - 50 - 80, -1);
      // what a version that kept everything in one record stored (the settled-id list of older ones too)
      await state.storage.deleteAll();
      const expiresAt = Date.now() + LEASE_TTL_MS;
      await state.storage.put('state', {
        requests: { level: 5, at: 1 }, tokens: { level: 900, at: 1 }, quotaUsed: 12, admittedTotal: 4, revoked: true, settled: ['x'],
        leases: { old: { reserved: 7, expiresAt } }, reclaimed: { older: { reserved: 3, streams: 2, expiresAt: 1 } },
      });
      const moved = await loadState(state.storage);
      expect(moved).toEqual({
        requests: { level: 5, at: 1 }, tokens: { level: 900, at: 1 }, quotaUsed: 12, admittedTotal: 4, revoked: true,
        leases: { old: { reserved: 7, expiresAt } }, reclaimed: { older: { reserved: 3, streams: 2, expiresAt: 1 } },
      });
      expect([...(await state.storage.list()).keys()].sort()).toEqual(['counters', 'lease:old', 'reclaimed:older']);
      expect(await loadState(state.storage)).toEqual(moved);
    });
  });

  /**
   * The keys each storage put and delete of the object names, in order; its writes held until sync() (the flush delay
   * a minute), so that what one flush holds does not depend on this machine's speed.
   */
  async function recordWrites(stub: DurableObjectStub<RateLimiter>): Promise<{ put: string[][]; delete: string[][] }> {
    const writes: { put: string[][]; delete: string[][] } = { put: [], delete: [] };
    await runInDurableObject(stub, (instance: RateLimiter, state) => {
      instance.flushDelayMs = 60_000;
      const { put, delete: del } = state.storage;
      const keysOf = (arg: unknown) => (typeof arg === 'string' ? [arg] : Array.isArray(arg) ? arg : Object.keys(arg as object));
      state.storage.put = ((arg: unknown, ...rest: unknown[]) => (writes.put.push(keysOf(arg).sort()), (put as Function).call(state.storage, arg, ...rest))) as never;
      state.storage.delete = ((arg: unknown, ...rest: unknown[]) => (writes.delete.push(keysOf(arg).sort()), (del as Function).call(state.storage, arg, ...rest))) as never;
    });
    return writes;
  }

  it('Should write a burst of admissions, and one of settles, in one commit each after answering them, which a restart reads back; admin changes at once', async () => {
    const limits = { requests_per_minute: 100, tokens_per_minute: 100_000, concurrent_streams: 30, quota_tokens: null };
    const stub = limiter(`flush-${crypto.randomUUID()}`);
    const writes = await recordWrites(stub);
    const ids = Array.from({ length: 20 }, (_, i) => `lease-${String(i).padStart(2, '0')}`);
    const admitted = await Promise.all(ids.map((leaseId) => stub.admit({ limits, tokens: 100, streams: 1, leaseId })));
    expect(admitted.every((a) => a.ok)).toBe(true);
    expect(Math.max(...admitted.map((a) => a.state.admittedTotal))).toBe(20);
    expect((await stub.admit({ limits, tokens: 100, streams: 11 })).ok).toBe(false); // exact before any write: 20 + 11 > 30
    // answered, nothing written yet: what a crash now would forget
    await runInDurableObject(stub, async (_instance: RateLimiter, state) => {
      expect([...(await state.storage.list()).keys()]).toEqual([]);
    });
    expect(writes).toEqual({ put: [], delete: [] });
    await stub.sync();
    expect(writes).toEqual({ put: [['counters', ...ids.map((id) => `lease:${id}`)].sort()], delete: [] });
    await runInDurableObject(stub, async (_instance: RateLimiter, state) => {
      const restarted = await loadState(state.storage);
      expect(restarted).toMatchObject({ admittedTotal: 20, quotaUsed: 0 });
      expect(Object.keys(restarted.leases).sort()).toEqual(ids);
    });
    const settles = await Promise.all(ids.slice(0, 10).map((id) => stub.settle(id, 40, 40, limits)));
    expect(Math.max(...settles.map((s) => s.quotaUsed))).toBe(400);
    expect(Math.min(...settles.map((s) => s.inFlight))).toBe(10);
    await stub.sync();
    expect(writes.put.slice(1)).toEqual([['counters']]);
    expect(writes.delete).toEqual([ids.slice(0, 10).map((id) => `lease:${id}`)]);
    // an admin change is durable when answered, with whatever waited for the next flush
    await stub.admit({ limits, tokens: 0, streams: 1, leaseId: 'lease-late' });
    await stub.revoke();
    expect(writes.put.slice(2)).toEqual([['counters', 'lease:lease-late']]);
    await runInDurableObject(stub, async (instance: RateLimiter, state) => {
      const restarted = await loadState(state.storage);
      expect(restarted).toMatchObject({ admittedTotal: 21, quotaUsed: 400, revoked: true });
      expect(Object.keys(restarted.leases).sort()).toEqual([...ids.slice(10), 'lease-late'].sort());
      expect(restarted).toEqual((instance as unknown as { state: unknown }).state); // all of what memory holds
    });
    expect(await stub.admit({ limits, tokens: 0, streams: 1 })).toMatchObject({ ok: false, refusal: 'revoked' });
  });

  it('Should write only the counters for leases settled before their flush, and delete only the leases it wrote', async () => {
    const limits = { requests_per_minute: 100, tokens_per_minute: 100_000, concurrent_streams: 30, quota_tokens: null };
    const stub = limiter(`short-${crypto.randomUUID()}`);
    const writes = await recordWrites(stub);
    const ids = ['lease-a', 'lease-b', 'lease-c'];
    await Promise.all(ids.map((leaseId) => stub.admit({ limits, tokens: 100, streams: 1, leaseId })));
    await stub.settle('lease-a', 40, 40, limits);
    await stub.sync();
    // lease-a came and went between two flushes: neither written nor deleted; its charges are in the counters
    expect(writes).toEqual({ put: [['counters', 'lease:lease-b', 'lease:lease-c']], delete: [] });
    await stub.settle('lease-b', 40, 40, limits);
    await stub.admit({ limits, tokens: 100, streams: 1, leaseId: 'lease-d' });
    await stub.settle('lease-d', 40, 40, limits);
    await stub.sync();
    expect(writes.put.slice(1)).toEqual([['counters']]);
    expect(writes.delete).toEqual([['lease:lease-b']]);
    await runInDurableObject(stub, async (instance: RateLimiter, state) => {
      const restarted = await loadState(state.storage);
      expect(Object.keys(restarted.leases)).toEqual(['lease-c']);
      expect(restarted).toMatchObject({ admittedTotal: 4, quotaUsed: 120 });
      expect(restarted).toEqual((instance as unknown as { state: unknown }).state);
    });
  });

  it('Should count every generation of a request (prompts × n) against the concurrency limit', async () => {
    const { key, id } = await createKey({ tenant: 'generations', limits: { concurrent_streams: 10 } });
    const envG = fakeEnv();
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    script = () => ({ tokens: OK_TOKENS(2), gateAfter: 1, gate });
    const tooMany = await chat(envG, key, { n: 11 });
    expect(tooMany.status).toBe(400);
    expect(tooMany.json().error).toMatchObject({ code: 'too_many_generations', param: 'n' });
    const held = await call(envG, '/v1/completions', {
      method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: MODEL, prompt: ['a', 'b', 'c'], n: 2, stream: true }),
    });
    expect(held.res.status).toBe(200);
    const fourMore = await call(envG, '/v1/chat/completions', chatInit(key, { n: 4, stream: true }));
    expect(fourMore.res.status).toBe(200);
    const shown = await (await call(realEnv, `/admin/keys/${id}`, { headers: adminHeaders })).res.json<Json>();
    expect(shown.in_flight).toBe(10);
    const beforeRefused = generateCalls;
    const refused = await chat(envG, key, { stream: true });
    expect(refused.status).toBe(429);
    expect(refused.json().error.code).toBe('concurrency_limit_exceeded');
    expect(generateCalls).toBe(beforeRefused); // known to have no stream left: no worker call
    open();
    for (const c of [held, fourMore]) {
      await c.res.text();
      await c.settled();
    }
    script = () => ({ tokens: OK_TOKENS(3) });
    expect((await (await call(realEnv, `/admin/keys/${id}`, { headers: adminHeaders })).res.json<Json>()).in_flight).toBe(0);
    expect((await chat(envG, key, { n: 10 })).status).toBe(200);
  });
});

describe('response cache (real worker)', () => {
  it('Should answer a repeated deterministic request from the cache with identical content, without a worker', async () => {
    const { key, id } = await createKey({ tenant: 'cache' });
    const body = { temperature: 0, max_tokens: 24 };
    const before = generateCalls;
    const first = await chat(realEnv, key, body);
    expect(first.status).toBe(200);
    expect(first.headers.get('x-cache')).toBe('MISS');
    expect(generateCalls).toBe(before + 1);
    const second = await chat(realEnv, key, body);
    expect(second.status).toBe(200);
    expect(second.headers.get('x-cache')).toBe('HIT');
    expect(generateCalls).toBe(before + 1);
    expect(second.json().choices[0].message.content).toBe(first.json().choices[0].message.content);
    expect(second.json().usage).toEqual(first.json().usage);
    expect(second.json().id).not.toBe(first.json().id);
    expect(second.headers.get('x-thinking-mode')).toBe(first.headers.get('x-thinking-mode'));
    expect(second.headers.get('x-request-id')).not.toBe(first.headers.get('x-request-id'));

    // streamed: its own entry, replayed as SSE
    const streamA = await chat(realEnv, key, { ...body, stream: true });
    const streamB = await chat(realEnv, key, { ...body, stream: true });
    expect([streamA.headers.get('x-cache'), streamB.headers.get('x-cache')]).toEqual(['MISS', 'HIT']);
    expect(streamB.headers.get('content-type')).toMatch(/^text\/event-stream/);
    expect(streamedContent(streamB.text)).toBe(streamedContent(streamA.text));
    expect(frames(streamB.text).at(-1)).toBe('[DONE]');
    expect(generateCalls).toBe(before + 2);

    // an explicit seed is deterministic too
    const seeded = { temperature: 0.8, seed: 7, max_tokens: 8 };
    expect((await chat(realEnv, key, seeded)).headers.get('x-cache')).toBe('MISS');
    expect((await chat(realEnv, key, seeded)).headers.get('x-cache')).toBe('HIT');
    expect(generateCalls).toBe(before + 3);

    // cached answers are metered as cached, with the tokens of the answer they replay
    const rows = await usageRows(id);
    expect(rows.map((r) => r.from_cache)).toEqual([0, 1, 0, 1, 0, 1]);
    expect(rows[1]).toMatchObject({ status: 'cached', prompt_tokens: rows[0].prompt_tokens, cached_tokens: rows[0].prompt_tokens, completion_tokens: rows[0].completion_tokens });
  });

  it('Should never answer non-deterministic or no-store requests from the cache, nor share entries across tenants', async () => {
    const { key } = await createKey({ tenant: 'cache-2' });
    const before = generateCalls;
    for (let i = 0; i < 2; i++) {
      const res = await chat(realEnv, key, { temperature: 0.7, max_tokens: 4 });
      expect(res.headers.get('x-cache')).toBe('MISS');
    }
    expect(generateCalls).toBe(before + 2);
    const body = { temperature: 0, max_tokens: 6 };
    expect((await chat(realEnv, key, body, { 'cache-control': 'no-store' })).headers.get('x-cache')).toBe('MISS');
    expect((await chat(realEnv, key, body, { 'cache-control': 'no-store' })).headers.get('x-cache')).toBe('MISS');
    expect(generateCalls).toBe(before + 4);
    expect((await chat(realEnv, key, body)).headers.get('x-cache')).toBe('MISS');
    expect((await chat(realEnv, key, body)).headers.get('x-cache')).toBe('HIT');
    const { key: other } = await createKey({ tenant: 'cache-3' });
    expect((await chat(realEnv, other, body)).headers.get('x-cache')).toBe('MISS');
    expect(generateCalls).toBe(before + 6);
  });
});

describe('metering', () => {
  it('Should meter legacy completions too, record an invalid request as rejected with no tokens, and write nothing without a lease', async () => {
    const { key, id } = await createKey({ tenant: 'legacy' });
    const envL = fakeEnv();
    const { res, settled } = await call(envL, '/v1/completions', {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: MODEL, prompt: 'Once upon a time', max_tokens: 8 }),
    });
    expect(res.status).toBe(200);
    const body = await res.json<Json>();
    await settled();
    const bad = await chat(envL, key, { n: 99 }); // 400 from validation: it held a lease, so it has a record
    expect(bad.status).toBe(400);
    const unauthenticated = await chat(envL, 'sk-unknown-key-000000000000'); // no lease, no record
    expect(unauthenticated.status).toBe(401);
    const rows = await usageRows(id);
    expect(rows).toHaveLength(2);
    expect(rows[1]).toMatchObject({ status: 'rejected', http_status: 400, prompt_tokens: 0, completion_tokens: 0, request_id: bad.headers.get('x-request-id') });
    expect(rows[0]).toMatchObject({
      endpoint: '/v1/completions', mode: 'raw', status: 'completed', http_status: 200,
      prompt_tokens: body.usage.prompt_tokens, completion_tokens: body.usage.completion_tokens,
      request_id: res.headers.get('x-request-id'),
    });
    expect(rows[0].id).toMatch(/^usg_/);
  });

  it('Should write exactly one record per request, with the tokens each stream carried, for 100 concurrent streams some aborted or cut by a dying worker', async () => {
    const { key, id } = await createKey({ tenant: 'metering', limits: { concurrent_streams: 200, requests_per_minute: 1000 } });
    const envM = fakeEnv();
    const FULL = 12;
    const CUT = 5;
    const gates = new Map<string, { reached: Promise<void>; open: () => void }>();
    script = (req) => {
      const i = Number(req.request_id.split('-')[1]);
      if (i % 4 === 0 || i % 4 === 1) {
        let open!: () => void;
        let atGate!: () => void;
        const gate = new Promise<void>((r) => (open = r));
        const reached = new Promise<void>((r) => (atGate = r));
        gates.set(req.request_id, { reached, open });
        return { tokens: OK_TOKENS(FULL), gateAfter: CUT, gate, atGate, die: i % 4 === 1 };
      }
      return { tokens: OK_TOKENS(FULL) };
    };
    const kinds = ['aborted', 'failed', 'completed', 'completed'] as const;
    const expected = new Map<string, { status: string; completion: number; prompt?: number }>();

    // every stream starts before any worker dies (a death cools the worker down for new requests)
    const started = await Promise.all(
      Array.from({ length: 100 }, (_, i) =>
        call(
          envM,
          '/v1/chat/completions',
          chatInit(
            key,
            { stream: true, stream_options: { include_usage: true }, max_tokens: 64, messages: [{ role: 'user', content: `request number ${i}` }] },
            { 'x-request-id': `m100-${i}` },
          ),
        ),
      ),
    );
    await Promise.all(
      started.map(async ({ res, settled }, i) => {
        const requestId = `m100-${i}`;
        const kind = kinds[i % 4];
        expect(res.status).toBe(200);
        if (kind === 'completed') {
          const text = await res.text();
          const usage = frames(text).filter((f) => f !== '[DONE]').map((f) => JSON.parse(f)).find((c) => c.usage)?.usage;
          expect(usage.completion_tokens).toBe(FULL + 1);
          expected.set(requestId, { status: 'completed', completion: usage.completion_tokens, prompt: usage.prompt_tokens });
        } else if (kind === 'aborted') {
          // read until the CUT tokens the worker sent are all out, then hang up
          const reader = res.body!.getReader();
          const decoder = new TextDecoder();
          let text = '';
          while (streamedContent(text).length < ' ok'.length * CUT) {
            const { value, done } = await reader.read();
            if (done) break;
            text += decoder.decode(value, { stream: true });
          }
          await gates.get(requestId)!.reached;
          await reader.cancel();
          expected.set(requestId, { status: 'aborted', completion: CUT });
        } else {
          const body = res.text(); // keep reading, or backpressure stops the edge before the gate
          await gates.get(requestId)!.reached;
          gates.get(requestId)!.open(); // the worker dies at the gate
          const text = await body;
          expect(text).toContain('"error"');
          expect(streamedContent(text)).toBe(' ok'.repeat(CUT));
          expected.set(requestId, { status: 'failed', completion: CUT });
        }
        await settled();
      }),
    );
    for (const g of gates.values()) g.open();
    script = () => ({ tokens: OK_TOKENS(3) });

    const rows = await usageRows(id);
    expect(rows).toHaveLength(100);
    expect(new Set(rows.map((r) => r.request_id)).size).toBe(100);
    for (const row of rows) {
      const want = expected.get(row.request_id)!;
      expect(row, row.request_id).toMatchObject({
        status: want.status,
        completion_tokens: want.completion,
        prompt_tokens: want.prompt ?? promptLengths.get(row.request_id),
        tenant: 'metering',
        model: MODEL,
        mode: 'non-thinking',
        endpoint: '/v1/chat/completions',
        from_cache: 0,
      });
      expect(row.prompt_tokens).toBe(promptLengths.get(row.request_id));
    }
    const shown = await (await call(realEnv, `/admin/keys/${id}`, { headers: adminHeaders })).res.json<Json>();
    expect(shown.in_flight).toBe(0);
    expect(shown.quota_used).toBe(rows.reduce((n, r) => n + r.prompt_tokens + r.completion_tokens, 0));

    // the admin export carries the same records
    const exported = await (await call(realEnv, `/admin/usage?key_id=${id}`, { headers: adminHeaders })).res.json<Json>();
    expect(exported.data).toHaveLength(100);
    const csv = await (await call(realEnv, `/admin/usage?key_id=${id}&format=csv`, { headers: adminHeaders })).res.text();
    expect(csv.trim().split('\n')).toHaveLength(101);
  });
});
