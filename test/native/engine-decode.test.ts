// Proves decoding through the paged KV cache is right: token-by-token decode equals one full prefill and the
// float64 reference (also past 512 positions, where the CPU attention is split by position); sequences batched in one step() (mixed prefill chunks and decode tokens) equal each decoded
// alone; seeded sampling is reproducible and respects top-k; greedy CLI generation follows the reference's argmax;
// generation stops on an EOS id from generation_config.json (or stopIds) and at max tokens with "length".
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadAddon, type BatchItem, type Engine, type GenerateParams, type SampledToken } from '../../native/addon/index.ts';
import { argmax, logSoftmax, referenceLogits } from '../helpers/qwen3-reference.ts';
import { makeTinyQwen3, type TinyQwen3 } from '../helpers/tiny-qwen3.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const CLI = join(root, 'native', 'build', 'qwen3');
const BLOCK = 4; // tokens per KV block: small, so every sequence spans several blocks
const blocksFor = (n: number) => Math.ceil(n / BLOCK);
/** Absolute log-probability tolerance: engine vs the float64 reference. */
const REF_TOL = 5e-3;
/** Absolute log-probability tolerance: engine vs itself along another path (decode vs prefill, batched vs alone). */
const SELF_TOL = 1e-3;

function cli(args: string[]): { status: number | null; stdout: string; stderr: string } {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`node scripts/build-native.mjs\``);
  const r = spawnSync(CLI, args, { encoding: 'utf8', maxBuffer: 64 << 20, timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function cliGenerate(dir: string, tokens: number[], extra: string[]): { tokens: number[]; finish_reason: string } {
  const r = cli(['generate', '--model', dir, '--tokens', tokens.join(','), ...extra]);
  if (r.status !== 0) throw new Error(`qwen3 generate exited ${r.status}: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

function prompt(n: number, vocab: number, seed: number): number[] {
  return Array.from({ length: n }, (_, i) => (seed * 7919 + i * 104729 + ((i * i) % 13)) % vocab);
}

/**
 * Checks a sampled token's top-n log-probabilities against a full log-softmax vector: each listed token's value is
 * within tol, the list is the true top-n (nothing outside it beats its last entry by more than tol), and the
 * greedy token is an argmax up to tol.
 */
function expectTopMatches(s: SampledToken, want: Float64Array, tol: number, label: string): void {
  expect(s.top, `${label}: top logprobs missing`).toBeDefined();
  const top = s.top!;
  expect(top.length, label).toBeGreaterThan(0);
  for (const t of top) expect(Math.abs(t.logprob - want[t.token]), `${label}: token ${t.token}`).toBeLessThan(tol);
  const listed = new Set(top.map((t) => t.token));
  const floor = Math.min(...top.map((t) => t.logprob));
  want.forEach((v, tok) => {
    if (!listed.has(tok)) expect(v, `${label}: token ${tok} missing from top`).toBeLessThan(floor + tol);
  });
  expect(Math.abs(s.logprob - want[s.token]), `${label}: sampled logprob`).toBeLessThan(tol);
}

/** Prefills a long and a short sequence in one step, decodes each one's last token in the next, and checks both against
 * the reference. */
async function expectLongAndShortMatch(engine: Engine, ref: (toks: number[]) => Float64Array[], long: number[], short: number[]) {
  const bl = engine.kvAlloc(blocksFor(long.length))!, bs = engine.kvAlloc(blocksFor(short.length))!;
  engine.seqBegin(2, Int32Array.from(long.slice(0, -1)), { temperature: 0, logprobs: 20 });
  engine.seqBegin(3, Int32Array.from(short.slice(0, -1)), { temperature: 0, logprobs: 20 });
  try {
    await engine.step([
      { seqId: 2, tokens: Int32Array.from(long.slice(0, -1)), pos: 0, blockTable: bl, sample: false },
      { seqId: 3, tokens: Int32Array.from(short.slice(0, -1)), pos: 0, blockTable: bs, sample: false },
    ]);
    const [a, b] = await engine.step([
      { seqId: 2, tokens: Int32Array.of(long[long.length - 1]), pos: long.length - 1, blockTable: bl, sample: true },
      { seqId: 3, tokens: Int32Array.of(short[short.length - 1]), pos: short.length - 1, blockTable: bs, sample: true },
    ]);
    expectTopMatches(a!, ref(long)[long.length - 1], REF_TOL, 'long sequence');
    expectTopMatches(b!, ref(short)[short.length - 1], REF_TOL, 'short sequence');
  } finally {
    engine.seqEnd(2);
    engine.seqEnd(3);
    engine.kvRelease(bl);
    engine.kvRelease(bs);
  }
}

function expectGreedy(token: number, want: Float64Array, tol: number, label: string): void {
  expect(want[token], `${label}: token ${token} is not the argmax ${argmax(want)}`).toBeGreaterThan(want[argmax(want)] - tol);
}

describe('KV-cache decoding', () => {
  let m: TinyQwen3;
  let engine: Engine;
  const V = 512;

  beforeAll(async () => {
    m = makeTinyQwen3({
      hidden: 64, intermediate: 128, heads: 4, kvHeads: 2, headDim: 16, vocab: V, groupSize: 32,
      maxPositionEmbeddings: 128, eosTokenIds: [V - 1, V - 2], seed: 5,
    });
    engine = await loadAddon().load(m.dir, { kvBlockSize: BLOCK, kvBlocks: 64 });
  });
  afterAll(() => {
    engine?.free();
    m?.cleanup();
  });

  const ref = (toks: number[]) => referenceLogits(m.config, m.weights, toks).map(logSoftmax);

  it('reports the model and KV geometry it loaded', () => {
    const info = engine.info();
    expect(info).toMatchObject({ hiddenSize: 64, heads: 4, kvHeads: 2, headDim: 16, vocabSize: V, kvBlockSize: BLOCK, kvBlocks: 64 });
    expect([...info.eosIds].sort()).toEqual([V - 2, V - 1]);
    expect(engine.kvFreeBlocks()).toBe(64);
  });

  it('token-by-token decode equals one full prefill and the reference at every position', async () => {
    const toks = prompt(14, V, 1);
    const want = ref(toks);
    const prefill = await engine.logits(Int32Array.from(toks), true);
    const blocks = engine.kvAlloc(blocksFor(toks.length))!;
    expect(blocks).not.toBeNull();
    engine.seqBegin(1, Int32Array.from(toks.slice(0, 1)), { temperature: 0, logprobs: 20 });
    try {
      for (let t = 0; t < toks.length; t++) {
        const [s] = await engine.step([
          { seqId: 1, tokens: Int32Array.of(toks[t]), pos: t, blockTable: blocks.subarray(0, blocksFor(t + 1)), sample: true },
        ]);
        expect(s).not.toBeNull();
        expect(s!.top).toHaveLength(20);
        const prefillRow = logSoftmax(prefill.subarray(t * V, (t + 1) * V));
        expectTopMatches(s!, prefillRow, SELF_TOL, `decode vs prefill, position ${t}`);
        expectTopMatches(s!, want[t], REF_TOL, `decode vs reference, position ${t}`);
        expectGreedy(s!.token, want[t], REF_TOL, `greedy at position ${t}`);
      }
    } finally {
      engine.seqEnd(1);
      engine.kvRelease(blocks);
    }
    expect(engine.kvFreeBlocks()).toBe(64);
  });

  /** A sequence's schedule: its prompt, fed as chunks, then `decode` greedy tokens. */
  interface Seq { id: number; prompt: number[]; chunks: number[]; decode: number }
  const SEQS: Seq[] = [
    { id: 11, prompt: prompt(5, V, 2), chunks: [5], decode: 6 },
    { id: 12, prompt: prompt(9, V, 3), chunks: [4, 5], decode: 6 }, // chunked prefill
    { id: 13, prompt: prompt(14, V, 4), chunks: [14], decode: 6 },
  ];

  /** Runs one sequence alone; returns its sampled tokens (first from prefill, then per decode step). */
  async function runAlone(s: Seq): Promise<SampledToken[]> {
    const total = s.prompt.length + s.decode;
    const blocks = engine.kvAlloc(blocksFor(total))!;
    engine.seqBegin(s.id, Int32Array.from(s.prompt), { temperature: 0, logprobs: 20 });
    const out: SampledToken[] = [];
    try {
      let pos = 0;
      for (const [ci, n] of s.chunks.entries()) {
        const last = ci === s.chunks.length - 1;
        const [r] = await engine.step([
          { seqId: s.id, tokens: Int32Array.from(s.prompt.slice(pos, pos + n)), pos, blockTable: blocks.subarray(0, blocksFor(pos + n)), sample: last },
        ]);
        if (!last) expect(r).toBeNull();
        else out.push(r!);
        pos += n;
      }
      while (out.length <= s.decode) {
        const [r] = await engine.step([
          { seqId: s.id, tokens: Int32Array.of(out[out.length - 1].token), pos, blockTable: blocks.subarray(0, blocksFor(pos + 1)), sample: true },
        ]);
        out.push(r!);
        pos += 1;
      }
      return out;
    } finally {
      engine.seqEnd(s.id);
      engine.kvRelease(blocks);
    }
  }

  it('sequences of different lengths decoded together in one step() equal each decoded alone', async () => {
    const alone = new Map<number, SampledToken[]>();
    for (const s of SEQS) {
      const out = await runAlone(s);
      alone.set(s.id, out);
      // The solo run is itself checked against the reference, so "batched = alone" is not agreement on a wrong answer.
      const gen = out.map((r) => r.token);
      const want = ref([...s.prompt, ...gen.slice(0, -1)]);
      out.forEach((r, i) => {
        const row = want[s.prompt.length - 1 + i];
        expectTopMatches(r, row, REF_TOL, `seq ${s.id} alone, output ${i} vs reference`);
        expectGreedy(r.token, row, REF_TOL, `seq ${s.id} alone, output ${i}`);
      });
    }
    expect(engine.kvFreeBlocks()).toBe(64);

    // Batched: seq 13 joins one step late, so steps mix prefill chunks with decode tokens of other sequences.
    // Each sequence is fed its solo tokens (teacher forcing), so one near-tie cannot derail the comparison.
    const state = SEQS.map((s, idx) => ({
      s,
      start: idx === 2 ? 1 : 0,
      blocks: engine.kvAlloc(blocksFor(s.prompt.length + s.decode))!,
      chunk: 0,
      pos: 0,
      got: [] as SampledToken[],
    }));
    for (const st of state) engine.seqBegin(st.s.id, Int32Array.from(st.s.prompt), { temperature: 0, logprobs: 20 });
    try {
      for (let step = 0; state.some((st) => st.got.length <= st.s.decode); step++) {
        const items: BatchItem[] = [];
        const owners: typeof state = [];
        for (const st of state) {
          if (step < st.start || st.got.length > st.s.decode) continue;
          let feed: number[];
          let sample: boolean;
          if (st.chunk < st.s.chunks.length) {
            feed = st.s.prompt.slice(st.pos, st.pos + st.s.chunks[st.chunk]);
            sample = st.chunk === st.s.chunks.length - 1;
            st.chunk++;
          } else {
            feed = [alone.get(st.s.id)![st.got.length - 1].token];
            sample = true;
          }
          items.push({ seqId: st.s.id, tokens: Int32Array.from(feed), pos: st.pos, blockTable: st.blocks.subarray(0, blocksFor(st.pos + feed.length)), sample });
          owners.push(st);
          st.pos += feed.length;
        }
        expect(items.length).toBeGreaterThan(0);
        const res = await engine.step(items);
        expect(res).toHaveLength(items.length);
        res.forEach((r, i) => {
          if (items[i].sample) {
            expect(r).not.toBeNull();
            owners[i].got.push(r!);
          } else {
            expect(r).toBeNull();
          }
        });
      }
    } finally {
      for (const st of state) {
        engine.seqEnd(st.s.id);
        engine.kvRelease(st.blocks);
      }
    }
    expect(state.some((st) => st.s.chunks.length > 1)).toBe(true);
    for (const st of state) {
      const solo = alone.get(st.s.id)!;
      expect(st.got).toHaveLength(solo.length);
      st.got.forEach((r, i) => {
        const soloRow = new Float64Array(V).fill(-Infinity);
        for (const t of solo[i].top!) soloRow[t.token] = t.logprob;
        for (const t of r.top!) {
          if (soloRow[t.token] === -Infinity) continue; // outside the solo top-n: checked through the values below
          expect(Math.abs(t.logprob - soloRow[t.token]), `seq ${st.s.id} output ${i} token ${t.token}`).toBeLessThan(SELF_TOL);
        }
        const a = r.top!.map((t) => t.logprob);
        const b = solo[i].top!.map((t) => t.logprob);
        expect(a).toHaveLength(b.length);
        a.forEach((v, j) => expect(Math.abs(v - b[j]), `seq ${st.s.id} output ${i} rank ${j}`).toBeLessThan(SELF_TOL));
        if (solo[i].top!.length < 2 || solo[i].top![0].logprob - solo[i].top![1].logprob > SELF_TOL) {
          expect(r.token, `seq ${st.s.id} output ${i}`).toBe(solo[i].token);
        }
      });
    }
    expect(engine.kvFreeBlocks()).toBe(64);
  });

  it('a block-aligned prefix shared through the block table (kvRetain) gives the same logits as a full prefill', async () => {
    const prefix = prompt(2 * BLOCK, V, 8);
    const a = [...prefix, ...prompt(3, V, 9)];
    const b = [...prefix, ...prompt(5, V, 10)];
    const free0 = engine.kvFreeBlocks();
    const aBlocks = engine.kvAlloc(blocksFor(a.length))!;
    engine.seqBegin(21, Int32Array.from(a), { temperature: 0, logprobs: 20 });
    engine.seqBegin(22, Int32Array.from(b), { temperature: 0, logprobs: 20 });
    try {
      const [ra] = await engine.step([{ seqId: 21, tokens: Int32Array.from(a), pos: 0, blockTable: aBlocks, sample: true }]);
      // b reuses a's two full prefix blocks and prefills only its own suffix from position 2·BLOCK.
      const shared = aBlocks.subarray(0, 2);
      engine.kvRetain(shared);
      const own = engine.kvAlloc(blocksFor(b.length) - 2)!;
      engine.kvRelease(aBlocks); // a is done; the shared blocks must survive through b's reference
      expect(engine.kvFreeBlocks()).toBe(free0 - blocksFor(b.length));
      const bTable = Int32Array.from([...shared, ...own]);
      const [rb] = await engine.step([
        { seqId: 22, tokens: Int32Array.from(b.slice(prefix.length)), pos: prefix.length, blockTable: bTable, sample: true },
      ]);
      expectTopMatches(ra!, ref(a)[a.length - 1], REF_TOL, 'sequence a');
      expectTopMatches(rb!, ref(b)[b.length - 1], REF_TOL, 'sequence b over the shared prefix');
      const fullB = logSoftmax((await engine.logits(Int32Array.from(b), false)).subarray(0, V));
      expectTopMatches(rb!, fullB, SELF_TOL, 'shared prefix vs full prefill');
      engine.kvRelease(bTable);
    } finally {
      engine.seqEnd(21);
      engine.seqEnd(22);
    }
    expect(engine.kvFreeBlocks()).toBe(free0);
  });

  async function generate(toks: number[], params: GenerateParams): Promise<{ tokens: SampledToken[]; finishReason: string }> {
    const got: SampledToken[] = [];
    const g = engine.generate(Int32Array.from(toks), params, (ts) => got.push(...ts));
    const { finishReason } = await g.done;
    return { tokens: got, finishReason };
  }

  it('seeded sampling is reproducible, differs across seeds, and stays inside top-k', async () => {
    const toks = prompt(6, V, 5);
    const params = (seed: number, topK = 0): GenerateParams => ({
      maxTokens: 16, stopIds: [], sampling: { temperature: 1, seed, top_k: topK, logprobs: 0 },
    });
    const ga = await generate(toks, params(42));
    const a = ga.tokens.map((t) => t.token);
    const b = (await generate(toks, params(42))).tokens.map((t) => t.token);
    const c = (await generate(toks, params(43))).tokens.map((t) => t.token);
    // A default EOS (2 of 512 ids) may be sampled; otherwise the run must fill max tokens.
    if (ga.finishReason === 'length') expect(a).toHaveLength(16);
    expect(a.length).toBeGreaterThan(8);
    expect(b).toEqual(a);
    expect(c).not.toEqual(a);
    // Random tiny model at T=1 is far from one-hot: repeated greedy-looking output would mean temperature is ignored.
    expect(new Set(a).size).toBeGreaterThan(4);

    const k = (await generate(toks, params(7, 3))).tokens.map((t) => t.token);
    expect(k.length).toBeGreaterThan(0);
    const want = ref([...toks, ...k.slice(0, -1)]);
    k.forEach((tok, i) => {
      const row = want[toks.length - 1 + i];
      const third = [...row].sort((x, y) => y - x)[2];
      expect(row[tok], `sample ${i}: token ${tok} outside the reference top-3`).toBeGreaterThan(third - REF_TOL);
    });

    // top-k 1 and a tiny top-p leave only the argmax, whatever the temperature and seed.
    const greedy = referenceGreedy(toks, 6);
    for (const sampling of [{ temperature: 1.5, top_k: 1, seed: 3 }, { temperature: 1.5, top_p: 1e-6, seed: 4 }]) {
      const r = await generate(toks, { maxTokens: 6, sampling });
      expect(r.tokens.map((t) => t.token), JSON.stringify(sampling)).toEqual(greedy.slice(0, r.tokens.length));
    }
    expect(cliGenerate(m.dir, toks, ['--max-tokens', '6', '--temperature', '1.5', '--top-k', '1', '--seed', '5']).tokens).toEqual(greedy);
    expect(cliGenerate(m.dir, toks, ['--max-tokens', '6', '--temperature', '1.5', '--top-p', '0.000001', '--seed', '6']).tokens).toEqual(greedy);

    const cliA = cliGenerate(m.dir, toks, ['--max-tokens', '12', '--temperature', '1', '--seed', '42']);
    const cliB = cliGenerate(m.dir, toks, ['--max-tokens', '12', '--temperature', '1', '--seed', '42']);
    const cliC = cliGenerate(m.dir, toks, ['--max-tokens', '12', '--temperature', '1', '--seed', '43']);
    expect(cliB.tokens).toEqual(cliA.tokens);
    expect(cliC.tokens).not.toEqual(cliA.tokens);
  });

  /** Greedy continuation by the reference, one full forward pass per token. */
  function referenceGreedy(toks: number[], n: number): number[] {
    const out: number[] = [];
    for (let i = 0; i < n; i++) {
      const rows = referenceLogits(m.config, m.weights, [...toks, ...out]);
      out.push(argmax(rows[rows.length - 1]));
    }
    return out;
  }

  function withEos(ids: number[] | number, fn: () => Promise<void> | void): Promise<void> {
    const path = join(m.dir, 'generation_config.json');
    const original = readFileSync(path, 'utf8');
    writeFileSync(path, JSON.stringify({ ...JSON.parse(original), eos_token_id: ids }));
    return Promise.resolve()
      .then(fn)
      .finally(() => writeFileSync(path, original));
  }

  it('greedy CLI generate follows the reference argmax for 8 tokens and ends with "length"', async () => {
    const toks = prompt(7, V, 6);
    const greedy = referenceGreedy(toks, 8);
    const unused = [...Array(V).keys()].filter((t) => !greedy.includes(t)).slice(-2);
    await withEos(unused, () => {
      const r = cliGenerate(m.dir, toks, ['--max-tokens', '8', '--temperature', '0']);
      expect(r.finish_reason).toBe('length');
      expect(r.tokens).toHaveLength(8);
      // Step by step against the engine's own prefix, so a near-tie is judged at the step where it happens.
      const want = ref([...toks, ...r.tokens.slice(0, -1)]);
      r.tokens.forEach((tok, i) => expectGreedy(tok, want[toks.length - 1 + i], REF_TOL, `CLI greedy step ${i}`));
    });
  });

  it('stops on an EOS id from generation_config.json (CLI) and on stopIds (addon)', async () => {
    const toks = prompt(7, V, 6);
    const greedy = referenceGreedy(toks, 8);
    // First position k ≥ 2 whose token did not occur earlier: making it EOS must stop there.
    const k = greedy.findIndex((t, i) => i >= 2 && !greedy.slice(0, i).includes(t));
    expect(k).toBeGreaterThan(0);
    const eos = greedy[k];
    const other = [...Array(V).keys()].find((t) => !greedy.includes(t))!;
    await withEos([other, eos], () => {
      const r = cliGenerate(m.dir, toks, ['--max-tokens', '8', '--temperature', '0']);
      expect(r.finish_reason).toBe('stop');
      // Whether the EOS id itself is reported is a CLI choice; nothing may follow it.
      const body = r.tokens[r.tokens.length - 1] === eos ? r.tokens.slice(0, -1) : r.tokens;
      expect(body).toEqual(greedy.slice(0, k));
    });
    // generation_config.json may also hold a single id instead of a list (transformers accepts both).
    await withEos(eos, () => {
      const r = cliGenerate(m.dir, toks, ['--max-tokens', '8', '--temperature', '0']);
      expect(r.finish_reason).toBe('stop');
      const body = r.tokens[r.tokens.length - 1] === eos ? r.tokens.slice(0, -1) : r.tokens;
      expect(body).toEqual(greedy.slice(0, k));
    });

    const g = await generate(toks, { maxTokens: 8, stopIds: [eos], sampling: { temperature: 0 } });
    expect(g.finishReason).toBe('stop');
    const ids = g.tokens.map((t) => t.token);
    const body = ids[ids.length - 1] === eos ? ids.slice(0, -1) : ids;
    expect(body).toEqual(greedy.slice(0, k));
  });

  it('generation that reaches the context limit ends with "length", never an error or a token past the cache', async () => {
    const ctx = 20;
    const small = await loadAddon().load(m.dir, { maxContext: ctx, kvBlockSize: BLOCK });
    try {
      expect(small.info().maxContext).toBe(ctx);
      const toks = prompt(ctx - 3, V, 11);
      const got: SampledToken[] = [];
      const g = small.generate(Int32Array.from(toks), { maxTokens: 10, stopIds: [], sampling: { temperature: 0 } }, (ts) => got.push(...ts));
      expect((await g.done).finishReason).toBe('length');
      const ids = got.map((t) => t.token);
      // As in vLLM, prompt + output never exceed the context: exactly ctx − prompt tokens come out.
      expect(ids.length).toBe(ctx - toks.length);
      const want = ref([...toks, ...ids.slice(0, -1)]);
      ids.forEach((tok, i) => expectGreedy(tok, want[toks.length - 1 + i], REF_TOL, `near-context step ${i}`));
    } finally {
      small.free();
    }
  });

  it('max tokens ends an addon generation with "length" after exactly that many tokens', async () => {
    const toks = prompt(7, V, 6);
    const greedy = referenceGreedy(toks, 5);
    expect(greedy.filter((t) => t >= V - 2), 'precondition: no default EOS in the greedy run').toEqual([]);
    const g = await generate(toks, { maxTokens: 5, sampling: { temperature: 0 } });
    expect(g.finishReason).toBe('length');
    const ids = g.tokens.map((t) => t.token);
    const want = ref([...toks, ...ids.slice(0, -1)]);
    ids.forEach((tok, i) => expectGreedy(tok, want[toks.length - 1 + i], REF_TOL, `addon greedy step ${i}`));
    expect(ids).toHaveLength(5);
  });
});

/** A tiny checkpoint with Qwen3's head_dim (128) and 4 query heads per KV head. */
const qwenShaped = (vocab: number, maxPositionEmbeddings: number, seed: number) => ({
  hidden: 128, intermediate: 256, heads: 8, kvHeads: 2, headDim: 128, vocab, groupSize: 128, maxPositionEmbeddings, seed,
});

// At Qwen3's head_dim (128) and 4 query heads per KV head the AVX-512 attention scores 4 K rows at a time, block by
// block through the block table (attention_cpu_avx512.cpp); blocks of 4 tokens make a 100-token sequence span 25
// blocks, and a block's last rows are often past the sequence's end.
describe('KV-cache decoding at head_dim 128, 4 query heads per KV head', () => {
  const V = 384;
  const N = 100;
  const spec = qwenShaped(V, 128, 8);
  let m: TinyQwen3;
  let engine: Engine;
  beforeAll(async () => {
    m = makeTinyQwen3(spec);
    engine = await loadAddon().load(m.dir, { kvBlockSize: BLOCK, kvBlocks: 64 });
  });
  afterAll(() => void (engine?.free(), m?.cleanup()));
  const ref = (toks: number[]) => referenceLogits(m.config, m.weights, toks).map(logSoftmax);

  it(`token-by-token decode over ${N} positions equals one full prefill and the reference at every position`, async () => {
    const toks = prompt(N, V, 21);
    const want = ref(toks);
    const prefill = await engine.logits(Int32Array.from(toks), true);
    const blocks = engine.kvAlloc(blocksFor(N))!;
    expect(blocks).not.toBeNull();
    engine.seqBegin(1, Int32Array.from(toks.slice(0, 1)), { temperature: 0, logprobs: 20 });
    try {
      for (let t = 0; t < N; t++) {
        const [s] = await engine.step([
          { seqId: 1, tokens: Int32Array.of(toks[t]), pos: t, blockTable: blocks.subarray(0, blocksFor(t + 1)), sample: true },
        ]);
        const prefillRow = logSoftmax(prefill.subarray(t * V, (t + 1) * V));
        expectTopMatches(s!, prefillRow, SELF_TOL, `decode vs prefill, position ${t}`);
        expectTopMatches(s!, want[t], REF_TOL, `decode vs reference, position ${t}`);
      }
    } finally {
      engine.seqEnd(1);
      engine.kvRelease(blocks);
    }
  });

  it('a long and a short sequence decoded in one step each match the reference', async () => {
    const long = prompt(90, V, 22), short = prompt(9, V, 23);
    await expectLongAndShortMatch(engine, ref, long, short);
  });
});

// From 512 positions on, a decode step's attention is split by position where a SIMD path runs (forward_cpu.cpp:
// each token's blocks in parts over the threads, all KV heads of a block read together, the parts' softmax sums
// merged); below, one task per KV head. Here with 4-position blocks the longest sequence's parts are 32 blocks each.
describe('KV-cache decoding past 512 positions (the attention split by position)', () => {
  const V = 384;
  const P = 530; // prompt tokens before the decoded ones
  const spec = qwenShaped(V, 640, 9);
  let m: TinyQwen3;
  let engine: Engine;
  beforeAll(async () => {
    m = makeTinyQwen3(spec);
    engine = await loadAddon().load(m.dir, { kvBlockSize: BLOCK, kvBlocks: 2 * blocksFor(640) });
  });
  afterAll(() => void (engine?.free(), m?.cleanup()));
  const ref = (toks: number[]) => referenceLogits(m.config, m.weights, toks).map(logSoftmax);

  it('tokens decoded one by one after a long prompt equal one full prefill and the reference', async () => {
    const toks = prompt(P + 6, V, 31);
    const want = ref(toks);
    const prefill = await engine.logits(Int32Array.from(toks), true);
    const blocks = engine.kvAlloc(blocksFor(toks.length))!;
    engine.seqBegin(1, Int32Array.from(toks.slice(0, P)), { temperature: 0, logprobs: 20 });
    try {
      await engine.step([{ seqId: 1, tokens: Int32Array.from(toks.slice(0, P)), pos: 0, blockTable: blocks.subarray(0, blocksFor(P)), sample: false }]);
      for (let t = P; t < toks.length; t++) {
        const [s] = await engine.step([
          { seqId: 1, tokens: Int32Array.of(toks[t]), pos: t, blockTable: blocks.subarray(0, blocksFor(t + 1)), sample: true },
        ]);
        expectTopMatches(s!, logSoftmax(prefill.subarray(t * V, (t + 1) * V)), SELF_TOL, `decode vs prefill, position ${t}`);
        expectTopMatches(s!, want[t], REF_TOL, `decode vs reference, position ${t}`);
      }
    } finally {
      engine.seqEnd(1);
      engine.kvRelease(blocks);
    }
  });

  it('a long and a short sequence decoded in one step each match the reference', async () => {
    const long = prompt(P + 1, V, 32), short = prompt(40, V, 33);
    await expectLongAndShortMatch(engine, ref, long, short);
  });
});

