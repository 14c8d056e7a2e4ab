#!/usr/bin/env node
// Structured-output benchmark: what xgrammar costs the worker. Writes bench/results/structured-output.{md,json} with
// the command, the machine and the date.
//
//   node --import tsx bench/structured-output.mjs [--rounds 5] [--tokens 64] [--threads 1,2] [--sampling greedy,qwen] [--walk 2000]
//
// 1. Grammar compilation through the worker's GrammarPool (check on the checker thread + compile on a matcher
//    thread, Qwen3's real 151,936-token vocabulary): each format cold (first time), then cached (same format again).
// 2. Next-token bitmask per token, on the same vocabulary, in this thread: random walks through each compiled
//    grammar (every step accepts a random allowed token, then fills the next mask); p50/p99 of fill alone and of
//    accept + fill (what a grammar thread does per sequence per step).
// 3. CPU-engine decode throughput at batch 1 and 8, with and without a grammar: the worker's scheduler, engine and
//    grammar pool in-process on the demo checkpoint, each stream generating --tokens tokens, greedy and with Qwen's
//    default sampling (ignore_eos; the grammar is a JSON array of at least 40 digits, so it never ends first). Rounds
//    alternate with/without so both see the same machine load; the ratio is taken per round and its median
//    reported, with the median step split into forward pass, mask filling (overlapped), the wait it added, sampling.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadEngine } from '../gpu-worker/engine.ts';
import { GrammarPool, QWEN3_TOKENIZER_JSON } from '../gpu-worker/grammar-pool.ts';
import { KvBlocks } from '../gpu-worker/kv-blocks.ts';
import { WorkerMetrics } from '../gpu-worker/metrics.ts';
import { StructuredOutputSchema } from '../gpu-worker/protocol.ts';
import { Scheduler } from '../gpu-worker/scheduler.ts';
import { loadXGrammar, normaliseFormat, tokenizerVocab } from '../gpu-worker/xgrammar.ts';
import { demoModel } from '../test/gpu-worker/worker-process.ts';
import { getTokenizer } from '../edge/tokenizer/index.js';
import { option } from './bench-args.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const argv = process.argv.slice(2);
const ROUNDS = Number(option('rounds', '5'));
const TOKENS = Number(option('tokens', '64'));
const THREADS = option('threads', '1,2').split(',').map(Number);   // engine thread counts to measure
const SAMPLING_NAMES = option('sampling', 'greedy,qwen').split(',');
const WALK = Number(option('walk', '2000'));             // bitmask samples per format
const VOCAB = 151936;
const EOS = [151645, 151643];

const str = (maxLength) => ({ type: 'string', maxLength });
const obj = (properties) => ({ type: 'object', properties, required: Object.keys(properties), additionalProperties: false });
const toolCall = (name, parameters) => ({
  type: 'tag', begin: `<tool_call>\n{"name": "${name}", "arguments": `, content: { type: 'json_schema', json_schema: parameters }, end: '}\n</tool_call>',
});
/** What requests ask for: JSON schemas of several shapes, tool calls, a regex, a choice, any JSON object. */
const FORMATS = {
  'json_schema: person (2 fields)': { type: 'json_schema', json_schema: obj({ name: str(12), age: { type: 'integer', minimum: 0, maximum: 120 } }) },
  'json_schema: order (nested, array, enum)': {
    type: 'json_schema', json_schema: obj({
      id: { type: 'string', format: 'uuid' }, status: { enum: ['new', 'paid', 'shipped'] },
      lines: { type: 'array', minItems: 1, maxItems: 5, items: obj({ sku: { type: 'string', pattern: '^[A-Z]{3}[0-9]{3}$' }, qty: { type: 'integer', minimum: 1 } }) },
      note: { type: 'string' },
    }),
  },
  'json_schema: $defs + anyOf': {
    type: 'json_schema', json_schema: {
      ...obj({ a: { $ref: '#/$defs/v' }, b: { anyOf: [{ $ref: '#/$defs/v' }, { type: 'null' }] } }),
      $defs: { v: obj({ x: { type: 'number' }, label: str(8) }) },
    },
  },
  'json_object (any object)': { type: 'json_schema', json_schema: { type: 'object' } },
  'tool calls: 3 tools, required': {
    type: 'tags_with_separator', separator: '\n', at_least_one: true, tags: [
      toolCall('get_weather', obj({ city: { type: 'string' }, unit: { enum: ['celsius', 'fahrenheit'] } })),
      toolCall('search', obj({ query: { type: 'string' }, limit: { type: 'integer', minimum: 1, maximum: 50 } })),
      toolCall('now', { type: 'object', properties: {} }),
    ],
  },
  'regex: [A-Z]{2}-[0-9]{4}( [a-z]+)?': { type: 'regex', pattern: '[A-Z]{2}-[0-9]{4}( [a-z]+)?' },
  'choice: 4 strings': { type: 'or', elements: ['alpha', 'beta', 'gamma', 'delta'].map((value) => ({ type: 'const_string', value })) },
};
const DIGITS = { type: 'json_schema', json_schema: { type: 'array', items: { type: 'integer', minimum: 0, maximum: 9 }, minItems: 40 } };

const pct = (values, p) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
};
const median = (values) => pct(values, 50);
const spec = (format) => StructuredOutputSchema.parse({ format });

// ---- 1. compile, cold and cached ---------------------------------------------------------------------------------
const pool = new GrammarPool({ tokenizerPath: QWEN3_TOKENIZER_JSON, vocabSize: VOCAB, stopIds: EOS, threads: 1, compileTimeoutMs: 600_000, maxRows: 16 });
let t0 = performance.now();
(await pool.prepare(spec({ type: 'const_string', value: 'warm-up' }))).release();
const threadStartMs = performance.now() - t0;
const compileRows = [];
for (const [name, format] of Object.entries(FORMATS)) {
  t0 = performance.now();
  (await pool.prepare(spec(format))).release();
  const cold = performance.now() - t0;
  const cached = [];
  for (let i = 0; i < 5; i++) {
    t0 = performance.now();
    (await pool.prepare(spec(format))).release();
    cached.push(performance.now() - t0);
  }
  compileRows.push({ format: name, cold_ms: +cold.toFixed(1), cached_ms: +median(cached).toFixed(2) });
  console.log(`compile ${name}: cold ${cold.toFixed(0)} ms, cached ${median(cached).toFixed(2)} ms`);
}

// ---- 2. bitmask per token ----------------------------------------------------------------------------------------
const xg = loadXGrammar();
const { vocab, vocabType } = tokenizerVocab(readFileSync(QWEN3_TOKENIZER_JSON, 'utf8'), ['<tool_call>', '</tool_call>']);
const info = await xg.TokenizerInfo.createTokenizerInfo(vocab, vocabType, false, VOCAB, EOS);
const compiler = await xg.GrammarCompiler.createGrammarCompiler(info, false);
let seed = 12345;
const rand = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
const maskRows = [];
const allFill = [];
const allStep = [];
for (const [name, format] of Object.entries(FORMATS)) {
  const grammar = await compiler.compileStructuralTag(await normaliseFormat(xg, format));
  const fill = [];
  const step = [];
  let matcher = await xg.GrammarMatcher.createGrammarMatcher(grammar);
  let pending;
  while (fill.length < WALK) {
    const s0 = performance.now();
    if (pending !== undefined) matcher.acceptToken(pending);
    const f0 = performance.now();
    const mask = await matcher.getNextTokenBitmask();
    const f1 = performance.now();
    fill.push(f1 - f0);
    step.push(f1 - s0);
    const allowed = [];
    for (let w = 0; w < mask.length; w++) for (let bits = mask[w]; bits; bits &= bits - 1) allowed.push(w * 32 + 31 - Math.clz32(bits & -bits));
    const next = allowed[Math.floor(rand() * allowed.length)];
    if (EOS.includes(next) || fill.length % 64 === 0) {       // finished or long enough: a new sequence
      matcher.dispose();
      matcher = await xg.GrammarMatcher.createGrammarMatcher(grammar);
      pending = undefined;
    } else pending = next;
  }
  matcher.dispose();
  grammar.dispose();
  allFill.push(...fill);
  allStep.push(...step);
  maskRows.push({ format: name, fill_p50_ms: +pct(fill, 50).toFixed(3), fill_p99_ms: +pct(fill, 99).toFixed(3), step_p50_ms: +pct(step, 50).toFixed(3), step_p99_ms: +pct(step, 99).toFixed(3) });
  console.log(`bitmask ${name}: fill p50 ${pct(fill, 50).toFixed(3)} ms p99 ${pct(fill, 99).toFixed(3)} ms; accept+fill p50 ${pct(step, 50).toFixed(3)} p99 ${pct(step, 99).toFixed(3)}`);
}
maskRows.push({ format: 'all formats', fill_p50_ms: +pct(allFill, 50).toFixed(3), fill_p99_ms: +pct(allFill, 99).toFixed(3), step_p50_ms: +pct(allStep, 50).toFixed(3), step_p99_ms: +pct(allStep, 99).toFixed(3) });

// ---- 3. decode throughput with and without a grammar --------------------------------------------------------------
const tok = getTokenizer();
const digits = spec(DIGITS);
(await pool.prepare(digits)).release();                      // compiled once: rounds measure decoding only
/** greedy: the sampler's cheapest path, so the grammar's own cost shows; qwen: Qwen's advised non-thinking sampling
 * (what the edge sends when the client sends none), whose top-k pass over the demo model's flat logits is costly. */
const SAMPLINGS = {
  greedy: { temperature: 0, top_k: 0, top_p: 1, min_p: 0, presence_penalty: 0, frequency_penalty: 0, repetition_penalty: 1, logprobs: 0 },
  qwen: { temperature: 0.7, top_k: 20, top_p: 0.8, min_p: 0, presence_penalty: 0, frequency_penalty: 0, repetition_penalty: 1, logprobs: 0 },
};

/** Step timings (ms) of the current round, from wrappers around the engine and the pool: nothing else changes. */
let timings = [];
const fill = pool.fill.bind(pool);
let fillDone = 0;
pool.fill = async (requests) => {
  const t = performance.now();
  const r = await fill(requests);
  fillDone = performance.now();
  timings.at(-1).fill = fillDone - t;
  return r;
};

async function decodeRows(threads, samplingName) {
  const SAMPLING = SAMPLINGS[samplingName];
  const engine = await loadEngine(demoModel('demo'), { device: 'cpu', threads });
  const timed = {
    info: () => engine.info(), stats: () => engine.stats(), free: () => engine.free(),
    kvAlloc: (n) => engine.kvAlloc(n), kvRetain: (ids) => engine.kvRetain(ids), kvRelease: (ids) => engine.kvRelease(ids),
    kvFreeBlocks: () => engine.kvFreeBlocks(), seqBegin: (id, p, s) => engine.seqBegin(id, p, s),
    seqForce: (id, t) => engine.seqForce(id, t), seqEnd: (id) => engine.seqEnd(id),
  };
  timed.step = async (items, masks) => {
    const t = performance.now();
    const out = await engine.step(items, masks);
    timings.push({ step: performance.now() - t });
    return out;
  };
  timed.forward = async (items) => {
    const t = performance.now();
    timings.push({ fill: 0 });
    await engine.forward(items);
    const end = performance.now();
    Object.assign(timings.at(-1), { forward: end - t, start: t, forwardEnd: end });
  };
  timed.sample = async (items, masks) => {
    const t = performance.now();
    const out = await engine.sample(items, masks);
    const step = timings.at(-1);
    Object.assign(step, { sample: performance.now() - t, wait: Math.max(0, fillDone - step.forwardEnd), step: performance.now() - step.start });
    return out;
  };
  const model = engine.info();
  const kv = new KvBlocks(timed, model.kvBlockSize, model.kvBlocks, false);
  const scheduler = new Scheduler(timed, kv, new WorkerMetrics(), {
    maxBatch: 16, maxQueue: 64, maxQueuePerTenant: 64, prefillChunk: 256, prefillPerRequest: 256, maxContext: model.maxContext, eosIds: model.eosIds,
  });

  /** B streams at once, each TOKENS tokens: generated tokens per second over the round, and its decode steps. */
  async function round(batch, constrained) {
    timings = [];
    const start = performance.now();
    const outputs = await Promise.all(Array.from({ length: batch }, async (_, i) => {
      const prompt = Int32Array.from(tok.encode(`<|im_start|>user\nList digits ${i}.<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n`));
      const task = {
        requestId: `b${i}`, tenant: '', prompt, maxTokens: TOKENS, stopIds: [], ignoreEos: true, sampling: { ...SAMPLING, seed: i },
        grammar: constrained ? await pool.prepare(digits) : undefined,
      };
      return new Promise((resolve, reject) => {
        const tokens = [];
        scheduler.submit(task, { tokens: (t) => tokens.push(...t), finish: () => resolve(tokens), fail: reject });
      });
    }));
    if (constrained) {
      for (const t of outputs) if (!/^\[[0-9]/.test(tok.decode(t.map((x) => x.token)))) throw new Error(`not constrained: ${tok.decode(t.map((x) => x.token))}`);
    }
    const tokS = outputs.reduce((n, t) => n + t.length, 0) / ((performance.now() - start) / 1000);
    return { tokS, steps: timings.slice(1) };                 // the first step is the prefill
  }

  const rows = [];
  for (const batch of [1, 8]) {
    await round(batch, false);
    await round(batch, true);                                 // warm-up
    const free = [];
    const constrained = [];
    const ratios = [];
    const steps = { free: [], grammar: [] };
    for (let r = 0; r < ROUNDS; r++) {
      const got = {};
      for (const c of r % 2 ? [true, false] : [false, true]) got[c] = await round(batch, c);
      free.push(got[false].tokS);
      constrained.push(got[true].tokS);
      ratios.push(got[true].tokS / got[false].tokS);
      steps.free.push(...got[false].steps);
      steps.grammar.push(...got[true].steps);
      console.log(`decode THREADS=${threads} ${samplingName} batch ${batch} round ${r + 1}: ${got[false].tokS.toFixed(1)} tok/s free, ` +
        `${got[true].tokS.toFixed(1)} tok/s with a grammar (${(got[true].tokS / got[false].tokS).toFixed(3)})`);
    }
    const med = (list, key) => +median(list.map((s) => s[key])).toFixed(2);
    rows.push({
      threads, sampling: samplingName, batch, tokens_per_stream: TOKENS, free_tok_s: +median(free).toFixed(1), grammar_tok_s: +median(constrained).toFixed(1),
      ratio: +median(ratios).toFixed(3), cost_pct: +((1 - median(ratios)) * 100).toFixed(1),
      free_step_ms: med(steps.free, 'step'), grammar_step_ms: med(steps.grammar, 'step'), grammar_forward_ms: med(steps.grammar, 'forward'),
      grammar_fill_ms: med(steps.grammar, 'fill'), grammar_wait_ms: med(steps.grammar, 'wait'), grammar_sample_ms: med(steps.grammar, 'sample'),
    });
  }
  engine.free();
  return rows;
}

const decode = [];
for (const threads of THREADS) for (const name of SAMPLING_NAMES) decode.push(...(await decodeRows(threads, name)));
pool.close();

// ---- report -------------------------------------------------------------------------------------------------------
const command = `node --import tsx bench/structured-output.mjs ${argv.join(' ')}`.trim();
const machine = `${os.cpus()[0]?.model ?? 'unknown CPU'} (${os.cpus().length} cores, ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB), Node ${process.version}`;
const date = new Date().toISOString();
const compileTable = [
  '| format | cold ms (check + compile) | cached ms |', '|---|---|---|',
  ...compileRows.map((r) => `| ${r.format} | ${r.cold_ms} | ${r.cached_ms} |`),
].join('\n');
const maskTable = [
  '| format | fill p50 ms | fill p99 ms | accept + fill p50 ms | accept + fill p99 ms |', '|---|---|---|---|---|',
  ...maskRows.map((r) => `| ${r.format} | ${r.fill_p50_ms} | ${r.fill_p99_ms} | ${r.step_p50_ms} | ${r.step_p99_ms} |`),
].join('\n');
const decodeTable = [
  '| engine threads | sampling | batch | free tok/s | with a grammar tok/s | ratio (median of rounds) | grammar cost |', '|---|---|---|---|---|---|---|',
  ...decode.map((r) => `| ${r.threads} | ${r.sampling} | ${r.batch} | ${r.free_tok_s} | ${r.grammar_tok_s} | ${r.ratio} | ${r.cost_pct}% |`),
].join('\n');
const stepTable = [
  '| engine threads | sampling | batch | free step ms | grammar step ms | forward ms | mask fill ms (during forward) | wait for masks ms | sample ms |',
  '|---|---|---|---|---|---|---|---|---|',
  ...decode.map((r) => `| ${r.threads} | ${r.sampling} | ${r.batch} | ${r.free_step_ms} | ${r.grammar_step_ms} | ${r.grammar_forward_ms} | ${r.grammar_fill_ms} | ${r.grammar_wait_ms} | ${r.grammar_sample_ms} |`),
].join('\n');
console.log(`\n${compileTable}\n\n${maskTable}\n\n${decodeTable}\n\n${stepTable}`);
const out = join(root, 'bench', 'results');
mkdirSync(out, { recursive: true });
writeFileSync(join(out, 'structured-output.json'), JSON.stringify({
  command, machine, date, vocab_size: VOCAB, xgrammar: '@mlc-ai/web-xgrammar 0.1.27 (WASM)', grammar_thread_start_ms: +threadStartMs.toFixed(0),
  engine: `cpu, THREADS=${THREADS.join(' and ')}, demo checkpoint`, sampling: SAMPLINGS, rounds: ROUNDS, compile: compileRows, bitmask: maskRows, decode,
}, null, 1) + '\n');
writeFileSync(join(out, 'structured-output.md'), [
  '# Structured outputs: xgrammar\'s cost in the worker', '',
  `- command: \`${command}\``, `- date: ${date}`, `- machine: ${machine}; shared with other work while it ran`,
  `- grammar engine: @mlc-ai/web-xgrammar 0.1.27 (xgrammar's WASM build), Qwen3's tokenizer.json, ${VOCAB}-token vocabulary; ` +
    `grammar threads start in ${threadStartMs.toFixed(0)} ms (tokenizer info), which the worker does at boot`,
  `- decode: CPU engine (THREADS=${THREADS.join(' and ')}), demo checkpoint, the worker's scheduler and one grammar thread in-process`,
  '', '## Compilation', '', compileTable, '',
  'Cold: the first request with this format (checked on the checker thread, compiled on the matcher thread). Cached:',
  'the same format again (the check and the compiled grammar are both reused).', '',
  '## Next-token bitmask, per token', '', maskTable, '',
  `${WALK} steps per format along random walks (each step accepts a random allowed token). Fill is what the grammar`,
  'thread does for a sequence while the forward pass runs; the engine then samples among the allowed tokens only.', '',
  '## Decode throughput', '', decodeTable, '', stepTable, '',
  `${TOKENS} tokens per stream, all constrained by a JSON array of digits (minItems 40) or none; sampling greedy, or`,
  `Qwen's default non-thinking sampling (T 0.7, top-p 0.8, top-k 20). ${ROUNDS} rounds alternating free/constrained;`,
  'ratio = constrained / free within a round, median over rounds; step times are medians of the decode steps. The',
  'grammar thread fills the masks while the forward pass runs, so they add only the wait past its end; and a masked',
  'sample draws from the allowed tokens alone, where a free one scans all 151,936 logits — on this tiny demo model,',
  'whose forward pass is cheap and whose logits are flat noise (so top-k keeps tens of thousands of candidates to',
  'sort), that scan is a large part of a step, which is why a constrained step can be the faster one. Compare the',
  'ratios measured in this run, not absolute numbers across machines.', '',
].join('\n'));
console.log(`wrote ${join(out, 'structured-output.md')} and .json`);
process.exit(0);
