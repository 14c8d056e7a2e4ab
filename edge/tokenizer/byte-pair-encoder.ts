/** Byte-level BPE over token ids: merges the lowest-ranked adjacent pair (leftmost on ties) until none applies, which
 * is what @huggingface/tokenizers and the Rust tokenizers do. Short words use a flat scan, long ones a heap, so a
 * megabyte-long "word" costs O(n log n), not O(n²). All state lives in reused typed arrays: no allocation per word,
 * and nothing built at start-up: the pair lookup table comes filled in the tokenizer image. */
import type { MergePairs, PairTable } from './tokenizer-data.js';

/** Words with at most this many bytes use the flat scan; measured crossover with the heap path. */
const FLAT_SCAN_MAX_SYMBOLS = 48;
const NO_MERGE = 0x7fffffff;
const POSITION_SCALE = 4294967296; // heap key = merged id · 2^32 + position: exact in a double

export class BytePairEncoder {
  private readonly pilots: Uint16Array;
  private readonly slotLow: Uint16Array;
  private readonly slotHigh: Uint8Array;
  private readonly bucketCount: number;
  private readonly slotCount: number;
  private readonly low: Uint16Array;
  private readonly high: Uint8Array;
  private ranks = new Int32Array(64);
  private prev = new Int32Array(64);
  private next = new Int32Array(64);
  private heapKeys = new Float64Array(256);
  private heapSize = 0;

  /**
   * @param mergePairs left and right id per merge, in rank order.
   * @param pairTable the merges' minimal perfect hash, laid out by scripts/build-tokenizer.mjs.
   * @param firstMergeId id made by merge rank 0; merge r makes firstMergeId + r, so merged ids order like ranks.
   */
  constructor(
    mergePairs: MergePairs,
    pairTable: PairTable,
    private readonly firstMergeId: number,
  ) {
    this.low = mergePairs.low;
    this.high = mergePairs.high;
    this.pilots = pairTable.pilots;
    this.slotLow = pairTable.slotLow;
    this.slotHigh = pairTable.slotHigh;
    this.bucketCount = pairTable.pilots.length;
    this.slotCount = pairTable.slotLow.length;
  }

  /** Id of the token merging left+right, or NO_MERGE; merged ids double as ranks. The pair's bucket, its pilot and the
   * slot are scripts/build-tokenizer.mjs's pairBucket() and pairSlot(); the slot's merge is then checked. */
  mergedId(left: number, right: number): number {
    const h = Math.imul(left, 0x9e3779b1) ^ Math.imul(right + 0x7f4a7c15, 0x85ebca77);
    const pilot = this.pilots[((h >>> 16) * this.bucketCount) >>> 16];
    let x = Math.imul(left, 0x85ebca77) ^ Math.imul(right ^ 0x165667b1, 0xc2b2ae3d) ^ Math.imul(pilot + 1, 0x9e3779b1);
    x = Math.imul(x ^ (x >>> 15), 0x2c1b3c6d);
    x ^= x >>> 12;
    const slot = Math.floor(((x >>> 0) * this.slotCount) / 4294967296);
    const rank = (this.slotLow[slot] | (this.slotHigh[slot] << 16)) - 1;
    if (rank < 0) return NO_MERGE;
    const pair = rank * 2;
    const low = this.low;
    const high = this.high;
    if ((low[pair] | (high[pair] << 16)) !== left || (low[pair + 1] | (high[pair + 1] << 16)) !== right) return NO_MERGE;
    return this.firstMergeId + rank;
  }

  /** Encodes one pre-token given as its single-byte token ids in symbols[0..length), in place: returns the token
   * count n, the ids being symbols[0..n). */
  encodeWord(symbols: Int32Array, length: number): number {
    if (length === 1) return 1;
    if (length <= FLAT_SCAN_MAX_SYMBOLS) return this.encodeFlat(symbols, length);
    return this.encodeWithHeap(symbols, length);
  }

  private encodeFlat(symbols: Int32Array, length: number): number {
    const ranks = this.ranks;
    let n = length;
    for (let i = 0; i < n - 1; i++) ranks[i] = this.mergedId(symbols[i], symbols[i + 1]);
    while (n > 1) {
      let best = 0;
      let bestRank = ranks[0];
      for (let i = 1; i < n - 1; i++) {
        if (ranks[i] < bestRank) {
          bestRank = ranks[i];
          best = i;
        }
      }
      if (bestRank === NO_MERGE) break;
      symbols[best] = bestRank;
      for (let i = best + 1; i < n - 1; i++) symbols[i] = symbols[i + 1];
      for (let i = best; i < n - 2; i++) ranks[i] = ranks[i + 1];
      n--;
      if (best > 0) ranks[best - 1] = this.mergedId(symbols[best - 1], symbols[best]);
      if (best < n - 1) ranks[best] = this.mergedId(symbols[best], symbols[best + 1]);
    }
    return n;
  }

  private heapPush(key: number): void {
    if (this.heapSize === this.heapKeys.length) {
      const grown = new Float64Array(this.heapSize * 2);
      grown.set(this.heapKeys);
      this.heapKeys = grown;
    }
    const heap = this.heapKeys;
    let i = this.heapSize++;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (heap[parent] <= key) break;
      heap[i] = heap[parent];
      i = parent;
    }
    heap[i] = key;
  }

  private heapPop(): number {
    const heap = this.heapKeys;
    const top = heap[0];
    const size = --this.heapSize;
    const last = heap[size];
    let i = 0;
    for (;;) {
      let child = 2 * i + 1;
      if (child >= size) break;
      if (child + 1 < size && heap[child + 1] < heap[child]) child++;
      if (heap[child] >= last) break;
      heap[i] = heap[child];
      i = child;
    }
    heap[i] = last;
    return top;
  }

  /** Linked list of symbols plus a min-heap of candidate merges keyed rank·2³² + position. ranks[i] always holds the
   * merged id of the pair starting at live symbol i, so a popped entry is stale unless it still names that id. */
  private encodeWithHeap(symbols: Int32Array, length: number): number {
    if (this.prev.length < length) {
      this.prev = new Int32Array(length * 2);
      this.next = new Int32Array(length * 2);
      this.ranks = new Int32Array(length * 2);
    }
    const prev = this.prev;
    const next = this.next;
    const ranks = this.ranks;
    this.heapSize = 0;
    for (let i = 0; i < length; i++) {
      prev[i] = i - 1;
      next[i] = i + 1 < length ? i + 1 : -1;
    }
    ranks[length - 1] = NO_MERGE;
    for (let i = 0; i < length - 1; i++) {
      const merged = (ranks[i] = this.mergedId(symbols[i], symbols[i + 1]));
      if (merged !== NO_MERGE) this.heapPush(merged * POSITION_SCALE + i);
    }
    while (this.heapSize > 0) {
      const key = this.heapPop();
      const merged = Math.floor(key / POSITION_SCALE);
      const position = key - merged * POSITION_SCALE;
      if (symbols[position] < 0 || ranks[position] !== merged) continue; // absorbed, or its pair changed
      const right = next[position];
      symbols[position] = merged;
      symbols[right] = -1;
      const after = next[right];
      next[position] = after;
      if (after >= 0) prev[after] = position;
      const before = prev[position];
      if (before >= 0) {
        const left = (ranks[before] = this.mergedId(symbols[before], merged));
        if (left !== NO_MERGE) this.heapPush(left * POSITION_SCALE + before);
      }
      if (after >= 0) {
        const following = (ranks[position] = this.mergedId(merged, symbols[after]));
        if (following !== NO_MERGE) this.heapPush(following * POSITION_SCALE + position);
      } else {
        ranks[position] = NO_MERGE;
      }
    }
    let n = 0;
    for (let i = 0; i >= 0; i = next[i]) symbols[n++] = symbols[i]; // n ≤ i: compacting in place is safe
    return n;
  }
}
