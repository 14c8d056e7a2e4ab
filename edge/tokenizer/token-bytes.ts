/** Every token's raw bytes for decoding, each built from the merges the first time it is asked for: the token made by
 * merge r is its left token's bytes then its right token's. Building the tokenizer then costs no pass over the ~1 MB
 * of token bytes (it happens at isolate start), and a decode builds only the tokens it meets, once, into a pool that
 * grows with them (the first request's few tokens need a few KB, not the ~1 MB that holds them all). */
import type { AddedToken, MergePairs } from './tokenizer-data.js';

/** Tokens are under 256 bytes (scripts/build-tokenizer.mjs checks), so an expansion never stacks more parts. */
const MAX_TOKEN_BYTES = 256;
/** The pool's first size (bytes); it doubles when a token might not fit. */
const FIRST_POOL_BYTES = 16 * 1024;

export class TokenBytes {
  /** Start of each token's bytes in `pool`, once built. */
  private readonly starts: Int32Array;
  /** Byte length of each token; 0 until built (every token has at least one byte). */
  private readonly lengths: Uint8Array;
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
    this.starts = new Int32Array(vocabSize);
    this.lengths = new Uint8Array(vocabSize);
  }

  /** Bytes of token id (a valid id: 0 ≤ id < vocabSize); a view that stays valid (a grown pool leaves it as it was). */
  of(id: number): Uint8Array {
    const start = this.lengths[id] > 0 ? this.starts[id] : this.build(id);
    return this.pool.subarray(start, start + this.lengths[id]);
  }

  /** Byte length of token id (a valid id). */
  lengthOf(id: number): number {
    if (this.lengths[id] === 0) this.build(id);
    return this.lengths[id];
  }

  /** Appends the bytes of token id to the pool; returns their start. */
  private build(id: number): number {
    if (this.pool.length === 0) {
      this.allocate();
      // a single byte is in the pool now (building it again would take a byte the last token needs)
      if (this.lengths[id] > 0) return this.starts[id];
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
        if (this.lengths[part] > 0) {
          const partStart = this.starts[part];
          const partEnd = partStart + this.lengths[part];
          for (let k = partStart; k < partEnd; k++) pool[used++] = pool[k];
        } else {
          const pair = (part - this.firstMergeId) * 2;
          const { low, high } = this.mergePairs;
          stack[top++] = low[pair + 1] | (high[pair + 1] << 16);
          stack[top++] = low[pair] | (high[pair] << 16);
        }
      }
    }
    this.starts[id] = start;
    this.lengths[id] = used - start;
    this.used = used;
    return start;
  }

  /** The pool, with the 256 single-byte tokens in it (token i < 256 at offset i). */
  private allocate(): void {
    this.pool = new Uint8Array(Math.min(FIRST_POOL_BYTES, this.totalBytes));
    for (let b = 0; b < 256; b++) {
      const id = this.byteToId[b];
      this.pool[id] = b;
      this.starts[id] = id;
      this.lengths[id] = 1;
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
