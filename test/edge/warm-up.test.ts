// The start-up warm-up (edge/warm-up.ts) swallows every failure, so that a warm-up gone wrong costs an isolate its
// warmth and nothing else; this test makes such a failure visible. In Node, on the deployed app (accounts layer
// included): every handler of POST /v1/chat/completions is called and stops at its first use of the made-up context,
// before anything else it would do.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { accountsMiddleware, mountAccounts } from '../../edge/accounts.ts';
import { createApp } from '../../edge/app.ts';
import { contextsFor, poolFor, readConfig } from '../../edge/platform.ts';
import { warmUp } from '../../edge/warm-up.ts';

function deployedApp() {
  const app = createApp({ extensions: accountsMiddleware() });
  mountAccounts(app);
  return app;
}

const env = { MODEL_ID: 'qwen3-8b-awq', WORKER_URLS: 'http://127.0.0.1:9', WORKER_SECRET: 'warm-up-test-secret', ADMIN_TOKEN: 'adm-warm-up-test' };

/**
 * A binding that records every method called on it, on what it returned, and so on down (a D1 statement, a Durable
 * Object id): each call as its path, e.g. "USAGE.prepare.bind".
 */
function recordingBinding(name: string, calls: string[]): unknown {
  const node = (path: string): unknown => new Proxy(function binding() {}, {
    get: (_, key) => (typeof key === 'string' && key !== 'then' ? node(`${path}.${key}`) : undefined),
    apply: () => (calls.push(path), node(path)),
  });
  return node(name);
}

afterEach(() => vi.restoreAllMocks());

describe('start-up warm-up', () => {
  it('makes no I/O: no fetch, no KV read, no Durable Object call, no D1 query, no usage record', async () => {
    const fetched = vi.spyOn(globalThis, 'fetch').mockImplementation(async () => new Response('not reached', { status: 599 }));
    const calls: string[] = [];
    const bindings = {
      ...env, KEYS: recordingBinding('KEYS', calls), RATE_LIMITER: recordingBinding('RATE_LIMITER', calls),
      FLEET: recordingBinding('FLEET', calls), USAGE: recordingBinding('USAGE', calls),
    };
    const report = await warmUp(deployedApp(), bindings as never);
    await new Promise((resolve) => setTimeout(resolve, 50)); // what the warm-up left running has run by then
    expect(report.aroundIo).toBe(true); // it ran, to the end of every step (workerd ends some at its refusals)
    expect(fetched).not.toHaveBeenCalled();
    // only the bindings' own code that makes no request: a Durable Object id from a name, a D1 statement with values
    // bound; no KV read, no stub (its calls are the object's), no query run, nothing of the fleet registry
    expect(calls.sort()).toEqual(['RATE_LIMITER.idFromName', 'USAGE.prepare', 'USAGE.prepare.bind']);
  });

  it("leaves the isolate's own records as they were: the worker pool's and the workers' contexts", async () => {
    vi.spyOn(globalThis, 'fetch').mockImplementation(async () => new Response('not reached', { status: 599 }));
    const isolateEnv = { ...env, WORKER_URLS: 'http://127.0.0.1:10' };
    expect((await warmUp(deployedApp(), isolateEnv)).aroundIo).toBe(true);
    await new Promise((resolve) => setTimeout(resolve, 50));
    const config = readConfig(isolateEnv);
    // no stream held, no failure or busy mark, no made-up context recorded for a real worker
    expect(poolFor(config).snapshot().map(({ url, inflight, healthy, failures, busy }) => ({ url, inflight, healthy, failures, busy }))).toEqual([
      { url: 'http://127.0.0.1:10', inflight: 0, healthy: true, failures: 0, busy: false },
    ]);
    expect(contextsFor(config).get('http://127.0.0.1:10')).toBeUndefined();
  });

  it('calls every handler of the chat route once, each stopping at its first use of the context', async () => {
    const report = await warmUp(deployedApp(), env);
    expect(report.chain.map((h) => h.handler)).toEqual([
      'requestId', 'requestContext', 'requiredSecrets', 'apiKeyAuth', 'modelAccess', 'responseCache', 'metering', 'rateLimit', 'bodyLimit',
      'validBody', 'chatCompletions',
    ]);
    expect(report.chain.filter((h) => !h.stopped)).toEqual([]);
  });

  it("runs its steps in a microtask, after the call (the module's evaluation) has returned", async () => {
    // an error made while the module's top-level code is on the stack costs workerd a re-parse of the whole bundle
    const read: PropertyKey[] = [];
    const watched = new Proxy(env, { get: (target, key) => (read.push(key), target[key as keyof typeof env]) });
    const report = warmUp(deployedApp(), watched);
    expect(read).toEqual([]);
    await report;
    expect(read).toContain('WORKER_SECRET');
  });
});
