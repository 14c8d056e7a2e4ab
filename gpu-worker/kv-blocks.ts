/**
 * @module KV block accounting for sequences, plus the prefix cache. Blocks come from the engine's refcounted
 * allocator: a sequence holds one reference on every block of its table, and the prefix cache holds one more on
 * every block it remembers, so a block returns to the pool only when neither needs it.
 *
 * The prefix cache keys each full prompt block by a hash chain (hash of the previous block's key and this block's
 * token ids), so a key names the whole prefix up to that block. A later prompt with the same prefix starts its block
 * table with the cached blocks and is prefilled from the first uncached position; the last prompt token is always
 * recomputed (so there are logits to sample), which is why at most floor((len - 1) / blockSize) blocks are reused
 * and a shared block is never written. Cache-only blocks are evicted least-recently-used when allocation needs room.
 */
import { createHash } from 'node:crypto';
import type { WorkerEngine } from './engine.ts';

export type KvPool = Pick<WorkerEngine, 'kvAlloc' | 'kvRetain' | 'kvRelease' | 'kvFreeBlocks'>;

export interface PrefixMatch {
  blocks: number[];        // cached blocks, each now retained for the caller
  cachedTokens: number;    // blocks.length * blockSize
}

export class KvBlocks {
  /** key → block id; Map order is the LRU order (first = least recently used). */
  private readonly cache = new Map<string, number>();
  /** cached block id → live sequences whose table holds it; only blocks at 0 may be evicted. */
  private readonly users = new Map<number, number>();
  queriedTokens = 0;       // prompt tokens looked up (prefix_cache_queries)
  hitTokens = 0;           // of which served from cache (prefix_cache_hits)

  constructor(
    private readonly pool: KvPool,
    readonly blockSize: number,      // tokens per block
    readonly totalBlocks: number,
    readonly cacheEnabled: boolean,
  ) {}

  blocksFor(tokens: number): number {
    return Math.ceil(tokens / this.blockSize);
  }

  usedBlocks(): number {
    return this.totalBlocks - this.pool.kvFreeBlocks();
  }

  cachedBlocks(): number {
    return this.cache.size;
  }

  /** Free blocks plus cache-only blocks that eviction could free. */
  availableBlocks(): number {
    let evictable = 0;
    for (const id of this.cache.values()) if (!this.users.get(id)) evictable++;
    return this.pool.kvFreeBlocks() + evictable;
  }

  /** Keys computed so far per token array; callers only append to an array, so its prefix keys stay valid. */
  private readonly memo = new WeakMap<object, string[]>();

  /** Keys of the first `nBlocks` full blocks of `tokens` (a waiting prompt is looked up every step: memoised). */
  private keys(tokens: ArrayLike<number>, nBlocks: number): string[] {
    let out = this.memo.get(tokens);
    if (!out) this.memo.set(tokens, (out = []));
    for (let b = out.length; b < nBlocks; b++) {
      const ids = Int32Array.from({ length: this.blockSize }, (_, i) => tokens[b * this.blockSize + i]);
      out.push(createHash('sha256').update(out[b - 1] ?? '').update(new Uint8Array(ids.buffer)).digest('base64'));
    }
    return out.slice(0, nBlocks);
  }

  /** Longest cached prefix of a prompt, retained for the caller (who must `release` it with its table). */
  matchPrefix(prompt: ArrayLike<number>): PrefixMatch {
    const blocks: number[] = [];
    for (const [key, id] of this.cachedPrefix(prompt)) {
      this.cache.delete(key);
      this.cache.set(key, id);              // most recently used
      blocks.push(id);
    }
    if (blocks.length) {
      this.pool.kvRetain(Int32Array.from(blocks));
      for (const id of blocks) this.users.set(id, (this.users.get(id) ?? 0) + 1);
    }
    return { blocks, cachedTokens: blocks.length * this.blockSize };
  }

  /**
   * Whether admission (matchPrefix, then `need` fresh blocks with `reserve` still available, as the scheduler checks
   * it) would succeed for `prompt` once `leaving` (a running sequence's table) is released. Changes nothing: the
   * scheduler asks before it preempts a sequence to make room, so it never frees a slot the newcomer cannot use.
   */
  fitsAfterRelease(prompt: ArrayLike<number>, leaving: readonly number[], reserve: number): boolean {
    const leavingIds = new Set(leaving);                     // a table holds a block once
    const usersAfter = (id: number) => (this.users.get(id) ?? 0) - (leavingIds.has(id) ? 1 : 0);
    let available = this.availableBlocks();
    for (const id of leaving) {
      const n = this.users.get(id);
      if (n === undefined || n === 1) available++;           // freed (only this sequence held it) or now evictable
    }
    const matched = this.cachedPrefix(prompt);
    for (const [, id] of matched) if (usersAfter(id) === 0) available--;   // matching retains it: no longer evictable
    return available - (this.blocksFor(prompt.length) - matched.length) >= reserve;
  }

  /** The cached blocks (key, id) a prompt starts with: at most floor((length - 1) / blockSize). Changes nothing. */
  private cachedPrefix(prompt: ArrayLike<number>): [string, number][] {
    const found: [string, number][] = [];
    if (!this.cacheEnabled) return found;
    for (const key of this.keys(prompt, Math.floor((prompt.length - 1) / this.blockSize))) {
      const id = this.cache.get(key);
      if (id === undefined) break;
      found.push([key, id]);
    }
    return found;
  }

  /** Counts one admitted prompt for the hit-rate metrics (in tokens, like vLLM). */
  recordLookup(promptTokens: number, cachedTokens: number): void {
    this.queriedTokens += promptTokens;
    this.hitTokens += cachedTokens;
  }

  /** Allocates n fresh blocks (refcount 1, owned by the caller), evicting cache-only blocks if needed. */
  alloc(n: number): number[] | null {
    if (n <= 0) return [];
    while (this.pool.kvFreeBlocks() < n && this.evictOne()) { /* make room */ }
    const ids = this.pool.kvAlloc(n);
    return ids ? Array.from(ids) : null;
  }

  private evictOne(): boolean {
    for (const [key, id] of this.cache) {
      if (this.users.get(id)) continue;
      this.cache.delete(key);
      this.users.delete(id);
      this.pool.kvRelease(Int32Array.of(id));
      return true;
    }
    return false;
  }

  /** Remembers the full prompt blocks (tokens[0..promptLength)) of a sequence whose prompt KV is now written. */
  register(tokens: ArrayLike<number>, promptLength: number, table: readonly number[]): void {
    if (!this.cacheEnabled) return;
    const keys = this.keys(tokens, Math.min(Math.floor(promptLength / this.blockSize), table.length));
    keys.forEach((key, b) => {
      const id = table[b];
      if (this.cache.has(key) || this.users.has(id)) return;   // same prefix cached by another sequence
      this.pool.kvRetain(Int32Array.of(id));
      this.cache.set(key, id);
      this.users.set(id, 1);                                  // the registering sequence holds it
    });
  }

  /** A sequence lets go of its whole table. */
  release(table: readonly number[]): void {
    if (!table.length) return;
    for (const id of table) {
      const n = this.users.get(id);
      if (n) this.users.set(id, n - 1);
    }
    this.pool.kvRelease(Int32Array.from(table));
  }

  /** Drops every cache-only block (tests and shutdown). */
  clear(): void {
    while (this.evictOne()) { /* drain */ }
  }
}
