// The start-up warm-up (edge/warm-up.ts) swallows every failure, so that a warm-up gone wrong costs an isolate its
// warmth and nothing else; this test makes such a failure visible. In Node, on the deployed app (accounts layer
// included): every handler of POST /v1/chat/completions is called and stops at its first use of the made-up context,
// before anything else it would do.
import { describe, expect, it } from 'vitest';
import { accountsMiddleware, mountAccounts } from '../../edge/accounts.ts';
import { createApp } from '../../edge/app.ts';
import { warmUp } from '../../edge/warm-up.ts';

function deployedApp() {
  const app = createApp({ extensions: accountsMiddleware() });
  mountAccounts(app);
  return app;
}

const env = { MODEL_ID: 'qwen3-8b-awq', WORKER_URLS: 'http://127.0.0.1:9', WORKER_SECRET: 'warm-up-test-secret', ADMIN_TOKEN: 'adm-warm-up-test' };

describe('start-up warm-up', () => {
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
