// Where each path's workerd process spends its CPU in bench/edge-overhead.mjs, by native code: the whole benchmark
// runs under `perf record -a` (every CPU, no call graphs), then each path's workerd samples are split by what they
// ran: JavaScript (V8's compiled code and its builtins: interpreter, inline caches, promises), V8's garbage
// collectors, the rest of V8 (API objects, handles, compilation), workerd's own C++ (its API classes, the JS glue),
// KJ/Cap'n Proto (the event loop, streams, HTTP), the allocator, and the kernel (system calls, page faults). The
// workerd binary ships its symbol table, so no debug package is needed; JIT code shows as unknown addresses.
// Needs `perf` and perf_event_paranoid <= 2 (or root). Prints a table and writes bench/results/<name>.{md,json}.
// Usage: node --import tsx bench/workerd-native-profile.mjs [--frequency 1999] [--name workerd-native-profile]
//        -- <bench/edge-overhead.mjs options, e.g. --rounds 8 --concurrency 32 --read-floor>
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { option } from './bench-args.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const split = process.argv.indexOf('--');
const own = process.argv.slice(2, split === -1 ? undefined : split);
const benchArgs = split === -1 ? [] : process.argv.slice(split + 1);
const frequency = Number(option('frequency', 1999, own));
const name = option('name', 'workerd-native-profile', own);
const tmp = mkdtempSync(join(tmpdir(), 'workerd-perf-'));
const data = join(tmp, 'perf.data');

const bench = spawnSync('perf', ['record', '-F', String(frequency), '-a', '-o', data, '--', process.execPath, '--import', 'tsx',
  join(root, 'bench', 'edge-overhead.mjs'), ...benchArgs, '--result-name', `${name}-timings`], { cwd: root, encoding: 'utf8', maxBuffer: 1 << 28 });
if (bench.status !== 0) throw new Error(`perf record / edge-overhead failed (${bench.status}): ${bench.stderr.slice(-2000)}`);
/** path label -> workerd pid, from the benchmark's "workerd processes: label=pid, ..." lines */
const pids = new Map();
for (const line of bench.stderr.split('\n').filter((l) => l.startsWith('workerd processes: ')))
  for (const part of line.slice('workerd processes: '.length).split(', ')) {
    const at = part.lastIndexOf('=');
    pids.set(part.slice(0, at), Number(part.slice(at + 1)));
  }
const timings = JSON.parse(readFileSync(join(root, 'bench', 'results', `${name}-timings.json`), 'utf8'));

const CATEGORIES = ['JavaScript (JIT code, V8 builtins)', 'V8 garbage collection', 'V8 runtime, other', 'workerd C++ (API, JS glue)',
  'KJ / Cap\'n Proto (event loop, streams, HTTP)', 'allocator (tcmalloc)', 'kernel (system calls, faults)', 'other (libc, ...)'];
function categoryOf(sym, dso) {
  if (dso.includes('kernel')) return 6;
  if (sym === '[unknown]' || dso.includes('JIT') || dso === '[unknown]' || sym.startsWith('Builtins_')) return 0;
  if (/Scaveng|MarkCompact|Heap::|cppgc|Sweeper|Marking|GCTracer|HeapTracer|Evacuat|ConcurrentMark|MinorMS/.test(sym)) return 1;
  if (/tcmalloc|TCMalloc/.test(sym)) return 5;
  if (sym.includes('v8::')) return 2;
  if (sym.includes('workerd::')) return 3;
  if (sym.includes('kj::') || sym.includes('capnp::')) return 4;
  return 7;
}
const counts = new Map([...pids.values()].map((pid) => [pid, new Array(CATEGORIES.length).fill(0)]));
/** pid -> symbol -> samples */
const bySymbol = new Map([...pids.values()].map((pid) => [pid, new Map()]));
const script = execFileSync('perf', ['script', '-i', data, '-F', 'pid,ip,sym,dso'], { encoding: 'utf8', maxBuffer: 1 << 30, stdio: ['ignore', 'pipe', 'ignore'] });
let parsed = 0;
for (const line of script.split('\n')) {
  const m = /^\s*(\d+)\s+[0-9a-f]+\s+(.*?)\s+\((.*)\)\s*$/.exec(line);
  if (!m) continue;
  const row = counts.get(Number(m[1]));
  parsed++;
  if (!row) continue;
  const category = categoryOf(m[2], m[3]);
  row[category]++;
  const symbols = bySymbol.get(Number(m[1]));
  const seen = symbols.get(m[2]) ?? symbols.set(m[2], { samples: 0, category }).get(m[2]);
  seen.samples++;
}
if (parsed === 0) throw new Error(`perf script gave no samples it could read: ${script.slice(0, 500)}`);
rmSync(tmp, { recursive: true, force: true });

const requests = timings.rounds * (timings.concurrency + 1);  // each path: the concurrent rounds and the single-stream ones
const msPerRequest = (samples) => (samples * 1000) / frequency / requests;
const rows = [...pids].map(([path, pid]) => ({ path, pid, samples: counts.get(pid), total: counts.get(pid).reduce((a, b) => a + b, 0) }));
const header = `| category | ${rows.map((r) => r.path).join(' | ')} |`;
const lines = [
  '# Where each workerd process\'s CPU goes, by native code (perf)',
  '',
  `Command: \`node --import tsx bench/workerd-native-profile.mjs --frequency ${frequency} --name ${name} -- ${benchArgs.join(' ')}\`  `,
  `Date: ${new Date().toISOString()}  `,
  `Machine: ${timings.machine}  `,
  `Timings of the same run: ${name}-timings.md (perf's sampling slows every process a little: read them as this run's, not as the overhead).`,
  '',
  `The whole run (${timings.rounds} rounds of ${timings.concurrency} concurrent streams and ${timings.rounds} single streams per path, ${requests} requests per path) sampled at ${frequency} Hz on every CPU; each path's workerd process (its isolate, and for this tree the rate limiter's Durable Object and Miniflare's simulators, all on one thread) split by the code it was in. ms of CPU per request (samples ÷ frequency ÷ requests), then the share of the process's samples:`,
  '',
  header,
  `|---|${rows.map(() => '---:').join('|')}|`,
  ...CATEGORIES.map((c, i) => `| ${c} | ${rows.map((r) => `${msPerRequest(r.samples[i]).toFixed(2)} (${((100 * r.samples[i]) / r.total).toFixed(0)}%)`).join(' | ')} |`),
  `| all | ${rows.map((r) => `${msPerRequest(r.total).toFixed(2)}`).join(' | ')} |`,
  '',
  ...(rows.length > 1 ? symbolTable(rows[0], rows.at(-1)) : []),
];

/** The symbols where `a` spends the most more than `b` per request (a: the first path, b: the last, the nearest floor). */
function symbolTable(a, b) {
  const sa = bySymbol.get(a.pid), sb = bySymbol.get(b.pid);
  const n = (symbols, sym) => symbols.get(sym)?.samples ?? 0;
  const top = [...sa.keys()].map((sym) => [sym, n(sa, sym) - n(sb, sym)]).sort((x, y) => y[1] - x[1]).slice(0, 25);
  return [
    `The ${top.length} symbols with the most more CPU per request in "${a.path}" than in "${b.path}" (ms per request; JIT code is one "[unknown]" row):`,
    '',
    `| symbol | category | ${a.path} | ${b.path} | difference |`,
    '|---|---|---:|---:|---:|',
    ...top.map(([sym, diff]) => `| \`${sym.slice(0, 100).replace(/\|/g, '\\|')}\` | ${CATEGORIES[sa.get(sym).category]} | ${msPerRequest(n(sa, sym)).toFixed(3)} | ${msPerRequest(n(sb, sym)).toFixed(3)} | ${msPerRequest(diff).toFixed(3)} |`),
    '',
  ];
}
const md = lines.join('\n');
console.log(md);
writeFileSync(join(root, 'bench', 'results', `${name}.md`), md);
writeFileSync(join(root, 'bench', 'results', `${name}.json`), JSON.stringify({ date: new Date().toISOString(), frequency, requests, categories: CATEGORIES, rows }, null, 2) + '\n');
