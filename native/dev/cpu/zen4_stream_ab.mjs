#!/usr/bin/env node
// A/B of two builds of the engine on this machine: bench_gemv_cpu (int4 and fp16 GEMV at M = 1, 2) and qwen3 bench
// (batch-1 and batch-8 decode, prefill, the batch-1 step beside a read of the same bytes), the base build's binary and
// the new one alternating within each round (the order flips every round), each run under an exclusive flock on the
// shared machine's lock. Prints a table of same-round ratios (new / base) and writes <out>.{md,json}.
//
//   node native/dev/cpu/zen4_stream_ab.mjs --base DIR [--new native/build] [--gemv-rounds 4] [--bench-rounds 3]
//     [--rows 1,2]
//     [--model .models/8b] [--lock /work/wt/GO.lock] [--out bench/results/cpu-zen4-stream] [--title TEXT]
//     [--base-env NAME=VALUE] [--new-env NAME=VALUE]   # environment of each side's runs (e.g. one build twice, with
//                                                       # Q3_AWQ_PREFETCH=intel on the base side)
// DIR holds the base build's bench_gemv_cpu and qwen3 (copied from a build of the base commit). With --render FILE.json
// (an earlier run's output) nothing runs: the tables are made again from that run's results.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const argv = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < argv.length ? argv[i + 1] : dflt;
};
const baseDir = resolve(opt('base', ''));
const newDir = resolve(root, opt('new', 'native/build'));
const gemvRounds = Number(opt('gemv-rounds', '4'));
const rows = opt('rows', '1,2');
const benchRounds = Number(opt('bench-rounds', '3'));
const model = resolve(root, opt('model', '.models/8b'));
const lock = opt('lock', '/work/wt/GO.lock');
const outBase = resolve(root, opt('out', 'bench/results/cpu-zen4-stream'));
const title = opt('title', 'int4 decode streaming on AMD Zen 4: base build vs new build');
const envOf = (name) => Object.fromEntries([opt(name, '')].filter(Boolean).map((s) => s.split('=')));
const sideEnv = { base: envOf('base-env'), new: envOf('new-env') };
const tmp = mkdtempSync(join(tmpdir(), 'zen4-ab-'));

const loadAverage = () => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
const median = (v) => {
  const s = [...v].sort((a, b) => a - b), h = Math.floor(s.length / 2);
  return s.length % 2 ? s[h] : (s[h - 1] + s[h]) / 2;
};
const span = (v, d = 3) => `${median(v).toFixed(d)} (${Math.min(...v).toFixed(d)}-${Math.max(...v).toFixed(d)})`;

// One timed run under the exclusive lock; returns its JSON result and the load average around it.
function run(side, bin, args, jsonPath) {
  const before = loadAverage();
  const env = { ...process.env, ...sideEnv[side] };
  const r = spawnSync('flock', ['-x', lock, bin, ...args], { env, encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`${bin} ${args.join(' ')} failed (${r.status}): ${r.stderr.slice(-2000)}`);
  const after = loadAverage();
  console.log(`${side}: ${bin} ${args.join(' ')}  (load ${before} -> ${after})`);
  return { result: JSON.parse(readFileSync(jsonPath, 'utf8')), load: [before, after] };
}

const sides = { base: baseDir, new: newDir };
const earlier = opt('render', '') && JSON.parse(readFileSync(resolve(opt('render', '')), 'utf8'));
const again = (runs, loads) =>
  runs.map((x, r) => ({ base: { result: x.base, load: loads[r].base }, new: { result: x.new, load: loads[r].new } }));
const gemv = earlier ? again(earlier.runs.gemv, earlier.loads.gemv) : [];
for (let r = 0; r < (earlier ? 0 : gemvRounds); r++) {
  const round = {};
  for (const side of r % 2 ? ['new', 'base'] : ['base', 'new']) {
    const out = join(tmp, `gemv-${side}-${r}`);
    round[side] = run(side, join(sides[side], 'bench_gemv_cpu'), ['--threads', '2', '--rows', rows, '--out', out],
      join(out, 'cpu-gemv.json'));
  }
  gemv.push(round);
}
const bench = earlier ? again(earlier.runs.bench, earlier.loads.bench) : [];
for (let r = 0; r < (earlier ? 0 : benchRounds); r++) {
  const round = {};
  for (const side of r % 2 ? ['new', 'base'] : ['base', 'new']) {
    const out = join(tmp, `bench-${side}-${r}.json`);
    round[side] = run(side, join(sides[side], 'qwen3'),
      ['bench', '--model', model, '--threads', '2', '--prompt', '64', '--steps', '32', '--out', out], out);
  }
  bench.push(round);
}

// ---- tables ----
const lines = [];
const gemvRows = [];
if (gemv.length) {
  lines.push(`## bench_gemv_cpu --threads 2 --rows ${rows} (base and new alternating)`, '');
  lines.push('Per run: the best call and the median call of each matrix (bench_gemv_cpu\'s own 8 probe-and-pass rounds); ' +
    'ratios are base ms / new ms of the same round (> 1: new is faster); median (min-max) over rounds.', '');
  lines.push('| matrix | M | base GB/s (best call) | new GB/s (best call) | speed-up, best call | speed-up, median call | ' +
    'base ÷ same-round probe | new ÷ same-round probe |');
  lines.push('|---|---:|---:|---:|---:|---:|---:|---:|');
  for (const row of gemv[0].base.result.results) {
    const pick = (res) => res.results.find((x) => x.matrix === row.matrix && x.M === row.M);
    const per = gemv.map((g) => ({ b: pick(g.base.result), n: pick(g.new.result) }));
    const entry = {
      matrix: row.matrix, M: row.M,
      base_gbs: per.map((p) => p.b.gbs), new_gbs: per.map((p) => p.n.gbs),
      speedup_best: per.map((p) => p.b.ms_best / p.n.ms_best),
      speedup_median: per.map((p) => p.b.ms_median / p.n.ms_median),
      base_of_probe: per.map((p) => p.b.fraction_of_same_round_probe_median),
      new_of_probe: per.map((p) => p.n.fraction_of_same_round_probe_median),
    };
    gemvRows.push(entry);
    lines.push(`| ${row.matrix} | ${row.M} | ${median(entry.base_gbs).toFixed(1)} | ${median(entry.new_gbs).toFixed(1)} | ` +
      `${span(entry.speedup_best)} | ${span(entry.speedup_median)} | ${span(entry.base_of_probe, 2)} | ` +
      `${span(entry.new_of_probe, 2)} |`);
  }
  lines.push('', 'Probes (GB/s, best of each run): ' +
    gemv.map((g, r) => `round ${r}: base ${g.base.result.read_bandwidth_gbs.toFixed(1)}, ` +
      `new ${g.new.result.read_bandwidth_gbs.toFixed(1)}`).join('; '), '');
}
const benchKeys = [
  ['decode_tok_s_batch1', 'decode batch 1 (tok/s)'],
  ['paired_fraction_batch1', 'batch-1 step ÷ paired read (median of pairs)'],
  ['best_fraction_batch1', 'fastest step ÷ fastest paired read'],
  ['decode_tok_s_batch8', 'decode batch 8 (tok/s)'],
  ['prefill_tok_s', 'prefill, 64 tokens (tok/s)'],
  ['read_bandwidth_gb_s', 'probe (GB/s)'],
];
const benchRows = [];
if (bench.length) {
  lines.push('## qwen3 bench --threads 2 --prompt 64 --steps 32 (base and new alternating)', '');
  lines.push(`| metric | ${bench.map((_, r) => `round ${r} base / new (new ÷ base)`).join(' | ')} | new ÷ base, median |`);
  lines.push(`|---|${bench.map(() => '---:|').join('')}---:|`);
  for (const [key, label] of benchKeys) {
    const ratios = bench.map((b) => b.new.result[key] / b.base.result[key]);
    const base = bench.map((b) => b.base.result[key]), next = bench.map((b) => b.new.result[key]);
    benchRows.push({ metric: key, base, new: next, ratios });
    const cells = bench.map((_, r) => `${base[r].toFixed(2)} / ${next[r].toFixed(2)} (${ratios[r].toFixed(2)})`);
    lines.push(`| ${label} | ${cells.join(' | ')} | ${median(ratios).toFixed(2)} |`);
  }
  lines.push('', 'Load average (1/5/15 min) before -> after each run: ' +
    bench.map((b, r) => `round ${r}: base ${b.base.load.join(' -> ')}, new ${b.new.load.join(' -> ')}`).join('; '), '');
}
const head = [`# ${title}`, '',
  `- command: \`node native/dev/cpu/zen4_stream_ab.mjs ${argv.join(' ')}\``,
  `- cpu: ${gemv[0]?.base.result.cpu ?? bench[0]?.base.result.cpu}, 2 threads; base binaries ${baseDir}, new ${newDir}` +
    ['base', 'new'].map((side) => (Object.keys(sideEnv[side]).length ? `; ${side} runs with ${JSON.stringify(sideEnv[side])}` : ''))
      .join(''),
  `- date: ${new Date().toISOString()}; gemv runs' load: ` +
    gemv.map((g) => `${g.base.load[0].split(' ')[0]}-${g.new.load[1].split(' ')[0]}`).join(', '), ''];
const md = [...head, ...lines].join('\n');
console.log(md);
writeFileSync(`${outBase}.md`, md + '\n');
writeFileSync(`${outBase}.json`, JSON.stringify({ command: argv, base: baseDir, new: newDir, env: sideEnv, gemv: gemvRows,
  bench: benchRows, loads: { gemv: gemv.map((g) => ({ base: g.base.load, new: g.new.load })),
    bench: bench.map((b) => ({ base: b.base.load, new: b.new.load })) },
  runs: { gemv: gemv.map((g) => ({ base: g.base.result, new: g.new.result })),
    bench: bench.map((b) => ({ base: b.base.result, new: b.new.result })) } }, null, 1) + '\n');
