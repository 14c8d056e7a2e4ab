// Cold start of the deployed edge, measured in workerd: bundle size (raw and gzip, as `wrangler deploy --dry-run`
// reports it, and the tokenizer data's share), start-up and cold-isolate ready time over an empty worker with the same
// bindings, and the CPU of the first and second /v1/chat/completions. Each sample is a fresh workerd process
// (Miniflare) on the modules wrangler wrote; the variants are sampled in alternating rounds. `--baseline REF` adds the
// edge as it is at git REF (bench/git-baseline.mjs), so before and after come from one run.
//
// Two CPU measures, side by side:
// - the edge isolate's own: the V8 CPU profiler of the Worker's isolate (workerd's inspector, Profiler.start/stop
//   around the request, 100 µs sampling): every sample in which the isolate ran JavaScript, compiled it or collected
//   garbage. That is the Worker invocation's CPU time Cloudflare bills and limits (`cpuTime` of its trace event; local
//   workerd reports 0 there, see the notes). For the chat completions the rate limiter's Durable Object is served by
//   a worker of its own, so it runs in its own isolate as on Cloudflare (where it is billed apart).
// - the workerd process's: the sum of its threads' run time (/proc/<pid>/task/*/schedstat), which also holds workerd
//   itself and Miniflare's KV, D1 and Durable Object storage simulators, which on Cloudflare run elsewhere.
// Start-up is split the same way: workerd's own start (the empty worker's process CPU), and the edge's module
// evaluation profiled in its isolate (a harness imports the bundle at a request, under the profiler): script compile
// and the global-scope work, by function.
// Run: node --import tsx bench/edge-cold-start.mjs [--baseline main] [--samples 5] [--ready-samples 24] [--warm 1]
//        [--requests-only] [--eager-hint] [--result-name NAME]
//   → prints a table, writes bench/results/edge-cold-start.{md,json} (or NAME.{md,json}).
// --warm N profiles N requests after the first in each isolate (the "2nd" columns are the median of them; 1: the second
// request alone) and lists where their time went. --requests-only measures the chat completions alone (no ready time,
// no start-up profile, no limiter-in-the-edge's-process sample): a quicker A/B of the per-request CPU. --eager-hint
// adds a what-if variant (EAGER_HINT_VARIANT below).
import childProcess, { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { Miniflare } from 'miniflare';
import { startStubWorker } from './edge-stub-worker.mjs';
import { checkoutBaseline, removeBaseline } from './git-baseline.mjs';
import { startProfile, summarizeProfile } from './v8-cpu-profile.mjs';
import { newestWorkerdChild, processCpuNs, processRunQueueNs } from './workerd-process.mjs';

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const option = (name) => (args.includes(name) ? args[args.indexOf(name) + 1] : undefined);
/** --baseline A[,B]: the edge as it is at each git ref, sampled in the same rounds. */
const BASELINE_REF = option('--baseline');
const SAMPLES = Number(option('--samples') ?? 5);
/** Cold starts to readiness per variant (cheap: no profiler, one request), in rounds that rotate the order. */
const READY_SAMPLES = Number(option('--ready-samples') ?? 24);
/** wrangler.toml environment to deploy (dry run); "top" = the top level (not minified: readable profiles). */
const ENV = option('--env') ?? 'production';
/** Rows of the where-the-time-went lists (functions and modules) per profile kind. */
const TOP = Number(option('--top') ?? 8);
/** Warm chat completions profiled after the first in each isolate. */
const WARM = Number(option('--warm') ?? 1);
const REQUESTS_ONLY = args.includes('--requests-only');
const RESULT_NAME = option('--result-name') ?? 'edge-cold-start';
/**
 * --eager-hint adds this tree once more with V8's explicit compile hint (a magic comment on the bundle's first line:
 * compile every function when the script is compiled, not at its first call), written into the bundle wrangler made,
 * as a what-if: wrangler's bundling drops comments, so no deploy of this tree has it.
 */
const EAGER_HINT_VARIANT = args.includes('--eager-hint');
const EAGER_HINT = '//# allFunctionsCalledOnLoad';
const SECRET = 'bench-secret-0123456789';
const ADMIN_TOKEN = 'adm-bench-token-0123456789';
const API_KEY = 'sk-bench-cold-start-0123456789';
const SAMPLING_INTERVAL_US = 100;
const TARGETS = { gzipKiB: 1.2e6 / 1024, readyOverEmptyMs: 60, firstChatCpuMs: 10 };
const CHAT_BODY = JSON.stringify({
  model: 'qwen3-8b-awq', chat_template_kwargs: { enable_thinking: false },
  messages: [{ role: 'system', content: 'You are a helpful assistant.' }, { role: 'user', content: 'Write a haiku about the sea, please.' }],
});

// When Miniflare starts workerd: "ready" is measured both from `new Miniflare(…)` and from workerd's spawn. Before the
// spawn Miniflare encodes the whole config (capnp, in JS), its modules' bytes included: ~25 ms per MB here (the
// tokenizer's Data module alone ~35 ms), Node's work that no deployed isolate does.
let workerdSpawnedAt = 0;
const spawn = childProcess.spawn;
childProcess.spawn = function spawnTimed(command, ...rest) {
  if (String(command).includes('workerd')) workerdSpawnedAt = performance.now();
  return spawn.call(this, command, ...rest);
};

/** The tokenizer data as the tree at root ships it: a Data module (the binary image) or, before, a base64 JS module. */
function tokenizerDataFile(root) {
  const generated = join(root, 'edge/tokenizer/generated');
  for (const name of ['qwen3-tokenizer.bin', 'qwen3-tokenizer-data.js']) {
    if (existsSync(join(generated, name)) && (name.endsWith('.bin') ? existsSync(join(root, 'edge/tokenizer/tokenizer-image.workerd.js')) : true)) {
      return { name, bytes: readFileSync(join(generated, name)) };
    }
  }
  throw new Error(`no tokenizer data under ${generated}`);
}

/**
 * `wrangler deploy --dry-run` of the tree at root as it deploys (its production environment, minified, where its
 * wrangler.toml has one; else the top level): its modules (the script and any Data modules), the sizes wrangler
 * reports and the compatibility settings.
 */
function dryRunDeploy(root, outDir, eagerHint = false) {
  const toml = readFileSync(join(root, 'wrangler.toml'), 'utf8');
  const env = ENV !== 'top' && new RegExp(`^\\[env\\.${ENV}\\]`, 'm').test(toml) ? ['--env', ENV] : [];
  const output = execFileSync(process.execPath, [join(repoRoot, 'node_modules/wrangler/bin/wrangler.js'), 'deploy', '--dry-run', '--outdir', outDir, ...env], {
    cwd: root, encoding: 'utf8', env: { ...process.env, WRANGLER_SEND_METRICS: 'false' }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  const m = /Total Upload: ([\d.]+) KiB \/ gzip: ([\d.]+) KiB/.exec(output);
  if (!m) throw new Error(`wrangler deploy --dry-run printed no sizes:\n${output}`);
  if (eagerHint) writeFileSync(join(outDir, 'index.js'), `${EAGER_HINT}\n${readFileSync(join(outDir, 'index.js'), 'utf8')}`);
  const modules = [{ type: 'ESModule', path: join(outDir, 'index.js'), contents: readFileSync(join(outDir, 'index.js')) }];
  for (const file of readdirSync(outDir)) {
    if (file.endsWith('.bin')) modules.push({ type: 'Data', path: join(outDir, file), contents: readFileSync(join(outDir, file)) });
  }
  const tokenizerData = tokenizerDataFile(root);
  const mapFile = join(outDir, 'index.js.map');
  const sourceMap = existsSync(mapFile) ? JSON.parse(readFileSync(mapFile, 'utf8')) : undefined;
  if (sourceMap && eagerHint) sourceMap.mappings = `;${sourceMap.mappings}`; // the hint's line maps to nothing
  return {
    outDir, modules, script: modules[0].contents.toString(), sourceMap,
    deployed: env.length ? ENV : 'top level',
    compatibilityDate: /compatibility_date\s*=\s*"([^"]+)"/.exec(toml)[1],
    compatibilityFlags: JSON.parse(/compatibility_flags\s*=\s*(\[[^\]]*\])/.exec(toml)[1]),
    rawKiB: Number(m[1]), gzipKiB: Number(m[2]),
    tokenizerForm: tokenizerData.name.endsWith('.bin') ? 'Data module' : 'base64 JS',
    tokenizerRawKiB: tokenizerData.bytes.length / 1024, tokenizerGzipKiB: gzipSync(tokenizerData.bytes).length / 1024,
  };
}

const EMPTY_WORKER = `
export default { async fetch() { return new Response('ok'); } };
export class RateLimiter { async fetch() { return new Response('ok'); } }`;

/** Imports the edge's bundle when asked (under the profiler), so that its compile and global-scope work can be seen. */
const IMPORT_HARNESS = `
export default { async fetch(request) {
  if (new URL(request.url).pathname !== '/import') return new Response('ok');
  const started = performance.now();
  await import('./index.js');
  return new Response(String(performance.now() - started));
} };`;

/**
 * The edge isolate's CPU while fn runs, from a V8 CPU profile (bench/v8-cpu-profile.mjs: idle samples and the waits
 * between samples left out): ms busy, of which "(program)" (compile and other V8 / workerd work outside JS) and GC,
 * and by module / function (readable on an unminified bundle: --env top).
 */
async function profiled(mf, variant, fn) {
  await primeProfiler(mf);
  const profile = await startProfile((await mf.getInspectorURL()).port, 'core:user:edge', SAMPLING_INTERVAL_US);
  const result = await fn();
  const summary = summarizeProfile(await profile.stop(), variant.script, SAMPLING_INTERVAL_US, Math.max(12, TOP * 2), undefined, { sourceMap: variant.sourceMap });
  const self = (name) => summary.bySelf.find((r) => r.name === `${name} ${name}`)?.ms ?? 0;
  return { result, busyMs: summary.busyMs, programMs: self('(program)'), gcMs: self('(garbage collector)'), byModule: summary.byModule, bySelf: summary.bySelf };
}

/**
 * Starts and stops the isolate's profiler once, so that what its first start costs is spent before a measurement: V8
 * then collects the source positions of every function it compiled without them, re-parsing whole scripts (the
 * bundle's top-level code included) on the isolate's thread (perf on workerd: CpuProfiler::StartProfiling →
 * Isolate::CollectSourcePositions → parsing::ParseProgram). That is the profiler's own work, which no deployed isolate
 * does; left in, it weighed on whichever edge had not happened to collect those positions at start-up already.
 */
async function primeProfiler(mf) {
  await (await startProfile((await mf.getInspectorURL()).port, 'core:user:edge', SAMPLING_INTERVAL_US)).stop();
}

/** A key record written straight into KV (edge/key-store.ts's format), so no admin request warms the isolate. */
async function seedKey(mf) {
  const hash = createHash('sha256').update(API_KEY).digest('hex');
  const record = {
    id: `key_${hash.slice(0, 16)}`, hash, hint: API_KEY.slice(0, 10), tenant: 'bench', name: 'cold start', models: null,
    limits: { requests_per_minute: 1000, tokens_per_minute: 10_000_000, concurrent_streams: 100, quota_tokens: null },
    created_at: Date.now(), revoked_at: null,
  };
  const kv = await mf.getKVNamespace('KEYS');
  await kv.put(`key:${hash}`, JSON.stringify(record), { metadata: { id: record.id, tenant: 'bench', revoked: false } });
}

/** migrations/*.sql (where the tree has them) applied to the fresh D1 database, as `npm run deploy` does to the deployed one. */
async function applyMigrations(db, root) {
  const dir = join(root, 'migrations');
  if (!existsSync(dir)) return;
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.sql')).sort()) {
    const sql = readFileSync(join(dir, file), 'utf8').split('\n').filter((line) => !line.trim().startsWith('--')).join('\n');
    await db.batch(sql.split(';').map((s) => s.trim()).filter(Boolean).map((s) => db.prepare(s)));
  }
}

/**
 * Miniflare options: the edge with its bindings. `limiter`: where the rate limiter's Durable Object runs: "edge" (in
 * the edge's worker and isolate), "worker" (a worker of its own, the same modules, in the edge's workerd process and
 * thread) or "process" (a workerd process of its own, reached through Miniflare's dev registry at `registry`; then
 * these are the edge's options and limiterOptions() the limiter's). In its own process it is SQLite-backed, as
 * wrangler.toml declares it; the other two layouts keep the results files' earlier setting (Miniflare's default).
 */
function miniflareOptions(variant, workerUrl, { limiter = 'edge', registry } = {}) {
  const { modules, outDir, compatibilityDate = '2026-04-01', compatibilityFlags = ['nodejs_compat'] } = variant;
  const runtime = { modules, modulesRoot: outDir, compatibilityDate, compatibilityFlags };
  const edge = {
    name: 'edge', ...runtime,
    bindings: { MODEL_ID: 'qwen3-8b-awq', THINKING_DEFAULT: 'auto', WORKER_URLS: workerUrl, WORKER_SECRET: SECRET, ADMIN_TOKEN },
    kvNamespaces: ['KEYS'], d1Databases: ['USAGE'],
    durableObjects: { RATE_LIMITER: limiter === 'edge' ? 'RateLimiter' : { className: 'RateLimiter', scriptName: 'limiter', enableSql: limiter === 'process' } },
  };
  if (limiter === 'edge') return { ...edge, inspectorPort: 0 };
  if (limiter === 'process') return { ...edge, inspectorPort: 0, unsafeDevRegistryPath: registry };
  return { inspectorPort: 0, workers: [edge, { name: 'limiter', ...runtime, durableObjects: { RATE_LIMITER: 'RateLimiter' } }] };
}

/** The rate limiter's own workerd process (limiter "process"): the same modules, serving only the Durable Object. */
function limiterOptions(variant, registry) {
  const { modules, outDir, compatibilityDate = '2026-04-01', compatibilityFlags = ['nodejs_compat'] } = variant;
  return {
    name: 'limiter', modules, modulesRoot: outDir, compatibilityDate, compatibilityFlags, unsafeDevRegistryPath: registry,
    durableObjects: { RATE_LIMITER: { className: 'RateLimiter', enableSql: true } },
  };
}

/**
 * A fresh edge with its rate limiter placed as `limiter` says (miniflareOptions), ready: its Miniflare, the edge's
 * workerd pid and every pid it runs on (the limiter's process too), and dispose().
 */
async function startEdge(variant, workerUrl, limiter) {
  let limiterMf;
  const registry = limiter === 'process' ? mkdtempSync(join(workRoot, 'registry-')) : undefined;
  if (registry) {
    limiterMf = new Miniflare(limiterOptions(variant, registry));
    await limiterMf.ready;
  }
  const limiterPid = registry ? newestWorkerdChild() : undefined;
  const mf = new Miniflare(miniflareOptions(variant, workerUrl, { limiter, registry }));
  await mf.ready;
  const pid = newestWorkerdChild();
  return { mf, pid, pids: [pid, limiterPid].filter(Boolean), dispose: async () => { await mf.dispose(); await limiterMf?.dispose(); } };
}

/**
 * One cold start to readiness: new Miniflare / workerd's spawn → first GET /health answered; the workerd process's CPU
 * so far and the time its threads waited, runnable, for a core that other processes held (a loaded machine's share).
 */
async function readySample(variant, workerUrl) {
  const started = performance.now();
  const mf = new Miniflare(miniflareOptions(variant, workerUrl));
  try {
    await (await mf.dispatchFetch('http://edge/health')).text();
    const now = performance.now();
    const pid = newestWorkerdChild();
    const readyFromSpawnMs = now - workerdSpawnedAt;
    return {
      readyMs: now - started, readyFromSpawnMs, readyUnservedMs: readyFromSpawnMs - processRunQueueNs(pid) / 1e6, startupCpuMs: processCpuNs(pid) / 1e6,
    };
  } finally {
    await mf.dispose();
  }
}

/**
 * Cold isolates, each request profiled as the first its isolate serves (as a cold isolate on Cloudflare serves the
 * request that started it): a GET /health (the request part of the ready time), and the first and second chat
 * completions with the rate limiter's Durable Object in a workerd process of its own (as deployed: on Cloudflare it
 * runs elsewhere than the edge), and once more with it in a worker of its own in the edge's process (the layout of
 * results files before 2026-12-02T06:30Z). The empty worker (isEdge false): a second GET /health of one isolate.
 */
async function coldSample(variant, workerUrl, isEdge) {
  const mf = isEdge ? undefined : new Miniflare(miniflareOptions(variant, workerUrl));
  let edge;
  try {
    const timed = async ({ mf: on, pids }, request) => {
      const cpuNs = () => pids.reduce((sum, p) => sum + processCpuNs(p), 0);
      await primeProfiler(on);
      const before = cpuNs();
      const cpu = await profiled(on, variant, request);
      return { ...cpu, processMs: (cpuNs() - before) / 1e6 };
    };
    if (!isEdge) {
      await (await mf.dispatchFetch('http://edge/health')).text();
      const health2 = await timed({ mf, pids: [newestWorkerdChild()] }, async () => (await mf.dispatchFetch('http://edge/health')).text());
      return { requestCpuMs: health2.processMs, requestIsolateMs: health2.busyMs };
    }
    // workerd evaluates the Worker's modules before it listens: after `ready` the isolate is up and has served nothing
    edge = await startEdge(variant, workerUrl, 'edge');
    const firstHealth = await timed(edge, async () => (await edge.mf.dispatchFetch('http://edge/health')).text());
    const chats = async (limiter, count) => {
      await edge.dispose();
      edge = await startEdge(variant, workerUrl, limiter);
      await seedKey(edge.mf);
      await applyMigrations(await edge.mf.getD1Database('USAGE'), variant.root);
      const results = [];
      for (let i = 0; i < count; i++) {
        results.push(await timed(edge, async () => {
          const res = await edge.mf.dispatchFetch('http://edge/v1/chat/completions', {
            method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${API_KEY}` }, body: CHAT_BODY,
          });
          const text = await res.text();
          if (res.status !== 200) throw new Error(`chat completion: ${res.status} ${text}`);
        }));
      }
      return results;
    };
    const [first, ...warm] = await chats('process', 1 + WARM);
    const second = {
      busyMs: median(warm.map((w) => w.busyMs)), processMs: median(warm.map((w) => w.processMs)),
      byModule: meanRows(warm.map((w) => w.byModule), 99), bySelf: meanRows(warm.map((w) => w.bySelf), 99),
      // each request's own figures: the 2nd alone, and where the isolate's collections fell
      perRequest: [first, ...warm].map((w) => ({ busyMs: w.busyMs, gcMs: w.gcMs })),
    };
    const firstLimiterInProcess = REQUESTS_ONLY ? { busyMs: NaN } : (await chats('worker', 1))[0];
    return { firstHealth, first, second, firstLimiterInProcess };
  } finally {
    await mf?.dispose();
    await edge?.dispose();
  }
}

/** The edge's module evaluation under the profiler: a harness worker imports the bundle at a request. */
async function startupProfile(variant, workerUrl) {
  const options = miniflareOptions(variant, workerUrl);
  const harness = { type: 'ESModule', path: join(variant.outDir, 'harness.js'), contents: IMPORT_HARNESS };
  const mf = new Miniflare({ ...options, modules: [harness, ...variant.modules], durableObjects: {} });
  try {
    await (await mf.dispatchFetch('http://edge/')).text();
    return await profiled(mf, variant, async () => (await mf.dispatchFetch('http://edge/import')).text());
  } finally {
    await mf.dispose();
  }
}

/** A fixed loop's cost, for the profiler's own: the worker answers /?n=N after N rounds of integer arithmetic. */
const LOOP_WORKER = `
export default { async fetch(request) {
  const n = Number(new URL(request.url).searchParams.get('n'));
  let x = 0;
  for (let i = 0; i < n; i++) x = (x * 31 + i) % 1000003;
  return new Response(String(x));
} };`;

/**
 * What sampling costs the isolate: the same warm loop's edge-isolate CPU under the profiler against its workerd
 * process CPU without it (less an empty request's); the ratio, median of 5 (> 1: the profiled figures are that much
 * above what the isolate would spend unprofiled).
 */
async function profilerCost() {
  const dir = join(workRoot, 'loop');
  const loop = { outDir: dir, script: LOOP_WORKER, modules: [{ type: 'ESModule', path: join(dir, 'index.js'), contents: LOOP_WORKER }] };
  const mf = new Miniflare({ name: 'edge', modules: loop.modules, modulesRoot: dir, compatibilityDate: '2026-04-01', inspectorPort: 0 });
  try {
    await mf.ready;
    const pid = newestWorkerdChild();
    const get = async (n) => (await mf.dispatchFetch(`http://edge/?n=${n}`)).text();
    const cpuOf = async (n) => { const before = processCpuNs(pid); await get(n); return (processCpuNs(pid) - before) / 1e6; };
    for (let i = 0; i < 5; i++) await get(1e6);
    const ratios = [];
    for (let i = 0; i < 5; i++) {
      const unprofiled = (await cpuOf(2e6)) - (await cpuOf(0));
      const { busyMs } = await profiled(mf, loop, () => get(2e6));
      ratios.push(busyMs / unprofiled);
    }
    return median(ratios);
  } finally {
    await mf.dispose();
  }
}

/** The p-quantile of xs, interpolated between the two nearest ranks (p = 0.5: the median). */
function quantile(xs, p) {
  const sorted = [...xs].sort((a, b) => a - b);
  const at = (sorted.length - 1) * p;
  const below = Math.floor(at);
  return sorted[below] + (sorted[Math.min(below + 1, sorted.length - 1)] - sorted[below]) * (at - below);
}
const median = (xs) => quantile(xs, 0.5);
const mean = (xs) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN);
const round = (x) => +x.toFixed(1);

/** Rows (name, ms) of several profiles' summaries merged: mean ms per profile, largest first. */
function meanRows(lists, count = TOP) {
  const total = new Map();
  for (const rows of lists) for (const { name, ms } of rows) total.set(name, (total.get(name) ?? 0) + ms);
  return [...total].sort((a, b) => b[1] - a[1]).slice(0, count).map(([name, ms]) => ({ name, ms: round(ms / lists.length) }));
}

const workRoot = mkdtempSync(join(os.tmpdir(), 'edge-cold-start-'));
const baselines = (BASELINE_REF ? BASELINE_REF.split(',') : []).map((ref, i) => ({ ref, root: checkoutBaseline(repoRoot, ref, mkdtempSync(join(workRoot, `baseline-${i}-`))) }));
const stub = await startStubWorker();
const loadAtStart = os.loadavg().map((l) => l.toFixed(1)).join(' / ');
try {
  const variants = [{ label: 'this tree', root: repoRoot }];
  for (const b of baselines) variants.push({ label: b.ref, root: b.root });
  if (EAGER_HINT_VARIANT) variants.push({ label: 'this tree, compile hint', root: repoRoot, eagerHint: true });
  for (const [i, v] of variants.entries()) Object.assign(v, dryRunDeploy(v.root, join(workRoot, `out-${i}`), v.eagerHint), { samples: [], startups: [] });
  const emptyDir = join(workRoot, 'empty');
  const empty = {
    outDir: emptyDir, modules: [{ type: 'ESModule', path: join(emptyDir, 'index.js'), contents: EMPTY_WORKER }], script: EMPTY_WORKER, samples: [],
    compatibilityDate: variants[0].compatibilityDate, compatibilityFlags: variants[0].compatibilityFlags,
  };
  // the empty worker with this tree's Data modules (the tokenizer image) imported: what their bytes alone cost
  const dataModules = variants[0].modules.filter((m) => m.type === 'Data');
  const emptyWithData = dataModules.length > 0 && {
    ...empty, samples: [],
    modules: [{ type: 'ESModule', path: join(variants[0].outDir, 'empty-with-data.js'), contents: `${dataModules.map((m, i) => `import data${i} from './${basename(m.path)}';\n`).join('')}${EMPTY_WORKER.replace("new Response('ok')", `new Response(String(${dataModules.map((_, i) => `data${i}.byteLength`).join(' + ')}))`)}` }, ...dataModules],
    outDir: variants[0].outDir,
  };
  if (!REQUESTS_ONLY) await readySample(empty, stub.url); // the process's first workerd start pays one-time costs (binary, Node's modules): not a sample
  // Ready: every variant and the empty worker once per round, the order rotated each round so that none is always
  // first after the empty one; each variant's figures are its differences from the empty worker of the same round.
  const readyVariants = [empty, ...(emptyWithData ? [emptyWithData] : []), ...variants];
  for (const v of readyVariants) v.ready = [];
  for (let round = 0; round < (REQUESTS_ONLY ? 0 : READY_SAMPLES); round++) {
    if (round % 8 === 0) process.stderr.write(`ready, round ${round + 1}/${READY_SAMPLES}\n`);
    for (let i = 0; i < readyVariants.length; i++) {
      const v = readyVariants[(i + round) % readyVariants.length];
      v.ready.push(await readySample(v, stub.url));
    }
  }
  for (let round = 0; round < SAMPLES; round++) {
    process.stderr.write(`requests, round ${round + 1}/${SAMPLES}\n`);
    empty.samples.push(await coldSample(empty, stub.url, false));
    // rotated too: the same order every round let one edge always follow the empty worker's cold start
    for (const v of variants.map((_, i) => variants[(i + round) % variants.length])) {
      v.samples.push(await coldSample(v, stub.url, true));
      if (!REQUESTS_ONLY) v.startups.push(await startupProfile(v, stub.url));
    }
  }
  const samplingCost = await profilerCost();
  const emptyReady = median(empty.ready.map((s) => s.readyMs));
  const emptyReadyFromSpawn = median(empty.ready.map((s) => s.readyFromSpawnMs));
  const emptyReadyUnserved = median(empty.ready.map((s) => s.readyUnservedMs));
  /** A variant's differences from the empty worker of the same round, for one field of the ready samples. */
  const overEmpty = (v, key) => v.ready.map((s, i) => s[key] - empty.ready[i][key]);
  const dataOnly = emptyWithData && {
    readyOverEmptyMs: round(median(overEmpty(emptyWithData, 'readyFromSpawnMs'))),
    readyOverEmptyWithMiniflareMs: round(median(overEmpty(emptyWithData, 'readyMs'))),
  };
  const emptyCpu = median(empty.ready.map((s) => s.startupCpuMs));
  const emptyRequestCpu = median(empty.samples.map((s) => s.requestCpuMs));
  const emptyRequestIsolate = median(empty.samples.map((s) => s.requestIsolateMs));
  const rows = variants.map((v) => {
    const chat = (which, key) => median(v.samples.map((s) => s[which][key]));
    const startup = (key) => median(v.startups.map((s) => s[key]));
    return {
      edge: v.label, deployed: v.deployed, tokenizerForm: v.tokenizerForm,
      bundleKiB: +v.rawKiB.toFixed(0), gzipKiB: +v.gzipKiB.toFixed(0),
      tokenizerKiB: +v.tokenizerRawKiB.toFixed(0), tokenizerGzipKiB: +v.tokenizerGzipKiB.toFixed(0),
      readyOverEmptyMs: round(median(overEmpty(v, 'readyFromSpawnMs'))),
      readyOverEmptySpreadMs: [round(quantile(overEmpty(v, 'readyFromSpawnMs'), 0.25)), round(quantile(overEmpty(v, 'readyFromSpawnMs'), 0.75))],
      readyOverEmptyWithMiniflareMs: round(median(overEmpty(v, 'readyMs'))),
      readyOverEmptyLessWaitsMs: round(median(overEmpty(v, 'readyUnservedMs'))),
      firstHealthIsolateMs: round(chat('firstHealth', 'busyMs')),
      startupCpuOverEmptyMs: round(median(overEmpty(v, 'startupCpuMs'))),
      startupCpuOverEmptySpreadMs: [round(quantile(overEmpty(v, 'startupCpuMs'), 0.25)), round(quantile(overEmpty(v, 'startupCpuMs'), 0.75))],
      startupIsolateMs: round(startup('busyMs')), startupCompileMs: round(startup('programMs')), startupGcMs: round(startup('gcMs')),
      firstChatIsolateMs: round(chat('first', 'busyMs')), firstChatCpuMs: round(chat('first', 'processMs')),
      /** the 1st chat completion's edge isolate CPU over the isolates: p90, max, and every isolate's (ms) */
      firstChatIsolateP90Ms: round(quantile(v.samples.map((s) => s.first.busyMs), 0.9)), firstChatIsolateMaxMs: round(Math.max(...v.samples.map((s) => s.first.busyMs))),
      firstChatIsolateSamplesMs: v.samples.map((s) => s.first.busyMs),
      secondChatIsolateMs: round(chat('second', 'busyMs')), secondChatCpuMs: round(chat('second', 'processMs')),
      secondAloneIsolateMs: round(median(v.samples.map((s) => s.second.perRequest[1].busyMs))),
      /** mean GC ms per isolate in its 1st request, its 2nd, and its later ones (each), and how many isolates collected in each */
      gcMeanMs: [0, 1, 2].map((k) => +mean(v.samples.flatMap((s) => s.second.perRequest.slice(k, k === 2 ? undefined : k + 1).map((r) => r.gcMs))).toFixed(2)),
      gcIsolates: [0, 1, 2].map((k) => v.samples.filter((s) => s.second.perRequest.slice(k, k === 2 ? undefined : k + 1).some((r) => r.gcMs > 0)).length),
      firstChatLimiterInProcessIsolateMs: round(chat('firstLimiterInProcess', 'busyMs')),
      startupByModule: meanRows(v.startups.map((s) => s.byModule)), startupBySelf: meanRows(v.startups.map((s) => s.bySelf)),
      firstChatByModule: meanRows(v.samples.map((s) => s.first.byModule)), firstChatBySelf: meanRows(v.samples.map((s) => s.first.bySelf)),
      warmChatByModule: meanRows(v.samples.map((s) => s.second.byModule)), warmChatBySelf: meanRows(v.samples.map((s) => s.second.bySelf)),
    };
  });
  const header = '| edge | bundle (config) | bundle KiB | gzip KiB | tokenizer data KiB (gzip; form) | cold isolate ready over empty, from workerd\'s start ms (quartiles) | (less workerd\'s waits for a core ms) | (from new Miniflare ms) | start-up, edge isolate ms (of it compile / GC) | start-up, workerd process over empty ms (quartiles) | 1st GET /health, edge isolate CPU ms | 1st chat completion, edge isolate CPU ms | 1st, workerd process CPU ms | 2nd chat completion, edge isolate CPU ms | 2nd, workerd process CPU ms | (1st chat completion, limiter in the edge\'s process, edge isolate CPU ms) |';
  const lines = [header, `|${'---|'.repeat(16)}`, ...rows.map((r) =>
    `| ${r.edge} | ${r.deployed} | ${r.bundleKiB} | ${r.gzipKiB} | ${r.tokenizerKiB} (${r.tokenizerGzipKiB}; ${r.tokenizerForm}) | ${r.readyOverEmptyMs} (${r.readyOverEmptySpreadMs.join('–')}) | ${r.readyOverEmptyLessWaitsMs} | ${r.readyOverEmptyWithMiniflareMs} | ${r.startupIsolateMs} (${r.startupCompileMs} / ${r.startupGcMs}) | ${r.startupCpuOverEmptyMs} (${r.startupCpuOverEmptySpreadMs.join('–')}) | ${r.firstHealthIsolateMs} | ${r.firstChatIsolateMs} | ${r.firstChatCpuMs} | ${r.secondChatIsolateMs} | ${r.secondChatCpuMs} | ${r.firstChatLimiterInProcessIsolateMs} |`)];
  if (REQUESTS_ONLY) {
    // the request columns alone, with each one's ratio to the first baseline's in the same run
    const base = rows[1];
    const ratio = (r, key) => (base ? ` (${(r[key] / base[key]).toFixed(2)})` : '');
    const later = WARM > 1 ? ` / 3rd–${WARM + 1}th (each)` : '';
    lines.splice(0, lines.length, `| edge | 1st GET /health, edge isolate CPU ms | 1st chat completion, edge isolate CPU ms${base ? ` (÷ ${base.edge})` : ''} | the same, p90 / max over the isolates ms | 1st, workerd process CPU ms | ${WARM === 1 ? '2nd' : `warm (2nd to ${WARM + 1}th, median)`} chat completion, edge isolate CPU ms${base ? ` (÷ ${base.edge})` : ''} | the same, workerd process CPU ms | 2nd chat completion alone, edge isolate CPU ms${base ? ` (÷ ${base.edge})` : ''} | GC in the 1st / 2nd${later} chat completion, mean ms per isolate | isolates that collected in the 1st / 2nd${later ? ' / 3rd or later' : ''} |`, `|${'---|'.repeat(10)}`,
      ...rows.map((r) => `| ${r.edge} | ${r.firstHealthIsolateMs} | ${r.firstChatIsolateMs}${ratio(r, 'firstChatIsolateMs')} | ${r.firstChatIsolateP90Ms} / ${r.firstChatIsolateMaxMs} | ${r.firstChatCpuMs} | ${r.secondChatIsolateMs}${ratio(r, 'secondChatIsolateMs')} | ${r.secondChatCpuMs} | ${r.secondAloneIsolateMs}${ratio(r, 'secondAloneIsolateMs')} | ${r.gcMeanMs.slice(0, WARM > 1 ? 3 : 2).join(' / ')} | ${r.gcIsolates.slice(0, WARM > 1 ? 3 : 2).map((n) => `${n}/${SAMPLES}`).join(' / ')} |`));
  }
  const listed = (top) => top.map((t) => `${t.name} ${t.ms}`).join('; ');
  const topLines = rows.flatMap((r) => [
    `- ${r.edge}, start-up, by module: ${listed(r.startupByModule)}`, `- ${r.edge}, start-up, by function: ${listed(r.startupBySelf)}`,
    `- ${r.edge}, 1st chat completion, by module: ${listed(r.firstChatByModule)}`, `- ${r.edge}, 1st chat completion, by function: ${listed(r.firstChatBySelf)}`,
    `- ${r.edge}, ${WARM === 1 ? '2nd chat completion' : `warm chat completions (2nd to ${WARM + 1}th, mean)`}, by module: ${listed(r.warmChatByModule)}`, `- ${r.edge}, the same, by function: ${listed(r.warmChatBySelf)}`,
  ].filter((line) => !REQUESTS_ONLY || !line.includes('start-up'))); 
  const ours = rows[0];
  const verdict = REQUESTS_ONLY ? `Target (issue 13): first chat completion ≤ ${TARGETS.firstChatCpuMs} ms CPU of the edge isolate: ${ours.firstChatIsolateMs <= TARGETS.firstChatCpuMs ? 'met' : 'not met'}.` : `Targets (issue 13): gzip bundle ≤ ${TARGETS.gzipKiB.toFixed(0)} KiB (1.2 MB): ${ours.gzipKiB <= TARGETS.gzipKiB ? 'met' : 'not met'}; `
    + `ready ≤ ${TARGETS.readyOverEmptyMs} ms over an empty worker: ${ours.readyOverEmptyMs <= TARGETS.readyOverEmptyMs ? 'met' : 'not met'}; `
    + `first chat completion ≤ ${TARGETS.firstChatCpuMs} ms CPU of the edge isolate: ${ours.firstChatIsolateMs <= TARGETS.firstChatCpuMs ? 'met' : 'not met'}.`;
  const machine = `${os.cpus()[0]?.model ?? 'cpu'} × ${os.cpus().length}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}, workerd via miniflare ${JSON.parse(readFileSync(join(repoRoot, 'node_modules/miniflare/package.json'), 'utf8')).version}`;
  const command = `node --import tsx bench/edge-cold-start.mjs${BASELINE_REF ? ` --baseline ${BASELINE_REF}` : ''} --samples ${SAMPLES}${REQUESTS_ONLY ? ' --requests-only' : ` --ready-samples ${READY_SAMPLES}`}${WARM === 1 ? '' : ` --warm ${WARM}`}${EAGER_HINT_VARIANT ? ' --eager-hint' : ''}${ENV === 'production' ? '' : ` --env ${ENV}`}${RESULT_NAME === 'edge-cold-start' ? '' : ` --result-name ${RESULT_NAME}`}`;
  const date = new Date().toISOString();
  const load = `load average ${loadAtStart} at the start, ${os.loadavg().map((l) => l.toFixed(1)).join(' / ')} at the end (1 / 5 / 15 min)`;
  const notes = [
    'Bundle sizes are what `wrangler deploy --dry-run --outdir` prints ("Total Upload … / gzip …") for the form that deploys: `--env production` (minified) where wrangler.toml has that environment, else its top level. The tokenizer data is edge/tokenizer/generated/qwen3-tokenizer.bin (a Data module) or, before, qwen3-tokenizer-data.js (base64 in JS); its gzip by node:zlib.',
    `Each sample is a fresh workerd process on the modules wrangler wrote, with the edge's bindings (KV, D1, the rate limiter's Durable Object). Ready time and start-up CPU: ${READY_SAMPLES} cold starts of each variant and of the empty worker, one of each per round, the order rotated every round; a variant's figure is the median of its ${READY_SAMPLES} differences from the empty worker of the same round (so that a busy stretch of the machine weighs on both sides of a difference), with the quartiles of those differences in brackets. The requests' CPU: median of ${SAMPLES} cold starts per variant, one of each per round, the order rotated every round (before 2026-12-02T09:45Z the same order every round). (Results files before 2026-12-02T09:30Z took the ready time from those ${SAMPLES} samples, as the difference of two medians: on this machine three runs of one tree read 56.6, 64.0 and 63.3 ms.)`,
    `"ready" = time from workerd's spawn to the first answered GET /health (workerd's start, the Worker's module evaluation, that request); an empty worker with the same bindings takes ${emptyReadyFromSpawn.toFixed(0)} ms here (median), and the column is the median of the round-by-round differences from it. "Less workerd's waits for a core" takes off the time its threads were runnable but not running (/proc/<pid>/task/*/schedstat), the share a loaded machine adds (the empty worker: ${emptyReadyUnserved.toFixed(0)} ms): an estimate of the column on a quiet machine. "From new Miniflare" also counts what Miniflare does in Node before it spawns workerd: it encodes the whole workerd config, every module's bytes included, with a capnp encoder written in JS (the empty worker: ${emptyReady.toFixed(0)} ms). ${dataOnly ? `The empty worker with only this tree's Data module (the tokenizer image) added and read is ${dataOnly.readyOverEmptyWithMiniflareMs} ms later than the empty one from new Miniflare and ${dataOnly.readyOverEmptyMs} ms from workerd's spawn: ` : ''}work of the local harness that no deployed isolate does (Cloudflare stores the upload once), so the target is read on the first column.`,
    'The first GET /health, chat completions: each profiled as the first request that a fresh isolate serves (workerd evaluates the modules before it listens), as a cold isolate on Cloudflare serves the request that started it: the first completion pays the router\'s and the middleware\'s first runs too. Results files before 2026-12-02T04:00Z sent a GET /health first and measured the completions after it.',
    `"edge isolate" CPU = the V8 CPU profiler of the Worker's isolate through workerd's inspector (sampling every ${SAMPLING_INTERVAL_US} µs asked; the gaps are longer on a loaded machine), Profiler.start/stop around the request: every sample in which the isolate ran JS, compiled it ("(program)") or collected garbage, each charged the time to the next sample but at most twice the median gap (a longer gap is the isolate waiting on KV, D1, the Durable Object's storage, the stand-in GPU worker or a core, not running). On a loaded machine a sample still counts time in which the isolate's thread waited for a core, so the figure is an upper bound. This is what Cloudflare's per-invocation CPU time (\`cpuTime\`, the free plan's 10 ms limit) measures; workerd run locally fills \`cpuTime\` and \`wallTime\` of a tail worker's trace events with 0, so the profiler is the way to read it here. The chat completions are measured on another cold start of the edge whose rate limiter (a Durable Object, SQLite-backed as deployed) runs in a workerd process of its own, reached through Miniflare's dev registry, as on Cloudflare, where a Durable Object runs elsewhere than the Worker that calls it and is billed apart: the edge isolate's figure holds the edge's side of the call, not the limiter's work. Results files before 2026-12-02T06:30Z ran the limiter in a worker of its own in the edge's process; workerd then starts the object on the edge's thread at the first call, inside the edge's \`admit\` call (in a profile of 54b2c20 that call stayed on the edge's stack for 17 ms of wall time, 2 ms of it sampled, against one 0.16 ms sample with the limiter in a process of its own), and the profiler counted that as the edge isolate's; the last column keeps that measure. Before the first request the edge's D1 database gets the tree's migrations/ applied, as \`npm run deploy\` applies them to the deployed one (from 2026-12-02T06:30Z; before, a fresh database, which the edge then gave its table at the first usage record). A GET /health on the empty worker measures ${emptyRequestIsolate.toFixed(2)} ms this way. The profiler is started and stopped once before each measured request (from 2026-12-02T09:40Z): its first start in an isolate makes V8 collect the source positions of every function compiled without them, re-parsing the scripts, the bundle included, on the isolate's thread, which the figures then counted for an edge whose start-up had not collected them already (perf on workerd). Sampling has its own cost in the isolate: a warm fixed loop measures ${samplingCost.toFixed(2)}× its workerd process CPU without the profiler in this run (a ratio above 1 is the profiler's own share of the profiled figures; they are not corrected).`,
    `"workerd process" CPU = the whole process's CPU time (/proc/<pid>/task/*/schedstat) during the request: the isolate plus workerd itself and Miniflare's KV, D1 and Durable Object storage simulators, which on Cloudflare run elsewhere; a GET /health on the empty worker costs ${emptyRequestCpu.toFixed(1)} ms the same way.`,
    `Start-up: workerd's own start is the empty worker's process CPU until its first answer (${emptyCpu.toFixed(0)} ms); "start-up, workerd process over empty" is the edge's process CPU until its first answer minus that. "start-up, edge isolate" is the edge bundle's module evaluation profiled in its isolate: a harness worker imports the bundle (\`await import('./index.js')\`) at a request under the profiler; "(program)" samples are script compile and other work of V8 and workerd outside JS, the rest the global-scope work of the bundle's modules and GC.`,
    ...(REQUESTS_ONLY ? [`Requests only (--requests-only): no ready time, no start-up profile, no sample with the limiter in the edge's process. Each isolate serves ${1 + WARM} chat completions in a row, each profiled on its own; "warm" is the median over isolates of the median of its requests after the first, "2nd alone" the median of the second requests (the figure deploy-budget.md's "second" row reads). "GC" is the profile's "(garbage collector)" samples in that request: mean ms per isolate (later requests: per request), and in how many isolates such a sample fell there.`] : []),
    `The machine (2 cores) was shared with other work while this ran (${load}): compare the rows of one run, not absolute numbers across runs.`,
  ];
  const output = `${lines.join('\n')}\n\nWhere the edge isolate's time went (mean ms per isolate; modules are edge/… files, each counting the libraries it called, named from the source map that wrangler writes for the minified bundle or from the comments of an unminified one):\n${topLines.join('\n')}\n\n${verdict}`;
  console.log(output);
  writeFileSync(join(repoRoot, `bench/results/${RESULT_NAME}.md`),
    `# Edge cold start\n\nCommand: \`${command}\`  \nMachine: ${machine}; ${load}  \nDate: ${date}\n\n${output}\n\n${notes.filter((_, i) => !REQUESTS_ONLY || ![2, 6].includes(i)).map((n) => `- ${n}`).join('\n')}\n`);
  writeFileSync(join(repoRoot, `bench/results/${RESULT_NAME}.json`), JSON.stringify({
    command, machine, load, date, samples: SAMPLES, readySamples: READY_SAMPLES, samplingIntervalUs: SAMPLING_INTERVAL_US, targets: TARGETS, emptyReadyMs: emptyReady, emptyStartupCpuMs: emptyCpu,
    profiledOverUnprofiled: samplingCost, emptyReadyFromSpawnMs: emptyReadyFromSpawn, emptyReadyLessWaitsMs: emptyReadyUnserved, emptyWithDataModules: dataOnly, emptyRequestCpuMs: emptyRequestCpu, emptyRequestIsolateMs: emptyRequestIsolate, rows, notes,
  }, null, 2) + '\n');
} finally {
  stub.close();
  for (const b of baselines) removeBaseline(repoRoot, b.root);
}
