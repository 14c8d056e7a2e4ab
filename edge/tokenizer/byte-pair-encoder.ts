/** Byte-level BPE over token ids: merges the lowest-ranked adjacent pair (leftmost on ties) until none applies, which
 * is what @huggingface/tokenizers and the Rust tokenizers do. Short words use a flat scan, long ones a heap, so a
 * megabyte-long "word" costs O(n log n), not O(n²). */

/** Words with at most this many bytes use the flat scan; measured crossover with the heap path. */
const FLAT_SCAN_MAX_SYMBOLS = 48;
const NO_MERGE = 0x7fffffff;

export class BytePairEncoder {
  /** (slots, 3) open-addressed pair table: left id, right id, merged id; left = -1 marks an empty slot. */
  private readonly pairSlots: Int32Array;
  private readonly slotMask: number;
  private readonly slotShift: number;
  private ranks = new Int32Array(64);
  private prev = new Int32Array(64);
  private next = new Int32Array(64);
  private heapKeys = new Float64Array(256);

  /**
   * @param mergePairs (mergeCount, 2) left and right id per merge, in rank order.
   * @param firstMergeId id made by merge rank 0; merge r makes firstMergeId + r, so merged ids order like ranks.
   */
  constructor(mergePairs: Uint32Array, firstMergeId: number) {
    const mergeCount = mergePairs.length / 2;
    let bits = 1;
    while (1 << bits < mergeCount * 3) bits++; // load factor ≤ 1/3 keeps failed lookups to ~1.3 probes
    this.slotShift = 32 - bits;
    this.slotMask = (1 << bits) - 1;
    this.pairSlots = new Int32Array((1 << bits) * 3).fill(-1);
    for (let rank = 0; rank < mergeCount; rank++) {
      const left = mergePairs[rank * 2];
      const right = mergePairs[rank * 2 + 1];
      let slot = this.slotOf(left, right);
      while (this.pairSlots[slot * 3] !== -1) slot = (slot + 1) & this.slotMask;
      this.pairSlots[slot * 3] = left;
      this.pairSlots[slot * 3 + 1] = right;
      this.pairSlots[slot * 3 + 2] = firstMergeId + rank;
    }
  }

  private slotOf(left: number, right: number): number {
    return (Math.imul(left, 0x9e3779b1) ^ Math.imul(right + 0x7f4a7c15, 0x85ebca77)) >>> this.slotShift;
  }

  /** Id of the token merging left+right, or NO_MERGE; merged ids double as ranks. */
  mergedId(left: number, right: number): number {
    const slots = this.pairSlots;
    let slot = this.slotOf(left, right);
    for (;;) {
      const base = slot * 3;
      const slotLeft = slots[base];
      if (slotLeft === left && slots[base + 1] === right) return slots[base + 2];
      if (slotLeft === -1) return NO_MERGE;
      slot = (slot + 1) & this.slotMask;
    }
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

  /** Linked list of symbols plus a min-heap of candidate merges keyed rank·2³² + position; stale entries are
   * skipped on pop by re-checking the pair they name. */
  private encodeWithHeap(symbols: Int32Array, length: number): number {
    if (this.prev.length < length) {
      this.prev = new Int32Array(length * 2);
      this.next = new Int32Array(length * 2);
    }
    const prev = this.prev;
    const next = this.next;
    let heapSize = 0;
    const push = (key: number): void => {
      if (heapSize === this.heapKeys.length) {
        const grown = new Float64Array(heapSize * 2);
        grown.set(this.heapKeys);
        this.heapKeys = grown;
      }
      const heap = this.heapKeys;
      let i = heapSize++;
      while (i > 0) {
        const parent = (i - 1) >> 1;
        if (heap[parent] <= key) break;
        heap[i] = heap[parent];
        i = parent;
      }
      heap[i] = key;
    };
    const pop = (): number => {
      const heap = this.heapKeys;
      const top = heap[0];
      const last = heap[--heapSize];
      let i = 0;
      for (;;) {
        let child = 2 * i + 1;
        if (child >= heapSize) break;
        if (child + 1 < heapSize && heap[child + 1] < heap[child]) child++;
        if (heap[child] >= last) break;
        heap[i] = heap[child];
        i = child;
      }
      heap[i] = last;
      return top;
    };
    const POSITION_SCALE = 4294967296; // 2^32: ranks < 2^21 and positions < 2^32 stay exact in a double

    for (let i = 0; i < length; i++) {
      prev[i] = i - 1;
      next[i] = i + 1 < length ? i + 1 : -1;
    }
    for (let i = 0; i < length - 1; i++) {
      const merged = this.mergedId(symbols[i], symbols[i + 1]);
      if (merged !== NO_MERGE) push(merged * POSITION_SCALE + i);
    }
    while (heapSize > 0) {
      const key = pop();
      const merged = Math.floor(key / POSITION_SCALE);
      const position = key - merged * POSITION_SCALE;
      const right = next[position];
      // Stale when this symbol was absorbed (-2), has no right neighbour, or either side changed since the push.
      if (right < 0 || symbols[position] < 0 || this.mergedId(symbols[position], symbols[right]) !== merged) continue;
      symbols[position] = merged;
      symbols[right] = -1;
      const after = next[right];
      next[position] = after;
      if (after >= 0) prev[after] = position;
      next[right] = -2;
      const before = prev[position];
      if (before >= 0) {
        const left = this.mergedId(symbols[before], merged);
        if (left !== NO_MERGE) push(left * POSITION_SCALE + before);
      }
      if (after >= 0) {
        const following = this.mergedId(merged, symbols[after]);
        if (following !== NO_MERGE) push(following * POSITION_SCALE + position);
      }
    }
    let n = 0;
    for (let i = 0; i >= 0; i = next[i]) symbols[n++] = symbols[i]; // n ≤ i: compacting in place is safe
    return n;
  }
}
