// The edge's worker health (edge/worker-health.ts through edge/upstream.ts and the app) against stub workers on
// loopback, which are stopped, restarted, silenced or made to die mid-stream: a dead worker is taken out at once and
// re-admitted by the /ready probes as soon as it answers, without any request's help; failures are counted per
// window, not per concurrent stream; timeouts never take out the last worker and a timed-out request is not tried
// on the next worker; with nothing in rotation the edge answers 503 at once.
import { afterAll, describe, expect, it } from 'vitest';
import { createApp } from '../../edge/app.ts';
import { poolFor, readConfig } from '../../edge/platform.ts';
import { PROBE_INTERVAL_MS, PROBE_TIMEOUT_MS } from '../../edge/worker-health.ts';
import { openStream, scripted, sleep, sse, STUB_SECRET, closeStubs, stubWorker, type Behaviour, type Stub } from '../helpers/stub-worker.ts';

const MODEL = 'qwen3-8b-awq';
type Json = Record<string, any>;
const app = createApp();
afterAll(closeStubs);

function env(workers: Stub[], extra: Record<string, string> = {}) {
  return { MODEL_ID: MODEL, WORKER_URLS: workers.map((s) => s.url).join(','), WORKER_SECRET: STUB_SECRET, THINKING_DEFAULT: 'off', ...extra };
}

const chat = (bindings: object, content: string, extra: Json = {}) =>
  app.request('/v1/chat/completions', {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: MODEL, messages: [{ role: 'user', content }], ...extra }),
  }, bindings);

const healthOf = (bindings: ReturnType<typeof env>, stub: Stub) => poolFor(readConfig(bindings)).snapshot().find((w) => w.url === stub.url)!;

/** ms until `check` holds (polled every 5 ms), or throws after `limitMs`. */
async function within(limitMs: number, check: () => boolean): Promise<number> {
  const start = performance.now();
  while (!check()) {
    if (performance.now() - start > limitMs) throw new Error(`not within ${limitMs} ms`);
    await sleep(5);
  }
  return performance.now() - start;
}

describe('worker health at the edge', () => {
  it('Should take a dead worker out, serve everyone from the other, and re-admit it by probing /ready alone', async () => {
    const a = await stubWorker(scripted(['from a']));
    const b = await stubWorker(scripted(['from b']));
    const bindings = env([a, b]);
    await a.stop();
    for (let i = 0; i < 12; i++) {
      const res = await chat(bindings, `question ${i}`);
      expect(res.status).toBe(200);
      expect(((await res.json()) as Json).choices[0].message.content).toBe('from b');
    }
    expect(healthOf(bindings, a).healthy).toBe(false);
    // no request arrives from here on: the probes alone bring it back
    await a.restart();
    const back = await within(1_000, () => healthOf(bindings, a).healthy);
    console.log(`dead worker re-admitted ${back.toFixed(0)} ms after it listened again (probe interval ${PROBE_INTERVAL_MS} ms)`);
    expect(healthOf(bindings, a).failures).toBe(0);
    const contents = await Promise.all(Array.from({ length: 12 }, async (_, i) => ((await (await chat(bindings, `again ${i}`)).json()) as Json).choices[0].message.content));
    expect(contents).toContain('from a');
  });

  it('Should count failures per window, not per concurrent stream: 8 streams dying at once do not keep the worker out', async () => {
    let dying = true;
    const a = await stubWorker(async (req, res) => {
      if (!dying) return scripted(['fine'])(req, res, undefined as never);
      openStream(res);
      sse(res, { tokens: [9707] });
      await sleep(30);
      res.destroy();
    });
    const bindings = env([a]);
    const streams = await Promise.all(Array.from({ length: 8 }, (_, i) => chat(bindings, `stream ${i}`, { stream: true })));
    const bodies = await Promise.all(streams.map((r) => r.text()));
    expect(bodies.every((b) => b.includes('"upstream_error"'))).toBe(true);
    dying = false;
    // /ready kept answering 200: out for at most a probe interval, never an escalating cool-down
    const back = await within(1_000, () => healthOf(bindings, a).healthy);
    console.log(`worker back in rotation ${back.toFixed(0)} ms after 8 streams died at once`);
    expect((await chat(bindings, 'after')).status).toBe(200);
  });

  it('Should answer 503 at once with Retry-After while nothing is in rotation, and serve again once /ready answers', async () => {
    const a = await stubWorker(scripted(['back']));
    const bindings = env([a]);
    await a.stop();
    expect((await chat(bindings, 'first')).status).toBe(503);
    await within(1_000, () => !healthOf(bindings, a).healthy);
    const t0 = performance.now();
    const refused = await chat(bindings, 'second');
    expect(performance.now() - t0).toBeLessThan(200);
    expect(refused.status).toBe(503);
    expect(refused.headers.get('retry-after')).toBe('1');
    expect(refused.headers.get('x-request-id')).toMatch(/^req_/);
    expect(((await refused.json()) as Json).error.code).toBe('no_healthy_worker');
    a.readyStatus = 503; // listening but still loading: stays out
    await a.restart();
    await sleep(3 * PROBE_INTERVAL_MS);
    expect(healthOf(bindings, a).healthy).toBe(false);
    expect(a.readyProbes).toBeGreaterThanOrEqual(2);
    a.readyStatus = 200;
    await within(1_000, () => healthOf(bindings, a).healthy);
    expect((await chat(bindings, 'third')).status).toBe(200);
  });

  it('Should neither retry a timed-out request on the next worker nor take the last worker out for timeouts', async () => {
    const slowOrFine = (name: string): Behaviour => (req, res) => {
      if (req.max_tokens === 777) return; // the slow request: never answered
      return scripted([name])(req, res, undefined as never);
    };
    const a = await stubWorker(slowOrFine('a'));
    const b = await stubWorker(slowOrFine('b'));
    const two = env([a, b], { REQUEST_TIMEOUT_MS: '300' });
    const slow = await chat(two, 'a huge prompt', { max_tokens: 777 });
    expect(slow.status).toBe(504);
    const slowCalls = [...a.requests, ...b.requests].filter((r) => r.max_tokens === 777);
    expect(slowCalls).toHaveLength(1);
    await sleep(50); // the check probe of /ready answers 200: nobody is taken out
    expect([healthOf(two, a).healthy, healthOf(two, b).healthy]).toEqual([true, true]);

    // one worker: more timeouts than the failure threshold, then a /ready that hangs too; it stays in rotation
    const alone = await stubWorker(slowOrFine('alone'));
    const one = env([alone], { REQUEST_TIMEOUT_MS: '200' });
    for (let i = 0; i < 4; i++) expect((await chat(one, `slow ${i}`, { max_tokens: 777 })).status).toBe(504);
    expect(healthOf(one, alone)).toMatchObject({ healthy: true, failures: 4 });
    alone.readyStatus = 0;
    expect((await chat(one, 'slow again', { max_tokens: 777 })).status).toBe(504);
    await sleep(PROBE_TIMEOUT_MS + 200);
    expect(healthOf(one, alone).healthy).toBe(true);
    expect((await chat(one, 'a bystander')).status).toBe(200);
  });
});
