// Cold start of the deployed edge, measured in workerd: bundle size (raw and gzip, as `wrangler deploy --dry-run`
// reports it, and the tokenizer data's share), startup CPU and cold-isolate ready time over an empty worker with the
// same bindings, and the CPU of the first /v1/chat/completions. Each sample is a fresh workerd process (Miniflare) on
// the bundle wrangler wrote; the variants are sampled in alternating rounds. `--baseline REF` adds the edge as it is at
// git REF (bench/git-baseline.mjs), so before and after come from one run.
// CPU is the workerd process's own (the sum of its threads' run time in /proc/<pid>/task/*/schedstat, ns): an upper
// bound on what the isolate uses, and the empty worker's first request shows the floor every request pays here.
// Run: node --import tsx bench/edge-cold-start.mjs [--baseline main] [--samples 5]
//   → prints a table, writes bench/results/edge-cold-start.{md,json}.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createServer } from 'node:http';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { Miniflare } from 'miniflare';
import { checkoutBaseline, removeBaseline } from './git-baseline.mjs';
import { newestWorkerdChild, processCpuNs } from './workerd-process.mjs';

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const option = (name) => (args.includes(name) ? args[args.indexOf(name) + 1] : undefined);
const BASELINE_REF = option('--baseline');
const SAMPLES = Number(option('--samples') ?? 5);
const SECRET = 'bench-secret-0123456789';
const ADMIN_TOKEN = 'adm-bench-token-0123456789';
const API_KEY = 'sk-bench-cold-start-0123456789';
const TARGETS = { gzipKiB: 1.2e6 / 1024, readyOverEmptyMs: 60, firstChatCpuMs: 10 };
const CHAT_BODY = JSON.stringify({
  model: 'qwen3-8b-awq', chat_template_kwargs: { enable_thinking: false },
  messages: [{ role: 'system', content: 'You are a helpful assistant.' }, { role: 'user', content: 'Write a haiku about the sea, please.' }],
});

/** Stand-in GPU worker: answers every POST /v1/generate at once with a few tokens and a stop, GET /ready as a worker. */
async function startStubWorker() {
  const server = createServer((req, res) => {
    if (req.method === 'GET' && req.url === '/ready') return void res.writeHead(200, { 'content-type': 'application/json' }).end('{"ready":true,"max_context":40960}');
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(`data: ${JSON.stringify({ tokens: [54, 4693, 11, 6785, 13] })}\n\n`);
      res.end(`data: ${JSON.stringify({ tokens: [151645], finish_reason: 'stop', usage: { prompt_tokens: 30, completion_tokens: 6, cached_tokens: 0 } })}\n\n`);
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${server.address().port}`, close: () => server.close() };
}

/**
 * `wrangler deploy --dry-run` of the tree at root as it deploys (its production environment, minified, where its
 * wrangler.toml has one; else the top level): its bundle, the sizes wrangler reports and the compatibility settings.
 */
function dryRunDeploy(root, outDir) {
  const toml = readFileSync(join(root, 'wrangler.toml'), 'utf8');
  const env = /^\[env\.production\]/m.test(toml) ? ['--env', 'production'] : [];
  const output = execFileSync(process.execPath, [join(repoRoot, 'node_modules/wrangler/bin/wrangler.js'), 'deploy', '--dry-run', '--outdir', outDir, ...env], {
    cwd: root, encoding: 'utf8', env: { ...process.env, WRANGLER_SEND_METRICS: 'false' }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  const m = /Total Upload: ([\d.]+) KiB \/ gzip: ([\d.]+) KiB/.exec(output);
  if (!m) throw new Error(`wrangler deploy --dry-run printed no sizes:\n${output}`);
  const tokenizerData = readFileSync(join(root, 'edge/tokenizer/generated/qwen3-tokenizer-data.js'));
  return {
    script: readFileSync(join(outDir, 'index.js'), 'utf8'),
    deployed: env.length ? 'production' : 'top level',
    compatibilityDate: /compatibility_date\s*=\s*"([^"]+)"/.exec(toml)[1],
    compatibilityFlags: JSON.parse(/compatibility_flags\s*=\s*(\[[^\]]*\])/.exec(toml)[1]),
    rawKiB: Number(m[1]), gzipKiB: Number(m[2]),
    tokenizerRawKiB: tokenizerData.length / 1024, tokenizerGzipKiB: gzipSync(tokenizerData).length / 1024,
  };
}

const EMPTY_WORKER = `
export default { async fetch() { return new Response('ok'); } };
export class RateLimiter { async fetch() { return new Response('ok'); } }`;

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

/** One cold isolate: spawn → first /health answered (ready; CPU so far), then the first and second chat completions. */
async function coldSample({ script, compatibilityDate = '2026-04-01', compatibilityFlags = ['nodejs_compat'] }, workerUrl, isEdge) {
  const started = performance.now();
  const mf = new Miniflare({
    modules: true, script, compatibilityDate, compatibilityFlags,
    bindings: { MODEL_ID: 'qwen3-8b-awq', THINKING_DEFAULT: 'auto', WORKER_URLS: workerUrl, WORKER_SECRET: SECRET, ADMIN_TOKEN },
    kvNamespaces: ['KEYS'], d1Databases: ['USAGE'], durableObjects: { RATE_LIMITER: 'RateLimiter' },
  });
  try {
    const health = await mf.dispatchFetch('http://edge/health');
    await health.text();
    const readyMs = performance.now() - started;
    const pid = newestWorkerdChild();
    const startupCpuMs = processCpuNs(pid) / 1e6;
    if (!isEdge) {
      const before = processCpuNs(pid);
      await (await mf.dispatchFetch('http://edge/health')).text();
      return { readyMs, startupCpuMs, requestCpuMs: (processCpuNs(pid) - before) / 1e6 };
    }
    await seedKey(mf);
    const chat = async () => {
      const before = processCpuNs(pid);
      const res = await mf.dispatchFetch('http://edge/v1/chat/completions', {
        method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${API_KEY}` }, body: CHAT_BODY,
      });
      const text = await res.text();
      if (res.status !== 200) throw new Error(`chat completion: ${res.status} ${text}`);
      return (processCpuNs(pid) - before) / 1e6;
    };
    const firstChatCpuMs = await chat();
    const secondChatCpuMs = await chat();
    return { readyMs, startupCpuMs, firstChatCpuMs, secondChatCpuMs };
  } finally {
    await mf.dispose();
  }
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const workRoot = mkdtempSync(join(os.tmpdir(), 'edge-cold-start-'));
const baselineRoot = BASELINE_REF && checkoutBaseline(repoRoot, BASELINE_REF, workRoot);
const stub = await startStubWorker();
try {
  const variants = [{ label: 'this tree', root: repoRoot }];
  if (baselineRoot) variants.push({ label: BASELINE_REF, root: baselineRoot });
  for (const [i, v] of variants.entries()) Object.assign(v, dryRunDeploy(v.root, join(workRoot, `out-${i}`)), { samples: [] });
  const empty = { samples: [] };
  for (let round = 0; round < SAMPLES; round++) {
    process.stderr.write(`round ${round + 1}/${SAMPLES}\n`);
    const { compatibilityDate, compatibilityFlags } = variants[0];
    empty.samples.push(await coldSample({ script: EMPTY_WORKER, compatibilityDate, compatibilityFlags }, stub.url, false));
    for (const v of variants) v.samples.push(await coldSample(v, stub.url, true));
  }
  const emptyReady = median(empty.samples.map((s) => s.readyMs));
  const emptyCpu = median(empty.samples.map((s) => s.startupCpuMs));
  const emptyRequestCpu = median(empty.samples.map((s) => s.requestCpuMs));
  const rows = variants.map((v) => ({
    edge: v.label, deployed: v.deployed,
    bundleKiB: +v.rawKiB.toFixed(0), gzipKiB: +v.gzipKiB.toFixed(0),
    tokenizerKiB: +v.tokenizerRawKiB.toFixed(0), tokenizerGzipKiB: +v.tokenizerGzipKiB.toFixed(0),
    startupCpuOverEmptyMs: +(median(v.samples.map((s) => s.startupCpuMs)) - emptyCpu).toFixed(1),
    readyOverEmptyMs: +(median(v.samples.map((s) => s.readyMs)) - emptyReady).toFixed(1),
    firstChatCpuMs: +median(v.samples.map((s) => s.firstChatCpuMs)).toFixed(1),
    secondChatCpuMs: +median(v.samples.map((s) => s.secondChatCpuMs)).toFixed(1),
  }));
  const header = '| edge | bundle (config) | bundle KiB | gzip KiB | tokenizer data KiB (gzip) | startup CPU over empty ms | cold isolate ready over empty ms | 1st chat completion CPU ms | 2nd chat completion CPU ms |';
  const lines = [header, '|---|---|---|---|---|---|---|---|---|', ...rows.map((r) =>
    `| ${r.edge} | ${r.deployed} | ${r.bundleKiB} | ${r.gzipKiB} | ${r.tokenizerKiB} (${r.tokenizerGzipKiB}) | ${r.startupCpuOverEmptyMs} | ${r.readyOverEmptyMs} | ${r.firstChatCpuMs} | ${r.secondChatCpuMs} |`)];
  const ours = rows[0];
  const verdict = `Targets (issue 13): gzip bundle ≤ ${TARGETS.gzipKiB.toFixed(0)} KiB (1.2 MB): ${ours.gzipKiB <= TARGETS.gzipKiB ? 'met' : 'not met'}; `
    + `ready ≤ ${TARGETS.readyOverEmptyMs} ms over an empty worker: ${ours.readyOverEmptyMs <= TARGETS.readyOverEmptyMs ? 'met' : 'not met'}; `
    + `first chat completion ≤ ${TARGETS.firstChatCpuMs} ms CPU: ${ours.firstChatCpuMs <= TARGETS.firstChatCpuMs ? 'met' : 'not met'}.`;
  const machine = `${os.cpus()[0]?.model ?? 'cpu'} × ${os.cpus().length}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}, workerd via miniflare ${JSON.parse(readFileSync(join(repoRoot, 'node_modules/miniflare/package.json'), 'utf8')).version}`;
  const command = `node --import tsx bench/edge-cold-start.mjs${BASELINE_REF ? ` --baseline ${BASELINE_REF}` : ''} --samples ${SAMPLES}`;
  const date = new Date().toISOString();
  const notes = [
    'Bundle sizes are what `wrangler deploy --dry-run --outdir` prints ("Total Upload … / gzip …") for the form that deploys: `--env production` (minified) where wrangler.toml has that environment, else its top level; the tokenizer data is edge/tokenizer/generated/qwen3-tokenizer-data.js (its gzip by node:zlib).',
    `Each sample is a fresh workerd process on that bundle with the edge's bindings (KV, D1, the rate limiter's Durable Object); median of ${SAMPLES}, variants in alternating rounds.`,
    `"ready" = time from starting workerd to the first answered GET /health; an empty worker with the same bindings takes ${emptyReady.toFixed(0)} ms here, and the column is the difference.`,
    `"startup CPU" = the workerd process's CPU time up to that point, minus the empty worker's (${emptyCpu.toFixed(0)} ms).`,
    `"chat completion CPU" = the workerd process's CPU time during one non-streamed /v1/chat/completions (API key check, rate limiter, template, tokenizer, a stand-in GPU worker answering at once, usage record); a GET /health on the empty worker costs ${emptyRequestCpu.toFixed(1)} ms the same way, the floor of this measurement.`,
    `The machine (2 cores) was shared with other work while this ran (load average ${os.loadavg()[0].toFixed(1)} at the end): compare the rows of one run, not absolute numbers across runs.`,
  ];
  console.log(lines.join('\n') + '\n\n' + verdict);
  writeFileSync(join(repoRoot, 'bench/results/edge-cold-start.md'),
    `# Edge cold start\n\nCommand: \`${command}\`  \nMachine: ${machine}  \nDate: ${date}\n\n${lines.join('\n')}\n\n${verdict}\n\n${notes.map((n) => `- ${n}`).join('\n')}\n`);
  writeFileSync(join(repoRoot, 'bench/results/edge-cold-start.json'), JSON.stringify({
    command, machine, date, samples: SAMPLES, targets: TARGETS, emptyReadyMs: emptyReady, emptyStartupCpuMs: emptyCpu,
    emptyRequestCpuMs: emptyRequestCpu, rows, notes,
  }, null, 2) + '\n');
} finally {
  stub.close();
  if (baselineRoot) removeBaseline(repoRoot, baselineRoot);
}
