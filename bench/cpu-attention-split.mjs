// A decode step's attention at a long context, three ways in alternating rounds: a baseline build (its attention as
// it was), this tree with one task per KV head (Q3_ATTENTION=heads) and this tree as it runs (split by position from
// 512 positions on, native/src/cpu/forward_cpu.cpp). Each run is `qwen3 bench --phases --batch 0` after a --prompt
// token context; the table gives decode tok/s, the attention phase's ms per step and the whole step's, median (min–max)
// over rounds, and each against the baseline in the same round. Writes bench/results/<out>.{md,json}.
// Usage: node bench/cpu-attention-split.mjs --base /path/to/baseline/tree [--prompt 1024] [--rounds 2] [--steps 16]
//        [--out cpu-attention-split-1024] [--model .models/8b] [--threads 2]
// The baseline tree must have its own native/build/qwen3.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { option } from './bench-args.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const base = option('base');
if (!base) throw new Error('--base DIR (a tree with a built native/build/qwen3) is required');
const prompt = Number(option('prompt', 1024)), rounds = Number(option('rounds', 2));
const out = option('out', `cpu-attention-split-${prompt}`);
const benchArgs = ['bench', '--model', option('model', '.models/8b'), '--threads', option('threads', '2'), '--prompt',
  String(prompt), '--steps', option('steps', '16'), '--batch', '0', '--pairs', '4', '--phases'];
const git = (dir, ...a) => execFileSync('git', ['-C', dir, ...a], { encoding: 'utf8' }).trim();
const commitOf = (dir) =>
  git(dir, 'rev-parse', '--short', 'HEAD') + (git(dir, 'status', '--porcelain', '--untracked-files=no', '--', 'native') ? ' + uncommitted changes' : '');
const ways = [
  { name: 'baseline', dir: resolve(base), env: {} },
  { name: 'this tree, by KV head', dir: root, env: { Q3_ATTENTION: 'heads' } },
  { name: 'this tree', dir: root, env: {} },
].map((w) => ({ ...w, commit: commitOf(w.dir) }));
const tmp = mkdtempSync(join(tmpdir(), 'cpu-attention-split-'));
const loadavg = () => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');

/** One bench run: its JSON plus the attention phase's and the whole step's ms from the --phases table. */
function run(way, round) {
  const json = join(tmp, `${way.name.replaceAll(/[ ,]+/g, '-')}-${round}.json`);
  const stdout = execFileSync(join(way.dir, 'native', 'build', 'qwen3'), [...benchArgs, '--out', json], {
    cwd: root, env: { ...process.env, ...way.env }, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], maxBuffer: 16 << 20,
  });
  const phase = (name) => {
    const row = stdout.split('\n').find((l) => l.startsWith(`| ${name} |`));
    if (!row) throw new Error(`no "${name}" row in the --phases table`);
    return Number(row.split('|')[3]);
  };
  return { ...JSON.parse(readFileSync(json, 'utf8')), attention_ms: phase('attention'), step_ms: phase('whole step') };
}

// The mean of the middle two for an even count, as bench/cpu-zen4-b1.mjs takes it (bench-args.mjs's median takes the
// upper one); the committed results were computed this way.
const median = (v) => {
  const s = [...v].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const range = (v, f) => `${f(median(v))} (${f(Math.min(...v))}–${f(Math.max(...v))})`;
const started = new Date().toISOString();
const rows = [];
for (let r = 0; r < rounds; r++) {
  const order = r % 2 === 0 ? ways : [...ways].reverse();
  const row = { round: r + 1, load_before: loadavg(), order: order.map((w) => w.name) };
  for (const w of order) row[w.name] = run(w, r);
  row.load_after = loadavg();
  rows.push(row);
  console.log(`round ${r + 1}: ` + ways.map((w) => `${w.name} ${row[w.name].decode_tok_s_batch1.toFixed(2)} tok/s, ` +
    `attention ${row[w.name].attention_ms.toFixed(2)} ms`).join('; '));
}
const metrics = [
  ['decode_tok_s_batch1', 'decode batch 1, tok/s', (x) => x.toFixed(2)],
  ['attention_ms', 'attention, ms per step', (x) => x.toFixed(2)],
  ['step_ms', 'whole step (profiled), ms', (x) => x.toFixed(1)],
  ['read_bandwidth_gb_s', 'probe, GB/s', (x) => x.toFixed(1)],
];
const lines = [
  `# A decode step's attention after ${prompt} tokens: split by position vs one task per KV head`,
  '',
  `- command: \`node bench/cpu-attention-split.mjs ${process.argv.slice(2).join(' ')}\``,
  `- date: ${started} – ${new Date().toISOString()}`,
  `- machine: ${rows[0].baseline.cpu}, ${rows[0].baseline.device}`,
  `- builds: baseline ${ways[0].commit} (${ways[0].dir}); this tree ${ways[2].commit}, run with Q3_ATTENTION=heads ` +
    '(one task per KV head, its kernels as in this tree) and as it runs (split by position from 512 positions on)',
  `- each run: \`qwen3 ${benchArgs.join(' ')}\`; ${rounds} rounds, the order alternating`,
  '',
  `| metric | ${ways.map((w) => w.name).join(' | ')} | ${ways.slice(1).map((w) => `${w.name} ÷ baseline`).join(' | ')} |`,
  `|---|${ways.map(() => '---:').join('|')}|${ways.slice(1).map(() => '---:').join('|')}|`,
];
const ratios = {};
for (const [key, label, f] of metrics) {
  const cells = ways.map((w) => range(rows.map((r) => r[w.name][key]), f));
  const rs = ways.slice(1).map((w) => rows.map((r) => r[w.name][key] / r.baseline[key]));
  ratios[key] = rs;
  lines.push(`| ${label} | ${cells.join(' | ')} | ${rs.map((v) => range(v, (x) => x.toFixed(3))).join(' | ')} |`);
}
lines.push('', 'Median (min–max) over rounds; ratios per round.', '', '| round | load before → after | ' +
  ways.map((w) => `${w.name}: tok/s, attention ms`).join(' | ') + ' |', `|---:|---|${ways.map(() => '---').join('|')}|`);
for (const r of rows)
  lines.push(`| ${r.round} | ${r.load_before} → ${r.load_after} | ` +
    ways.map((w) => `${r[w.name].decode_tok_s_batch1.toFixed(2)}, ${r[w.name].attention_ms.toFixed(2)}`).join(' | ') + ' |');
const md = lines.join('\n') + '\n';
console.log('\n' + md);
writeFileSync(join(root, 'bench', 'results', `${out}.md`), md);
writeFileSync(join(root, 'bench', 'results', `${out}.json`),
  JSON.stringify({ started, finished: new Date().toISOString(), ways, bench_args: benchArgs, rounds: rows, ratios }, null, 2) + '\n');
