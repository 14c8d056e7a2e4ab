#!/usr/bin/env node
// The auto thinking-mode classifier (edge/thinking-classifier.ts) on its labelled evaluation set
// (test/fixtures/thinking-prompts.json): accuracy per language on the dev part (what the cues were tuned on) and the
// held-out part (never used for tuning), its time per prompt next to the tokenizer's time for the same prompts (both
// run anyway on every auto-mode request; alternating rounds in one run, CPU time so that other processes on a shared
// machine do not count), and its size in the edge bundle. Writes bench/results/thinking-classifier.{md,json} with the
// command, the machine and the date.
//
//   node --import tsx bench/thinking-classifier.mjs [--split dev|heldout|all] [--misses] [--rounds 200] [--out NAME] [--module PATH --label TEXT]
//
// --split dev --misses is the tuning loop: it shows the dev misses only and leaves the held-out part unseen.
// --module evaluates another version of the classifier (e.g. an earlier commit's file written to /tmp).
import { readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { build } from 'esbuild';
import { getTokenizer } from '../edge/tokenizer/index.ts';
import { median, option } from './bench-args.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const argv = process.argv.slice(2);
const SPLIT = option('split', 'all');
const SHOW_MISSES = argv.includes('--misses');
const ROUNDS = Number(option('rounds', 200));
const OUT = option('out', 'thinking-classifier');
const MODULE = option('module', '../edge/thinking-classifier.ts');
const { classifyPrompt } = await import(MODULE);
/** Which version was measured, for the results file's title (with --module). */
const LABEL = option('label', '');
const LANGUAGE_NAMES = { en: 'English', zh: 'Chinese', es: 'Spanish', fr: 'French', de: 'German', ja: 'Japanese', ru: 'Russian', pt: 'Portuguese', ko: 'Korean', ar: 'Arabic', hi: 'Hindi', it: 'Italian' };

const { prompts } = JSON.parse(readFileSync(join(root, 'test/fixtures/thinking-prompts.json'), 'utf8'));
const evaluated = prompts.filter((p) => SPLIT === 'all' || p.split === SPLIT);

// --- accuracy ----------------------------------------------------------------------------------------------------------
const splits = SPLIT === 'all' ? ['dev', 'heldout'] : [SPLIT];
const tally = new Map(); // `${lang} ${split}` → { right, total, thinkMissed, wronglyThought }
const misses = [];
for (const p of evaluated) {
  const verdict = classifyPrompt(p.text);
  for (const key of [`${p.lang} ${p.split}`, `${p.lang} all`, `all ${p.split}`, 'all all']) {
    const t = tally.get(key) ?? { right: 0, total: 0, thinkMissed: 0, wronglyThought: 0 };
    t.total++;
    if (verdict.enabled === p.think) t.right++;
    else if (p.think) t.thinkMissed++;
    else t.wronglyThought++;
    tally.set(key, t);
  }
  if (verdict.enabled !== p.think) misses.push({ ...p, reason: verdict.reason });
}
const pct = (t) => (t ? `${((100 * t.right) / t.total).toFixed(1)}% (${t.right}/${t.total})` : '—');
const languages = Object.keys(LANGUAGE_NAMES).filter((l) => tally.has(`${l} all`));
const accuracyRows = [...languages, 'all'].map((lang) => ({
  language: lang === 'all' ? 'all' : `${LANGUAGE_NAMES[lang]} (${lang})`,
  ...Object.fromEntries(splits.map((s) => [s, tally.get(`${lang} ${s}`)])),
  all: tally.get(`${lang} all`),
}));
console.log(`accuracy (${SPLIT})`);
console.table(accuracyRows.map((r) => ({ language: r.language, ...Object.fromEntries(splits.map((s) => [s, pct(r[s])])), ...(SPLIT === 'all' ? { all: pct(r.all) } : {}) })));
if (SHOW_MISSES) for (const m of misses) console.log(`${m.lang} ${m.split} ${m.think ? 'THINK' : 'skip '} ${m.kind.padEnd(11)} ${m.reason.padEnd(34)} ${JSON.stringify(m.text).slice(0, 140)}`);

// --- speed: the classifier vs encoding the same prompts, alternating rounds ------------------------------------------------
const tokenizer = getTokenizer();
const texts = prompts.map((p) => p.text);
const longPrompt = `${'Please review the following paragraph carefully and keep its meaning. '.repeat(80)}Then compute 2+2.`;
for (const text of texts) (classifyPrompt(text), tokenizer.encode(text)); // warm up both
/** CPU µs per call of fn over the texts (repeated `times` times). */
const cpuMicros = (fn, inputs, times = 1) => {
  const start = process.cpuUsage();
  for (let i = 0; i < times; i++) for (const text of inputs) fn(text);
  const used = process.cpuUsage(start);
  return (used.user + used.system) / (inputs.length * times);
};
const timeRound = (fn) => cpuMicros(fn, texts);
const classifierRounds = [];
const encodeRounds = [];
for (let round = 0; round < ROUNDS; round++) {
  classifierRounds.push(timeRound(classifyPrompt));
  encodeRounds.push(timeRound((t) => tokenizer.encode(t)));
}
// per prompt: the median of 9 measurements of 50 calls (CPU time has a coarse clock)
const perPrompt = texts.map((text) => median(Array.from({ length: 9 }, () => cpuMicros(classifyPrompt, [text], 50))));
const longUs = median(Array.from({ length: 9 }, () => cpuMicros(classifyPrompt, [longPrompt], 50)));
const quantile = (xs, q) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))];
const speed = {
  classifierUsPerPrompt: median(classifierRounds),
  encodeUsPerPrompt: median(encodeRounds),
  slowestPromptUs: Math.max(...perPrompt),
  p99PromptUs: quantile(perPrompt, 0.99),
  longPromptChars: longPrompt.length,
  longPromptUs: longUs,
};
speed.ratioToEncode = speed.classifierUsPerPrompt / speed.encodeUsPerPrompt;

// --- size in the bundle ------------------------------------------------------------------------------------------------------
async function bundledBytes(entry) {
  const out = await build({ entryPoints: [entry], bundle: true, minify: true, format: 'esm', platform: 'neutral', external: ['cloudflare:*', 'node:*'], write: false, logLevel: 'silent' });
  const code = out.outputFiles[0].contents;
  return { minified: code.length, gzipped: gzipSync(code).length };
}
const classifierSize = await bundledBytes(fileURLToPath(new URL(MODULE, import.meta.url)));
const edgeSize = await bundledBytes(join(root, 'edge/index.ts'));
const size = { classifier: classifierSize, edge: edgeSize, shareOfEdge: classifierSize.minified / edgeSize.minified };

// --- report -------------------------------------------------------------------------------------------------------------------
const f1 = (x) => x.toFixed(1);
console.log(`classifier ${f1(speed.classifierUsPerPrompt)} µs/prompt (median of ${ROUNDS} rounds over ${texts.length} prompts), encode ${f1(speed.encodeUsPerPrompt)} µs/prompt: ratio ${speed.ratioToEncode.toFixed(2)}; slowest prompt ${f1(speed.slowestPromptUs)} µs, ${speed.longPromptChars}-char prompt ${f1(speed.longPromptUs)} µs`);
console.log(`size: ${classifierSize.minified} B minified (${classifierSize.gzipped} B gzipped) = ${(100 * size.shareOfEdge).toFixed(2)}% of the minified edge bundle (${edgeSize.minified} B)`);

if (SPLIT === 'all') {
  const command = `node --import tsx bench/thinking-classifier.mjs ${argv.join(' ')}`.trim();
  const machine = `${os.cpus()[0]?.model ?? 'cpu'} × ${os.cpus().length}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version} (shared with other work while measured)`;
  const date = new Date().toISOString();
  const table = [
    '| language | dev (tuned on) | held-out (never tuned on) | all |',
    '|---|---|---|---|',
    ...accuracyRows.map((r) => `| ${r.language} | ${pct(r.dev)} | ${pct(r.heldout)} | ${pct(r.all)} |`),
  ];
  const missLines = misses.map((m) => `- ${m.lang} ${m.split}, ${m.think ? `should think (${m.kind})` : `should not think (${m.kind})`}, ${m.reason}: ${JSON.stringify(m.text)}`);
  const md = `# Auto thinking-mode classifier${LABEL ? `: ${LABEL}` : ''}

Command: \`${command}\`  
Machine: ${machine}  
Date: ${date}

Evaluation set: \`test/fixtures/thinking-prompts.json\`, ${prompts.length} prompts in ${languages.length} languages, 20 that
should think (math, proofs, code, debugging, logic puzzles, planning, analysis) and 20 that should not (greetings,
thanks, lookups, translation, rewriting, short creative requests) per language. Every third prompt of each language
and label is held out: fixed before the classifier was written, never looked at while tuning.

${table.join('\n')}

Speed (Node, CPU time, same process, alternating rounds): ${f1(speed.classifierUsPerPrompt)} µs per prompt (median of ${ROUNDS}
rounds over all prompts), ${speed.ratioToEncode.toFixed(2)}× the time the edge's tokenizer takes to encode the same
prompts (${f1(speed.encodeUsPerPrompt)} µs); slowest prompt ${f1(speed.slowestPromptUs)} µs, p99 ${f1(speed.p99PromptUs)} µs (median of 9 runs of 50 calls each); a
${speed.longPromptChars}-character prompt ${f1(speed.longPromptUs)} µs (the classifier reads at most 4,000 characters).

Size: ${classifierSize.minified} bytes minified, ${classifierSize.gzipped} bytes gzipped, ${(100 * size.shareOfEdge).toFixed(2)}% of the minified edge
bundle (${edgeSize.minified} bytes, most of it the tokenizer data).

Misclassified (${misses.length}):

${missLines.join('\n')}
`;
  writeFileSync(join(root, `bench/results/${OUT}.md`), md);
  writeFileSync(join(root, `bench/results/${OUT}.json`), JSON.stringify({ command, machine, date, accuracy: accuracyRows, speed, size, misses }, null, 2) + '\n');
  console.log(`wrote bench/results/${OUT}.md and .json`);
}
