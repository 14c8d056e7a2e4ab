// Which of the edge's functions a cold isolate's first /v1/chat/completions runs for the first time: V8 compiles a
// function at its first call (bytecode, then its inline caches fill), so each one is start-up work that the warm-up
// (edge/warm-up.ts) did not reach and the first request pays. Read from V8's best-effort coverage through workerd's
// inspector: the functions that had run once the isolate was up (module evaluation and the warm-up), against those
// that had run after the first request. Best-effort coverage reads what V8 keeps anyway (a function's invocation count,
// or that it was compiled), so it does not change what runs. Also lists what the second request runs first (a
// warm-up's gap that the first request happened not to reach).
// Run: node --import tsx bench/edge-first-calls.mjs [--env top|production] [--stream] [--baseline REF]
//   → prints, per edge, the functions first run by the 1st and 2nd chat completion, by module (no results file: a
//   profiling aid; the CPU figures come from bench/edge-cold-start.mjs).
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Miniflare } from 'miniflare';
import { startStubWorker } from './edge-stub-worker.mjs';
import { checkoutBaseline, removeBaseline } from './git-baseline.mjs';
import { inspectorSession } from './v8-cpu-profile.mjs';

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const option = (name) => (args.includes(name) ? args[args.indexOf(name) + 1] : undefined);
/** wrangler.toml environment: "top" (not minified: functions keep their names) or "production" (as deployed). */
const ENV = option('--env') ?? 'top';
const STREAM = args.includes('--stream');
const BASELINE_REF = option('--baseline');
const SECRET = 'bench-secret-0123456789';
const API_KEY = 'sk-bench-first-calls-0123456789';
const CHAT_BODY = JSON.stringify({
  model: 'qwen3-8b-awq', chat_template_kwargs: { enable_thinking: false }, ...(STREAM ? { stream: true } : {}),
  messages: [{ role: 'system', content: 'You are a helpful assistant.' }, { role: 'user', content: 'Write a haiku about the sea, please.' }],
});

/** The tree at root as `wrangler deploy --dry-run` writes it, in ENV: its modules and script text. */
function dryRunDeploy(root, outDir) {
  const toml = readFileSync(join(root, 'wrangler.toml'), 'utf8');
  const env = ENV !== 'top' && new RegExp(`^\\[env\\.${ENV}\\]`, 'm').test(toml) ? ['--env', ENV] : [];
  execFileSync(process.execPath, [join(repoRoot, 'node_modules/wrangler/bin/wrangler.js'), 'deploy', '--dry-run', '--outdir', outDir, ...env], {
    cwd: root, env: { ...process.env, WRANGLER_SEND_METRICS: 'false' }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  const modules = [{ type: 'ESModule', path: join(outDir, 'index.js'), contents: readFileSync(join(outDir, 'index.js')) }];
  for (const file of readdirSync(outDir)) if (file.endsWith('.bin')) modules.push({ type: 'Data', path: join(outDir, file), contents: readFileSync(join(outDir, file)) });
  return {
    root, outDir, modules, script: modules[0].contents.toString(),
    compatibilityDate: /compatibility_date\s*=\s*"([^"]+)"/.exec(toml)[1],
    compatibilityFlags: JSON.parse(/compatibility_flags\s*=\s*(\[[^\]]*\])/.exec(toml)[1]),
  };
}

/** The functions that have run so far in the isolate: "scriptId:start" → { name, start } (best-effort coverage). */
async function ranSoFar(session) {
  const { result } = await session.call('Profiler.getBestEffortCoverage');
  const ran = new Map();
  for (const script of result) {
    if (script.url && /^[a-z-]+:/.test(script.url) && !script.url.startsWith('file:')) continue; // the runtime's own JS
    for (const fn of script.functions) {
      const [whole] = fn.ranges;
      if (whole.count > 0) ran.set(`${script.scriptId}:${whole.startOffset}`, { name: fn.functionName || '(anonymous)', start: whole.startOffset, scriptId: script.scriptId });
    }
  }
  return ran;
}

/** The module of a bundle offset: the nearest `// path` line above it (an unminified esbuild bundle marks each). */
function moduleLocator(script) {
  const starts = [];
  const re = /^\/\/ ((?:node_modules|edge|gpu-worker|scripts)\/\S+)$/gm;
  for (let m; (m = re.exec(script)); ) starts.push([m.index, m[1].replace(/^node_modules\/((?:@[^/]+\/)?[^/]+).*$/, '$1')]);
  return (offset) => {
    let found = '(bundle)';
    for (const [at, name] of starts) {
      if (at > offset) break;
      found = name;
    }
    return found;
  };
}

async function firstCalls(variant, workerUrl) {
  const mf = new Miniflare({
    inspectorPort: 0,
    workers: [
      {
        name: 'edge', modules: variant.modules, modulesRoot: variant.outDir, compatibilityDate: variant.compatibilityDate, compatibilityFlags: variant.compatibilityFlags,
        bindings: { MODEL_ID: 'qwen3-8b-awq', THINKING_DEFAULT: 'auto', WORKER_URLS: workerUrl, WORKER_SECRET: SECRET, ADMIN_TOKEN: 'adm-bench-token-0123456789' },
        kvNamespaces: ['KEYS'], d1Databases: ['USAGE'], durableObjects: { RATE_LIMITER: { className: 'RateLimiter', scriptName: 'limiter' } },
      },
      { name: 'limiter', modules: variant.modules, modulesRoot: variant.outDir, compatibilityDate: variant.compatibilityDate, compatibilityFlags: variant.compatibilityFlags, durableObjects: { RATE_LIMITER: 'RateLimiter' } },
    ],
  });
  try {
    await mf.ready;
    const hash = createHash('sha256').update(API_KEY).digest('hex');
    const record = {
      id: `key_${hash.slice(0, 16)}`, hash, hint: API_KEY.slice(0, 10), tenant: 'bench', name: 'first calls', models: null,
      limits: { requests_per_minute: 1000, tokens_per_minute: 10_000_000, concurrent_streams: 100, quota_tokens: null }, created_at: Date.now(), revoked_at: null,
    };
    await (await mf.getKVNamespace('KEYS', 'edge')).put(`key:${hash}`, JSON.stringify(record), { metadata: { id: record.id, tenant: 'bench', revoked: false } });
    const db = await mf.getD1Database('USAGE', 'edge');
    const migrations = join(variant.root, 'migrations');
    for (const file of existsSync(migrations) ? readdirSync(migrations).filter((f) => f.endsWith('.sql')).sort() : []) {
      const sql = readFileSync(join(migrations, file), 'utf8').split('\n').filter((l) => !l.trim().startsWith('--')).join('\n');
      await db.batch(sql.split(';').map((s) => s.trim()).filter(Boolean).map((s) => db.prepare(s)));
    }
    const session = await inspectorSession((await mf.getInspectorURL()).port, 'core:user:edge');
    await session.call('Profiler.enable');
    const chat = async () => {
      const res = await mf.dispatchFetch('http://edge/v1/chat/completions', {
        method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${API_KEY}` }, body: CHAT_BODY,
      });
      const text = await res.text();
      if (res.status !== 200) throw new Error(`chat completion: ${res.status} ${text}`);
      // what runs after the response (usage records, the admission's settle) has run by the next request's start
      await new Promise((resolve) => setTimeout(resolve, 200));
    };
    const atStart = await ranSoFar(session);
    await chat();
    const afterFirst = await ranSoFar(session);
    await chat();
    const afterSecond = await ranSoFar(session);
    session.close();
    const moduleOf = moduleLocator(variant.script);
    const newIn = (after, before) => [...after].filter(([key]) => !before.has(key)).map(([, fn]) => ({ ...fn, module: moduleOf(fn.start) }));
    return { atStart: atStart.size, first: newIn(afterFirst, atStart), second: newIn(afterSecond, afterFirst) };
  } finally {
    await mf.dispose();
  }
}

function print(label, fns) {
  const byModule = new Map();
  for (const fn of fns) byModule.set(fn.module, [...(byModule.get(fn.module) ?? []), fn.name]);
  console.log(`  ${label}: ${fns.length} functions`);
  for (const [module, names] of [...byModule].sort((a, b) => b[1].length - a[1].length)) console.log(`    ${module} (${names.length}): ${names.join(', ')}`);
}

const stub = await startStubWorker();
const work = mkdtempSync(join(os.tmpdir(), 'edge-first-calls-'));
const baseline = BASELINE_REF ? checkoutBaseline(repoRoot, BASELINE_REF, work) : undefined;
try {
  const edges = [['this tree', repoRoot], ...(baseline ? [[BASELINE_REF, baseline]] : [])];
  for (const [name, root] of edges) {
    const variant = dryRunDeploy(root, mkdtempSync(join(work, 'out-')));
    const { atStart, first, second } = await firstCalls(variant, stub.url);
    console.log(`${name} (${ENV}${STREAM ? ', stream' : ''}): ${atStart} functions had run by the end of start-up`);
    print('first run in the 1st chat completion', first);
    print('first run in the 2nd', second);
  }
} finally {
  stub.close();
  if (baseline) removeBaseline(repoRoot, baseline);
  rmSync(work, { recursive: true, force: true });
}
