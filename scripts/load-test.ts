#!/usr/bin/env -S node --import tsx
/**
 * Load test of the GPU worker: at 1, 8 and 32 concurrent streams, prints throughput and TTFT / inter-token latency
 * p50 and p99, and writes bench/results/worker-load.{md,json} with the command, the machine and the date.
 *
 *   node --import tsx scripts/load-test.ts [--url URL --secret S] [--model DIR] [--device cpu|cuda|auto]
 *        [--levels 1,8,32] [--requests N] [--prompt-tokens 128] [--max-tokens 64] [--out bench/results/worker-load]
 *
 * Without --url it starts a worker itself (MODEL_DIR = --model, or the demo checkpoint). Requests use distinct
 * prompts (no prefix-cache hits) and ignore_eos, so every request generates exactly --max-tokens tokens.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, hostname, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { signRequest } from '../gpu-worker/signing.ts';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const argv = process.argv.slice(2);
const arg = (name: string, fallback: string) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : fallback;
};
const levels = arg('levels', '1,8,32').split(',').map(Number);
const promptTokens = Number(arg('prompt-tokens', '128'));
const maxTokens = Number(arg('max-tokens', '64'));
const out = resolve(root, arg('out', 'bench/results/worker-load'));

interface Sample { ttftMs: number; itlMs: number[]; tokens: number }

/** Starts a worker on a free port unless --url is given; resolves with its URL, secret and a stop function. */
async function worker(): Promise<{ url: string; secret: string; stop: () => void }> {
  if (argv.includes('--url')) return { url: arg('url', ''), secret: arg('secret', process.env.WORKER_SECRET ?? ''), stop: () => {} };
  const secret = 'load-test-secret';
  const env: Record<string, string> = { ...process.env, PORT: '0', WORKER_SECRET: secret, DEVICE: arg('device', 'auto'), MAX_BATCH: '64' };
  if (argv.includes('--model')) env.MODEL_DIR = arg('model', '');
  const proc = spawn(process.execPath, ['--import', 'tsx', 'gpu-worker/index.ts'], { cwd: root, env, stdio: ['ignore', 'pipe', 'inherit'] });
  const url = await new Promise<string>((res, rej) => {
    let text = '';
    proc.stdout!.on('data', (d: Buffer) => {
      text += d;
      const m = /worker ready on (\S+)/.exec(text);
      if (m) res(m[1]);
    });
    proc.once('exit', (code) => rej(new Error(`worker exited with ${code}`)));
  });
  return { url, secret, stop: () => proc.kill('SIGTERM') };
}

/** One streamed request; times the first token and every later token from frame arrival times. */
async function one(url: string, secret: string, seed: number): Promise<Sample> {
  const prompt = Array.from({ length: promptTokens }, (_, i) => (seed * 7919 + i * 104729) % 1000);
  const body = JSON.stringify({ request_id: `load-${seed}`, prompt, max_tokens: maxTokens, ignore_eos: true });
  const headers = { 'content-type': 'application/json', ...(await signRequest(secret, { method: 'POST', path: '/v1/generate', body })) };
  const t0 = performance.now();
  const res = await fetch(`${url}/v1/generate`, { method: 'POST', body, headers });
  if (res.status !== 200) throw new Error(`HTTP ${res.status}: ${await res.text()}`);
  const sample: Sample = { ttftMs: -1, itlMs: [], tokens: 0 };
  let last = t0;
  let buffer = '';
  const decoder = new TextDecoder();
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    buffer += decoder.decode(chunk, { stream: true });
    let end: number;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const frame = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      if (frame.startsWith('event: error')) throw new Error(frame);
      const n = (JSON.parse(frame.replace(/^data: /, '')) as { tokens: number[] }).tokens.length;
      if (!n) continue;
      const now = performance.now();
      if (sample.ttftMs < 0) sample.ttftMs = now - t0;
      else sample.itlMs.push((now - last) / n);
      for (let i = 1; i < n; i++) sample.itlMs.push((now - last) / n);   // tokens that arrived together share the gap
      last = now;
      sample.tokens += n;
    }
  }
  return sample;
}

function pct(values: number[], p: number): number {
  if (!values.length) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

const w = await worker();
const health = (await (await fetch(`${w.url}/health`)).json()) as { device: string; model: string };
let seed = 1;
await one(w.url, w.secret, seed++);                                     // warm-up
interface Row {
  streams: number; requests: number; tokens: number; wall_s: number; tokens_per_s: number;
  ttft_p50_ms: number; ttft_p99_ms: number; itl_p50_ms: number; itl_p99_ms: number;
}
const rows: Row[] = [];
for (const streams of levels) {
  const perStream = Math.max(2, Math.ceil(Number(arg('requests', '64')) / streams));
  const t0 = performance.now();
  const samples = (await Promise.all(Array.from({ length: streams }, async () => {
    const mine: Sample[] = [];
    for (let i = 0; i < perStream; i++) mine.push(await one(w.url, w.secret, seed++));
    return mine;
  }))).flat();
  const wallS = (performance.now() - t0) / 1000;
  const tokens = samples.reduce((s, x) => s + x.tokens, 0);
  const ttft = samples.map((s) => s.ttftMs);
  const itl = samples.flatMap((s) => s.itlMs);
  const row: Row = {
    streams, requests: samples.length, tokens, wall_s: +wallS.toFixed(2), tokens_per_s: +(tokens / wallS).toFixed(1),
    ttft_p50_ms: +pct(ttft, 50).toFixed(1), ttft_p99_ms: +pct(ttft, 99).toFixed(1),
    itl_p50_ms: +pct(itl, 50).toFixed(2), itl_p99_ms: +pct(itl, 99).toFixed(2),
  };
  rows.push(row);
  console.log(row);
}
w.stop();

const meta = {
  command: `node --import tsx scripts/load-test.ts ${argv.join(' ')}`.trim(),
  date: new Date().toISOString(),
  machine: { host: hostname(), cpu: cpus()[0]?.model, cores: cpus().length, memory_gib: +(totalmem() / 2 ** 30).toFixed(1) },
  engine: health.device, model: health.model, prompt_tokens: promptTokens, max_tokens: maxTokens,
};
const header = '| streams | requests | tokens | wall s | tokens/s | vs 1 stream | TTFT p50 ms | TTFT p99 ms | ITL p50 ms | ITL p99 ms |';
const ratio = (r: Row) => (r.tokens_per_s / rows[0].tokens_per_s).toFixed(2);
const table = [header, '|---|---|---|---|---|---|---|---|---|---|',
  ...rows.map((r) => `| ${r.streams} | ${r.requests} | ${r.tokens} | ${r.wall_s} | ${r.tokens_per_s} | ${ratio(r)}x | ` +
    `${r.ttft_p50_ms} | ${r.ttft_p99_ms} | ${r.itl_p50_ms} | ${r.itl_p99_ms} |`)].join('\n');
console.log(`\n${table}`);
mkdirSync(dirname(out), { recursive: true });
writeFileSync(`${out}.json`, JSON.stringify({ ...meta, rows }, null, 2) + '\n');
writeFileSync(`${out}.md`, [
  '# GPU worker load test', '',
  `- command: \`${meta.command}\``, `- date: ${meta.date}`,
  `- machine: ${meta.machine.cpu} (${meta.machine.cores} cores, ${meta.machine.memory_gib} GiB)`,
  `- engine: ${meta.engine}; model: ${meta.model}; ${promptTokens}-token prompts, ${maxTokens} tokens each (ignore_eos)`,
  '', table, '',
  'Throughput counts generated tokens over the wall time of a level; "vs 1 stream" is the batching gain measured in',
  'this run (compare those ratios, not absolute times across machines). TTFT runs from sending the request to the',
  'first token frame; inter-token latency divides each gap between frames by the tokens that frame carried.', '',
].join('\n'));
console.log(`wrote ${join(out)}.md and .json`);
