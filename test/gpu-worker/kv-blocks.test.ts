// kv-blocks.ts through the real worker process: a request sharing a >= 3-block prefix with an earlier one reports
// cached_tokens > 0 and yields the same tokens as a worker with PREFIX_CACHE=0; the last prompt token is always
// recomputed; LRU eviction keeps a small pool serving; a pool too small for the batch preempts sequences and their
// streams still equal the cache-off, roomy worker's. In-process on the real engine's pool: fitsAfterRelease (asked
// before a fairness preemption) predicts what releasing a table and then admitting a prompt would find.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadEngine } from '../../gpu-worker/engine.ts';
import { KvBlocks } from '../../gpu-worker/kv-blocks.ts';
import { demoModel, generate, metrics, prompt, startWorker, type Worker } from './worker-process.ts';

const BLOCK = 16;          // tokens per KV block (engine default)
let cached: Worker;        // prefix cache on, a small pool (KV_CACHE_MIB=1: 128 blocks of fp16 K/V with the tiny model)
let plain: Worker;         // prefix cache off, default pool
beforeAll(async () => {
  [cached, plain] = await Promise.all([
    startWorker({ KV_CACHE_MIB: '1', MAX_BATCH: '16' }),
    startWorker({ PREFIX_CACHE: '0', MAX_BATCH: '16' }),
  ]);
});
afterAll(async () => {
  await Promise.all([cached?.stop(), plain?.stop()]);
});

const shared = prompt(3 * BLOCK + 5, 42);           // 3 full blocks + 5 tokens
const withSuffix = (seed: number, n: number) => [...shared, ...prompt(n, seed)];

describe('prefix cache', () => {
  it('Should serve a shared 3-block prefix from the cache with the same tokens as without it', async () => {
    const first = await generate(cached, { prompt: withSuffix(1, 20), max_tokens: 24 });
    expect(first.final!.usage!.cached_tokens).toBe(0);
    const before = await metrics(cached);

    const second = { prompt: withSuffix(2, 30), max_tokens: 24 };
    const hit = await generate(cached, second);
    const miss = await generate(plain, second);
    expect(hit.final!.usage!.cached_tokens).toBe(3 * BLOCK);
    expect(miss.final!.usage!.cached_tokens).toBe(0);
    expect(hit.tokens).toEqual(miss.tokens);

    const after = await metrics(cached);
    expect(after.get('vllm:prefix_cache_queries_total')! - before.get('vllm:prefix_cache_queries_total')!).toBe(second.prompt.length);
    expect(after.get('vllm:prefix_cache_hits_total')! - before.get('vllm:prefix_cache_hits_total')!).toBe(3 * BLOCK);
    expect((await metrics(plain)).get('vllm:prefix_cache_hits_total')).toBe(0);
  });

  it('Should recompute the last prompt token when the whole prompt is cached', async () => {
    const exact = { prompt: prompt(4 * BLOCK, 9), max_tokens: 16 };
    const a = await generate(cached, exact);
    const b = await generate(cached, exact);
    expect(b.final!.usage!.cached_tokens).toBe(3 * BLOCK);     // the 4th block holds the last token: recomputed
    expect(b.tokens).toEqual(a.tokens);
    expect(b.tokens).toEqual((await generate(plain, exact)).tokens);
  });

  it('Should give 8 concurrent requests on one prefix the tokens they get without the cache', async () => {
    await generate(cached, { prompt: withSuffix(99, 3), max_tokens: 1 });      // the prefix is registered after a prefill
    const reqs = Array.from({ length: 8 }, (_, i) => ({ prompt: withSuffix(100 + i, 5 + i * 9), max_tokens: 20 }));
    const [hits, misses] = await Promise.all([
      Promise.all(reqs.map((r) => generate(cached, r))),
      Promise.all(reqs.map((r) => generate(plain, r))),
    ]);
    hits.forEach((h, i) => {
      expect(h.final!.usage!.cached_tokens).toBeGreaterThanOrEqual(3 * BLOCK);
      expect(h.tokens).toEqual(misses[i].tokens);
    });
  });

  it('Should evict least-recently-used prefixes when the pool fills and keep answering', async () => {
    const pool = (await metrics(cached)).get('q3_worker_kv_blocks_total')!;
    expect(pool).toBeGreaterThanOrEqual(64);
    expect(pool).toBeLessThan(8 * 25);
    const prompts = Array.from({ length: 8 }, (_, i) => prompt(25 * BLOCK, 500 + i));   // 8 x 25 blocks > pool
    for (const p of prompts) {
      const r = await generate(cached, { prompt: p, max_tokens: 4 });
      expect(r.tokens).toEqual((await generate(plain, { prompt: p, max_tokens: 4 })).tokens);
    }
    const m = await metrics(cached);
    expect(m.get('q3_worker_kv_blocks_used')).toBeLessThanOrEqual(pool);
    expect(m.get('q3_worker_kv_blocks_cached')).toBeGreaterThan(0);
    expect((await generate(cached, { prompt: prompts[7], max_tokens: 4 })).final!.usage!.cached_tokens).toBe(24 * BLOCK);
    expect((await generate(cached, { prompt: prompts[0], max_tokens: 4 })).final!.usage!.cached_tokens).toBe(0);
  });

  it('Should preempt when the batch outgrows the pool and still stream every request exactly', async () => {
    // 16 requests x (120-token prompt + up to 200 tokens) need up to 320 blocks; the pool is smaller.
    const reqs = Array.from({ length: 16 }, (_, i) => ({ prompt: prompt(120, 900 + i), max_tokens: 200 }));
    const expected = await Promise.all(reqs.map((r) => generate(plain, r)));
    const got = await Promise.all(reqs.map((r) => generate(cached, r)));
    got.forEach((g, i) => {
      expect(g.final!.finish_reason).toBe(expected[i].final!.finish_reason);
      expect(g.tokens, `request ${i}`).toEqual(expected[i].tokens);
    });
    const m = await metrics(cached);
    expect(m.get('q3_worker_preemptions_total')).toBeGreaterThan(0);
    expect(m.get('vllm:num_requests_running')).toBe(0);
    expect(m.get('q3_worker_kv_blocks_used')).toBe(m.get('q3_worker_kv_blocks_cached'));
  });
});

describe('fitsAfterRelease', () => {
  it('Should predict, for random pools, tables and prompts, exactly what releasing the table and then admitting finds', async () => {
    const engine = await loadEngine(demoModel('tiny'), { device: 'cpu', threads: 1 });
    try {
      const kv = new KvBlocks(engine, engine.info().kvBlockSize, engine.info().kvBlocks, true);
      let seed = 7;
      const rand = (n: number) => ((seed = (seed * 48271) % 2147483647) % n);
      const outcomes = new Set<boolean>();
      for (let trial = 0; trial < 60; trial++) {
        // a few running sequences, some sharing a cached prefix, some of their prompts registered in the cache
        const prefix = prompt(BLOCK * (1 + rand(4)), 300 + rand(3));
        const tables: number[][] = [];
        for (let s = 0; s < 1 + rand(4); s++) {
          const tokens = rand(2) ? [...prefix, ...prompt(1 + rand(3 * BLOCK), 400 + trial * 8 + s)] : prompt(1 + rand(6 * BLOCK), 600 + trial * 8 + s);
          const match = kv.matchPrefix(tokens);
          const fresh = kv.alloc(kv.blocksFor(tokens.length) - match.blocks.length);
          if (!fresh) {
            kv.release(match.blocks);
            continue;
          }
          const table = [...match.blocks, ...fresh];
          if (rand(2)) kv.register(tokens, tokens.length, table);
          tables.push(table);
        }
        const hog = kv.alloc(Math.max(0, kv.availableBlocks() - rand(16)))!;   // leave 0..15 blocks
        const leaving = tables.length ? tables.splice(rand(tables.length), 1)[0] : [];
        const next = rand(2) ? [...prefix, ...prompt(1 + rand(4 * BLOCK), 700 + trial)] : prompt(1 + rand(12 * BLOCK), 800 + trial);
        const reserve = rand(3);

        const predicted = kv.fitsAfterRelease(next, leaving, reserve);
        kv.release(leaving);
        const match = kv.matchPrefix(next);
        const actual = kv.availableBlocks() - (kv.blocksFor(next.length) - match.blocks.length) >= reserve;
        expect(predicted, `trial ${trial}`).toBe(actual);
        outcomes.add(actual);
        kv.release(match.blocks);
        for (const t of [...tables, hog]) kv.release(t);
        if (rand(3) === 0) kv.clear();
      }
      expect([...outcomes].sort()).toEqual([false, true]);       // both answers came up
    } finally {
      engine.free();
    }
  });
});
