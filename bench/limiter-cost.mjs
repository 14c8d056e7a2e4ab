#!/usr/bin/env node
// What the per-key rate limiter (edge/rate-limiter-do.ts) costs workerd per admission: the real RateLimiter class,
// bundled as the edge bundles it, run by Miniflare (SQLite-backed, as wrangler.toml declares it) next to a small
// driver Worker in the same process. Each burst admits 32 leases and then settles each of them, as 32 concurrent
// streams of one key would; the CPU of the workerd process (all threads) over many bursts, per admission, is compared
// across the ways of calling it, in alternating rounds in one run:
//
//   one call per admission      32 admitAll([one]) calls, what a key's admissions cost when each is sent alone
//   batches of 8                4 admitAll calls of 8 (edge/key-admissions.ts batches what arrives meanwhile)
//   one call per burst          1 admitAll call of 32
//   one call, never written     the same with the object's storage never written (its flush delay an hour)
//   settles together            1 admitAll call and 1 settleAll call of 32 (the settles of streams ending together)
//   no-op calls                 64 calls of a method that does nothing: the price of the RPC alone
//
// Settles are 32 settle calls in every other row (one per lease). Writes to bench/results/
// limiter-cost.{md,json} with the command, the machine and the date.
//
//   node --import tsx bench/limiter-cost.mjs [--rounds 6] [--bursts 60]
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnSync } from 'node:child_process';
import { build } from 'esbuild';
import { Miniflare } from 'miniflare';
import { median } from './bench-args.mjs';
import { processCpuNs, workerdChildren } from './workerd-process.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const loadAtStart = os.loadavg();
const args = Object.fromEntries(process.argv.slice(2).join(' ').split('--').filter(Boolean).map((a) => a.trim().split(/\s+/)));
const ROUNDS = Number(args.rounds ?? 6);
const BURSTS = Number(args.bursts ?? 60);
const STREAMS = 32;
const head = spawnSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root, encoding: 'utf8' }).stdout.trim();
const dirty = spawnSync('git', ['status', '--porcelain', '--untracked-files=no', '--', 'edge'], { cwd: root, encoding: 'utf8' }).stdout.trim();

/** The driver: GET /?variant=…&burst=… runs one burst against a fresh object of that variant. */
const entry = `
import { DurableObject } from 'cloudflare:workers';
import { RateLimiter } from './edge/rate-limiter-do.ts';
export { RateLimiter };
export class Unwritten extends RateLimiter {
  constructor(ctx, env) { super(ctx, env); this.flushDelayMs = 3_600_000; }
}
export class Noop extends DurableObject {
  async admitAll() { return []; }
  async settle() { return null; }
  async settleAll() { return []; }
}
const limits = { requests_per_minute: 1_000_000, tokens_per_minute: 1_000_000_000, concurrent_streams: 10_000, quota_tokens: null };
const BATCH = { 'one call per admission': 1, 'batches of 8': 8, 'one call per burst': ${STREAMS}, 'one call, never written': ${STREAMS}, 'settles together': ${STREAMS}, 'no-op calls': 1 };
export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const variant = url.searchParams.get('variant');
    const ns = variant === 'no-op calls' ? env.NOOP : variant === 'one call, never written' ? env.UNWRITTEN : env.LIMITER;
    const stub = ns.get(ns.idFromName(variant + ':' + url.searchParams.get('key')));
    const burst = url.searchParams.get('burst');
    const reqs = Array.from({ length: ${STREAMS} }, (_, i) => ({ limits, tokens: 120, streams: 1, leaseId: burst + '-' + i }));
    const size = BATCH[variant];
    const calls = [];
    for (let i = 0; i < reqs.length; i += size) calls.push(stub.admitAll(reqs.slice(i, i + size)));
    await Promise.all(calls);
    if (variant === 'settles together') await stub.settleAll(reqs.map((r) => ({ leaseId: r.leaseId, bucketTokens: 150, quotaTokens: 150, limits })));
    else await Promise.all(reqs.map((r) => stub.settle(r.leaseId, 150, 150, limits)));
    return new Response('ok');
  },
};
`;
const toml = readFileSync(join(root, 'wrangler.toml'), 'utf8');
const bundle = await build({
  stdin: { contents: entry, resolveDir: root, loader: 'ts' }, bundle: true, format: 'esm', platform: 'neutral', target: 'es2022',
  write: false, minify: true, absWorkingDir: root, conditions: ['workerd', 'worker', 'browser'], external: ['node:*', 'cloudflare:*'],
});
const before = new Set(workerdChildren());
const mf = new Miniflare({
  modules: true, script: bundle.outputFiles[0].text, host: '127.0.0.1', port: 0,
  compatibilityDate: /compatibility_date\s*=\s*"([^"]+)"/.exec(toml)[1],
  compatibilityFlags: JSON.parse(/compatibility_flags\s*=\s*(\[[^\]]*\])/.exec(toml)[1]),
  durableObjects: {
    LIMITER: { className: 'RateLimiter', enableSql: true },
    UNWRITTEN: { className: 'Unwritten', enableSql: true },
    NOOP: { className: 'Noop', enableSql: true },
  },
});
const url = (await mf.ready).toString();
const pid = workerdChildren().find((p) => !before.has(p));
const variants = ['one call per admission', 'batches of 8', 'one call per burst', 'one call, never written', 'settles together', 'no-op calls'];
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const perAdmission = Object.fromEntries(variants.map((v) => [v, []]));
try {
  // one warm-up round, not counted: the objects are created and the code compiled
  for (let round = -1; round < ROUNDS; round++) {
    const order = variants.map((_, i) => variants[(i + Math.max(0, round)) % variants.length]);
    for (const variant of order) {
      const key = `${round}`;
      await sleep(300); // the flushes of the previous variant are done
      const idle0 = processCpuNs(pid);
      await sleep(100);
      const idleNsPerMs = (processCpuNs(pid) - idle0) / 100;
      const start = performance.now();
      const cpu0 = processCpuNs(pid);
      for (let b = 0; b < BURSTS; b++) {
        const res = await fetch(`${url}?variant=${encodeURIComponent(variant)}&key=${key}&burst=${b}`);
        if (!res.ok) throw new Error(`${variant}: ${res.status} ${await res.text()}`);
        await res.text();
      }
      await sleep(300); // the flush after the last burst counts
      const ms = performance.now() - start;
      const ns = processCpuNs(pid) - cpu0 - idleNsPerMs * ms;
      if (round >= 0) perAdmission[variant].push(ns / 1e6 / (BURSTS * STREAMS));
    }
  }
} finally {
  await mf.dispose();
}
const rows = variants.map((v) => ({ variant: v, median_ms: +median(perAdmission[v]).toFixed(4), min_ms: +Math.min(...perAdmission[v]).toFixed(4), max_ms: +Math.max(...perAdmission[v]).toFixed(4) }));
const callPerBurst = rows.find((r) => r.variant === 'one call per burst').median_ms;
const table = [
  '| calls | workerd CPU per admission + settle, median (ms) | min – max over rounds (ms) | vs one call per burst |',
  '|---|---|---|---|',
  ...rows.map((r) => `| ${r.variant} | ${r.median_ms} | ${r.min_ms} – ${r.max_ms} | ${(r.median_ms / callPerBurst).toFixed(2)}x |`),
].join('\n');
const noop = rows.find((r) => r.variant === 'no-op calls').median_ms;
const perCall = (noop * STREAMS) / (2 * STREAMS);
const summary = `A call to the object, doing nothing, costs workerd ${perCall.toFixed(3)} ms of CPU (no-op calls: ${noop} ms per admission × ${STREAMS} / ${2 * STREAMS} calls per burst).`;
console.log(`${table}\n\n${summary}`);
const command = `node --import tsx bench/limiter-cost.mjs --rounds ${ROUNDS} --bursts ${BURSTS}`;
const machine = `${os.cpus()[0]?.model ?? 'unknown CPU'} x${os.cpus().length}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, load average ${loadAtStart.map((l) => l.toFixed(1)).join(' / ')} at the start and ${os.loadavg().map((l) => l.toFixed(1)).join(' / ')} at the end (1 / 5 / 15 min), edge/ at ${head}${dirty ? ' + uncommitted changes' : ''}`;
const date = new Date().toISOString();
const outDir = join(root, 'bench', 'results');
const name = args['result-name'] ?? 'limiter-cost';
mkdirSync(outDir, { recursive: true });
writeFileSync(join(outDir, `${name}.json`), JSON.stringify({ command, machine, date, rounds: ROUNDS, bursts: BURSTS, streams: STREAMS, rows, samples_ms: perAdmission }, null, 1) + '\n');
writeFileSync(join(outDir, `${name}.md`),
  `# What the rate limiter costs workerd per admission\n\nCommand: \`${command}\`  \nMachine: ${machine}  \nDate: ${date}\n\n` +
  `The real RateLimiter Durable Object (edge/rate-limiter-do.ts, SQLite-backed, Miniflare) and a driver Worker in one workerd process. A burst admits ${STREAMS} leases of one key and then settles each (${STREAMS} settle calls); ${BURSTS} bursts per variant and round, ${ROUNDS} rounds in rotating order. ` +
  'CPU = the workerd process\'s (every thread: the driver, the object, its SQLite storage) over the bursts and 300 ms after them (the last flush), less what it burns idle over as long, per admission. ' +
  '"never written": the same class with its flush delay set to an hour, so it never writes its storage; "settles together": the burst\'s 32 settles in one settleAll call; "no-op calls": 64 calls (32 admissions, 32 settles) to an object whose methods do nothing (the price of the calls alone).\n\n' +
  `${table}\n\n${summary}\n`);
