// What storing the KV cache in fp16 costs in accuracy: this tree's engine against a baseline build that stores it in
// fp32, both against the float64 reference (test/helpers/qwen3-reference.ts) on tiny random checkpoints, and against
// each other on the 8B-shaped demo checkpoint (too large for the reference in JavaScript) at longer prompts.
// Prints a table and writes bench/results/<out>.{md,json}.
// Usage: node --import tsx bench/kv-fp16-tolerance.mjs --base /path/to/baseline/tree [--model .models/8b]
//        [--lengths 64,512] [--out kv-fp16-tolerance]
// The baseline tree must have its own native/build/qwen3 (a build from before the change).
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { argmax, logSoftmax, referenceLogits, relL2 } from '../test/helpers/qwen3-reference.ts';
import { LOGITS_CHECKPOINTS as SPECS } from '../test/helpers/logits-checkpoints.ts';
import { makeTinyQwen3 } from '../test/helpers/tiny-qwen3.ts';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const args = Object.fromEntries(
  process.argv.slice(2).reduce((pairs, a, i, all) => (a.startsWith('--') ? [...pairs, [a.slice(2), all[i + 1]]] : pairs), []),
);
if (!args.base) throw new Error('--base DIR (a tree with a built native/build/qwen3 storing the KV cache in fp32) is required');
const model = args.model ?? '.models/8b';
const lengths = (args.lengths ?? '64,512').split(',').map(Number);
const out = args.out ?? 'kv-fp16-tolerance';
const git = (dir, ...a) => execFileSync('git', ['-C', dir, ...a], { encoding: 'utf8' }).trim();
const commitOf = (dir) =>
  git(dir, 'rev-parse', '--short', 'HEAD') + (git(dir, 'status', '--porcelain', '--untracked-files=no', '--', 'native') ? ' + uncommitted changes' : '');
const builds = [
  { name: 'baseline (fp32 KV)', cli: join(resolve(args.base), 'native', 'build', 'qwen3'), commit: commitOf(resolve(args.base)) },
  { name: 'this tree (fp16 KV)', cli: join(root, 'native', 'build', 'qwen3'), commit: commitOf(root) },
];

function logits(cli, dir, tokens, all) {
  const stdout = execFileSync(cli, ['logits', '--model', dir, '--tokens', tokens.join(','), ...(all ? ['--all'] : [])], {
    encoding: 'utf8', maxBuffer: 1 << 30,
  });
  return JSON.parse(stdout).logits;
}

const prompt = (n, vocab, seed) => Array.from({ length: n }, (_, i) => (seed * 7919 + i * 104729 + ((i * i) % 13)) % vocab);
const maxAbsDiff = (a, b) => a.reduce((m, x, i) => Math.max(m, Math.abs(x - b[i])), 0);

const tiny = [];
for (const [name, spec] of Object.entries(SPECS)) {
  const m = makeTinyQwen3(spec);
  try {
    for (const n of [12, 64]) {
      const toks = prompt(n, m.config.vocab_size, 5);
      const want = referenceLogits(m.config, m.weights, toks);
      const row = { checkpoint: name, tokens: n };
      for (const b of builds) {
        const got = logits(b.cli, m.dir, toks, true);
        row[b.name] = got.reduce((m, r, i) => Math.max(m, relL2(r, want[i])), 0);
        row[`${b.name} logprob`] = got.reduce((m, r, i) => Math.max(m, maxAbsDiff(logSoftmax(r), logSoftmax(want[i]))), 0);
      }
      tiny.push(row);
      console.error(`${name} ${n} tokens: worst relative L2 ${builds.map((b) => row[b.name].toExponential(2)).join(' / ')}`);
    }
  } finally {
    m.cleanup();
  }
}

const large = [];
for (const n of lengths) {
  const toks = prompt(n, 151_000, 7);
  const [a, b] = builds.map((build) => logits(build.cli, join(root, model), toks, false)[0]);
  const la = logSoftmax(a), lb = logSoftmax(b);
  const topA = argmax(a), topB = argmax(b);
  large.push({ tokens: n, relL2: relL2(b, a), maxLogit: maxAbsDiff(a, b), maxLogprob: maxAbsDiff(la, lb), top1Same: topA === topB, top1LogprobDiff: Math.abs(la[topA] - lb[topA]) });
  console.error(`8B ${n} tokens: relative L2 ${large.at(-1).relL2.toExponential(2)}`);
}

const fmt = (x) => x.toExponential(2);
const lines = [
  '# fp16 KV cache: accuracy against fp32 and the float64 reference',
  '',
  `Command: \`node --import tsx bench/kv-fp16-tolerance.mjs --base ${args.base}${args.model ? ` --model ${args.model}` : ''}${args.lengths ? ` --lengths ${args.lengths}` : ''}\`  `,
  `Date: ${new Date().toISOString()}  `,
  `Builds: ${builds.map((b) => `${b.name} at ${b.commit}`).join('; ')}`,
  '',
  'Tiny random checkpoints (the engine-logits test\'s shapes), every position\'s logits (`qwen3 logits --all`) against the float64 reference: the worst relative L2 error over positions (the test allows 1e-3) and the worst absolute log-probability difference over the vocabulary and positions.',
  '',
  `| checkpoint | prompt tokens | ${builds.map((b) => `${b.name}: rel. L2`).join(' | ')} | ${builds.map((b) => `${b.name}: max abs logprob`).join(' | ')} |`,
  `|---|---:|${builds.map(() => '---:').join('|')}|${builds.map(() => '---:').join('|')}|`,
  ...tiny.map((r) => `| ${r.checkpoint} | ${r.tokens} | ${builds.map((b) => fmt(r[b.name])).join(' | ')} | ${builds.map((b) => fmt(r[`${b.name} logprob`])).join(' | ')} |`),
  '',
  `The 8B-shaped demo checkpoint (\`${model}\`, random weights), last position's logits, fp16 KV against fp32 KV:`,
  '',
  '| prompt tokens | relative L2 | max abs logit diff | max abs logprob diff | same top-1 | top-1 logprob diff |',
  '|---:|---:|---:|---:|---|---:|',
  ...large.map((r) => `| ${r.tokens} | ${fmt(r.relL2)} | ${fmt(r.maxLogit)} | ${fmt(r.maxLogprob)} | ${r.top1Same ? 'yes' : 'no'} | ${fmt(r.top1LogprobDiff)} |`),
  '',
];
const md = lines.join('\n');
console.log(md);
writeFileSync(join(root, 'bench', 'results', `${out}.md`), md);
writeFileSync(join(root, 'bench', 'results', `${out}.json`), JSON.stringify({ date: new Date().toISOString(), builds, model, tiny, large }, null, 2) + '\n');
