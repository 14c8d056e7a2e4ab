/** Every token's raw bytes for decoding, each built from the merges the first time it is asked for: the token made by
 * merge r is its left token's bytes then its right token's. Building the tokenizer then costs no pass over the ~1 MB
 * of token bytes (it happens at isolate start), and a decode builds only the tokens it meets, once, into a pool that
 * grows with them (the first request's few tokens need a few KB, not the ~1 MB that holds them all). */
import type { AddedToken, MergePairs } from './tokenizer-data.js';

/** Tokens are under 256 bytes (scripts/build-tokenizer.mjs checks), so an expansion never stacks more parts. */
const MAX_TOKEN_BYTES = 256;
/** The pool's first size (bytes); it doubles when a token might not fit. */
const FIRST_POOL_BYTES = 16 * 1024;
/** Tokens per page of starts and lengths: a page is allocated when a token in it is first built, so an isolate starts
 * without the ~750 KB that both take for the whole vocabulary (allocating them cost ~1.7 ms at isolate start). */
const PAGE_BITS = 10;
const PAGE_SIZE = 1 << PAGE_BITS;
const PAGE_MASK = PAGE_SIZE - 1;
/** Every page before its first token is built (all lengths 0: none built); never written. */
const UNBUILT_LENGTHS = new Uint8Array(PAGE_SIZE);
const UNBUILT_STARTS = new Int32Array(PAGE_SIZE);

export class TokenBytes {
  /** (pages, PAGE_SIZE) start of each token's bytes in `pool`, once built. */
  private readonly startPages: Int32Array[];
  /** (pages, PAGE_SIZE) byte length of each token; 0 until built (every token has at least one byte). */
  private readonly lengthPages: Uint8Array[];
  /** The built tokens' bytes; allocated on first use, grown by doubling (at most totalBytes). */
  private pool = new Uint8Array(0);
  private used = 0;
  /** Parts still to expand, rightmost at the bottom. */
  private readonly stack = new Int32Array(MAX_TOKEN_BYTES * 2);

  /**
   * @param byteToId (256) id of the single-byte token for each byte value; those ids are below firstMergeId.
   * @param mergePairs left and right token id of each merge, in rank order.
   * @param firstMergeId id made by merge rank 0; merge r makes firstMergeId + r.
   * @param addedTokens the tokens after the merges' (their bytes are their content's UTF-8).
   * @param totalBytes the bytes of all tokens together.
   */
  constructor(
    private readonly byteToId: Uint32Array,
    private readonly mergePairs: MergePairs,
    private readonly firstMergeId: number,
    private readonly addedTokens: readonly AddedToken[],
    vocabSize: number,
    private readonly totalBytes: number,
  ) {
    const pages = Math.ceil(vocabSize / PAGE_SIZE);
    this.startPages = new Array<Int32Array>(pages).fill(UNBUILT_STARTS);
    this.lengthPages = new Array<Uint8Array>(pages).fill(UNBUILT_LENGTHS);
  }

  /** Bytes of token id (a valid id: 0 ≤ id < vocabSize); a view that stays valid (a grown pool leaves it as it was). */
  of(id: number): Uint8Array {
    const start = this.built(id) > 0 ? this.startOf(id) : this.build(id);
    return this.pool.subarray(start, start + this.built(id));
  }

  /** Byte length of token id (a valid id). */
  lengthOf(id: number): number {
    if (this.built(id) === 0) this.build(id);
    return this.built(id);
  }

  /** Byte length of token id if built, else 0. */
  private built(id: number): number {
    return this.lengthPages[id >>> PAGE_BITS][id & PAGE_MASK];
  }

  /** Start of a built token's bytes in the pool. */
  private startOf(id: number): number {
    return this.startPages[id >>> PAGE_BITS][id & PAGE_MASK];
  }

  /** Notes token id as built: its bytes are pool[start, start + length). */
  private record(id: number, start: number, length: number): void {
    const page = id >>> PAGE_BITS;
    if (this.lengthPages[page] === UNBUILT_LENGTHS) {
      this.lengthPages[page] = new Uint8Array(PAGE_SIZE);
      this.startPages[page] = new Int32Array(PAGE_SIZE);
    }
    this.lengthPages[page][id & PAGE_MASK] = length;
    this.startPages[page][id & PAGE_MASK] = start;
  }

  /** Appends the bytes of token id to the pool; returns their start. */
  private build(id: number): number {
    if (this.pool.length === 0) {
      this.allocate();
      // a single byte is in the pool now (building it again would take a byte the last token needs)
      if (this.built(id) > 0) return this.startOf(id);
    }
    if (this.used + MAX_TOKEN_BYTES > this.pool.length && this.pool.length < this.totalBytes) this.grow();
    const pool = this.pool;
    const start = this.used;
    let used = start;
    if (id >= this.firstMergeId + this.mergePairs.low.length / 2) {
      const content = this.addedTokens.find((t) => t.id === id)!.content;
      const bytes = new TextEncoder().encode(content);
      pool.set(bytes, used);
      used += bytes.length;
    } else {
      // Depth first, left part first; parts built before are copied whole.
      const stack = this.stack;
      stack[0] = id;
      for (let top = 1; top > 0; ) {
        const part = stack[--top];
        const partLength = this.built(part);
        if (partLength > 0) {
          const partStart = this.startOf(part);
          const partEnd = partStart + partLength;
          for (let k = partStart; k < partEnd; k++) pool[used++] = pool[k];
        } else {
          const pair = (part - this.firstMergeId) * 2;
          const { low, high } = this.mergePairs;
          stack[top++] = low[pair + 1] | (high[pair + 1] << 16);
          stack[top++] = low[pair] | (high[pair] << 16);
        }
      }
    }
    this.record(id, start, used - start);
    this.used = used;
    return start;
  }

  /** The pool, with the 256 single-byte tokens in it (token i < 256 at offset i). */
  private allocate(): void {
    this.pool = new Uint8Array(Math.min(FIRST_POOL_BYTES, this.totalBytes));
    for (let b = 0; b < 256; b++) {
      const id = this.byteToId[b];
      this.pool[id] = b;
      this.record(id, id, 1);
    }
    this.used = 256;
  }

  /** Twice the pool (at most totalBytes), the built tokens copied over. */
  private grow(): void {
    const pool = new Uint8Array(Math.min(this.pool.length * 2, this.totalBytes));
    pool.set(this.pool.subarray(0, this.used));
    this.pool = pool;
  }
}
