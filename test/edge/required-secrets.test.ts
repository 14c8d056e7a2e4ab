// The edge refuses insecure configuration: without WORKER_SECRET nothing is forwarded (no unsigned request reaches a
// worker) and without ADMIN_TOKEN the admin API is shut; both answer 500 server_error naming the missing secret, and
// each missing secret is logged once per isolate. The app in Node through app.request(), a loopback server standing in
// for a worker that counts every request it sees, signed or not.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { mountAccounts } from '../../edge/accounts.ts';
import { createApp } from '../../edge/app.ts';

const MODEL = 'qwen3-8b-awq';
const app = createApp();
mountAccounts(app);

let seen: string[] = [];
const worker = createServer((req, res) => {
  seen.push(`${req.method} ${req.url}`);
  req.resume();
  res.writeHead(503).end();
});
let workerUrl = '';

beforeAll(async () => {
  await new Promise<void>((r) => worker.listen(0, '127.0.0.1', r));
  workerUrl = `http://127.0.0.1:${(worker.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((r) => worker.close(() => r())));
afterEach(() => {
  seen = [];
  vi.restoreAllMocks();
});

const chat = { model: MODEL, messages: [{ role: 'user', content: 'hi' }], chat_template_kwargs: { enable_thinking: false } };

function call(path: string, bindings: Record<string, string>, init: RequestInit = {}) {
  return app.request(path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(chat), ...init }, { MODEL_ID: MODEL, WORKER_URLS: workerUrl, ...bindings });
}

async function expectMissing(res: Response, secret: string) {
  expect(res.status).toBe(500);
  const { error } = (await res.json()) as { error: Record<string, string | null> };
  expect(error).toMatchObject({ type: 'server_error', code: 'missing_secret', param: null });
  expect(error.message).toContain(secret);
  expect(error.message).toContain(`wrangler secret put ${secret}`);
}

describe('the edge without WORKER_SECRET', () => {
  it.each([
    ['unset', {}],
    ['empty', { WORKER_SECRET: '' }],
    ['blank', { WORKER_SECRET: '  ' }],
  ])('answers 500 naming WORKER_SECRET (%s) on every API path, and no request reaches a worker', async (_, bindings) => {
    await expectMissing(await call('/v1/chat/completions', bindings), 'WORKER_SECRET');
    await expectMissing(await call('/v1/chat/completions', bindings, { body: JSON.stringify({ ...chat, stream: true }) }), 'WORKER_SECRET');
    await expectMissing(await call('/v1/completions', bindings, { body: JSON.stringify({ model: MODEL, prompt: 'hi' }) }), 'WORKER_SECRET');
    await expectMissing(await call('/tokenize', bindings, { body: JSON.stringify({ model: MODEL, prompt: 'hi' }) }), 'WORKER_SECRET');
    await expectMissing(await call('/v1/models', bindings, { method: 'GET', body: undefined }), 'WORKER_SECRET');
    await expectMissing(await call('/health', bindings, { method: 'GET', body: undefined }), 'WORKER_SECRET');
    expect(seen).toEqual([]);
  });

  it('logs the missing secret once per isolate, however many requests it refuses', async () => {
    vi.resetModules(); // a new isolate: the module evaluated afresh, nothing reported yet
    const fresh = await import('../../edge/middleware/required-secrets.ts');
    const { Hono } = await import('hono');
    const { handleError } = await import('../../edge/errors.ts');
    const errors = vi.spyOn(console, 'error').mockImplementation(() => {});
    const isolate = new Hono();
    isolate.use('/probe', fresh.requiredSecrets('WORKER_SECRET'));
    isolate.get('/probe', (c) => c.text('ok'));
    isolate.onError(handleError);
    for (let i = 0; i < 5; i++) expect((await isolate.request('/probe', {}, {})).status).toBe(500);
    expect((await isolate.request('/probe', {}, { WORKER_SECRET: 's' })).status).toBe(200);
    const lines = errors.mock.calls.map((args) => String(args[0])).filter((line) => line.includes('WORKER_SECRET'));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/the secret WORKER_SECRET is not set/);
  });

  it('forwards signed requests once the secret is set (the refusal is the secret, not the setup)', async () => {
    const res = await call('/v1/chat/completions', { WORKER_SECRET: 'now-set' });
    expect(res.status).toBe(503); // the stand-in answers 503 to everything
    expect(seen.some((line) => line.startsWith('POST /v1/generate'))).toBe(true);
  });
});

describe('the admin API without ADMIN_TOKEN', () => {
  const admin = (bindings: Record<string, string>, path = '/admin/keys', method = 'GET') =>
    app.request(path, { method, headers: { authorization: 'Bearer anything' } }, { WORKER_SECRET: 'set', ...bindings });

  it.each([['unset', {}], ['empty', { ADMIN_TOKEN: '' }]])('answers 500 naming ADMIN_TOKEN (%s), whatever token is sent', async (_, bindings) => {
    await expectMissing(await admin(bindings), 'ADMIN_TOKEN');
    await expectMissing(await admin(bindings, '/admin/keys', 'POST'), 'ADMIN_TOKEN');
    await expectMissing(await admin(bindings, '/admin/usage'), 'ADMIN_TOKEN');
    await expectMissing(await admin(bindings, '/admin/workers'), 'ADMIN_TOKEN');
  });

  it('still answers 401 to a wrong token once ADMIN_TOKEN is set', async () => {
    const res = await admin({ ADMIN_TOKEN: 'the-real-token' });
    expect(res.status).toBe(401);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('invalid_admin_token');
  });
});
