#!/usr/bin/env node
// The screened CPU lm_head against the full fp16 head (docs/cpu-head-screen.md): `qwen3 bench --head screened` and
// `--head full` in alternating rounds (the order swaps every round), each run under an exclusive lock when --lock is
// given (a machine shared with other work), on the same binary and checkpoint. Prints a table per round and the
// same-round ratios (screened / full), and writes bench/results/cpu-head-screen.{md,json}.
//
//   node bench/cpu-head-screen.mjs [--rounds 3] [--threads 2] [--prompt 64] [--steps 32] [--model .models/8b]
//     [--lock /work/wt/GO.lock] [--out bench/results/cpu-head-screen]
//
// qwen3 bench samples greedily without logprobs, so its screened runs take the screened head on every step; the
// gain applies to such samples only (greedy or top_k <= 64, no logprobs).
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const argv = process.argv.slice(2);
const defaults = { rounds: '3', threads: '2', prompt: '64', steps: '32', model: '.models/8b', lock: '', out: 'bench/results/cpu-head-screen' };
const { values: o } = parseArgs({
  args: argv,
  options: Object.fromEntries(Object.entries(defaults).map(([k, d]) => [k, { type: 'string', default: d }])),
});
const rounds = Number(o.rounds);
const { threads, prompt, steps, lock } = o;
const model = resolve(root, o.model);
const outBase = resolve(root, o.out);
const qwen3 = join(root, 'native', 'build', 'qwen3');
const loadAverage = () => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');

function bench(head) {
  const out = join(tmpdir(), `q3-head-${process.pid}-${head}.json`);
  const args = ['bench', '--model', model, '--threads', threads, '--prompt', prompt, '--steps', steps, '--head', head, '--out', out];
  const [cmd, full] = lock ? ['flock', ['-x', lock, qwen3, ...args]] : [qwen3, args];
  const loadBefore = loadAverage();
  const r = spawnSync(cmd, full, { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`qwen3 bench --head ${head} exited ${r.status}: ${r.stderr}`);
  const j = JSON.parse(readFileSync(out, 'utf8'));
  return { ...j, loadavg_before: loadBefore, loadavg_after: loadAverage() };
}

const median = (a) => {
  const s = [...a].sort((x, y) => x - y);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const stat = (a) => ({ median: median(a), min: Math.min(...a), max: Math.max(...a) });
const fmt = (s, d = 2) => `${s.median.toFixed(d)} (${s.min.toFixed(d)}–${s.max.toFixed(d)})`;

const runs = [];
for (let r = 0; r < rounds; r++) {
  const order = r % 2 ? ['full', 'screened'] : ['screened', 'full'];
  const res = {};
  for (const head of order) {
    process.stderr.write(`round ${r + 1}/${rounds}: --head ${head}\n`);
    res[head] = bench(head);
    if (res[head].head !== head) throw new Error(`--head ${head} ran the ${res[head].head} head`);
  }
  runs.push({ round: r + 1, order, res });
  process.stderr.write(
    `round ${r + 1}: batch 1 ${res.screened.decode_tok_s_batch1.toFixed(2)} vs ${res.full.decode_tok_s_batch1.toFixed(2)} tok/s, ` +
      `batch 8 ${res.screened.decode_tok_s_batch8.toFixed(2)} vs ${res.full.decode_tok_s_batch8.toFixed(2)} tok/s (screened vs full)\n`,
  );
}

const ratio = (key) => stat(runs.map((x) => x.res.screened[key] / x.res.full[key]));
const summary = {
  decode1: ratio('decode_tok_s_batch1'),
  decode8: ratio('decode_tok_s_batch8'),
  prefill: ratio('prefill_tok_s'),
  paired: ratio('paired_fraction_batch1'),
};
const date = new Date().toISOString().replace('T', ' ').slice(0, 16) + ' UTC';
const commit = spawnSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root, encoding: 'utf8' }).stdout.trim();
const cmd = `node bench/cpu-head-screen.mjs ${argv.join(' ')}`.trim();
let md = `# Screened vs full CPU lm_head, alternating rounds\n\n`;
md += `- command: \`${cmd}\` (commit ${commit})\n- date: ${date}\n`;
md += `- machine: ${cpus()[0].model}, ${cpus().length} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB; ${runs[0].res.full.device}; shared with other work${lock ? `, every run under \`flock -x ${lock}\`` : ''}\n`;
md += `- scope: the screened head serves samples that need only their top-k (greedy, or top_k <= 64) and no logprobs (the worker's requests without \`logprobs\`); any other sample, and every sample on a CPU without AVX-512 VNNI, reads the full fp16 head as before (docs/cpu-head-screen.md). Its tokens are the full head's, bit for bit in the logits that decide them\n`;
md += `- model: random checkpoint with the Qwen3-8B-AWQ shapes (\`${o.model}\`), \`qwen3 bench --threads ${threads} --prompt ${prompt} --steps ${steps}\`, greedy samples without logprobs\n\n`;
md += `| round | head | decode b1 tok/s | decode b8 tok/s | prefill tok/s | MB/step b1 | MB/step b8 | exact rows/sample b1 median (max) | b8 median (max) | paired % of read | load before → after |\n|---|---|---|---|---|---|---|---|---|---|---|\n`;
for (const x of runs)
  for (const head of x.order) {
    const j = x.res[head];
    const rows = head === 'screened'
      ? `${j.exact_rows_per_sample_batch1_median} (${j.exact_rows_per_sample_batch1_max}) | ${j.exact_rows_per_sample_batch8_median} (${j.exact_rows_per_sample_batch8_max})`
      : '— | —';
    md += `| ${x.round} | ${head} | ${j.decode_tok_s_batch1.toFixed(2)} | ${j.decode_tok_s_batch8.toFixed(2)} | ${j.prefill_tok_s.toFixed(2)} | ${(j.weight_bytes_per_step / 1e6).toFixed(1)} | ${(j.weight_bytes_per_step_batch8 / 1e6).toFixed(1)} | ${rows} | ${(100 * (j.paired_fraction_batch1 ?? 0)).toFixed(0)}% | ${j.loadavg_before} → ${j.loadavg_after} |\n`;
  }
md += `\nMB/step: weight bytes of a decode step: the int8 copy's pass (622 MB in place of the fp16 head's 1,245 MB) plus 8 KiB per fp16 row computed exactly (the median per sample over the timed steps). "Exact rows" are per sampled row of the random checkpoint; a real model's count can differ.\n`;
md += `\nSame-round ratios, screened / full: median (min–max) over ${rounds} rounds\n\n| metric | ratio |\n|---|---|\n`;
md += `| decode, batch 1 | ${fmt(summary.decode1)} |\n| decode, batch 8 | ${fmt(summary.decode8)} |\n| prefill (last row screened) | ${fmt(summary.prefill)} |\n| batch-1 step's share of a read of its own bytes beside it | ${fmt(summary.paired)} |\n`;
writeFileSync(`${outBase}.md`, md);
writeFileSync(`${outBase}.json`, JSON.stringify({ command: cmd, commit, date, summary, runs }, null, 2) + '\n');
process.stdout.write(md);
process.stderr.write(`wrote ${outBase}.md and ${outBase}.json\n`);
