#!/usr/bin/env node
// Fairness benchmark of the GPU worker's scheduler: time to first token of short requests sent while a long prompt
// is being prefilled. "before" is the old plan (the oldest request takes the whole prefill budget, no per-request
// cap, no tenants, one queue: PREFILL_PER_REQUEST=0, MAX_QUEUE_PER_TENANT=MAX_QUEUE and requests without `tenant`
// reproduce it); "after" is the fair plan
// (decode first, prefill capped per request, tenants in turn: the worker's defaults, each request naming its
// tenant). Both workers run side by side on the demo checkpoint and rounds alternate between them, so both see the
// same machine load. Writes bench/results/fairness.{md,json} with the command, the machine and the date.
//
//   node --import tsx bench/fairness.mjs [--rounds 2] [--long 16384] [--short 16] [--max-tokens 16] [--interval 500]
//        [--max-shorts 120] [--chunk 256] [--threads 0] [--before-url URL --secret S --before-label TEXT] [--out fairness]
//
// In each round one long prompt (tenant "bulk") starts, and from --lead ms later a short request (tenant
// "interactive", a fresh prompt each) is sent every --interval ms, without waiting for the previous one, until the
// long prompt's first token arrives; then the same length of long prompt runs alone (what the per-request cap costs a
// prompt with nobody to share with). Every prompt is new, so the prefix cache never helps. --before-url measures
// another running worker (e.g. the commit before this scheduler) as "before" instead of the PREFILL_PER_REQUEST=0 one.
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { signRequest } from '../gpu-worker/signing.ts';
import { option } from './bench-args.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const argv = process.argv.slice(2);
const ROUNDS = Number(option('rounds', '2'));
const LONG = Number(option('long', '16384'));            // tokens of the long prompt
const SHORT = Number(option('short', '16'));             // tokens of each short prompt
const MAX_TOKENS = Number(option('max-tokens', '16'));   // tokens each request generates (ignore_eos)
const INTERVAL_MS = Number(option('interval', '500'));
const LEAD_MS = Number(option('lead', '300'));           // the long prompt's head start
const MAX_SHORTS = Number(option('max-shorts', '120'));  // per round, so the old plan's pile-up stays below MAX_QUEUE
const CHUNK = option('chunk', '256');                    // PREFILL_CHUNK of both workers
const THREADS = option('threads', '0');                  // 0 = all cores
const SECRET = 'fairness-bench-secret';
const OUT = option('out', 'fairness');                   // bench/results/<OUT>.{md,json}

const children = [];
process.on('exit', () => children.forEach((c) => c.kill('SIGTERM')));   // a failed run leaves no worker behind

/** Starts a worker (demo checkpoint) with extra env; resolves with its URL and a stop function. */
async function startWorker(extra) {
  const env = { ...process.env, PORT: '0', WORKER_SECRET: SECRET, DEVICE: 'cpu', THREADS, PREFILL_CHUNK: CHUNK, ...extra };
  delete env.MODEL_DIR;
  const proc = spawn(process.execPath, ['--import', 'tsx', 'gpu-worker/index.ts'], { cwd: root, env, stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(proc);
  const url = await new Promise((res, rej) => {
    let text = '';
    proc.stdout.on('data', (d) => {
      text += d;
      const m = /worker ready on (\S+)/.exec(text);
      if (m) res(m[1]);
    });
    proc.once('exit', (code) => rej(new Error(`worker exited with ${code}`)));
  });
  return { url, secret: SECRET, stop: () => proc.kill('SIGTERM') };
}

let nextSeed = 1;
/** A fresh prompt: ids below 1000, different for every request (no prefix-cache hits). */
function freshPrompt(n) {
  const seed = nextSeed++;
  return Array.from({ length: n }, (_, i) => (seed * 7919 + i * 104729 + ((i * seed) % 89)) % 1000);
}

/** One streamed request; resolves at its end with its time to first token (ms) and when that token arrived. */
async function request(worker, prompt, tenant, onFirstToken = () => {}) {
  const body = JSON.stringify({ request_id: `fair-${nextSeed}`, prompt, max_tokens: MAX_TOKENS, ignore_eos: true, ...(tenant ? { tenant } : {}) });
  const headers = { 'content-type': 'application/json', ...(await signRequest(worker.secret, { method: 'POST', path: '/v1/generate', body })) };
  const t0 = performance.now();
  const res = await fetch(`${worker.url}/v1/generate`, { method: 'POST', body, headers });
  if (res.status === 503) return { refused: (await res.json()).error.code };    // queue full: counted, not timed
  if (res.status !== 200) throw new Error(`HTTP ${res.status}: ${await res.text()}`);
  let first;
  let text = '';
  const decoder = new TextDecoder();
  for await (const chunk of res.body) {
    text += decoder.decode(chunk, { stream: true });
    if (first === undefined && /"tokens":\[\d/.test(text)) onFirstToken((first = performance.now()));
    if (text.includes('event: error')) throw new Error(text);
  }
  if (first === undefined) throw new Error(`no token: ${text}`);
  return { ttftMs: first - t0, firstAt: first };
}

/** One round: a long prompt, short requests every INTERVAL_MS until its first token, all read to the end. */
async function round(worker, tenants) {
  let longFirstAt;
  const long = request(worker, freshPrompt(LONG), tenants && 'bulk', (t) => (longFirstAt = t));
  const shorts = [];
  await new Promise((r) => setTimeout(r, LEAD_MS));
  while (longFirstAt === undefined && shorts.length < MAX_SHORTS) {
    shorts.push(request(worker, freshPrompt(SHORT), tenants && 'interactive'));
    await new Promise((r) => setTimeout(r, INTERVAL_MS));
  }
  const longResult = await long;
  const done = await Promise.all(shorts);
  // only the shorts sent while the long prompt was prefilling count
  const behind = done.filter((s) => !s.refused && s.firstAt - s.ttftMs < longResult.firstAt);
  const alone = await request(worker, freshPrompt(LONG), tenants && 'bulk');
  return {
    longTtftMs: longResult.ttftMs, aloneTtftMs: alone.ttftMs, shortTtftMs: behind.map((s) => s.ttftMs),
    refused: done.filter((s) => s.refused).length,
  };
}

const mean = (xs) => +(xs.reduce((a, b) => a + b, 0) / xs.length).toFixed(0);

function pct(values, p) {
  if (!values.length) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

const beforeUrl = option('before-url', '');
const [before, after] = await Promise.all([
  beforeUrl ? { url: beforeUrl, secret: option('secret', process.env.WORKER_SECRET ?? ''), stop: () => {} } : startWorker({ PREFILL_PER_REQUEST: '0', MAX_QUEUE: '256', MAX_QUEUE_PER_TENANT: '256' }),
  startWorker({}),
]);
const configs = [
  { name: 'before', worker: before, tenants: false, what: beforeUrl ? option('before-label', `worker at ${beforeUrl}`) : 'PREFILL_PER_REQUEST=0, no tenant, one queue' },
  { name: 'after', worker: after, tenants: true, what: `defaults (prefill <= ${Math.ceil(Number(CHUNK) / 4)} tokens per request per step), tenants sent` },
];
for (const c of configs) await request(c.worker, freshPrompt(SHORT), c.tenants && 'warmup');   // warm-up
const samples = { before: { long: [], alone: [], short: [], refused: 0 }, after: { long: [], alone: [], short: [], refused: 0 } };
for (let r = 0; r < ROUNDS; r++) {
  for (const c of r % 2 ? [...configs].reverse() : configs) {        // alternate which goes first
    const res = await round(c.worker, c.tenants);
    samples[c.name].long.push(res.longTtftMs);
    samples[c.name].alone.push(res.aloneTtftMs);
    samples[c.name].short.push(...res.shortTtftMs);
    samples[c.name].refused += res.refused;
    console.log(`round ${r + 1} ${c.name}: long prompt TTFT ${res.longTtftMs.toFixed(0)} ms (alone ${res.aloneTtftMs.toFixed(0)} ms); ${res.shortTtftMs.length} short requests ` +
      `(${res.refused} refused), ` +
      `TTFT p50 ${pct(res.shortTtftMs, 50).toFixed(0)} ms, max ${Math.max(...res.shortTtftMs).toFixed(0)} ms`);
  }
}
before.stop();
after.stop();

const rows = configs.map((c) => {
  const s = samples[c.name];
  return {
    config: c.name, what: c.what, short_requests: s.short.length, refused: s.refused,
    short_ttft_p50_ms: +pct(s.short, 50).toFixed(1), short_ttft_p90_ms: +pct(s.short, 90).toFixed(1),
    short_ttft_p99_ms: +pct(s.short, 99).toFixed(1), short_ttft_max_ms: +Math.max(...s.short).toFixed(1),
    long_ttft_mean_ms: mean(s.long), long_alone_ttft_mean_ms: mean(s.alone),
  };
});
const [b, a] = rows;
const ratios = {
  short_p50: +(b.short_ttft_p50_ms / a.short_ttft_p50_ms).toFixed(1),
  short_p99: +(b.short_ttft_p99_ms / a.short_ttft_p99_ms).toFixed(1),
  long_ttft: +(a.long_ttft_mean_ms / b.long_ttft_mean_ms).toFixed(2),
  long_alone_ttft: +(a.long_alone_ttft_mean_ms / b.long_alone_ttft_mean_ms).toFixed(2),
};
const command = `node --import tsx bench/fairness.mjs ${argv.join(' ')}`.trim();
const machine = `${os.cpus()[0]?.model ?? 'unknown CPU'} (${os.cpus().length} cores, ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB), Node ${process.version}`;
const date = new Date().toISOString();
const table = [
  '| plan | short requests (refused) | short TTFT p50 ms | p90 ms | p99 ms | max ms | long prompt TTFT ms, with the shorts / alone (mean) |',
  '|---|---|---|---|---|---|---|',
  ...rows.map((r) => `| ${r.config}: ${r.what} | ${r.short_requests} (${r.refused}) | ${r.short_ttft_p50_ms} | ${r.short_ttft_p90_ms} | ` +
    `${r.short_ttft_p99_ms} | ${r.short_ttft_max_ms} | ${r.long_ttft_mean_ms} / ${r.long_alone_ttft_mean_ms} |`),
].join('\n');
const summary = `Short requests' TTFT: p50 ${ratios.short_p50}x and p99 ${ratios.short_p99}x lower after. The long prompt's own ` +
  `TTFT is ${ratios.long_ttft}x what it was next to the short requests (their work now runs during its prefill instead of ` +
  `after it) and ${ratios.long_alone_ttft}x alone (the per-request cap: more, smaller steps).`;
console.log(`\n${table}\n\n${summary}`);
const out = join(root, 'bench', 'results');
mkdirSync(out, { recursive: true });
writeFileSync(join(out, `${OUT}.json`), JSON.stringify({
  command, machine, date, checkpoint: 'demo', engine: `cpu, THREADS=${THREADS}`, prefill_chunk: Number(CHUNK), long_prompt_tokens: LONG,
  short_prompt_tokens: SHORT, max_tokens: MAX_TOKENS, interval_ms: INTERVAL_MS, rounds: ROUNDS, rows, ratios,
  samples_ms: Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, {
    long: v.long.map((x) => +x.toFixed(1)), alone: v.alone.map((x) => +x.toFixed(1)), short: v.short.map((x) => +x.toFixed(1)),
  }])),
}, null, 1) + '\n');
writeFileSync(join(out, `${OUT}.md`), [
  '# Scheduler fairness: short requests behind a long prompt', '',
  `- command: \`${command}\``, `- date: ${date}`, `- machine: ${machine}; shared with other work while it ran`,
  `- engine: CPU (THREADS=${THREADS}, 0 = all cores), demo checkpoint; PREFILL_CHUNK=${CHUNK}`,
  `- workload per round: one ${LONG}-token prompt (tenant "bulk"), then a fresh ${SHORT}-token request (tenant ` +
    `"interactive") every ${INTERVAL_MS} ms until the long prompt's first token; every request generates ${MAX_TOKENS} tokens. ` +
    `${ROUNDS} rounds per plan, alternating between the two workers, which run side by side.`,
  '', table, '', summary, '',
  beforeUrl
    ? '"before" is the worker at --before-url (it must serve the demo checkpoint with the same PREFILL_CHUNK and threads).'
    : '"before" reproduces the old plan (the oldest request takes the whole step budget): with one tenant and no cap the\n' +
      'fair plan degenerates to it.',
  'TTFT runs from sending the request to the first token frame. Compare the ratios measured in this run, not absolute',
  'times across machines.', '',
].join('\n'));
console.log(`wrote ${join(out, OUT)}.md and .json`);
