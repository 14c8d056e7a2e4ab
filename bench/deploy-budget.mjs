#!/usr/bin/env node
// The deployed edge against the budgets of issue 13, before and after, in one run: bundle size raw / gzip, start-up
// CPU, cold-isolate ready time over an empty worker, the first chat completion's CPU (bench/edge-cold-start.mjs) and
// the edge's overhead on time to first token at 32 concurrent streams with the accounts layer on
// (bench/edge-overhead.mjs). Both measure the edge at git REF next to this tree in alternating rounds; this script runs
// them one after the other and writes the summary bench/results/deploy-budget.{md,json} next to their own files.
//
//   node --import tsx bench/deploy-budget.mjs [--baseline REF] [--samples 5] [--ready-samples 24] [--rounds 8]
//
// REF defaults to BEFORE: main just before this work (the issue's measurements were taken there).
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
/** main before issue 13: the wrangler.toml without environments, zod's classic import, the tokenizer as base64 */
const BEFORE = '370f480';
const args = process.argv.slice(2);
const option = (name, fallback) => (args.includes(name) ? args[args.indexOf(name) + 1] : fallback);
/** --baseline REF[,REF2…]: REF is "before"; the others get a column of their own (e.g. where a session started). */
const BASELINE = option('--baseline', BEFORE);
const [FIRST, ...OTHERS] = BASELINE.split(',');
const SAMPLES = option('--samples', '5');
const READY_SAMPLES = option('--ready-samples', '24');
const ROUNDS = option('--rounds', '8');
const TARGETS = { gzipKiB: 1.2e6 / 1024, readyOverEmptyMs: 60, firstChatCpuMs: 10, overheadP50Ms: 15 };

const load = () => os.loadavg().map((l) => l.toFixed(1)).join(' / ');
const loadBefore = load();
const run = (script, extra) => execFileSync(process.execPath, ['--import', 'tsx', join(root, 'bench', script), '--baseline', BASELINE, ...extra], { cwd: root, stdio: 'inherit' });
run('edge-cold-start.mjs', ['--samples', SAMPLES, '--ready-samples', READY_SAMPLES]);
run('edge-overhead.mjs', ['--rounds', ROUNDS, '--concurrency', '32', '--result-name', 'edge-overhead-vs-baseline']);
// the same with the edges on a core of their own (--pin): their own work, not also their CPU slowing the client and worker
run('edge-overhead.mjs', ['--rounds', ROUNDS, '--concurrency', '32', '--pin', '--result-name', 'edge-overhead-vs-baseline-pinned']);
// and as the edge runs on Cloudflare: no Miniflare entry worker in front, V8's helper threads off the isolate's core;
// each build as PROCESSES workerd processes, pooled (one process can read ~15% more CPU than another of the same code)
const PROCESSES = 2;
run('edge-overhead.mjs', ['--rounds', ROUNDS, '--concurrency', '32', '--pin', '--helpers-apart', '--direct-sockets', '--processes', String(PROCESSES), '--result-name', 'edge-overhead-vs-baseline-as-on-cloudflare']);

const cold = JSON.parse(readFileSync(join(root, 'bench/results/edge-cold-start.json'), 'utf8'));
const overhead = JSON.parse(readFileSync(join(root, 'bench/results/edge-overhead-vs-baseline.json'), 'utf8'));
const pinned = JSON.parse(readFileSync(join(root, 'bench/results/edge-overhead-vs-baseline-pinned.json'), 'utf8'));
const asOnCloudflare = JSON.parse(readFileSync(join(root, 'bench/results/edge-overhead-vs-baseline-as-on-cloudflare.json'), 'utf8'));
const pooled = (edge) => `${edge}, ${PROCESSES} processes pooled`;
const coldRow = (edge) => cold.rows.find((r) => r.edge === edge);
const overheadOf = (edge, quantile, of = overhead) => of.rows.find((r) => r.edge === edge && r.concurrency === 32 && r.metric === 'ttft' && r.quantile === quantile);

const metrics = [
  ['bundle, raw (KiB)', (e) => coldRow(e).bundleKiB, null],
  ['bundle, gzip (KiB)', (e) => coldRow(e).gzipKiB, TARGETS.gzipKiB],
  ['start-up CPU over an empty worker, workerd process (ms)', (e) => coldRow(e).startupCpuOverEmptyMs, null],
  ['start-up, edge isolate: module evaluation incl. compile (ms)', (e) => coldRow(e).startupIsolateMs ?? null, null],
  ['cold isolate ready over an empty worker, from workerd\'s start (ms)', (e) => coldRow(e).readyOverEmptyMs, TARGETS.readyOverEmptyMs],
  ['the same, less workerd\'s waits for a core (ms)', (e) => coldRow(e).readyOverEmptyLessWaitsMs ?? null, null],
  ['the same, from new Miniflare: its config encoding in Node included (ms)', (e) => coldRow(e).readyOverEmptyWithMiniflareMs ?? null, null],
  ['first GET /health CPU of a fresh isolate, edge isolate (ms)', (e) => coldRow(e).firstHealthIsolateMs ?? null, null],
  ['first /v1/chat/completions CPU (a fresh isolate\'s first request), edge isolate (ms)', (e) => coldRow(e).firstChatIsolateMs ?? null, TARGETS.firstChatCpuMs],
  ['first /v1/chat/completions CPU, workerd process (ms)', (e) => coldRow(e).firstChatCpuMs, null],
  ['the same first request, edge isolate, with the limiter in the edge\'s process as measured before 2026-12-02T06:30Z (ms)', (e) => coldRow(e).firstChatLimiterInProcessIsolateMs ?? null, null],
  ['second /v1/chat/completions CPU, edge isolate (ms)', (e) => coldRow(e).secondChatIsolateMs ?? null, null],
  ['second /v1/chat/completions CPU, workerd process (ms)', (e) => coldRow(e).secondChatCpuMs, null],
  ['edge overhead, TTFT p50 at 32 streams, accounts on (ms)', (e) => overheadOf(e, 'p50').overhead_ms, TARGETS.overheadP50Ms],
  ['edge overhead, TTFT p99 at 32 streams, accounts on (ms)', (e) => overheadOf(e, 'p99').overhead_ms, null],
  ['edge overhead, TTFT p50 at 32 streams, accounts on, the edge on a core of its own (--pin) (ms)', (e) => overheadOf(e, 'p50', pinned).overhead_ms, TARGETS.overheadP50Ms],
  ['the same, 90% interval over rounds (ms)', (e) => overheadOf(e, 'p50', pinned).overhead_ci90_ms?.join(' to ') ?? null, null],
  ['edge overhead, TTFT p50 at 32 streams, accounts on, as on Cloudflare (--pin --helpers-apart --direct-sockets, 2 processes pooled) (ms)', (e) => overheadOf(pooled(e), 'p50', asOnCloudflare).overhead_ms, TARGETS.overheadP50Ms],
  ['the same, 90% interval over rounds (ms)', (e) => overheadOf(pooled(e), 'p50', asOnCloudflare).overhead_ci90_ms?.join(' to ') ?? null, null],
];
const rows = metrics.map(([metric, of, target]) => {
  const before = of(FIRST);
  const after = of('this tree');
  const ratio = typeof before === 'number' && typeof after === 'number' && before ? +(after / before).toFixed(2) : null;
  return { metric, before, others: OTHERS.map((ref) => of(ref)), after, ratio, target, met: target === null ? null : after <= target };
});
const table = [
  `| metric | before (${FIRST}) | ${OTHERS.map((ref) => `${ref} | `).join('')}after (this tree) | after / before | target | met |`,
  `|---|---|${'---|'.repeat(OTHERS.length)}---|---|---|---|`,
  ...rows.map((r) => `| ${r.metric} | ${r.before} | ${r.others.map((x) => `${x} | `).join('')}${r.after} | ${r.ratio ?? '—'} | ${r.target === null ? '—' : `≤ ${Math.round(r.target)}`} | ${r.met === null ? '' : r.met ? 'yes' : 'no'} |`),
].join('\n');
const command = `node --import tsx bench/deploy-budget.mjs --baseline ${BASELINE} --samples ${SAMPLES} --ready-samples ${READY_SAMPLES} --rounds ${ROUNDS}`;
const machine = `${os.cpus()[0]?.model ?? 'cpu'} × ${os.cpus().length}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}; load average ${loadBefore} at the start, ${load()} at the end (1 / 5 / 15 min)`;
const date = new Date().toISOString();
const notes = [
  `Cold start: [edge-cold-start.md](edge-cold-start.md) (${cold.command}); overhead: [edge-overhead-vs-baseline.md](edge-overhead-vs-baseline.md) (${overhead.command}), pinned: [edge-overhead-vs-baseline-pinned.md](edge-overhead-vs-baseline-pinned.md), as on Cloudflare: [edge-overhead-vs-baseline-as-on-cloudflare.md](edge-overhead-vs-baseline-as-on-cloudflare.md) (its header says what it leaves out of the local harness: Miniflare's entry worker, and V8's helper threads on the edge's core). All measure the two edges in alternating rounds of one run.`,
  'Bundles are what `wrangler deploy --dry-run` reports for the form that deploys (after: `--env production`, minified; before: the top level, the only configuration there was).',
  'CPU: "edge isolate" rows are the V8 CPU profiler of the Worker\'s isolate (what Cloudflare bills and limits per invocation; edge-cold-start.md says how); for the chat completions the rate limiter\'s Durable Object runs in a workerd process of its own, as on Cloudflare where it runs elsewhere than the edge and is billed apart (for every column; results files before 2026-12-02T06:30Z ran it in a worker of its own in the edge\'s process, where workerd started the object on the edge\'s thread inside the edge\'s first call and the profiler counted that as the edge isolate\'s: the row "with the limiter in the edge\'s process" keeps that measure; before 2026-12-02T02:00Z it ran in the edge\'s isolate). The edge\'s D1 gets the migrations applied first, as `npm run deploy` does. "workerd process" rows are the whole process\'s CPU (the limiter\'s process included), which includes Miniflare\'s local KV, D1 and Durable Object simulators that on Cloudflare run elsewhere.',
  `Ready and start-up CPU: the median of ${cold.readySamples ?? cold.samples} cold starts' differences from an empty worker started in the same round (order rotated each round); quartiles of those differences, ready: ${cold.rows.map((r) => `${r.edge} ${r.readyOverEmptySpreadMs?.join('–') ?? '?'} ms`).join(', ')}; start-up CPU: ${cold.rows.map((r) => `${r.edge} ${r.startupCpuOverEmptySpreadMs?.join('–') ?? '?'} ms`).join(', ')}.`,
  'Ready: from workerd\'s spawn to its first answer (before the spawn Miniflare encodes the config, module bytes included, in JS: work of the local harness that no deployed isolate does; the row "from new Miniflare" keeps it); edge-cold-start.md has the control (an empty worker with only the tokenizer\'s Data module). The first requests are each the first a fresh isolate serves, as on Cloudflare (results files before 2026-12-02T04:00Z measured the chat completions after a GET /health had warmed the isolate, and the ready time from new Miniflare).',
  `Sampling's own cost: in the cold-start run a warm fixed loop measured ${cold.profiledOverUnprofiled?.toFixed(2) ?? '?'}× its unprofiled workerd CPU under the profiler (above 1: the profiler's own share of the "edge isolate" rows; not corrected).`,
  'The machine was shared with other work (2 cores, the load average above): absolute times are inflated by waiting for a core, and the ready time most of all; read the after / before ratios.',
];
console.log(`\n${table}`);
writeFileSync(join(root, 'bench/results/deploy-budget.md'),
  `# The deployed edge against issue 13's budgets\n\nCommand: \`${command}\`  \nMachine: ${machine}  \nDate: ${date}\n\n${table}\n\n${notes.map((n) => `- ${n}`).join('\n')}\n`);
writeFileSync(join(root, 'bench/results/deploy-budget.json'), JSON.stringify({ command, machine, date, baseline: BASELINE, targets: TARGETS, rows, notes }, null, 2) + '\n');
