#!/usr/bin/env node
// Edge overhead per request: the latency the edge (workerd via wrangler's unstable_startWorker, wrangler.toml) adds
// between a client and a GPU worker, with CONCURRENCY streams in flight. Each round sends the same streamed request
// CONCURRENCY times straight to the worker (signed POST /v1/generate with the prompt ids the edge would send) and
// CONCURRENCY times through the edge (POST /v1/chat/completions, stream), alternating, in one run; overhead =
// quantile(edge) − quantile(direct) for time to first token and time to the last byte. Writes
// bench/results/edge-overhead.{md,json} with the command, the machine and the date.
//
//   node --import tsx bench/edge-overhead.mjs [--rounds 8] [--concurrency 32] [--worker stub|real] [--pace 10] [--tokens N] [--runner miniflare|wrangler] [--accounts on|off] [--baseline REF[,REF2]] [--result-name NAME] [--limiter-apart] [--parts] [--profile] [--count-commits] [--stamp-arrival] [--read-floor] [--read-variants] [--identity-writer] [--transform-in-edge] [--pin [--helpers-apart]] [--processes N] [--direct-sockets]
//
// Every edge's workerd process is also timed: its CPU (all threads: the isolate, the Durable Object, Miniflare's KV /
// D1 / cache simulators) over each phase divided by the requests it served. A relay path (a Worker that only
// forwards the direct request to the worker and streams the answer back) measures what any Worker in front of the
// GPU worker costs on this machine: the floor of the edge's overhead. A JS transform path (a Worker that forwards it
// too but reads the worker's frames in JavaScript and writes one chunk per read) measures what any Worker that touches
// every token costs: workerd's price of a JavaScript read and write per token, the floor of a streaming edge.
//
// --profile samples a V8 CPU profile of this tree's edge isolate (bundled unminified, names kept) over each phase
// through workerd's inspector and writes bench/results/edge-overhead-profile.md: time by source module (a library's
// time counted for the module of ours that called it) and the functions with the most self time, over each phase and
// over the stretches from each round's requests to its last first token (what delays the later streams).
//
// --baseline REF adds the edge as it is at git REF (bench/git-baseline.mjs) as one more path in the same rounds (a
// comma-separated list adds one per ref), so a change's overhead is compared with the one before it on the same
// loaded machine at the same moment; the results file is then bench/results/edge-overhead-vs-REF[-REF2].{md,json}, or
// the name --result-name gives (bench/deploy-budget.mjs names its own, so a separate run never replaces its input).
//
// --limiter-apart adds this tree once more with the rate limiter's Durable Object in a workerd process of its own
// (reached through Miniflare's dev registry), as on Cloudflare, where it runs elsewhere than the edge's isolate: its
// storage commits (SQLite, each one fsynced) then stop blocking the edge's one thread. Its CPU row counts both
// processes.
//
// --parts adds this tree once more per part of the accounts layer, with that part left out or cut short (bench-only
// entries built here; the edge's own code is unchanged), each in a workerd process of its own, in the same rounds: the
// difference of each one's CPU per request from this tree's, over the stretch from a round's requests to its last
// first token, is that part's share (PART_VARIANTS below says what each leaves out).
//
// --count-commits adds, after the timed rounds, one more round of CONCURRENCY streams per path with strace attached to
// its workerd process(es) and counts their fsync/fdatasync calls (each SQLite commit of the rate limiter's Durable
// Object, Miniflare's D1, KV and cache ends in one), per request, the work after the responses included. strace slows
// the process it traces, so that round is not timed.
//
// With the stub worker every path's time to first token is also split by clocks outside the edge (the machine's
// monotonic clock, read by the client and the stub): inbound (send -> the worker has the request), the worker's own
// time, outbound (its write -> the client reads it). --stamp-arrival adds this tree once more with its handler's start
// put on the response, splitting inbound at the moment the edge's code begins; --read-floor adds a floor that reads,
// parses and signs the chat request before forwarding it (the least an edge must do before the call), and
// --read-variants that floor with one step done another way (READ_VARIANTS: read by length, not read, not signed);
// --identity-writer adds the JS transform floor writing its chunks into an IdentityTransformStream (the runtime's own
// byte stream) instead of a ReadableStream of JavaScript's;
// --transform-in-edge runs the JS transform floor's handler in the edge's own bundle and workerd setup.
//
// --tokens N streams only the demo script's first N tokens: short streams, whose ends overlap the next requests.
//
// --worker stub (default) streams the demo script from a paced stand-in process, so the difference is the edge's own
// cost; --worker real runs gpu-worker/index.ts (CPU: its batching steps dominate and blur the difference).
//
// --direct-sockets serves every Worker the benchmark runs in Miniflare (the edges, the floors) on a socket of its own
// (Miniflare's unsafeDirectSockets), so that requests reach it as workerd hands them over, without Miniflare's entry
// worker in front: a JavaScript Worker of Miniflare's that every request through Miniflare's own port passes first,
// on the same thread (it builds the `cf` object, rewrites the URL and headers, matches routes, calls the user Worker
// through a service binding, and looks at the response for pretty error pages, live reload, encodings and its request
// log). It is local development's emulation of Cloudflare's front line, which runs outside the Worker's process, and
// costs ~0.3 ms of workerd CPU per request on the AMD EPYC here. The edge is then also run once behind it, as the path
// "this tree, through Miniflare's entry worker", in the same rounds.
import { DEMO_ANSWER, DEMO_REASONING } from '../scripts/gen-demo-script.mjs';
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { Miniflare } from 'miniflare';
import { unstable_startWorker } from 'wrangler';
import { signRequest } from '../gpu-worker/signing.ts';
import { getTokenizer } from '../edge/tokenizer/index.ts';
import { Rng } from '../test/helpers/tiny-qwen3.ts';
import { checkoutBaseline, removeBaseline } from './git-baseline.mjs';
import { startProfile, summarizeProfile } from './v8-cpu-profile.mjs';
import { processCpuNs, processRunQueueNs, workerdChildren } from './workerd-process.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const loadAtStart = os.loadavg();
/** "this tree" as a commit: HEAD, plus "+changes" when the work tree differs from it */
const treeRef = (() => {
  const git = (...args) => spawnSync('git', args, { cwd: root, encoding: 'utf8' }).stdout?.trim() ?? '';
  const head = git('rev-parse', '--short', 'HEAD');
  return head ? `${head}${git('status', '--porcelain', '--untracked-files=no', '--', 'edge', 'gpu-worker', 'bench', ':(exclude)bench/results') ? ' + uncommitted changes' : ''}` : 'unknown';
})();
const args = Object.fromEntries(process.argv.slice(2).join(' ').split('--').filter(Boolean).map((a) => a.trim().split(/\s+/)));
const ROUNDS = Number(args.rounds ?? 8);
const CONCURRENCY = Number(args.concurrency ?? 32);
/** stub: a paced stand-in worker (isolates the edge's own cost); real: the GPU worker process (DEVICE, THREADS env) */
const WORKER_KIND = args.worker ?? 'stub';
/** ms between the stub's tokens (100 tokens/s per stream, a GPU-like decode pace) */
const PACE_MS = Number(args.pace ?? 10);
/** the stub's tokens per stream: the demo script's first N (all of them when unset) */
const TOKENS = args.tokens === undefined ? undefined : Number(args.tokens);
/** miniflare: the bundled edge in workerd, no proxy; wrangler: under wrangler's dev server */
const RUNNER = args.runner ?? 'miniflare';
// --accounts off: the app without keys, rate limits, cache and metering (createApp()), to see what they cost.
const ACCOUNTS = (args.accounts ?? 'on') !== 'off';
const BASELINE_REF = args.baseline;
const PROFILE = 'profile' in args;
/** also this tree with the rate limiter's Durable Object in a workerd process of its own (as deployed), in the same rounds */
const LIMITER_APART = 'limiter-apart' in args;
/** also this tree without each part of the accounts layer in turn (PART_VARIANTS), in the same rounds */
const PARTS = 'parts' in args;
/** after the timed rounds, one round per path under strace counting fsyncs (storage commits) per request */
const COUNT_COMMITS = 'count-commits' in args;
/**
 * --pin: each workerd process on the machine's last CPU, this client and the worker on the others (taskset), as in
 * production, where the edge shares its cores with neither its clients nor the GPU workers: the overhead is then the
 * edge's own work, not also its CPU taking turns from the client and the worker (and theirs from it).
 */
const PIN = 'pin' in args;
/** --direct-sockets: each Miniflare Worker on a socket of its own, without Miniflare's entry worker (see the top) */
const DIRECT_SOCKETS = 'direct-sockets' in args;
if (DIRECT_SOCKETS && RUNNER !== 'miniflare') throw new Error('--direct-sockets needs --runner miniflare');
/**
 * --helpers-apart (with --pin): only each workerd process's main thread (its isolates' and event loop's) on the last
 * CPU; its other threads (V8's platform worker, which marks and sweeps the heap concurrently and compiles optimised
 * code in the background, and the idle tokio runtime) on the other CPUs with the client and the worker. On Cloudflare
 * those threads have cores of their own; pinned together with the isolate's thread they take it turns: in a burst of
 * 32 of this tree's streams V8's worker used ~10% as much CPU as the main thread, which waited for it.
 */
const HELPERS_APART = 'helpers-apart' in args;
if (HELPERS_APART && !PIN) throw new Error('--helpers-apart needs --pin');
/**
 * --processes N: this tree and each --baseline run as N workerd processes each, every one a path of its own, and
 * each build's processes are also pooled (rows "<build>, N processes pooled"): one process of a build can read ~15%
 * more CPU per request than another of the same code (bench/results/edge-overhead-aaa-s20.md).
 */
const PROCESSES = Math.max(1, Math.floor(Number(args.processes ?? 1)));
const INSPECTOR_PORT = 9239;
const PROFILE_INTERVAL_US = 200;
if ((BASELINE_REF || LIMITER_APART || PARTS) && RUNNER !== 'miniflare') throw new Error('--baseline, --limiter-apart and --parts need --runner miniflare');
/** the results file's name under bench/results/ (without .md / .json) */
const RESULT_NAME = args['result-name'] ?? ['edge-overhead', WORKER_KIND === 'real' && 'real-worker', RUNNER === 'wrangler' && 'wrangler-dev', !ACCOUNTS && 'no-accounts', TOKENS !== undefined && `tokens-${TOKENS}`, BASELINE_REF && `vs-${BASELINE_REF.split(',').join('-').replace(/[^\w.-]+/g, '-')}`].filter(Boolean).join('-');
// the demo checkpoint's script after a thinking prompt (scripts/gen-demo-script.mjs)
const DEMO_SCRIPT = `<think>${DEMO_REASONING}</think>\n\n${DEMO_ANSWER}`;
const SECRET = 'bench-secret-0123456789';
const ADMIN_TOKEN = 'adm-bench-token-0123456789';
const MODEL = 'qwen3-8b-awq';
const messages = [{ role: 'system', content: 'You are a helpful assistant.' }, { role: 'user', content: 'hi' }];

/**
 * --parts: bench-only entries of this tree, each the accounts layer (edge/accounts.ts) with one part left out or cut
 * short; `accounts: false` is the app without the layer. Each is edge/index.ts with other extensions.
 */
const PART_VARIANTS = [
  // the key record from a map keyed by the header's text: no regex, no SHA-256 of the secret, no isolate key cache
  { label: 'part: key check memoised', extensions: 'keyMemo(), modelAccess(), responseCache(), metering(), rateLimit()' },
  { label: 'part: no response cache', extensions: 'apiKeyAuth(), modelAccess(), metering(), rateLimit()' },
  { label: 'part: no metering', extensions: 'apiKeyAuth(), modelAccess(), responseCache(), rateLimit()' },
  // the limiter decides as always but never writes its storage (its flush delay is an hour)
  { label: 'part: limiter without storage', extensions: 'apiKeyAuth(), modelAccess(), responseCache(), metering(), rateLimit()', limiter: 'unwritten' },
  // the limiter's decisions made in the edge's isolate by the same class, its storage a no-op: no RPC, no object
  { label: 'part: limiter without RPC', extensions: 'apiKeyAuth(), modelAccess(), responseCache(), metering(), limiterInIsolate(), rateLimit()' },
  { label: 'part: no rate limiter', extensions: 'apiKeyAuth(), modelAccess(), responseCache(), metering()' },
  { label: 'part: no accounts layer', accounts: false },
];

/** The source of a --parts entry (resolved from the edge's root). */
function partEntry(variant) {
  if (variant.stampArrival) return STAMPED_ENTRY;
  if (variant.transformInEdge) return TRANSFORM_IN_EDGE_ENTRY;
  const limiter = variant.limiter === 'unwritten'
    ? 'export class RateLimiter extends Limiter { constructor(ctx, env) { super(ctx, env); this.flushDelayMs = 3_600_000; } }'
    : 'export { Limiter as RateLimiter };';
  return `import { env } from 'cloudflare:workers';
import { mountAccounts } from './edge/accounts.ts';
import { createApp } from './edge/app.ts';
import { apiKeyAuth, modelAccess } from './edge/middleware/auth.ts';
import { metering } from './edge/middleware/metering.ts';
import { rateLimit } from './edge/middleware/rate-limit.ts';
import { responseCache } from './edge/middleware/response-cache.ts';
import { warmUp } from './edge/warm-up.ts';
import { RateLimiter as Limiter } from './edge/rate-limiter-do.ts';
const keyMemo = () => {
  const auth = apiKeyAuth();
  const known = new Map();
  return async function keyMemo(c, next) {
    const header = c.req.header('authorization') ?? '';
    const record = known.get(header);
    if (record) {
      c.set('apiKey', record);
      c.get('lifecycle').tenant = record.tenant;
      return next();
    }
    return auth(c, async () => { known.set(header, c.get('apiKey')); await next(); });
  };
};
// one RateLimiter per key in this isolate, constructed on a storage that keeps nothing, standing in for the binding
const limiterInIsolate = () => {
  const storage = { get: async () => undefined, list: async () => new Map(), put: async () => {}, delete: async () => true };
  const ctx = { storage };
  // the runtime constructs Durable Objects only for its bindings: the object's fields as its constructor sets them
  const make = () => Object.assign(Object.create(Limiter.prototype), {
    ctx, env: {}, state: { requests: null, tokens: null, leases: {}, reclaimed: {}, quotaUsed: 0, revoked: false }, streams: 0,
    nextExpiryAt: 0, unwritten: new Map(), countersChanged: false, flushTimer: undefined, clockOffsetMs: 0, flushDelayMs: 10,
  });
  const objects = new Map();
  const ns = { idFromName: (name) => name, get: (id) => objects.get(id) ?? objects.set(id, make()).get(id) };
  return async function limiterInIsolate(c, next) {
    c.env = { ...c.env, RATE_LIMITER: ns };
    await next();
  };
};
void [apiKeyAuth, modelAccess, metering, rateLimit, responseCache, keyMemo, limiterInIsolate, mountAccounts];
const app = createApp(${variant.accounts === false ? '' : `{ extensions: [${variant.extensions}] }`});
${variant.accounts === false ? '' : 'mountAccounts(app);'}
void warmUp(app, env);
export default app;
${limiter}
export { Fleet } from './edge/fleet.ts';
`;
}

/**
 * --stamp-arrival: this tree's entry with its fetch handler wrapped to put the wall-clock time it began (Date.now(), ms:
 * on Workers the clock is read fresh as an event starts) on the response as x-bench-arrived, so that the inbound part
 * splits into before the edge's handler runs (workerd accepting, Miniflare's entry worker, the queue for the thread)
 * and from there to the worker's receipt (the edge's own work before the call).
 */
const STAMPED_ENTRY = `import app, { RateLimiter, Fleet } from './edge/index.ts';
export default {
  async fetch(request, env, ctx) {
    const arrived = Date.now();
    const res = await app.fetch(request, env, ctx);
    const stamped = new Response(res.body, res);
    stamped.headers.set('x-bench-arrived', String(arrived));
    return stamped;
  },
};
export { RateLimiter, Fleet };
`;
const STAMP_ARRIVAL = 'stamp-arrival' in args;
/**
 * The JS transform floor's answer (the source of a fetch handler's last lines, `upstream` the worker's response): the
 * worker's frames read in JavaScript, one chat.completion.chunk written per read into a ReadableStream.
 */
const TRANSFORM_ANSWER = `if (!upstream.ok || !upstream.body) return upstream;
  const reader = upstream.body.getReader();
  const decoder = new TextDecoder();
  const encoder = new TextEncoder();
  let controller;
  const body = new ReadableStream({ start(c) { controller = c; } }, { highWaterMark: 1 });
  (async () => {
    let buffer = '';
    for (let read; !(read = await reader.read()).done; ) {
      buffer += decoder.decode(read.value, { stream: true });
      let out = '';
      for (let end; (end = buffer.indexOf('\\n\\n')) !== -1; ) {
        const event = JSON.parse(buffer.slice(6, end));
        buffer = buffer.slice(end + 2);
        const choice = { index: 0, delta: { content: event.tokens.join(' ') }, logprobs: null, finish_reason: event.finish_reason ?? null };
        out += 'data: ' + JSON.stringify({ id: 'chatcmpl-floor', object: 'chat.completion.chunk', created: 0, model: 'floor', choices: [choice], tokens: event.tokens }) + '\\n\\n';
      }
      if (out) controller.enqueue(encoder.encode(out));
    }
    controller.enqueue(encoder.encode('data: [DONE]\\n\\n'));
    controller.close();
  })();
  return new Response(body, { headers: { 'content-type': 'text/event-stream' } });`;

/**
 * --identity-writer: TRANSFORM_ANSWER with the chunks written into the runtime's own byte stream (an
 * IdentityTransformStream's writer; its readable is the response body) instead of a ReadableStream of JavaScript's.
 */
const IDENTITY_ANSWER = TRANSFORM_ANSWER
  .replace(`let controller;
  const body = new ReadableStream({ start(c) { controller = c; } }, { highWaterMark: 1 });`, `const { readable: body, writable } = new IdentityTransformStream();
  const writer = writable.getWriter();`)
  .replace('if (out) controller.enqueue(encoder.encode(out));', 'if (out) void writer.write(encoder.encode(out));')
  .replace(`controller.enqueue(encoder.encode('data: [DONE]\\n\\n'));
    controller.close();`, `void writer.write(encoder.encode('data: [DONE]\\n\\n'));
    await writer.close();`);
if (IDENTITY_ANSWER === TRANSFORM_ANSWER || IDENTITY_ANSWER.includes('controller')) throw new Error('IDENTITY_ANSWER: TRANSFORM_ANSWER changed');
const IDENTITY_WRITER = 'identity-writer' in args;

/**
 * --transform-in-edge: the JS transform floor's fetch handler run in the edge's own setup instead of the app (the
 * same bundle, bindings, Durable Objects and compatibility flags, the tokenizer built on the first request), so that
 * what the edge's runtime setup costs shows apart from what its app does per request.
 */
const TRANSFORM_IN_EDGE = 'transform-in-edge' in args;
const TRANSFORM_IN_EDGE_ENTRY = `import { RateLimiter, Fleet } from './edge/index.ts';
import { getTokenizer } from './edge/tokenizer/index.ts';
export default { async fetch(request, env) {
  getTokenizer();
  const { pathname } = new URL(request.url);
  const upstream = await fetch(env.WORKER_URLS + pathname, { method: request.method, headers: request.headers, body: request.body });
  ${TRANSFORM_ANSWER}
} };
export { RateLimiter, Fleet };
`;
/** also a floor that reads, parses and signs the request as the edge must before it forwards it (startTransform) */
const READ_FLOOR = 'read-floor' in args;
const READ_VARIANT_PATHS = 'read-variants' in args;

/**
 * The paced stand-in worker: answers every POST /v1/generate with the demo script's tokens, one per PACE_MS. It notes,
 * per request_id, on the machine's monotonic clock (process.hrtime, the one every process here reads, in ms): when the
 * request arrived (its headers), when its body had been read, and when it wrote each of its first three tokens; GET
 * /timings hands those over (and forgets them), so that a client's send and first-token times split into the way in,
 * the worker's own time and the way out.
 */
const STUB_SOURCE = `
import { createServer } from 'node:http';
const { tokens, paceMs, firstMs } = JSON.parse(process.env.STUB_CONFIG);
const nowMs = () => Number(process.hrtime.bigint()) / 1e6;
const timings = new Map();
const server = createServer((req, res) => {
  const arrived = nowMs();
  // GET /ready as a worker answers it: ready, and the context the edge learns from it
  if (req.method === 'GET' && req.url === '/ready') return void res.writeHead(200, { 'content-type': 'application/json' }).end('{"ready":true,"max_context":40960}');
  if (req.method === 'GET' && req.url === '/timings') {
    const body = JSON.stringify(Object.fromEntries(timings));
    timings.clear();
    return void res.writeHead(200, { 'content-type': 'application/json' }).end(body);
  }
  let body = '';
  req.setEncoding('utf8');
  req.on('data', (chunk) => { body += chunk; });
  req.on('end', () => {
    const stamp = { arrived, read: nowMs(), writes: [] };
    const id = /"request_id":"([^"]*)"/.exec(body)?.[1];
    if (id) timings.set(id, stamp);
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    let i = 0;
    const next = () => {
      if (res.destroyed) return;
      if (i < tokens.length) {
        res.write('data: ' + JSON.stringify({ tokens: [tokens[i++]] }) + '\\n\\n');
        if (i <= 3) stamp.writes.push(nowMs());
        setTimeout(next, paceMs);
        return;
      }
      res.end('data: ' + JSON.stringify({ tokens: [], finish_reason: 'stop', usage: { prompt_tokens: 20, completion_tokens: tokens.length + 1, cached_tokens: 16 } }) + '\\n\\n');
    };
    setTimeout(next, firstMs);
  });
});
server.listen(0, '127.0.0.1', () => console.log('worker ready on http://127.0.0.1:' + server.address().port));
`;

function startGpuWorker() {
  const stub = WORKER_KIND === 'stub';
  const tokens = getTokenizer().encode(DEMO_SCRIPT).slice(0, TOKENS);
  const proc = stub
    ? spawn(process.execPath, ['--input-type=module', '-e', STUB_SOURCE], {
        env: { ...process.env, STUB_CONFIG: JSON.stringify({ tokens, paceMs: PACE_MS, firstMs: PACE_MS * 2 }) },
        stdio: ['ignore', 'pipe', 'pipe'],
      })
    : spawn(process.execPath, ['--import', 'tsx', 'gpu-worker/index.ts'], {
        cwd: root,
        env: { ...process.env, PORT: '0', HOST: '127.0.0.1', WORKER_SECRET: SECRET, DEVICE: process.env.DEVICE ?? 'cpu', THREADS: process.env.THREADS ?? '1' },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
  let log = '';
  return new Promise((resolve, reject) => {
    const onData = (d) => {
      log += d;
      const m = /worker ready on (http:\/\/\S+)/.exec(log);
      if (m) resolve({ url: m[1], proc });
    };
    proc.stdout.on('data', onData);
    proc.stderr.on('data', onData);
    proc.once('exit', (code) => reject(new Error(`worker exited (${code}):\n${log}`)));
  });
}

/** Whether wrangler.toml's migrations make a Durable Object class SQLite-backed (new_sqlite_classes), as it deploys. */
function sqliteBacked(toml, className) {
  return [...toml.matchAll(/new_sqlite_classes\s*=\s*(\[[^\]]*\])/g)].some((m) => JSON.parse(m[1]).includes(className));
}

/** Miniflare options that serve its Worker on a socket of its own (--direct-sockets), or none */
const socketOptions = (direct) => (direct ? { unsafeDirectSockets: [{ host: '127.0.0.1', port: 0 }] } : {});

/** The URL a started Miniflare serves its Worker on: its own socket's, or Miniflare's port (its entry worker first). */
async function servedUrl(mf, direct) {
  const entryUrl = await mf.ready;
  return (direct ? await mf.unsafeGetDirectURL() : entryUrl).toString();
}

/** The edge in workerd: bundled and run by Miniflare directly (as a client reaches a deployed Worker), or under
 * wrangler's dev server (unstable_startWorker), which adds its own proxy hop in front of the Worker. `direct`: on a
 * socket of its own, without Miniflare's entry worker (--direct-sockets). */
async function startEdge(workerUrl, edgeRoot = root, profiled = false, limiterApart = false, variant = undefined, direct = DIRECT_SOCKETS) {
  // The whole deployed edge: API key check, rate limiter (Durable Object), response cache and D1 metering included.
  const bindings = { WORKER_URLS: workerUrl, WORKER_SECRET: SECRET, ADMIN_TOKEN };
  if (RUNNER === 'wrangler') {
    const dev = await unstable_startWorker({
      config: join(root, 'wrangler.toml'),
      bindings: {
        WORKER_URLS: { type: 'plain_text', value: workerUrl }, WORKER_SECRET: { type: 'secret_text', value: SECRET },
        ADMIN_TOKEN: { type: 'secret_text', value: ADMIN_TOKEN },
      },
      dev: { server: { hostname: '127.0.0.1', port: 0 }, inspector: false, persist: false, watch: false, remote: false, logLevel: 'warn' },
    });
    await dev.ready;
    return { url: (await dev.url).toString(), dispose: () => dev.dispose() };
  }
  const toml = readFileSync(join(edgeRoot, 'wrangler.toml'), 'utf8');
  const entry = variant
    ? { stdin: { contents: partEntry(variant), resolveDir: edgeRoot, loader: 'ts' } }
    : ACCOUNTS
    ? { entryPoints: [join(edgeRoot, 'edge', 'index.ts')] }
    : { stdin: { contents: "import { createApp } from './edge/app.ts'; export default createApp();", resolveDir: edgeRoot, loader: 'ts' } };
  // minified, as staging and production deploy it; unminified (module comments and names kept) to be profiled
  const bundle = await build({
    ...entry, bundle: true, format: 'esm', platform: 'neutral', target: 'es2022', write: false, minify: !profiled,
    absWorkingDir: edgeRoot, conditions: ['workerd', 'worker', 'browser'], mainFields: ['module', 'main'], external: ['node:*', 'cloudflare:*'],
    loader: { '.bin': 'binary' }, // the tokenizer image (a Data module under wrangler)
  });
  const script = bundle.outputFiles[0].text;
  const runtime = {
    modules: true, script, host: '127.0.0.1', port: 0,
    compatibilityDate: /compatibility_date\s*=\s*"([^"]+)"/.exec(toml)[1],
    compatibilityFlags: JSON.parse(/compatibility_flags\s*=\s*(\[[^\]]*\])/.exec(toml)[1]),
  };
  const limiterClass = { className: 'RateLimiter', enableSql: sqliteBacked(toml, 'RateLimiter') };
  // limiter apart: the rate limiter's Durable Object in a workerd process of its own (the same bundle, serving only
  // the object), reached through Miniflare's dev registry, as on Cloudflare where it runs elsewhere than the edge
  const registry = limiterApart ? { unsafeDevRegistryPath: mkdtempSync(join(os.tmpdir(), 'edge-registry-')) } : {};
  let limiter;
  let limiterPid;
  if (limiterApart) {
    const before = new Set(workerdChildren());
    limiter = new Miniflare({ name: 'limiter', ...runtime, ...registry, durableObjects: { RATE_LIMITER: limiterClass } });
    await limiter.ready;
    limiterPid = workerdChildren().find((pid) => !before.has(pid));
  }
  const before = new Set(workerdChildren());
  const mf = new Miniflare({
    name: 'edge', ...runtime, ...registry, ...(profiled ? { inspectorPort: INSPECTOR_PORT } : {}),
    bindings: { MODEL_ID: MODEL, THINKING_DEFAULT: 'auto', ...bindings },
    kvNamespaces: ['KEYS'], d1Databases: ['USAGE'],
    durableObjects: { RATE_LIMITER: limiterApart ? { ...limiterClass, scriptName: 'limiter' } : limiterClass },
    ...socketOptions(direct),
  });
  const url = await servedUrl(mf, direct);
  const pid = workerdChildren().find((pid) => !before.has(pid));
  await applyMigrations(await mf.getD1Database('USAGE'), edgeRoot);
  return {
    url, pid, pids: [pid, limiterPid].filter(Boolean), script,
    dispose: async () => {
      await mf.dispose();
      await limiter?.dispose();
    },
  };
}

/** migrations/*.sql applied to a fresh D1 database, as `npm run deploy` does to the deployed one. */
async function applyMigrations(db, edgeRoot) {
  const dir = join(edgeRoot, 'migrations');
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.sql')).sort()) {
    const sql = readFileSync(join(dir, file), 'utf8').split('\n').filter((line) => !line.trim().startsWith('--')).join('\n');
    await db.batch(sql.split(';').map((s) => s.trim()).filter(Boolean).map((s) => db.prepare(s)));
  }
}

/** The floor: a Worker that forwards the signed direct request to the GPU worker and streams its answer back untouched. */
async function startRelay(workerUrl) {
  const before = new Set(workerdChildren());
  const mf = new Miniflare({
    name: 'relay', modules: true, host: '127.0.0.1', port: 0, compatibilityDate: '2026-04-01', bindings: { UPSTREAM: workerUrl },
    script: `export default { fetch(request, env) {
      const { pathname } = new URL(request.url);
      return fetch(env.UPSTREAM + pathname, { method: request.method, headers: request.headers, body: request.body });
    } };`,
    ...socketOptions(DIRECT_SOCKETS),
  });
  const url = await servedUrl(mf, DIRECT_SOCKETS);
  return { url, pid: workerdChildren().find((pid) => !before.has(pid)), dispose: () => mf.dispose() };
}

/** --read-variants: the body read with one reader, up to its Content-Length, without waiting for the stream's end */
const READ_BY_LENGTH = `const length = Number(request.headers.get('content-length'));
      const bodyReader = request.body.getReader();
      const bytes = new Uint8Array(length);
      let filled = 0;
      while (filled < length) {
        const { done, value } = await bodyReader.read();
        if (done) break;
        bytes.set(value, filled);
        filled += value.length;
      }
      bodyReader.releaseLock();
      const chat = JSON.parse(new TextDecoder().decode(bytes));`;
/** --read-variants: the read floor with one of its steps done another way, each a path of its own */
const READ_VARIANTS = [
  { label: 'read floor: body read by length', read: 'length' },
  { label: 'read floor: body not read', read: 'none' },
  { label: 'read floor: not signed', sign: false },
];

/**
 * The floor of any Worker that must touch every token: it forwards the direct request like the relay, and reads the
 * worker's frames in JavaScript, writing one chat.completion.chunk per read (the frames' ids as its text, and as
 * `tokens` so that the direct path's first-output test reads it) into a ReadableStream the runtime sends on. What it
 * costs above the relay is workerd's price of a JavaScript read and write per token on this machine, before any
 * detokenising, parsing, accounts or admission.
 */
async function startTransform(workerUrl, readAndSign = undefined, answer = TRANSFORM_ANSWER) {
  const before = new Set(workerdChildren());
  // --read-floor: the client's chat request read and parsed, the worker request built from it and HMAC-signed here;
  // --read-variants: the same with one step done another way (READ_VARIANTS)
  const read = { json: 'const chat = await request.json();', none: 'const chat = {};', length: READ_BY_LENGTH }[readAndSign?.read ?? 'json'];
  const sign = readAndSign?.sign === false
    ? `const timestamp = '0'; const signature = '';`
    : `key ??= crypto.subtle.importKey('raw', new TextEncoder().encode(env.SECRET), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
      const timestamp = String(Math.floor(Date.now() / 1000));
      const mac = new Uint8Array(await crypto.subtle.sign('HMAC', await key, new TextEncoder().encode('POST\\n/v1/generate\\n' + timestamp + '\\n' + text)));
      const signature = Array.from(mac, (b) => b.toString(16).padStart(2, '0')).join('');`;
  const call = readAndSign
    ? `${read}
      const prompt = JSON.parse(env.PROMPT);
      const text = JSON.stringify({ request_id: request.headers.get('x-request-id'), prompt, max_tokens: 40960 - prompt.length, sampling: { temperature: chat.temperature ?? 0.6, top_p: chat.top_p ?? 0.95, top_k: 20 }, stop_token_ids: [] });
      ${sign}
      const upstream = await fetch(env.UPSTREAM + '/v1/generate', { method: 'POST', headers: { 'content-type': 'application/json', 'x-timestamp': timestamp, 'x-signature': signature }, body: text });`
    : `const { pathname } = new URL(request.url);
      const upstream = await fetch(env.UPSTREAM + pathname, { method: request.method, headers: request.headers, body: request.body });`;
  const mf = new Miniflare({
    name: readAndSign ? 'read-floor' : answer === TRANSFORM_ANSWER ? 'transform' : 'identity-writer', modules: true, host: '127.0.0.1', port: 0, compatibilityDate: '2026-04-01',
    bindings: { UPSTREAM: workerUrl, ...(readAndSign ? { PROMPT: JSON.stringify(readAndSign.prompt), SECRET } : {}) },
    script: `let key;
    export default { async fetch(request, env) {
      ${call}
      ${answer}
    } };`,
    ...socketOptions(DIRECT_SOCKETS),
  });
  const url = await servedUrl(mf, DIRECT_SOCKETS);
  return { url, pid: workerdChildren().find((pid) => !before.has(pid)), dispose: () => mf.dispose() };
}

/** The machine's monotonic clock in ms (process.hrtime: the clock the stub worker stamps its side with). */
const monotonicMs = () => Number(process.hrtime.bigint()) / 1e6;

/**
 * Reads a streamed response; returns ms to the first frame carrying output and ms to the end, and the first output's
 * arrival on the monotonic clock (firstAt).
 */
async function timeStream(start, res, isOutput, onFirst = () => {}) {
  if (!res.ok) throw new Error(`${res.status}: ${await res.text()}`);
  const decoder = new TextDecoder();
  let buffer = '';
  let first;
  let firstAt;
  for await (const chunk of res.body) {
    buffer += decoder.decode(chunk, { stream: true });
    let end;
    while ((end = buffer.indexOf('\n\n')) !== -1) {
      const frame = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      if (first === undefined && isOutput(frame)) {
        firstAt = monotonicMs();
        first = performance.now() - start;
        onFirst();
      }
    }
  }
  return { ttft: first ?? NaN, total: performance.now() - start, firstAt };
}

/**
 * --pin: every thread of `edgePids` on the last CPU, every thread of `otherPids` on the rest (taskset -a); with
 * --helpers-apart only the edges' main threads on the last CPU, their other threads on the rest.
 */
function pinCpus(edgePids, otherPids) {
  const last = os.cpus().length - 1;
  if (last < 1) throw new Error('--pin needs at least 2 CPUs');
  const rest = last === 1 ? '0' : `0-${last - 1}`;
  const pin = (id, cpus, allThreads = true) => {
    const run = spawnSync('taskset', [...(allThreads ? ['-a'] : []), '-p', '-c', cpus, String(id)], { encoding: 'utf8' });
    if (run.status !== 0) throw new Error(`taskset ${cpus} ${id} failed: ${run.error?.message ?? run.stderr}`);
  };
  for (const pid of edgePids) {
    if (!HELPERS_APART) pin(pid, String(last));
    else for (const tid of readdirSync(`/proc/${pid}/task`)) pin(tid, tid === String(pid) ? String(last) : rest, false);
  }
  for (const pid of otherPids) pin(pid, rest);
}

/**
 * A 90% interval for quantile(edge) − quantile(direct): the rounds resampled with replacement 1,000 times (a round's
 * direct and edge samples together: they ran in the same round), the 5th and 95th percentiles of the difference. The
 * rounds, not the requests, are what vary: a round's streams share its moment of the machine. Seeded, so a results
 * file's figures come out the same from the same samples.
 */
function overheadInterval(direct, edge, perRound, q, edgePerRound = perRound) {
  const rounds = Math.floor(Math.min(direct.length / perRound, edge.length / edgePerRound));
  if (rounds < 2) return null;
  const rng = new Rng(1);
  const differences = [];
  for (let i = 0; i < 1000; i++) {
    const d = [], e = [];
    for (let r = 0; r < rounds; r++) {
      const round = Math.floor(rng.next() * rounds);
      for (let k = round * perRound; k < (round + 1) * perRound; k++) d.push(direct[k]);
      for (let k = round * edgePerRound; k < (round + 1) * edgePerRound; k++) e.push(edge[k]);
    }
    differences.push(quantile(e, q) - quantile(d, q));
  }
  return [+quantile(differences, 0.05).toFixed(2), +quantile(differences, 0.95).toFixed(2)];
}

const quantile = (xs, q) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * (s.length - 1) + 0.5))];
};

const worker = await startGpuWorker();
// --baseline A,B: each ref is a path of its own in the same rounds
const baselines = (BASELINE_REF ? BASELINE_REF.split(',') : []).map((ref) => ({ ref, root: checkoutBaseline(root, ref, mkdtempSync(join(os.tmpdir(), 'edge-overhead-'))) }));
const edges = [{ label: 'this tree', build: 'this tree', ...(await startEdge(worker.url, root, PROFILE)) }];
for (let k = 2; k <= PROCESSES; k++) edges.push({ label: `this tree #${k}`, build: 'this tree', ...(await startEdge(worker.url, root)) });
if (DIRECT_SOCKETS) edges.push({ label: 'this tree, through Miniflare\'s entry worker', ...(await startEdge(worker.url, root, false, false, undefined, false)) });
if (LIMITER_APART) edges.push({ label: 'this tree, limiter apart', ...(await startEdge(worker.url, root, false, true)) });
const transformInEdge = TRANSFORM_IN_EDGE ? { label: 'JS transform in the edge\'s setup', ...(await startEdge(worker.url, root, false, false, { transformInEdge: true })) } : undefined;
if (STAMP_ARRIVAL) edges.push({ label: 'this tree, arrival stamped', ...(await startEdge(worker.url, root, false, false, { stampArrival: true })) });
if (PARTS && ACCOUNTS) for (const variant of PART_VARIANTS) edges.push({ label: variant.label, accounts: variant.accounts ?? true, ...(await startEdge(worker.url, root, false, false, variant)) });
for (const baseline of baselines) {
  for (let k = 1; k <= PROCESSES; k++) edges.push({ label: k === 1 ? baseline.ref : `${baseline.ref} #${k}`, build: baseline.ref, ...(await startEdge(worker.url, baseline.root)) });
}
/** --processes N: each build's processes, pooled in rows of their own */
const pooledBuilds = new Map();
for (const edge of edges) if (edge.build && PROCESSES > 1) pooledBuilds.set(edge.build, [...(pooledBuilds.get(edge.build) ?? []), edge]);
const pooledLabel = (build, members) => `${build}, ${members.length} processes pooled`;
const relay = RUNNER === 'miniflare' ? { label: 'relay (floor)', ...(await startRelay(worker.url)) } : undefined;
const transform = RUNNER === 'miniflare' ? { label: 'JS transform (floor)', ...(await startTransform(worker.url)) } : undefined;
const identityWriter = IDENTITY_WRITER && RUNNER === 'miniflare' ? { label: 'JS transform, IdentityTransformStream writer', ...(await startTransform(worker.url, undefined, IDENTITY_ANSWER)) } : undefined;
/** --read-floor: the JS transform that also reads, parses and signs (started once the prompt ids are known) */
let readFloor;
/** the read floor and its --read-variants */
const readFloors = [];
// each path's workerd process, for a native profiler (perf record -p PID) attached from outside
console.error(`workerd processes: ${[...edges, relay, transform].filter((hop) => hop?.pid).map((hop) => `${hop.label}=${hop.pid}`).join(', ')}`);
for (const edge of edges) {
  edge.url = edge.url.replace(/\/$/, '');
  // A key with limits far above the benchmark's load, so rate limiting measures its cost without ever refusing.
  edge.auth = {};
  if (!ACCOUNTS || edge.accounts === false) continue;
  const keyResponse = await fetch(`${edge.url}/admin/keys`, {
    method: 'POST', headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ tenant: 'bench', limits: { requests_per_minute: 1_000_000, tokens_per_minute: 1_000_000_000, concurrent_streams: 10_000 } }),
  });
  if (keyResponse.status !== 201) throw new Error(`creating the benchmark key failed: ${keyResponse.status} ${await keyResponse.text()}`);
  edge.auth = { authorization: `Bearer ${(await keyResponse.json()).key}` };
}
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
/**
 * The paths in a random order (Fisher-Yates, a fixed seed so that runs repeat): each path follows every other about
 * equally often, so what one path leaves behind on the shared CPU (its isolate's garbage collection, timers) does not
 * always fall on the same next path, as a fixed rotation made it do.
 */
const orderRng = new Rng(0x9e3779b9);
const shuffled = (items) => {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = orderRng.int(i + 1);
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
};
/** a workerd process is quiet once it uses less than QUIET_CPU_NS of CPU in QUIET_WINDOW_MS (an idle one uses far less) */
const QUIET_WINDOW_MS = 50;
const QUIET_CPU_NS = 0.5e6;
/** CPU of a hop's workerd process so far (ns); NaN under wrangler dev, whose process is not ours to see. */
const cpuOf = (hop) => (hop.pid ? (hop.pids ?? [hop.pid]).reduce((sum, pid) => sum + processCpuNs(pid), 0) : NaN);
/** time its workerd process waited for a CPU held by other processes so far (ns) */
const runQueueOf = (hop) => (hop.pid ? (hop.pids ?? [hop.pid]).reduce((sum, pid) => sum + processRunQueueNs(pid), 0) : NaN);

try {
  const chatBody = JSON.stringify({ model: MODEL, messages, stream: true, chat_template_kwargs: { enable_thinking: true } });
  const { tokens: prompt } = await (await fetch(`${edges[0].url}/tokenize`, {
    method: 'POST', headers: { 'content-type': 'application/json', ...edges[0].auth }, body: JSON.stringify({ model: MODEL, messages, chat_template_kwargs: { enable_thinking: true } }),
  })).json();
  let n = 0;
  /** Notes `hop`'s workerd CPU and run-queue wait as a stream's first output arrives (the start stretch's end). */
  const noteFirst = (hop) => () => ((hop.cpuAtFirst = cpuOf(hop)), (hop.queuedAtFirst = runQueueOf(hop)));
  /**
   * Whether a worker frame brings the stream's first output: the script opens with <think> (no text; the edge sends
   * nothing for it), so the first output is its 2nd token. One per stream: it counts the stream's tokens.
   */
  const workerOutput = () => {
    let seen = 0;
    return (f) => (seen += (/"tokens":\[([^\]]*)\]/.exec(f)?.[1].split(',').filter(Boolean).length ?? 0)) >= 2;
  };
  // Each path is a function that prepares one request (its id, body, signature) and returns the function that sends
  // it and times the answer. A burst prepares all its requests before it sends any (burst() below), so every path's
  // requests leave the client in the same pattern: all at once. (Signing between the sends spread the direct and
  // floor requests over ~18 ms while the edge's left together, so the edge's times carried more of the client's own
  // queueing: one Node process sending 32 requests.)
  /**
   * The signed worker request the edge would send, to the worker itself or through a floor Worker at `base` (`hop`:
   * that Worker, whose workerd CPU is noted at each stream's first output).
   */
  const direct = (base, hop) => async () => {
    const id = `bench-${n++}`;
    const body = JSON.stringify({
      request_id: id, prompt, max_tokens: 40960 - prompt.length,
      sampling: { temperature: 0.6, top_p: 0.95, top_k: 20 }, stop_token_ids: [],
    });
    const headers = { 'content-type': 'application/json', ...(await signRequest(SECRET, { method: 'POST', path: '/v1/generate', body })) };
    return async () => {
      const sentAt = monotonicMs();
      const start = performance.now();
      return { id, sentAt, ...(await timeStream(start, await fetch(`${base.replace(/\/$/, '')}/v1/generate`, { method: 'POST', headers, body }), workerOutput(), hop && noteFirst(hop))) };
    };
  };
  const viaEdge = (edge) => async () => {
    // the edge sends the client's x-request-id on to the worker as its request_id
    const id = `bench-${n++}`;
    return async () => {
      const sentWall = Date.now();
      const sentAt = monotonicMs();
      const start = performance.now();
      const res = await fetch(`${edge.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-request-id': id, ...edge.auth }, body: chatBody });
      // the edge's Server-Timing (edge/request-lifecycle.ts): its parts of the time to the first worker tokens
      const parts = Object.fromEntries([...(res.headers.get('server-timing') ?? '').matchAll(/(\w+);dur=(\d+)/g)].map((m) => [m[1], Number(m[2])]));
      const arrivedWall = Number(res.headers.get('x-bench-arrived') ?? NaN);
      return { id, sentAt, ...(Number.isFinite(arrivedWall) ? { beforeHandler: arrivedWall - sentWall } : {}), ...(await timeStream(start, res, (f) => /"(reasoning_content|content)":"[^"]/.test(f), noteFirst(edge))), parts };
    };
  };
  /** the stub worker's stamps per request_id since the last call (GET /timings), none for the real worker */
  const stubTimings = async () => (WORKER_KIND === 'stub' ? (await fetch(`${worker.url}/timings`)).json() : {});
  /**
   * Each path's time to first token split by the stub's clock readings, all on the machine's monotonic clock:
   * inbound = client's send -> the worker has the request's headers; worker = those -> it wrote the token that is the
   * client's first output (its 2nd: the first is <think>; 20 + 10 ms of pace when its timers are on time); outbound =
   * that write -> the client read the frame carrying it. p50 and p90 of each part over the phase's requests.
   */
  const splitOf = (results, stamps, concurrency) => (WORKER_KIND !== 'stub' ? [] : paths.map(([name]) => {
    const joined = results[name].map((r) => [r, stamps[r.id]]).filter(([r, s]) => s && s.writes.length >= 2 && r.firstAt !== undefined);
    const parts = {
      inbound: joined.map(([r, s]) => s.arrived - r.sentAt),
      worker: joined.map(([, s]) => s.writes[1] - s.arrived),
      outbound: joined.map(([r, s]) => r.firstAt - s.writes[1]),
      ttft: joined.map(([r]) => r.firstAt - r.sentAt),
      // --stamp-arrival's path: inbound's part before the edge's handler began (wall clocks, ms resolution)
      ...(joined.some(([r]) => r.beforeHandler !== undefined) ? { before_handler: joined.map(([r]) => r.beforeHandler) } : {}),
    };
    const q = (xs) => ({ p50: +quantile(xs, 0.5).toFixed(2), p90: +quantile(xs, 0.9).toFixed(2) });
    return { path: name, concurrency, requests: results[name].length, matched: joined.length, ...Object.fromEntries(Object.entries(parts).map(([part, xs]) => [part, xs.length ? q(xs) : null])) };
  }));
  /** the paths compared with `direct`, each served by its own workerd process */
  if (READ_FLOOR && RUNNER === 'miniflare') readFloor = { label: 'read + sign + JS transform (floor)', ...(await startTransform(worker.url, { prompt })) };
  if (READ_VARIANT_PATHS && RUNNER === 'miniflare') for (const variant of READ_VARIANTS) readFloors.push({ label: variant.label, ...(await startTransform(worker.url, { prompt, ...variant })) });
  if (readFloor) readFloors.unshift(readFloor);
  if (readFloors.length) console.error(`workerd processes: ${readFloors.filter((hop) => hop.pid).map((hop) => `${hop.label}=${hop.pid}`).join(', ')}`);
  /** the read floor takes the edge's request (the chat body) and answers with the JS transform's frames */
  const viaReadFloor = (hop) => async () => {
    const id = `bench-${n++}`;
    return async () => {
      const sentAt = monotonicMs();
      const start = performance.now();
      const res = await fetch(hop.url, { method: 'POST', headers: { 'content-type': 'application/json', 'x-request-id': id }, body: chatBody });
      return { id, sentAt, ...(await timeStream(start, res, workerOutput(), noteFirst(hop))) };
    };
  };
  /** `concurrency` requests of one path: all prepared, then all sent at once; their timings */
  const burst = async (prepare, concurrency) => {
    const sends = await Promise.all(Array.from({ length: concurrency }, prepare));
    return Promise.all(sends.map((send) => send()));
  };
  const floors = [relay, transform, identityWriter, transformInEdge].filter(Boolean);
  if (PIN) pinCpus([...floors, ...readFloors, ...edges].flatMap((hop) => hop.pids ?? (hop.pid ? [hop.pid] : [])), [process.pid, worker.proc.pid]);
  const hops = [...floors.map((floor) => ({ ...floor, run: direct(floor.url, floor) })), ...readFloors.map((floor) => ({ ...floor, run: viaReadFloor(floor) })), ...edges.map((edge) => ({ ...edge, run: viaEdge(edge) }))];
  /** each hop's own object, where its workerd CPU at each stream's first output is noted */
  const watched = new Map([...floors, ...readFloors, ...edges].map((hop) => [hop.label, hop]));
  const paths = [['direct', direct(worker.url)], ...hops.map((hop) => [hop.label, hop.run])];
  // warm-up: compile paths, fill the worker's prefix cache, build the tokenizer in the isolate
  for (let i = 0; i < 2; i++) await Promise.all(paths.map(([, prepare]) => burst(prepare, 1)));
  const profiles = [];
  // what each idle workerd process burns anyway (its timers, the inspector), per ms: subtracted from the phases below
  const idleFrom = hops.map(cpuOf);
  const idleStart = performance.now();
  await sleep(2000);
  const idleNsPerMs = hops.map((hop, i) => (cpuOf(hop) - idleFrom[i]) / (performance.now() - idleStart));
  /**
   * Waits (2 s at most) until a hop's workerd has done what a burst leaves to do after its responses (usage records,
   * lease settles: ~5 ms of CPU at 32 streams with the accounts layer). Every workerd runs on the same CPU, so without
   * the wait the path after an accounts-on edge would start its burst beside that work and read slower than it would.
   */
  const quiet = async (hop) => {
    if (!hop?.pid) return;
    for (let last = cpuOf(hop), waited = 0; waited < 2000; waited += QUIET_WINDOW_MS) {
      await sleep(QUIET_WINDOW_MS);
      const now = cpuOf(hop);
      if (now - last < QUIET_CPU_NS) return;
      last = now;
    }
  };
  /**
   * ROUNDS rounds of `concurrency` streams per path, the paths in a new random order each round (shuffled); quantile rows per hop, and
   * each hop's workerd CPU per request over the whole phase (its work after the responses included).
   */
  const measure = async (concurrency) => {
    await stubTimings(); // forget the warm-up's and the previous phase's
    const results = Object.fromEntries(paths.map(([name]) => [name, []]));
    const cpuBefore = hops.map(cpuOf);
    const phaseStart = performance.now();
    const profiler = PROFILE ? await startProfile(INSPECTOR_PORT, 'core:user:edge', PROFILE_INTERVAL_US) : undefined;
    /** the profiled edge's rounds, from their requests to the last first token (µs, the clock V8 stamps samples with) */
    const startWindows = [];
    /** each hop's workerd CPU from each round's requests to its last first token, and that stretch's length (ms) */
    const startingBy = new Map([...watched.keys()].map((label) => [label, { cpuMs: 0, queuedMs: 0, wallMs: 0 }]));
    const starting = startingBy.get(edges[0].label);
    for (let round = 0; round < ROUNDS; round++) {
      const order = shuffled(paths);
      for (let i = 0; i < paths.length; i++) {
        const [name, fn] = order[i];
        const fromUs = Number(process.hrtime.bigint() / 1000n);
        const hop = watched.get(name);
        const cpuFrom = hop ? cpuOf(hop) : 0;
        const queuedFrom = hop ? runQueueOf(hop) : 0;
        const streams = await burst(fn, concurrency);
        await quiet(hop);
        results[name].push(...streams);
        if (!hop) continue;
        const lastFirstMs = Math.max(...streams.map((r) => r.ttft));
        if (name === edges[0].label) startWindows.push([fromUs, fromUs + lastFirstMs * 1000]);
        const stretch = startingBy.get(name);
        stretch.cpuMs += (hop.cpuAtFirst - cpuFrom) / 1e6;
        stretch.queuedMs += (hop.queuedAtFirst - queuedFrom) / 1e6;
        stretch.wallMs += lastFirstMs;
      }
    }
    await sleep(1000); // usage records and lease settles run after the last responses
    if (profiler) {
      const profile = await profiler.stop();
      const saved = join(os.tmpdir(), `edge-overhead-${concurrency}.cpuprofile`);
      writeFileSync(saved, JSON.stringify(profile));
      console.log(`V8 CPU profile of the ${concurrency}-stream phase: ${saved} (Chrome DevTools opens it)`);
      profiles.push({
        concurrency, ...summarizeProfile(profile, edges[0].script, PROFILE_INTERVAL_US),
        starting: summarizeProfile(profile, edges[0].script, PROFILE_INTERVAL_US, 25, startWindows),
        startingMs: startWindows.reduce((sum, [from, to]) => sum + (to - from) / 1000, 0),
      });
    }
    const phaseMs = performance.now() - phaseStart;
    const split = splitOf(results, await stubTimings(), concurrency);
    // the parts of this tree's time to first token, as its Server-Timing header reports them
    const parts = ['edge', 'admission', 'worker'].map((part) => {
      const values = results[edges[0].label].map((r) => r.parts?.[part]).filter((v) => v !== undefined);
      return { part, concurrency, p50: values.length ? quantile(values, 0.5) : null, p90: values.length ? quantile(values, 0.9) : null };
    });
    const cpu = hops.map((hop, i) => {
      const busyNs = cpuOf(hop) - cpuBefore[i] - idleNsPerMs[i] * phaseMs;
      return { edge: hop.label, concurrency, cpu_ms_per_request: +(busyNs / 1e6 / (ROUNDS * concurrency)).toFixed(2) };
    });
    const rows = [];
    /** quantile rows of one path's samples (`perRound` of them per round, in round order) against the direct path's */
    const rowsOf = (label, samples, perRound) => {
      for (const metric of ['ttft', 'total']) {
        const direct = results.direct.map((r) => r[metric]);
        const edge = samples.map((r) => r[metric]);
        for (const q of [0.5, 0.99]) {
          const d = quantile(direct, q);
          const e = quantile(edge, q);
          const ci = q === 0.5 ? overheadInterval(direct, edge, concurrency, q, perRound) : null;
          rows.push({ edge: label, concurrency, metric, quantile: `p${q * 100}`, direct_ms: +d.toFixed(2), edge_ms: +e.toFixed(2), overhead_ms: +(e - d).toFixed(2), ratio: +(e / d).toFixed(3), ...(ci ? { overhead_ci90_ms: ci } : {}) });
        }
      }
    };
    for (const hop of hops) rowsOf(hop.label, results[hop.label], concurrency);
    // --processes N: a build's N processes pooled, round by round
    for (const [build, members] of pooledBuilds) {
      const samples = Array.from({ length: ROUNDS }, (_, r) => members.flatMap((m) => results[m.label].slice(r * concurrency, (r + 1) * concurrency))).flat();
      rowsOf(pooledLabel(build, members), samples, concurrency * members.length);
    }
    const startingOf = (edge, s) => ({ edge, concurrency, cpu_ms_per_request: +(s.cpuMs / (ROUNDS * concurrency)).toFixed(2), thread_busy: +(s.cpuMs / s.wallMs).toFixed(2), waiting_for_cpu: +(s.queuedMs / s.wallMs).toFixed(2) });
    const { edge: _, ...thisTree } = startingOf(edges[0].label, starting);
    // a pooled build's stretch: its processes' CPU, waits and stretches averaged
    const pooledStarting = [...pooledBuilds].map(([build, members]) => {
      const mean = (key) => members.reduce((total, m) => total + startingBy.get(m.label)[key], 0) / members.length;
      return startingOf(pooledLabel(build, members), { cpuMs: mean('cpuMs'), queuedMs: mean('queuedMs'), wallMs: mean('wallMs') });
    });
    return { results, rows, cpu, parts, split, starting: thisTree, startingByPath: [...[...startingBy].map(([label, s]) => startingOf(label, s)), ...pooledStarting] };
  };
  /**
   * One round of `concurrency` streams through a hop with strace attached to its workerd process(es): fsync and
   * fdatasync calls per request, the work after the responses (usage records, lease settles) included.
   */
  const countCommits = async (hop, concurrency) => {
    const out = join(mkdtempSync(join(os.tmpdir(), 'edge-commits-')), 'strace.txt');
    const tracer = spawn('strace', ['-f', '-qq', '-e', 'trace=fsync,fdatasync', '-o', out, ...(hop.pids ?? [hop.pid]).flatMap((pid) => ['-p', String(pid)])], { stdio: 'ignore' });
    await sleep(500); // attached to every thread
    await burst(hop.run, concurrency);
    await sleep(1000); // the work after the responses
    tracer.kill('SIGINT');
    await new Promise((resolve) => (tracer.exitCode === null ? tracer.once('exit', resolve) : resolve()));
    const calls = readFileSync(out, 'utf8').split('\n').filter((line) => /\b(fsync|fdatasync)\(/.test(line)).length;
    return { edge: hop.label, concurrency, fsyncs: calls, fsyncs_per_request: +(calls / concurrency).toFixed(2) };
  };
  const single = await measure(1);
  const main = await measure(CONCURRENCY);
  const commits = [];
  if (COUNT_COMMITS) for (const hop of hops) if (hop.pid) commits.push(await countCommits(hop, CONCURRENCY));
  const commitsTable = commits.length === 0 ? '' : [
    '| edge | streams | fsync + fdatasync calls | per request |',
    '|---|---|---|---|',
    ...commits.map((r) => `| ${r.edge} | ${r.concurrency} | ${r.fsyncs} | ${r.fsyncs_per_request} |`),
  ].join('\n');
  const { results, rows: mainRows, cpu: mainCpu, parts: mainParts } = main;
  const parts = [...mainParts, ...single.parts];
  const startingCpu = [main.starting, single.starting];
  const startingByPath = [...main.startingByPath, ...single.startingByPath];
  // what each Worker spends while the streams start: the floors' figures are what any Worker (any that writes every
  // token) costs there, this tree's above them its own admission and per-token work
  const startingTable = [
    '| edge | streams | workerd CPU per request, requests → last first token (ms) | thread busy | waiting for a CPU |',
    '|---|---|---|---|---|',
    ...startingByPath.map((r) => `| ${r.edge} | ${r.concurrency} | ${r.cpu_ms_per_request} | ${(100 * r.thread_busy).toFixed(0)}% | ${(100 * r.waiting_for_cpu).toFixed(0)}% |`),
  ].join('\n');
  // --parts: each part's share, as this tree's figure less the figure of this tree without it (same rounds)
  const partsShare = !PARTS ? '' : (() => {
    const stretchOf = (label) => main.startingByPath.find((r) => r.edge === label)?.cpu_ms_per_request;
    const ttftOf = (label) => mainRows.find((r) => r.edge === label && r.metric === 'ttft' && r.quantile === 'p50')?.overhead_ms;
    const tree = edges[0].label;
    const lines = [tree, ...PART_VARIANTS.map((v) => v.label), 'JS transform (floor)', 'relay (floor)'].map((label) => {
      const cpuMs = stretchOf(label);
      const ttftMs = ttftOf(label);
      const share = label === tree ? '—' : (stretchOf(tree) - cpuMs).toFixed(2);
      return `| ${label} | ${cpuMs} | ${share} | ${ttftMs} | ${label === tree ? '—' : (ttftOf(tree) - ttftMs).toFixed(1)} |`;
    });
    return ['| path | workerd CPU per request, requests → last first token (ms) | this tree less it (ms) | TTFT overhead p50 (ms) | this tree less it (ms) |', '|---|---|---|---|---|', ...lines].join('\n');
  })();
  const rows = [...mainRows, ...single.rows];
  const split = [...main.split, ...single.split];
  const fmt = (p) => (p ? `${p.p50} / ${p.p90}` : '—');
  const splitTable = split.length === 0 ? '' : [
    '| path | streams | requests matched | inbound: send → worker has it (ms) | worker: request → first output token written (ms) | outbound: written → client reads it (ms) | client TTFT (ms) |',
    '|---|---|---|---|---|---|---|',
    ...split.map((r) => `| ${r.path} | ${r.concurrency} | ${r.matched} / ${r.requests} | ${fmt(r.inbound)}${r.before_handler ? ` (before the edge's handler: ${fmt(r.before_handler)})` : ''} | ${fmt(r.worker)} | ${fmt(r.outbound)} | ${fmt(r.ttft)} |`),
  ].join('\n');
  // the split's headline: each edge path's p50 parts less the direct path's, at the phase's concurrency and at 1
  const splitSummary = split.length === 0 ? '' : [CONCURRENCY, 1].map((concurrency) => {
    const of = (path) => split.find((r) => r.path === path && r.concurrency === concurrency);
    const d = of('direct');
    if (!d?.ttft) return '';
    const more = (r, part) => (r[part].p50 - d[part].p50).toFixed(1);
    return `${concurrency} stream${concurrency > 1 ? 's' : ''}, p50 of each part less the direct path's (inbound / worker / outbound; TTFT): ` +
      split.filter((r) => r.concurrency === concurrency && r.path !== 'direct' && r.ttft).map((r) => `${r.path} ${more(r, 'inbound')} / ${more(r, 'worker')} / ${more(r, 'outbound')}; ${more(r, 'ttft')} ms`).join(', ') + '.';
  }).filter(Boolean).join(' ');
  const cpu = [...mainCpu, ...single.cpu];
  const command = `node --import tsx bench/edge-overhead.mjs --rounds ${ROUNDS} --concurrency ${CONCURRENCY} --runner ${RUNNER} --worker ${WORKER_KIND}${WORKER_KIND === 'stub' ? ` --pace ${PACE_MS}${TOKENS === undefined ? '' : ` --tokens ${TOKENS}`}` : ''}${ACCOUNTS ? '' : ' --accounts off'}${BASELINE_REF ? ` --baseline ${BASELINE_REF}` : ''}${args['result-name'] ? ` --result-name ${args['result-name']}` : ''}${LIMITER_APART ? ' --limiter-apart' : ''}${PARTS ? ' --parts' : ''}${PROFILE ? ' --profile' : ''}${COUNT_COMMITS ? ' --count-commits' : ''}${STAMP_ARRIVAL ? ' --stamp-arrival' : ''}${READ_FLOOR ? ' --read-floor' : ''}${READ_VARIANT_PATHS ? ' --read-variants' : ''}${IDENTITY_WRITER ? ' --identity-writer' : ''}${TRANSFORM_IN_EDGE ? ' --transform-in-edge' : ''}${PIN ? ' --pin' : ''}${PROCESSES > 1 ? ` --processes ${PROCESSES}` : ''}${HELPERS_APART ? ' --helpers-apart' : ''}${DIRECT_SOCKETS ? ' --direct-sockets' : ''}`;
  const machine = `${os.cpus()[0]?.model ?? 'unknown CPU'} x${os.cpus().length}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, load average ${loadAtStart.map((l) => l.toFixed(1)).join(' / ')} at the start and ${os.loadavg().map((l) => l.toFixed(1)).join(' / ')} at the end (1 / 5 / 15 min), this tree at ${treeRef}, ${WORKER_KIND === 'stub' ? `stub worker (demo script${TOKENS === undefined ? '' : `, its first ${TOKENS} tokens`}, one token per ${PACE_MS} ms)` : `GPU worker DEVICE=${process.env.DEVICE ?? 'cpu'} THREADS=${process.env.THREADS ?? '1'} (demo checkpoint)`}`;
  const date = new Date().toISOString();
  const table = [
    '| edge | streams | metric | quantile | direct to worker (ms) | through edge (ms) | edge overhead (ms) | 90% interval, rounds resampled (ms) | edge / direct |',
    '|---|---|---|---|---|---|---|---|---|',
    ...rows.map((r) => `| ${r.edge} | ${r.concurrency} | ${r.metric === 'ttft' ? 'time to first token' : 'time to last byte'} | ${r.quantile} | ${r.direct_ms} | ${r.edge_ms} | ${r.overhead_ms} | ${r.overhead_ci90_ms ? `${r.overhead_ci90_ms[0]} to ${r.overhead_ci90_ms[1]}` : ''} | ${r.ratio} |`),
  ].join('\n');
  const cpuTable = [
    '| edge | streams | workerd CPU per request (ms) |',
    '|---|---|---|',
    ...cpu.map((r) => `| ${r.edge} | ${r.concurrency} | ${r.cpu_ms_per_request} |`),
  ].join('\n');
  const partNames = { edge: 'arrival → prepared (body, validation, template, tokens; queued behind the other requests)', admission: 'prepared → admitted (cache lookup, rate limiter Durable Object round trip)', worker: 'admitted → first worker tokens (signing, the call, the worker\'s first token: 20 ms of stub pace)' };
  const partsTable = [
    '| part (this tree\'s Server-Timing) | streams | p50 (ms) | p90 (ms) |',
    '|---|---|---|---|',
    ...parts.map((r) => `| ${partNames[r.part]} | ${r.concurrency} | ${r.p50 ?? '—'} | ${r.p90 ?? '—'} |`),
  ].join('\n') + '\n\n' + startingCpu.map((s) => `${s.concurrency} stream${s.concurrency > 1 ? 's' : ''}: from each round's requests to its last first token, this tree's workerd used ${s.cpu_ms_per_request} ms of CPU per request: it ran ${(100 * s.thread_busy).toFixed(0)}% of that stretch and waited for a CPU other processes held ${(100 * s.waiting_for_cpu).toFixed(0)}% of it.`).join(' ');
  console.log(`${splitTable && `${splitTable}\n\n${splitSummary}\n\n`}${table}\n\n${cpuTable}\n\n${startingTable}\n\n${partsShare && `${partsShare}\n\n`}${partsTable}${commitsTable && `\n\n${commitsTable}`}`);
  const outDir = join(root, 'bench', 'results');
  mkdirSync(outDir, { recursive: true });
  if (PROFILE) {
    // sampling and the unminified bundle slow the edge down: the timings of this run are not the edge's
    const profileTable = (list) => ['| | ms | share of busy |', '|---|---|---|', ...list.map((r) => `| ${r.name} | ${r.ms} | ${(r.share * 100).toFixed(1)}% |`)].join('\n');
    const sections = profiles.map((p) =>
      `## ${p.concurrency} stream${p.concurrency > 1 ? 's' : ''} at a time, ${ROUNDS * p.concurrency} requests\n\n` +
      `Sampled ${p.wallMs} ms, the isolate busy for ${p.busyMs} ms of them (${(p.busyMs / (ROUNDS * p.concurrency)).toFixed(2)} ms per request).\n\n` +
      `By module of ours on the stack (a library's time counts for the module that called it):\n\n${profileTable(p.byModule)}\n\n` +
      `By function (self time):\n\n${profileTable(p.bySelf)}\n\n` +
      `### While the streams start\n\nFrom each round's requests to its last first token (${p.startingMs.toFixed(0)} ms over ${ROUNDS} rounds): the isolate busy for ${p.starting.busyMs} ms, ` +
      `${(p.starting.busyMs / (ROUNDS * p.concurrency)).toFixed(2)} ms per request. What it spent it on decides the time to first token of the later streams.\n\n` +
      `By module:\n\n${profileTable(p.starting.byModule)}\n\nBy function (self time):\n\n${profileTable(p.starting.bySelf)}\n`);
    writeFileSync(join(outDir, 'edge-overhead-profile.md'),
      `# Where the edge's time goes (V8 CPU profile of the edge isolate)\n\nCommand: \`${command}\`  \nMachine: ${machine}  \nDate: ${date}\n\n` +
      'The edge (this tree, accounts on, bundled unminified so that functions keep their names and modules) runs in workerd under Miniflare; its isolate is sampled every 200 µs through the inspector during the single-stream phase and the concurrent phase of the overhead benchmark. ' +
      'The rate limiter\'s Durable Object runs in the same isolate and is included; Miniflare\'s KV, D1 and cache simulators run elsewhere in the workerd process and are not (the workerd CPU per request below counts them). Sampling and the unminified code slow the edge: read shares, not absolute times.\n\n' +
      `${sections.join('\n')}\n## Timings of this run\n\n${table}\n\n${cpuTable}\n\n${partsTable}\n`);
  } else {
    const samples = results.direct.length;
    writeFileSync(join(outDir, `${RESULT_NAME}.json`), JSON.stringify({ command, machine, date, rounds: ROUNDS, concurrency: CONCURRENCY, samples_per_path: samples, rows, cpu, ...(split.length ? { split } : {}), server_timing: parts, starting: startingCpu, starting_by_path: startingByPath, ...(commits.length ? { commits } : {}), samples_ms: Object.fromEntries(Object.entries(results).map(([k, v]) => [k, v.map((r) => [+r.ttft.toFixed(1), +r.total.toFixed(1)])])) }, null, 1) + '\n');
    writeFileSync(
      join(outDir, `${RESULT_NAME}.md`),
      `# Edge overhead per request (${CONCURRENCY} concurrent streams)\n\n` +
        `Command: \`${command}\`  \nMachine: ${machine}  \nDate: ${date}  \nSamples: ${samples} per path at ${CONCURRENCY} streams (${ROUNDS} rounds × ${CONCURRENCY}, the paths in a random order each round), plus ${ROUNDS} single-stream rounds as the baseline\n\n` +
        (splitSummary && `Where the time to first token goes (split below): ${splitSummary}\n\n`) +
        (WORKER_KIND === 'stub' ? 'The worker is a paced stand-in process streaming the demo script, so the difference is the edge\'s own cost. ' : '') +
        'Direct = signed POST /v1/generate with the prompt ids the edge sends (first token = the first after `<think>`, the first with text); edge = POST /v1/chat/completions (stream, thinking on) ' +
        `through workerd (${RUNNER === 'wrangler' ? 'under wrangler dev, which adds its proxy hop' : (ACCOUNTS ? 'the bundled, minified edge/index.ts run by Miniflare, no dev proxy; with the accounts layer: API key check, Durable Object rate limiter (SQLite-backed where wrangler.toml declares it), response cache lookup, D1 metering' : 'the bundled, minified app without the accounts layer (createApp()) run by Miniflare, no dev proxy')}) to the same worker` +
        (DIRECT_SOCKETS ? '; every Worker here that Miniflare runs (the edges and the floors) is served on a socket of its own (unsafeDirectSockets), so requests reach it without Miniflare\'s entry worker, a JavaScript Worker of local development\'s that every request through Miniflare\'s port passes first on the same thread (the `cf` object, URL and header rewrites, routes, a service-binding call, and a look at the response for pretty errors, live reload, encodings and its log) and that does not run on Cloudflare; "this tree, through Miniflare\'s entry worker" is the same build behind it, as the runs without --direct-sockets measure every path' : '') +
        (baselines.length ? `; ${baselines.map((b) => `"${b.ref}"`).join(' and ')} ${baselines.length > 1 ? 'are the edge as it is at those git refs' : 'is the edge as it is at that git ref'}, measured in the same rounds` : '') +
        (LIMITER_APART ? '; "this tree, limiter apart" is this tree with the rate limiter\'s Durable Object in a workerd process of its own (Miniflare\'s dev registry), as on Cloudflare where it runs elsewhere than the edge, so that its storage commits (each one fsynced by SQLite) do not block the edge\'s thread; in the other edge paths it shares the edge\'s process and thread' : '') +
        (PARTS ? `; the "part: …" paths are this tree with one part of the accounts layer left out or cut short (bench-only entries: ${PART_VARIANTS.map((v) => `"${v.label}": ${v.accounts === false ? 'createApp() without the layer' : v.limiter === 'unwritten' ? 'every part, the rate limiter\'s Durable Object never writing its storage' : `extensions ${v.extensions}`}`).join('; ')}; keyMemo serves the key record from a map keyed by the Authorization header after its first check; limiterInIsolate makes the rate limiter's binding a map of RateLimiter objects constructed in the edge's isolate on a storage that keeps nothing: the same decisions without the RPC and the object's own turn)` : '') +
        (transformInEdge ? '; "JS transform in the edge\'s setup" is the JS transform\'s handler run in the edge\'s own bundle and workerd setup (its bindings, Durable Objects and compatibility flags; the tokenizer built) instead of the app: what the edge\'s runtime setup costs apart from the app\'s work' : '') +
        (relay ? '; "relay (floor)" is a Worker in its own workerd that forwards the direct request and streams the answer back untouched: what any Worker in front of the GPU worker costs here' : '') +
        (readFloor ? '; "read + sign + JS transform (floor)" is the JS transform that takes the chat request instead: it reads and parses its body, builds the worker request (the prompt ids given), signs it with HMAC-SHA-256 and forwards it, the least any edge must do before the call' : '') +
        (READ_VARIANT_PATHS ? `; the "read floor: …" paths are that floor with one step done another way: ${READ_VARIANTS.map((v) => `"${v.label}"`).join(', ')} (by length: one reader takes the body until its Content-Length is filled and parses it then, without waiting for the stream to end; not read: the chat request's body is neither read nor forwarded; not signed: no HMAC)` : '') +
        (transform ? '; "JS transform (floor)" is a Worker in its own workerd that forwards it too but reads the worker\'s frames in JavaScript and writes one chat.completion.chunk per read into a ReadableStream (no detokenising, parsing, accounts or admission): what any Worker that touches every token costs here' : '') +
        `. Each burst's ${CONCURRENCY} requests are prepared first (bodies, the direct ones' signatures) and sent together, the same way on every path, so the client's own queueing (one Node process sending them all) is the same in every path's times. Overhead = quantile(edge) − quantile(direct) in the same run. ` +
        (PIN
          ? `Pinned (--pin): every workerd process${HELPERS_APART ? '\'s main thread (its isolates and event loop)' : ''} on CPU ${os.cpus().length - 1}, the client and the worker on the other${os.cpus().length > 2 ? 's' : ''}, so the edge shares no core with them, as in production${HELPERS_APART ? '; the processes\' other threads (V8\'s platform worker: concurrent garbage collection and background compilation; an idle tokio runtime) run on the client\'s and worker\'s CPUs (--helpers-apart), as on Cloudflare, where they have cores of their own' : ''}. On a shared machine (see the load average) compare rows of one run, not numbers across runs.\n\n`
          : 'Client, edge and worker share this machine\'s cores, so the edge\'s CPU time also slows the worker: read it as an upper bound (--pin gives the edge a core of its own). On a shared machine (see the load average) compare rows of one run, not numbers across runs.\n\n') +
        (splitTable && 'Time to first token split by clocks outside the edge: the client notes when it sends each request and when the frame with the first output arrives; the stub worker notes when the request\'s headers arrive and when it writes each token; all on the machine\'s monotonic clock (process.hrtime), which every process here reads. Inbound: send → the worker has the request (through the edge: the edge\'s whole work before the call, its queueing behind the other requests included); worker: request → it wrote the token that is the client\'s first output (its 2nd, after `<think>`: 30 ms of pace when its timers run on time, later when the CPU is busy); outbound: that write → the client read it (through the edge: the edge reading, detokenising and writing that chunk). p50 / p90 of each part on its own, so the parts of a row need not add up to its TTFT:\n\n' + splitTable + '\n\n' + splitSummary + '\n\n') +
        table + '\n\n' +
        'CPU of each path\'s workerd process (all its threads: the isolate, the rate limiter\'s Durable Object, Miniflare\'s KV, D1 and cache simulators) over the phase, less what the process burns idle over as long, per request served, the work after each response (usage record, lease settle) included' + (LIMITER_APART ? ' (limiter apart: both its processes)' : '') + ':\n\n' +
        cpuTable + '\n\n' +
        `workerd runs the isolate, the Durable Object and Miniflare's simulators on one thread, so ${CONCURRENCY} requests arriving at once queue on it and the median one waits for about half of them: ` +
        mainCpu.map((r) => `${r.edge} ${r.cpu_ms_per_request} ms × ${CONCURRENCY / 2} = ${(r.cpu_ms_per_request * CONCURRENCY / 2).toFixed(0)} ms`).join('; ') +
        ` of CPU (an upper bound: part of each request's CPU is spent after its first token, and the machine's other cores take some). The relay's figure is the floor for any Worker on this machine, the JS transform's the floor for one that writes every token itself.\n\n` +
        'The same CPU over the stretch that decides the later streams\' first tokens, from each round\'s requests to its last first token (the floors\' rows: what any Worker, and any that writes every token in JavaScript, spends there; thread busy: that CPU over the stretch; waiting: the time its threads were ready but other processes held the CPUs):\n\n' +
        startingTable + '\n\n' +
        (partsShare && `What each part of the accounts layer costs at ${CONCURRENCY} streams: this tree's figure less the figure of the path without it (or with it cut short), both from the same rounds (the floors' rows: what is left when every part of the app is gone). Differences below about 0.05 ms of CPU and a few ms of TTFT are within the rounds' noise:\n\n${partsShare}\n\n`) +
        'Where this tree\'s time to the first worker tokens goes, from the `Server-Timing` header the edge sends (on Workers the clock moves only with I/O, so each part is the waits in it plus the CPU of whatever ran on the thread meanwhile):\n\n' +
        partsTable + '\n' +
        (commitsTable && '\nStorage commits: one more round of ' + CONCURRENCY + ' streams per path after the timed ones, with strace attached to the path\'s workerd process (it slows the process, so this round is not timed), counting its fsync and fdatasync calls until 1 s after the last response (the usage records and lease settles included). Each SQLite commit of the rate limiter\'s Durable Object and of Miniflare\'s D1, KV and cache ends in one, and workerd\'s one thread waits for it:\n\n' + commitsTable + '\n'),
    );
  }
} finally {
  for (const edge of edges) await edge.dispose();
  await relay?.dispose();
  await transform?.dispose();
  await identityWriter?.dispose();
  for (const floor of readFloors) await floor.dispose();
  await transformInEdge?.dispose();
  worker.proc.kill('SIGTERM');
  for (const baseline of baselines) removeBaseline(root, baseline.root);
}
