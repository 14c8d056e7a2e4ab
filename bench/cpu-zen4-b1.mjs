// Batch-1 decode against its paired read, this tree vs a baseline build, in alternating rounds: each round runs
// `qwen3 bench` once with each build (the order alternating by round), each run under an exclusive lock when --lock
// is given (a shared machine's other jobs hold it shared). Prints a table and writes bench/results/<out>.{md,json}.
// Usage: node bench/cpu-zen4-b1.mjs --base /path/to/baseline/tree [--rounds 4] [--lock FILE] [--out cpu-zen4-b1]
//        [--model .models/8b] [--threads 2] [--prompt 64] [--steps 32] [--batch 8: the batched decode's size;
//        with --report, the size the run used]
// The baseline tree must have its own native/build/qwen3 (built there: a CMake cache points at its own sources).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const args = Object.fromEntries(
  process.argv.slice(2).reduce((pairs, a, i, all) => (a.startsWith('--') ? [...pairs, [a.slice(2), all[i + 1]]] : pairs), []),
);
if (!args.base && !args.report) throw new Error('--base DIR (a tree with a built native/build/qwen3) is required');
const rounds = Number(args.rounds ?? 4);
const model = args.model ?? '.models/8b';
const batch = args.batch ?? '8';
const benchArgs = ['bench', '--model', model, '--threads', args.threads ?? '2', '--prompt', args.prompt ?? '64',
  '--steps', args.steps ?? '32', '--batch', batch];
const out = args.out ?? 'cpu-zen4-b1';
const git = (dir, ...a) => execFileSync('git', ['-C', dir, ...a], { encoding: 'utf8' }).trim();
/** A build as a commit: its tree's HEAD, and "+ uncommitted changes" when its native sources differ from it. */
const commitOf = (dir) =>
  git(dir, 'rev-parse', '--short', 'HEAD') + (git(dir, 'status', '--porcelain', '--untracked-files=no', '--', 'native') ? ' + uncommitted changes' : '');
const builds = args.report ? JSON.parse(readFileSync(args.report, 'utf8')).builds : [
  { name: 'baseline', dir: resolve(args.base) },
  { name: 'this tree', dir: root },
].map((b) => ({ ...b, commit: commitOf(b.dir) }));
const loadavg = () => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
const tmp = mkdtempSync(join(tmpdir(), 'cpu-zen4-b1-'));

function run(build, round) {
  const json = join(tmp, `${build.name.replace(' ', '-')}-${round}.json`);
  const exe = join(build.dir, 'native', 'build', 'qwen3');
  const cmd = args.lock ? ['flock', ['-x', args.lock, exe, ...benchArgs, '--out', json]] : [exe, [...benchArgs, '--out', json]];
  execFileSync(cmd[0], cmd[1], { cwd: root, stdio: ['ignore', 'ignore', 'inherit'] });
  return JSON.parse(readFileSync(json, 'utf8'));
}

const median = (v) => {
  const s = [...v].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const range = (v, f = (x) => x.toFixed(2)) => `${f(median(v))} (${f(Math.min(...v))}–${f(Math.max(...v))})`;
const pct = (x) => (100 * x).toFixed(0);

// --report FILE.json: the tables again from a finished run's JSON (no runs).
const saved = args.report ? JSON.parse(readFileSync(args.report, 'utf8')) : null;
const started = saved ? saved.started : new Date().toISOString();
const finished = saved ? saved.finished : null;
const command = saved ? saved.command ?? '(not recorded)' : `node bench/cpu-zen4-b1.mjs ${process.argv.slice(2).join(' ')}`;
const rows = saved ? saved.rounds : [];
for (let r = 0; !saved && r < rounds; r++) {
  const order = r % 2 === 0 ? builds : [...builds].reverse();
  const row = { round: r + 1, load_before: loadavg(), order: order.map((b) => b.name) };
  for (const b of order) row[b.name] = run(b, r);
  row.load_after = loadavg();
  rows.push(row);
  const [a, t] = [row.baseline, row['this tree']];
  console.log(`round ${r + 1}: baseline ${a.decode_tok_s_batch1.toFixed(2)} tok/s, ${pct(a.paired_fraction_batch1)}% paired; ` +
    `this tree ${t.decode_tok_s_batch1.toFixed(2)} tok/s, ${pct(t.paired_fraction_batch1)}% paired (load ${row.load_before} -> ${row.load_after})`);
}

const metrics = [
  ['decode_tok_s_batch1', 'decode batch 1 tok/s', (x) => x.toFixed(2)],
  ['paired_fraction_batch1', '% of paired read (median of 10 pairs)', pct],
  ['best_fraction_batch1', 'best step ÷ best read, %', pct],
  [`decode_tok_s_batch${batch}`, `decode batch ${batch} tok/s (aggregate)`, (x) => x.toFixed(2)],
  ['prefill_tok_s', `prefill tok/s (${args.prompt ?? 64} tokens)`, (x) => x.toFixed(1)],
  ['read_bandwidth_gb_s', 'probe GB/s (best segment)', (x) => x.toFixed(1)],
];
const lines = [
  '# CPU batch-1 decode vs its paired read: this tree vs baseline',
  '',
  `- command: \`${command}\``,
  `- date: ${started} – ${finished ?? new Date().toISOString()}`,
  `- machine: ${rows[0].baseline.cpu}, ${rows[0].baseline.device}; shared (load average per round below)`,
  `- builds: baseline ${builds[0].commit} (${builds[0].dir}), this tree ${builds[1].commit}`,
  `- each run: \`qwen3 ${benchArgs.join(' ')}\`; ${rounds} rounds, the order alternating; each run under ` +
    `${(saved ? saved.lock : args.lock) ? `\`flock -x ${saved ? saved.lock : args.lock}\`` : 'no lock'}`,
  '- "% of paired read": after the batch-1 decode, 10 pairs of [one decode step, one read of the same bytes with the ' +
    'probe\'s fastest loop on the engine\'s threads]; the median over pairs of step GB/s ÷ read GB/s',
  '',
  '| metric | baseline | this tree | this tree ÷ baseline, same round |',
  '|---|---:|---:|---:|',
];
const ratios = {};
for (const [key, label, f] of metrics) {
  const a = rows.map((r) => r.baseline[key]), t = rows.map((r) => r['this tree'][key]);
  ratios[key] = rows.map((r) => r['this tree'][key] / r.baseline[key]);
  lines.push(`| ${label} | ${range(a, f)} | ${range(t, f)} | ${range(ratios[key], (x) => x.toFixed(3))} |`);
}
// This machine's reads switch between a slow state (~30 GB/s) and a fast one (~48 GB/s) from one second to the next;
// a step's share of the read beside it differs between them, so the pairs of all rounds are also split by the read.
const fast = 40;
lines.push('', `Every pair of every round, split by its read (below / at least ${fast} GB/s): step GB/s ÷ read GB/s, ` +
  'median (min–max) and count', '', `| build | read < ${fast} GB/s | read >= ${fast} GB/s | all pairs |`, '|---|---:|---:|---:|');
const regimes = {};
for (const b of builds) {
  const pairs = rows.flatMap((r) => r[b.name].paired_step_gb_s.map((st, i) => [st, r[b.name].paired_read_gb_s[i]]));
  const cell = (ps) => (ps.length ? `${range(ps.map(([st, rd]) => st / rd), pct)} (${ps.length})` : '–');
  const slow = pairs.filter(([, rd]) => rd < fast), quick = pairs.filter(([, rd]) => rd >= fast);
  regimes[b.name] = { slow: slow.map(([st, rd]) => st / rd), fast: quick.map(([st, rd]) => st / rd) };
  lines.push(`| ${b.name} | ${cell(slow)} | ${cell(quick)} | ${cell(pairs)} |`);
}
lines.push('', 'Figures: median (min–max) over rounds.', '', `| round | order | load before → after | baseline: tok/s, % paired, best÷best, b${batch} | this tree: tok/s, % paired, best÷best, b${batch} |`,
  '|---:|---|---|---|---|');
for (const r of rows) {
  const cell = (j) => `${j.decode_tok_s_batch1.toFixed(2)}, ${pct(j.paired_fraction_batch1)}, ${pct(j.best_fraction_batch1)}, ${j[`decode_tok_s_batch${batch}`].toFixed(2)}`;
  lines.push(`| ${r.round} | ${r.order.join(', ')} | ${r.load_before} → ${r.load_after} | ${cell(r.baseline)} | ${cell(r['this tree'])} |`);
}
const md = lines.join('\n') + '\n';
console.log('\n' + md);
writeFileSync(join(root, 'bench', 'results', `${out}.md`), md);
if (!saved)
  writeFileSync(join(root, 'bench', 'results', `${out}.json`), JSON.stringify({ command, lock: args.lock ?? null, started, finished: new Date().toISOString(),
    builds, bench_args: benchArgs, rounds: rows, ratios, regimes }, null, 2) + '\n');
