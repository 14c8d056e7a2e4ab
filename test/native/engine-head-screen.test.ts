// The screened CPU lm_head (docs/cpu-head-screen.md) end to end on a tiny random checkpoint: two engines, one that
// screens (cpuHead 'screened') and one with the full fp16 head, decode the same sequences to the same tokens (greedy,
// seeded top-k with top-p and penalties, token masks, batches of several sequences); a sequence that asks for
// logprobs, or shares a batch with one, gets the full head and exactly the full head's logprobs.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadAddon, maskWords, type Engine, type SampledToken, type Sampling } from '../../native/addon/index.ts';
import { makeTinyQwen3, type TinyQwen3 } from '../helpers/tiny-qwen3.ts';

const V = 1024;
const BLOCK = 4;
const STEPS = 24;

describe('screened lm_head', () => {
  let m: TinyQwen3;
  let screened: Engine;
  let full: Engine;

  beforeAll(async () => {
    m = makeTinyQwen3({
      hidden: 64, intermediate: 128, heads: 4, kvHeads: 2, headDim: 16, vocab: V, groupSize: 32,
      maxPositionEmbeddings: 256, eosTokenIds: [V - 1], seed: 23,
    });
    screened = await loadAddon().load(m.dir, { kvBlockSize: BLOCK, kvBlocks: 256, cpuHead: 'screened' });
    full = await loadAddon().load(m.dir, { kvBlockSize: BLOCK, kvBlocks: 256, cpuHead: 'full' });
  });
  afterAll(() => {
    screened?.free();
    full?.free();
    m?.cleanup();
  });

  const prompt = (n: number, seed: number) => Array.from({ length: n }, (_, i) => (seed * 131 + i * 37 + i * i) % (V - 1));

  /**
   * Decodes STEPS tokens for each sequence, all in one batch per step (prefill first), each sample under its mask
   * when `allowed` gives one (a fixed random set per sequence). Returns every sampled token per sequence.
   */
  async function decode(engine: Engine, seqs: { prompt: number[]; sampling: Sampling; allowed?: number[] }[], seqBase: number) {
    const words = maskWords(V);
    const masks = new Int32Array(words * seqs.length);
    seqs.forEach((s, r) => s.allowed?.forEach((t) => (masks[r * words + (t >> 5)] |= 1 << (t & 31))));
    const state = seqs.map((s, i) => {
      const blocks = engine.kvAlloc(Math.ceil((s.prompt.length + STEPS + 1) / BLOCK))!;
      engine.seqBegin(seqBase + i, Int32Array.from(s.prompt), s.sampling);
      return { id: seqBase + i, blocks, fed: 0, tokens: [...s.prompt], out: [] as SampledToken[] };
    });
    for (let step = 0; step < STEPS; step++) {
      const res = await engine.step(
        state.map((st, r) => ({
          seqId: st.id, tokens: Int32Array.from(st.tokens.slice(st.fed)), pos: st.fed, blockTable: st.blocks, sample: true,
          maskRow: seqs[r].allowed ? r : undefined,
        })),
        masks,
      );
      res.forEach((t, r) => {
        state[r].fed = state[r].tokens.length;
        state[r].tokens.push(t!.token);
        state[r].out.push(t!);
      });
    }
    for (const st of state) {
      engine.seqEnd(st.id);
      engine.kvRelease(st.blocks);
    }
    return state.map((st) => st.out);
  }

  const tokensOf = (out: SampledToken[][]) => out.map((o) => o.map((t) => t.token));

  it('greedy and seeded top-k samples are the full head\'s, with only the candidates computed', async () => {
    const seqs = [
      { prompt: prompt(9, 1), sampling: { temperature: 0, skip_logprob: true } },
      { prompt: prompt(5, 2), sampling: { temperature: 0.8, top_k: 20, seed: 7, skip_logprob: true } },
      { prompt: prompt(12, 3), sampling: { temperature: 0.6, top_k: 20, top_p: 0.95, seed: 8, skip_logprob: true } },
      {
        prompt: prompt(7, 4),
        sampling: { temperature: 1.3, top_k: 40, min_p: 0.02, presence_penalty: 1.2, repetition_penalty: 1.2, seed: 9, skip_logprob: true },
      },
    ];
    const before = screened.stats();
    const a = await decode(screened, seqs, 100);
    const after = screened.stats();
    const b = await decode(full, seqs, 100);
    expect(tokensOf(a)).toEqual(tokensOf(b));
    const rows = after.headScreenedRows - before.headScreenedRows;
    expect(rows).toBe(seqs.length * STEPS);
    const exactPerRow = (after.headExactRows - before.headExactRows) / rows;
    expect(exactPerRow).toBeLessThan(V / 2);   // the screen leaves most of the vocabulary out
    expect(full.stats().headScreenedRows).toBe(0);
    for (const t of a.flat()) expect(t.logprob).toBeNaN();   // the caller said it ignores it
  });

  it('samples under token masks are the full head\'s', async () => {
    const pick = (seed: number, n: number) => Array.from({ length: n }, (_, i) => (seed * 977 + i * 613) % V);
    const seqs = [
      { prompt: prompt(6, 5), sampling: { temperature: 0, skip_logprob: true }, allowed: pick(1, 300) },
      { prompt: prompt(8, 6), sampling: { temperature: 0.9, top_k: 20, seed: 3, skip_logprob: true }, allowed: pick(2, 12) },
      { prompt: prompt(4, 7), sampling: { temperature: 0.7, top_k: 50, seed: 4, skip_logprob: true }, allowed: pick(3, 600) },
    ];
    expect(tokensOf(await decode(screened, seqs, 200))).toEqual(tokensOf(await decode(full, seqs, 200)));
  });

  it('a sequence that asks for logprobs, and every sequence batched with it, gets the full head\'s logprobs', async () => {
    const seqs = [
      { prompt: prompt(9, 8), sampling: { temperature: 0.7, top_k: 20, seed: 5, logprobs: 3 } },
      { prompt: prompt(6, 9), sampling: { temperature: 0, skip_logprob: true } },
    ];
    const before = screened.stats().headScreenedRows;
    const a = await decode(screened, seqs, 300);
    expect(screened.stats().headScreenedRows).toBe(before);
    const b = await decode(full, seqs, 300);
    expect(a).toEqual(b);   // tokens, logprobs and alternatives, exactly
    for (const t of a[0]) expect(Number.isFinite(t.logprob)).toBe(true);
  });

  it('temperature without top_k, or top_k above the limit, samples from the full head', async () => {
    const seqs = [
      { prompt: prompt(5, 10), sampling: { temperature: 0.8, seed: 1, skip_logprob: true } },
      { prompt: prompt(5, 11), sampling: { temperature: 0.8, top_k: 65, seed: 2, skip_logprob: true } },
    ];
    const before = screened.stats().headScreenedRows;
    const a = await decode(screened, seqs, 400);
    expect(screened.stats().headScreenedRows).toBe(before);
    expect(tokensOf(a)).toEqual(tokensOf(await decode(full, seqs, 400)));
  });
});
