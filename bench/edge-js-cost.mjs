#!/usr/bin/env node
// The edge's JavaScript per request, in Node, without the network: the app (edge/app.ts) with the accounts layer on
// in-process stand-ins for its bindings (a KV map holding one key record, the real RateLimiter class constructed in
// this process on a storage that keeps nothing, a D1 that accepts every write), and the GPU worker's fetch answered
// in-process with two token frames and the final one. Bursts of 32 concurrent streamed chat completions, as
// bench/edge-overhead.mjs sends, until every request's background work (usage record, lease settle) is done; the
// process's CPU per request, median over rounds, the variants alternating. A change to the edge's JavaScript shows
// here within a few percent in seconds, where a workerd run needs minutes and moves by tens of percent.
// Node is not workerd: its Request, Response, streams, AbortSignal, timers and WebCrypto are JavaScript (undici,
// node:internal) and cost more than workerd's native ones (bench/workerd-op-costs.mjs), so read the differences
// between variants and between builds, not the absolute figure.
//
//   node --import tsx bench/edge-js-cost.mjs [--rounds 7] [--bursts 40]
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build } from 'esbuild';
import { createApp } from '../edge/app.ts';
import { keyIdOf, sha256Hex } from '../edge/key-store.ts';
import { apiKeyAuth, modelAccess } from '../edge/middleware/auth.ts';
import { metering } from '../edge/middleware/metering.ts';
import { rateLimit } from '../edge/middleware/rate-limit.ts';
import { responseCache } from '../edge/middleware/response-cache.ts';
import { getTokenizer } from '../edge/tokenizer/index.ts';
import { median, option } from './bench-args.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const ROUNDS = Number(option('rounds', 7));
const BURSTS = Number(option('bursts', 40));
const STREAMS = 32;
const MODEL = 'qwen3-8b-awq';

// The RateLimiter as the edge bundles it; its one import from the runtime (the DurableObject base class) stood in for.
const tmp = mkdtempSync(join(os.tmpdir(), 'edge-js-cost-'));
writeFileSync(join(tmp, 'workers.mjs'), 'export class DurableObject { constructor(ctx, env) { this.ctx = ctx; this.env = env; } }\n');
await build({
  entryPoints: [join(root, 'edge/rate-limiter-do.ts')], bundle: true, format: 'esm', platform: 'neutral', outfile: join(tmp, 'limiter.mjs'),
  alias: { 'cloudflare:workers': join(tmp, 'workers.mjs') }, logLevel: 'error',
});
const { RateLimiter } = await import(pathToFileURL(join(tmp, 'limiter.mjs')).href);

// the GPU worker: two token frames and the final one, as a byte stream (workerd's fetch bodies are byte streams)
const ids = getTokenizer().encode('<think>\nLet me think.\n</think>\n\nHello.');
const encoder = new TextEncoder();
const FRAMES = [`data: {"tokens":[${ids[0]}]}\n\n`, `data: {"tokens":[${ids[1]}]}\n\n`,
  'data: {"tokens":[],"finish_reason":"stop","usage":{"prompt_tokens":20,"completion_tokens":2,"cached_tokens":0}}\n\n'].map((f) => encoder.encode(f));
globalThis.fetch = async (input) => {
  const url = typeof input === 'string' ? input : input.url;
  if (url.endsWith('/ready')) return Response.json({ ready: true, max_context: 40960 });
  let i = 0;
  const body = new ReadableStream({ type: 'bytes', pull(c) { if (i < FRAMES.length) c.enqueue(FRAMES[i++].slice()); else c.close(); } });
  return new Response(body, { headers: { 'content-type': 'text/event-stream' } });
};

// the bindings
const secret = `sk-bench-${'a'.repeat(30)}`;
const hash = await sha256Hex(secret);
const limits = { requests_per_minute: 1_000_000, tokens_per_minute: 1_000_000_000, concurrent_streams: 10_000, quota_tokens: null };
const record = { id: keyIdOf(hash), hash, hint: secret.slice(0, 8), tenant: 'bench', name: '', models: null, limits, created_at: 0, revoked_at: null };
const KEYS = {
  get: async (key, type) => (key === `key:${hash}` ? (type === 'json' ? structuredClone(record) : JSON.stringify(record)) : null),
  put: async () => {}, list: async () => ({ keys: [], list_complete: true }),
};
const storage = { get: async () => undefined, list: async () => new Map(), put: async () => {}, delete: async () => true };
const limiters = new Map();
const RATE_LIMITER = {
  idFromName: (name) => name,
  get: (id) => limiters.get(id) ?? limiters.set(id, new RateLimiter({ storage, blockConcurrencyWhile: (f) => f() }, {})).get(id),
};
const written = { success: true, meta: { changes: 1 } };
const statement = { bind: () => statement, run: async () => written, all: async () => ({ results: [] }), first: async () => null };
const USAGE = { prepare: () => statement, batch: async (statements) => statements.map(() => written) };
const env = { MODEL_ID: MODEL, WORKER_URLS: 'http://worker.invalid', WORKER_SECRET: 'bench-secret-0123456789', THINKING_DEFAULT: 'on', KEYS, RATE_LIMITER, USAGE };

const VARIANTS = {
  'this tree (accounts on)': () => createApp({ extensions: [apiKeyAuth(), modelAccess(), responseCache(), metering(), rateLimit()] }),
  'without the rate limiter': () => createApp({ extensions: [apiKeyAuth(), modelAccess(), responseCache(), metering()] }),
  'without the accounts layer': () => createApp(),
};
const apps = Object.fromEntries(Object.entries(VARIANTS).map(([name, make]) => [name, make()]));
const body = JSON.stringify({ model: MODEL, messages: [{ role: 'system', content: 'You are a helpful assistant.' }, { role: 'user', content: 'hi' }], stream: true, chat_template_kwargs: { enable_thinking: true } });
const headers = { 'content-type': 'application/json', authorization: `Bearer ${secret}` };

/** One burst of STREAMS streamed chat completions, read to the end, and every request's background work awaited. */
async function burst(app) {
  const background = [];
  const ctx = { waitUntil: (work) => void background.push(work), passThroughOnException() {} };
  await Promise.all(Array.from({ length: STREAMS }, async () => {
    const res = await app.fetch(new Request('http://edge/v1/chat/completions', { method: 'POST', headers, body }), env, ctx);
    const text = await res.text();
    if (res.status !== 200 || !text.includes('[DONE]')) throw new Error(`${res.status}: ${text.slice(0, 300)}`);
  }));
  while (background.length) await Promise.all(background.splice(0));
}

/** µs of this process's CPU per request over BURSTS bursts */
async function cpuPerRequest(app) {
  const from = process.cpuUsage();
  for (let i = 0; i < BURSTS; i++) await burst(app);
  const used = process.cpuUsage(from);
  return (used.user + used.system) / (BURSTS * STREAMS);
}

const names = Object.keys(apps);
for (const name of names) for (let i = 0; i < 20; i++) await burst(apps[name]); // warm-up: compile and optimise
const samples = Object.fromEntries(names.map((n) => [n, []]));
for (let round = 0; round < ROUNDS; round++) {
  for (let i = 0; i < names.length; i++) {
    const name = names[(i + round) % names.length];
    samples[name].push(await cpuPerRequest(apps[name]));
  }
}
const rows = names.map((name) => ({ variant: name, us: +median(samples[name]).toFixed(1), min: +Math.min(...samples[name]).toFixed(1), max: +Math.max(...samples[name]).toFixed(1) }));
const date = new Date().toISOString();
const machine = `${os.cpus()[0]?.model.trim()} x${os.cpus().length}, Node ${process.version}, load average ${os.loadavg().map((l) => l.toFixed(1)).join(' / ')}`;
const md = [
  '# The edge\'s JavaScript per request, in Node',
  '',
  `Command: \`node --import tsx bench/edge-js-cost.mjs --rounds ${ROUNDS} --bursts ${BURSTS}\`  `,
  `Machine: ${machine}  `,
  `Date: ${date}`,
  '',
  `The edge app in Node with in-process stand-ins for its bindings and the GPU worker (two token frames and the final one); bursts of ${STREAMS} concurrent streamed chat completions until their background work is done; this process's CPU per request over ${BURSTS} bursts, median over ${ROUNDS} rounds in rotating order (min–max). Node's Request, Response, streams, AbortSignal, timers and WebCrypto are JavaScript and cost more than workerd's native ones: compare variants and builds, not absolute figures.`,
  '',
  '| variant | µs of CPU per request | min–max |',
  '|---|---:|---:|',
  ...rows.map((r) => `| ${r.variant} | ${r.us} | ${r.min}–${r.max} |`),
  '',
].join('\n');
console.log(md);
mkdirSync(join(root, 'bench', 'results'), { recursive: true });
writeFileSync(join(root, 'bench', 'results', 'edge-js-cost.md'), md);
writeFileSync(join(root, 'bench', 'results', 'edge-js-cost.json'), JSON.stringify({ date, machine, rounds: ROUNDS, bursts: BURSTS, streams: STREAMS, rows }, null, 1) + '\n');
