// Proves the token-mask path of the engine (structured outputs): a mask restricts greedy and sampled tokens to the
// allowed set and reports logprobs of the masked distribution; forward() + sample() equals step(); masks may live on
// a SharedArrayBuffer; a forced token ignores the mask; bad calls (an all-zero mask, a maskRow outside the masks,
// sample() without or after a different forward()) are refused without sampling anything.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadAddon, maskWords, type BatchItem, type Engine } from '../../native/addon/index.ts';
import { makeTinyQwen3, type TinyQwen3 } from '../helpers/tiny-qwen3.ts';

const V = 500;          // not a multiple of 32: the last mask word is partial
const BLOCK = 8;
const WORDS = maskWords(V);

function maskOf(allowed: Iterable<number>, rows = 1, row = 0, into?: Int32Array): Int32Array {
  const m = into ?? new Int32Array(rows * WORDS);
  for (const t of allowed) m[row * WORDS + (t >> 5)] |= 1 << (t & 31);
  return m;
}

function logSoftmaxOver(logits: Float32Array, allowed: number[]): Map<number, number> {
  const max = Math.max(...allowed.map((t) => logits[t]));
  const z = Math.log(allowed.reduce((s, t) => s + Math.exp(logits[t] - max), 0)) + max;
  return new Map(allowed.map((t) => [t, logits[t] - z]));
}

describe('token masks in the engine', () => {
  let m: TinyQwen3;
  let engine: Engine;
  let nextSeq = 1;

  beforeAll(async () => {
    m = makeTinyQwen3({
      hidden: 64, intermediate: 128, heads: 4, kvHeads: 2, headDim: 16, vocab: V, groupSize: 32,
      maxPositionEmbeddings: 256, eosTokenIds: [V - 1], seed: 11,
    });
    engine = await loadAddon().load(m.dir, { kvBlockSize: BLOCK, kvBlocks: 128 });
  });
  afterAll(() => {
    engine?.free();
    m?.cleanup();
  });

  /** A begun sequence with its prompt's KV blocks; item() feeds the whole prompt and samples. */
  function sequence(prompt: number[], sampling: Parameters<Engine['seqBegin']>[2] = {}) {
    const seqId = nextSeq++;
    const blocks = engine.kvAlloc(Math.ceil((prompt.length + 8) / BLOCK))!;
    engine.seqBegin(seqId, Int32Array.from(prompt), sampling);
    return {
      seqId,
      item: (maskRow?: number): BatchItem => ({ seqId, tokens: Int32Array.from(prompt), pos: 0, blockTable: blocks, sample: true, maskRow }),
      end: () => {
        engine.seqEnd(seqId);
        engine.kvRelease(blocks);
      },
    };
  }

  it('greedy under a mask is the best allowed token, with masked logprobs and alternatives', async () => {
    const prompt = [3, 17, 42, 7, 99];
    const logits = await engine.logits(Int32Array.from(prompt), false);
    const order = Array.from(logits.keys()).sort((a, b) => logits[b] - logits[a]);
    const allowed = [order[7], order[40], order[120], 499];   // the unmasked best tokens are all excluded
    const s = sequence(prompt, { temperature: 0, logprobs: 10 });
    const [tok] = await engine.step([s.item(0)], maskOf(allowed));
    s.end();
    const want = logSoftmaxOver(logits, allowed);
    expect(tok!.token).toBe(order[7]);
    expect(tok!.logprob).toBeCloseTo(want.get(order[7])!, 4);
    expect(tok!.top!.map((t) => t.token)).toEqual([order[7], order[40], order[120], 499].sort((a, b) => logits[b] - logits[a]));
    for (const t of tok!.top!) expect(t.logprob).toBeCloseTo(want.get(t.token)!, 4);
  });

  it('sampled tokens stay inside random masks, and forward() + sample() equals step()', async () => {
    let rng = 7;
    const rand = () => ((rng = (rng * 1103515245 + 12345) >>> 0) / 2 ** 32);
    for (let round = 0; round < 40; round++) {
      const allowed = new Set(Array.from({ length: 1 + Math.floor(rand() * 6) }, () => Math.floor(rand() * V)));
      const prompt = Array.from({ length: 4 + (round % 5) }, () => Math.floor(rand() * V));
      const sampling = { temperature: 1.3, top_k: round % 3 === 0 ? 0 : 50, top_p: round % 2 ? 0.9 : 1, seed: round };
      const masks = maskOf(allowed, 2, 1);
      const a = sequence(prompt, sampling);
      const [one] = await engine.step([a.item(1)], masks);
      a.end();
      const b = sequence(prompt, sampling);
      await engine.forward([b.item(1)]);
      const [two] = await engine.sample([b.item(1)], masks);
      b.end();
      expect(allowed.has(one!.token), `round ${round}: ${one!.token} not in ${[...allowed]}`).toBe(true);
      expect(two).toEqual(one);
    }
  });

  it('reads masks from a SharedArrayBuffer and leaves unmasked items free in the same batch', async () => {
    const shared = new Int32Array(new SharedArrayBuffer(2 * WORDS * 4));
    maskOf([5], 2, 1, shared);
    const free = sequence([1, 2, 3], { temperature: 0 });
    const constrained = sequence([1, 2, 3], { temperature: 0 });
    const unmasked = (await engine.logits(Int32Array.from([1, 2, 3]), false)).reduce((best, v, t, l) => (v > l[best] ? t : best), 0);
    const out = await engine.step([free.item(), constrained.item(1)], shared);
    free.end();
    constrained.end();
    expect(out[0]!.token).toBe(unmasked);
    expect(out[1]!.token).toBe(5);
  });

  it('a forced token ignores the mask', async () => {
    const s = sequence([9, 8, 7], { temperature: 0 });
    engine.seqForce(s.seqId, Int32Array.from([123]));
    const [tok] = await engine.step([s.item(0)], maskOf([4]));
    s.end();
    expect(tok).toMatchObject({ token: 123, forced: true });
    expect(Number.isFinite(tok!.logprob)).toBe(true);
  });

  it('refuses an all-zero mask, a row outside the masks and a sample() that does not follow its forward()', async () => {
    const s = sequence([1, 1, 2], { temperature: 0 });
    await expect(engine.step([s.item(0)], new Int32Array(WORDS))).rejects.toThrow(/token mask allows no token/);
    expect(() => engine.step([s.item(3)], maskOf([1], 2))).toThrow(/maskRow 3 but masks hold 2 rows/);
    const other = sequence([4, 5], { temperature: 0 });
    await engine.forward([s.item()]);
    await expect(engine.sample([other.item()])).rejects.toThrow(/not those of the last q3_forward/);
    await engine.forward([s.item()]);
    await engine.step([other.item()]);               // a step in between discards the kept logits
    await expect(engine.sample([s.item()])).rejects.toThrow(/not those of the last q3_forward/);
    // nothing was sampled by the refused calls: the sequence still samples its greedy token
    const [tok] = await engine.step([s.item(0)], maskOf([250]));
    expect(tok!.token).toBe(250);
    s.end();
    other.end();
  });
});
