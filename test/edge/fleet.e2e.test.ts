// The elastic fleet end to end: the edge in workerd (wrangler.toml with the FLEET registry, no WORKER_URLS) and
// real GPU worker processes (demo checkpoint, CPU) that join by signed heartbeat (EDGE_URL), plus a scale-up webhook
// receiver on loopback (the test then starts the worker the platform would start). One scenario, in order: zero workers → 503 +
// Retry-After and one webhook call; the started worker is served within one membership refresh; three workers under
// 48 concurrent streams → a shared system prompt lands on one worker (prefix-cache hits reported) while other
// prompts spread; one worker SIGTERMed mid-stream → it leaves, its streams finish, nothing is refused, nothing
// reaches it once it drains; one worker killed → out within one TTL, failures only for its own streams. A second
// edge holds a request (SCALE_UP_WAIT_MS) until the worker its webhook started has joined.
//
// The membership figures are printed as a table; `npm run bench:fleet` also writes them to
// bench/results/fleet-membership.{md,json}.
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyRequest } from '../../gpu-worker/signing.ts';
import { send, startEdge, type Answer as Sent, type EdgeStack, type Json } from '../helpers/edge-stack.ts';
import { metrics, root, SECRET, startWorker, type Worker } from '../gpu-worker/worker-process.ts';

const TTL_MS = 5_000;
const REFRESH_MS = 500;
const RETRY_AFTER_S = 3;
const MODEL = 'qwen3-8b-awq';
const VARS = { MEMBER_TTL_MS: String(TTL_MS), MEMBERSHIP_REFRESH_MS: String(REFRESH_MS), SCALE_UP_RETRY_AFTER_S: String(RETRY_AFTER_S) };
/** a system prompt well past the 64-token routing block and several KV blocks long */
const SYSTEM = `You are the support assistant of a company that sells garden tools. Answer politely, in one short paragraph, ` +
  `and never invent a product. Products: spade, rake, hoe, trowel, pruning shears, hedge trimmer, wheelbarrow, hose, ` +
  `sprinkler, watering can, gloves, kneeling pad, compost bin, seed trays, plant labels, twine, secateurs, loppers, ` +
  `leaf blower, lawn mower. Opening hours: nine to five on weekdays, ten to two on Saturdays. Returns within thirty days.`;

/** A fleet worker: the process and the moment its `ready` heartbeat was acknowledged (performance.now()). */
type Member = Worker & { readyAt: number };

/** Starts a demo worker that heartbeats to `edgeUrl` and resolves once the edge has acknowledged it ready. */
async function startMember(edgeUrl: string): Promise<Member> {
  const worker = await startWorker({ EDGE_URL: edgeUrl }, 'demo');
  for (;;) {
    if (/fleet: ready at/.test(worker.log())) return Object.assign(worker, { readyAt: performance.now() });
    if (worker.proc.exitCode !== null) throw new Error(`worker exited:\n${worker.log()}`);
    await sleep(5);
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The scale-up webhook: verifies each call's signature, records it, and runs `onCall` for the first. */
type Hook = { url: string; calls: { at: number; verified: boolean; body: Json; authorization?: string }[]; close(): Promise<void> };
async function webhookReceiver(onCall: () => void): Promise<Hook> {
  const calls: Hook['calls'] = [];
  const server: Server = createServer(async (req, res) => {
    let body = '';
    for await (const chunk of req) body += chunk;
    const verdict = await verifyRequest(SECRET, { method: req.method!, path: req.url!, body }, req.headers['x-q3-timestamp'] as string, req.headers['x-q3-signature'] as string);
    calls.push({ at: performance.now(), verified: verdict.ok, body: JSON.parse(body), authorization: req.headers.authorization });
    res.writeHead(202, { 'content-type': 'application/json' }).end('{"accepted":true}');
    if (calls.length === 1) onCall();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}/scale-up?pool=gpu`, calls, close: () => new Promise((r) => server.close(() => r())) };
}

type Answer = Sent & { sentAt: number };

/**
 * One streamed chat request (greedy; thinking off unless asked: the demo model then writes its reasoning sentence
 * first, a longer stream) read to the end; `sentAt` is performance.now() when it left.
 */
async function chat(edge: EdgeStack, key: string, messages: Json[], maxTokens: number, thinking = false): Promise<Answer> {
  const sentAt = performance.now();
  const body = {
    model: MODEL, messages, max_tokens: maxTokens, stream: true, stream_options: { include_usage: true }, temperature: 0,
    chat_template_kwargs: { enable_thinking: thinking },
  };
  try {
    return { ...(await send(edge.url, key, '/v1/chat/completions', body)), sentAt };
  } catch (err) {
    // the connection to the edge broke: a failed request like any other, reported with the rest
    const cause = (err as Error & { cause?: Error }).cause?.message ?? '';
    return {
      status: 0, requestId: null, retryAfter: null, reasoning: '', content: '', finish: null, usage: null, done: false, aborted: false,
      frames: 0, ttftMs: null, sentAt, error: { error: { message: `${(err as Error).message}: ${cause} (${(performance.now() - sentAt).toFixed(0)} ms)`, code: 'connection' } },
    };
  }
}

const ok = (a: Answer) => a.status === 200 && a.done && a.error === null && a.finish !== null;

/** The answers that were not complete, as `status: message` (an empty list when all were). */
const failures = (answers: Answer[]) => answers.filter((a) => !ok(a)).map((a) => `${a.status}: ${a.error?.error?.message ?? `done ${a.done}, finish ${a.finish}`}`);
const user = (content: string) => [{ role: 'user', content }];

/** ms until `check` holds (polled every 20 ms), or throws after `limitMs`. */
async function within(limitMs: number, check: () => Promise<boolean>): Promise<number> {
  const start = performance.now();
  while (!(await check())) {
    if (performance.now() - start > limitMs) throw new Error(`not within ${limitMs} ms`);
    await sleep(20);
  }
  return performance.now() - start;
}

/** Requests sent one after another, every `everyMs`, until stopped: traffic that keeps flowing through a change. */
function trickle(send: (i: number) => Promise<Answer>, everyMs: number) {
  const answers: Promise<Answer>[] = [];
  let running = true;
  const loop = (async () => {
    for (let i = 0; running; i++) {
      answers.push(send(i));
      await sleep(everyMs);
    }
  })();
  return {
    async stop(): Promise<Answer[]> {
      running = false;
      await loop;
      return Promise.all(answers);
    },
  };
}

const figures: Record<string, number | string> = {};
const edges: EdgeStack[] = [];
const workers: Worker[] = [];
const hooks: Hook[] = [];
let edge: EdgeStack;
let hook: Hook;
let key: string;

beforeAll(async () => {
  hook = await webhookReceiver(() => {}); // the platform starts the worker in the next test, once the 503s are checked
  hooks.push(hook);
  edge = await startEdge([], SECRET, { ...VARS, SCALE_UP_URL: hook.url });
  edges.push(edge);
  ({ key } = await edge.createKey('fleet', { concurrent_streams: 500, requests_per_minute: 100_000, tokens_per_minute: 100_000_000 }));
});

afterAll(async () => {
  await Promise.all(workers.map((w) => w.stop('SIGKILL')));
  await Promise.all(edges.map((e) => e.dispose()));
  await Promise.all(hooks.map((h) => h.close()));
});

describe('elastic fleet: membership by heartbeat, scale from zero, leave and loss', () => {
  let a: Member, b: Member, c: Member;

  it('Should answer 503 with Retry-After while no worker exists, and call the signed scale-up webhook once', async () => {
    const answers: Answer[] = [];
    for (let i = 0; i < 6; i++) answers.push(await chat(edge, key, user(`hello ${i}`), 4));
    for (const answer of answers) {
      expect(answer.status).toBe(503);
      expect(answer.retryAfter).toBe(String(RETRY_AFTER_S));
      expect(answer.error?.error).toMatchObject({ type: 'service_unavailable', code: 'no_healthy_worker' });
    }
    await within(5_000, async () => hook.calls.length > 0);
    await sleep(2 * REFRESH_MS);
    for (let i = 0; i < 3; i++) expect((await chat(edge, key, user(`again ${i}`), 4)).status).toBe(503);
    expect(hook.calls).toHaveLength(1); // once per cool-down window, however many requests and isolates ask
    expect(hook.calls[0].verified).toBe(true);
    expect(hook.calls[0].body).toMatchObject({ event: 'scale_up', reason: 'no_live_worker', members: { loading: 0, ready: 0, draining: 0 } });
  });

  it('Should serve from the worker the webhook started within one membership refresh of its joining', async () => {
    // clients keep asking while the worker starts, as they would after a 503
    const asking = (async () => {
      const answers: Answer[] = [];
      for (const start = performance.now(); performance.now() - start < 60_000; await sleep(25)) {
        const answer = await chat(edge, key, user('first light'), 4);
        answers.push(answer);
        if (answer.status !== 503) return answers;
      }
      throw new Error('no worker was served within 60 s of the scale-up call');
    })();
    a = await startMember(edge.url); // what the platform does on the webhook's call
    workers.push(a);
    const answers = await asking;
    const served = answers.at(-1)!;
    expect(failures([served])).toEqual([]);
    const joinMs = served.sentAt - a.readyAt;
    figures.join_latency_ms = Math.round(Math.max(0, joinMs));
    figures.refused_after_join = answers.filter((x) => x.status !== 200 && x.sentAt > a.readyAt).length;
    console.log(`join: the first request served by the new worker was sent ${joinMs.toFixed(0)} ms after its ready heartbeat ` +
      `(refresh ${REFRESH_MS} ms; ${answers.length - 1} requests answered 503 before)`);
    expect(joinMs).toBeLessThanOrEqual(REFRESH_MS + 1_000);
  });

  it('Should take the context limit from the members\' heartbeats: /v1/models reports it, a request past it is refused before any worker', async () => {
    const view = (await edge.workers()).find((w) => w.url === a.url)!;
    expect(view.max_context).toBeGreaterThan(0);
    const models = (await (await fetch(`${edge.url}/v1/models`, { headers: { authorization: `Bearer ${key}` } })).json()) as Json;
    expect(models.data[0].max_model_len).toBe(view.max_context);
    const admitted = (await metrics(a)).get('q3_worker_admitted_requests_total');
    const tooLong = await chat(edge, key, user('a short prompt'), view.max_context);
    expect(tooLong.status).toBe(400);
    expect(tooLong.error?.error).toMatchObject({ type: 'invalid_request_error', code: 'context_length_exceeded', param: 'max_tokens' });
    expect((await metrics(a)).get('q3_worker_admitted_requests_total')).toBe(admitted); // never reached the worker
  });

  it('Should keep a shared system prompt on one worker (cache hits reported) and spread other prompts, 48 streams on 3 workers', async () => {
    [b, c] = await Promise.all([startMember(edge.url), startMember(edge.url)]);
    workers.push(b, c);
    const members = [a, b, c];
    const viewMs = await within(5_000, async () => (await edge.workers()).filter((w) => w.state === 'ready').length === 3);
    figures.join_view_latency_ms = Math.round(Math.max(0, performance.now() - Math.max(b.readyAt, c.readyAt)));
    console.log(`joins: the edge saw both new members ready ${viewMs.toFixed(0)} ms after they were up`);
    const shared = (i: number) => [{ role: 'system', content: SYSTEM }, { role: 'user', content: `Question ${i}: do you sell ${['rakes', 'hoses', 'gloves', 'spades'][i % 4]}?` }];
    expect(ok(await chat(edge, key, shared(99), 4))).toBe(true); // the prefix is cached from here on
    const before = await Promise.all(members.map(metrics));
    const jobs = Array.from({ length: 48 }, (_, i) => (i % 3 === 0 ? chat(edge, key, shared(i), 6) : chat(edge, key, user(`Item ${i} of a spread list: tell me about the number ${i * 7919}.`), 6)));
    const answers = await Promise.all(jobs);
    expect(failures(answers)).toEqual([]);
    const after = await Promise.all(members.map(metrics));
    const delta = (name: string) => members.map((_, i) => (after[i].get(name) ?? 0) - (before[i].get(name) ?? 0));
    const hits = delta('vllm:prefix_cache_hits_total');
    const admitted = delta('q3_worker_admitted_requests_total');
    const sharedAnswers = answers.filter((_, i) => i % 3 === 0);
    const reported = answers.reduce((sum, x) => sum + (x.usage?.prompt_tokens_details?.cached_tokens ?? 0), 0);
    console.log(`48 streams: admitted per worker ${admitted.join(' / ')}, prefix-cache hit tokens ${hits.join(' / ')}, cached_tokens reported ${reported}`);
    expect(sharedAnswers.every((x) => x.usage!.prompt_tokens_details.cached_tokens > 0)).toBe(true);
    expect(hits.filter((h) => h > 0)).toHaveLength(1); // every shared-prompt request on one worker
    expect(hits.reduce((s, h) => s + h, 0)).toBe(reported);
    expect(admitted.reduce((s, n) => s + n, 0)).toBe(48);
    expect(admitted[hits.findIndex((h) => h > 0)]).toBeGreaterThanOrEqual(16);
    for (const n of admitted) expect(n).toBeGreaterThanOrEqual(2); // the other 32 spread over all three
    figures.shared_prompt_workers = hits.filter((h) => h > 0).length;
    figures.requests_per_worker = admitted.join(' / ');
  });

  it('Should let a SIGTERMed worker leave: its streams finish, no request fails, none reaches it once the edge knows', async () => {
    const long = (i: number) => chat(edge, key, user(`Long story ${i}: the ${i * 104729}th night.`), 64, true);
    const streams = Array.from({ length: 12 }, (_, i) => long(i));
    // generating on it: the prompts' routing hash involves the workers' random ports, so none of the 12 may land on b;
    // one more stream each poll, up to 48, until one runs there
    await within(10_000, async () => {
      if (((await metrics(b)).get('vllm:num_requests_running') ?? 0) > 0) return true;
      if (streams.length < 48) streams.push(long(streams.length));
      return false;
    });
    const traffic = trickle((i) => chat(edge, key, user(`During the leave ${i}: count to ${i}.`), 8), 100);
    const term = performance.now();
    const exited = b.stop('SIGTERM');
    const leaveMs = await within(5_000, async () => {
      const view = (await edge.workers()).find((w) => w.url === b.url);
      return !view || view.state === 'draining';
    });
    const known = performance.now(); // the edge (one isolate here) lists it draining: requests sent from now on must not reach it
    const code = await exited;
    const drainMs = performance.now() - term;
    const after = await traffic.stop();
    const inFlight = await Promise.all(streams);
    expect(code).toBe(0);
    expect(failures(inFlight)).toEqual([]); // including those that were on the worker
    expect(failures(after)).toEqual([]); // zero failed requests through the change
    const log = b.log();
    const late = /(\d+) requests arrived after leaving the fleet(?: \(routed on older views\): (.*))?/.exec(log);
    const arrived = Number(late?.[1]);
    const lateIds = new Set(late?.[2]?.split(', ') ?? []);
    const refused = Number(/stopped \((\d+) requests refused while draining\)/.exec(log)?.[1]);
    const sentOnceKnown = after.filter((x) => x.sentAt > known);
    console.log(`leave: out of the edge's view ${leaveMs.toFixed(0)} ms after SIGTERM, exited after ${drainMs.toFixed(0)} ms; ` +
      `${arrived} requests still reached it, routed on the view before (served), ${refused} once it drained; ${after.length} requests sent meanwhile ` +
      `(${sentOnceKnown.length} once the edge knew), all served`);
    expect(late).not.toBeNull();
    expect(lateIds.size).toBe(arrived);
    expect(refused).toBe(0);
    expect(sentOnceKnown.length).toBeGreaterThan(0);
    expect(sentOnceKnown.filter((x) => lateIds.has(x.requestId!))).toEqual([]); // nothing routed there once the edge knew
    figures.leave_latency_ms = Math.round(leaveMs);
    figures.leave_to_exit_ms = Math.round(drainMs);
    figures.requests_after_leave_served = arrived;
    figures.requests_after_leave_known = sentOnceKnown.filter((x) => lateIds.has(x.requestId!)).length;
    figures.requests_refused_while_draining = refused;
    figures.failed_during_leave = failures([...inFlight, ...after]).length;
    figures.requests_during_leave = inFlight.length + after.length;
  });

  it('Should take a killed worker out within one TTL, failing only the streams that were on it', async () => {
    const long = (i: number) => chat(edge, key, user(`Another long story ${i}: the ${i * 7907}th day.`), 64, true);
    const streams = Array.from({ length: 12 }, (_, i) => long(i));
    await within(10_000, async () => ((await metrics(c)).get('vllm:num_requests_running') ?? 0) > 0);
    const onIt = (await metrics(c)).get('vllm:num_requests_running')!; // generating on it when it dies
    c.proc.kill('SIGKILL');
    const traffic = trickle((i) => chat(edge, key, user(`After the kill ${i}: name a colour.`), 8), 100);
    const outMs = await within(TTL_MS + 5_000, async () => !(await edge.workers()).some((w) => w.url === c.url));
    const after = await traffic.stop();
    const before = await Promise.all(streams);
    const failed = before.filter((x) => !ok(x));
    console.log(`kill: out of the edge's view ${outMs.toFixed(0)} ms after SIGKILL (TTL ${TTL_MS} ms); ${failed.length} of ${onIt} streams on it failed; ` +
      `${after.length} requests sent after the kill, ${after.filter((x) => !ok(x)).length} failed`);
    expect(outMs).toBeLessThanOrEqual(TTL_MS + 1_000);
    expect(failures(after)).toEqual([]);
    expect(failed.length).toBeLessThanOrEqual(onIt);
    for (const x of failed) expect(x.error?.error?.code).toBeTruthy(); // an error in OpenAI's shape, never a silent cut
    figures.kill_out_latency_ms = Math.round(outMs);
    figures.streams_failed_by_kill = `${failed.length} of ${onIt} on it`;
    figures.failed_after_kill = failures(after).length;
    figures.requests_after_kill = after.length;
  });

  it('Should hold a request while the webhook starts a worker (SCALE_UP_WAIT_MS) and serve it once that worker joins', async () => {
    let held!: EdgeStack;
    const holdHook = await webhookReceiver(() => void startMember(held.url).then((m) => workers.push(m)));
    hooks.push(holdHook);
    held = await startEdge([], SECRET, { ...VARS, SCALE_UP_URL: holdHook.url, SCALE_UP_WAIT_MS: '60000' });
    edges.push(held);
    const { key: heldKey } = await held.createKey('fleet-hold', { concurrent_streams: 10 });
    const answer = await chat(held, heldKey, user('wait for me'), 4);
    const waitedMs = performance.now() - answer.sentAt;
    console.log(`hold: the request waited ${waitedMs.toFixed(0)} ms for a worker started from zero`);
    expect(ok(answer)).toBe(true);
    expect(holdHook.calls).toHaveLength(1);
    figures.held_request_wait_ms = Math.round(waitedMs);
  });
});

afterAll(() => {
  const rows = Object.entries(figures);
  console.log(['| figure | value |', '|---|---|', ...rows.map(([k, v]) => `| ${k} | ${v} |`)].join('\n'));
  if (process.env.FLEET_RESULTS !== '1' || rows.length < 17) return; // every phase passed and measured
  const machine = `${cpus().length} × ${cpus()[0]?.model.trim()}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB`;
  const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root, encoding: 'utf8' }).trim();
  const meta = { command: 'npm run bench:fleet', date: new Date().toISOString(), machine, commit, ttl_ms: TTL_MS, refresh_ms: REFRESH_MS };
  writeFileSync(join(root, 'bench/results/fleet-membership.json'), JSON.stringify({ ...meta, figures }, null, 2) + '\n');
  writeFileSync(join(root, 'bench/results/fleet-membership.md'), resultsMarkdown(meta, figures));
});

function resultsMarkdown(meta: Json, f: Record<string, number | string>): string {
  return `# Fleet membership: joins, leaves and losses

Command: \`${meta.command}\` (runs \`test/edge/fleet.e2e.test.ts\` and writes this file). Date: ${meta.date}. Commit: ${meta.commit}.
Machine: ${meta.machine}, shared with other jobs while it ran: times are upper bounds on a loaded machine, not a
property of the design. The edge ran in workerd (Miniflare, with wrangler.toml's bindings), the workers were real processes on the demo checkpoint (CPU,
1 thread each), all on loopback; \`MEMBER_TTL_MS\`=${meta.ttl_ms}, \`MEMBERSHIP_REFRESH_MS\`=${meta.refresh_ms} (the test's
values; the defaults are 15000 and 2000).

| figure | value | what it is |
|---|---|---|
| join latency | ${f.join_latency_ms} ms | a worker's \`ready\` heartbeat acknowledged → the first request served by it was sent (scale from zero; bound: one refresh; 0: the first request sent after it) |
| requests refused after the join | ${f.refused_after_join} | 503s sent after that heartbeat, before the isolate re-read membership |
| join seen by the edge | ${f.join_view_latency_ms} ms | two more workers ready → the edge lists both ready |
| shared-prompt workers | ${f.shared_prompt_workers} | workers with prefix-cache hits under 48 concurrent streams (16 share a system prompt) |
| requests per worker | ${f.requests_per_worker} | the 48 streams as the three workers admitted them |
| leave latency | ${f.leave_latency_ms} ms | SIGTERM → the edge lists the worker as draining |
| SIGTERM to exit | ${f.leave_to_exit_ms} ms | leave, serve while edges refresh (2 × refresh + 1 s), drain, exit |
| requests misrouted during the leave | ${f.requests_after_leave_served} | reached the worker after it left, routed on a view older than its leave: served, not refused |
| of those, sent once the edge listed it draining | ${f.requests_after_leave_known} | must be 0: a view that has the worker draining never routes to it |
| requests refused while draining | ${f.requests_refused_while_draining} | reached the worker once it stopped admitting |
| failed requests during the leave | ${f.failed_during_leave} of ${f.requests_during_leave} | the in-flight streams and the requests sent every 100 ms through the leave |
| loss latency | ${f.kill_out_latency_ms} ms | SIGKILL → the edge no longer lists the worker (bound: one TTL after its last heartbeat, plus the time of the \`/admin/workers\` poll that sees it) |
| streams failed by the kill | ${f.streams_failed_by_kill} | sequences it was running; only those already streaming may fail (one cut before its first token is retried on another worker) |
| failed requests after the kill | ${f.failed_after_kill} of ${f.requests_after_kill} | requests sent every 100 ms after the kill (retried on another worker before their first token) |
| held request | ${f.held_request_wait_ms} ms | \`SCALE_UP_WAIT_MS\`: a request at zero workers waits for the worker the webhook starts |
`;
}
