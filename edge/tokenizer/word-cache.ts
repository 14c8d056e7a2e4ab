/** Pre-token → token ids cache keyed by a range of UTF-16 code units, so a lookup allocates nothing: an open-addressed
 * table over typed arrays, keys and ids stored in flat pools. It starts small and doubles as it fills (an isolate's
 * first requests need a few hundred entries, and zeroing the full table cost ~2 ms at isolate start); bounded: at its
 * full size it is emptied whole when full (no LRU). */

const MAX_ENTRIES = 1 << 15;
/** Slots are twice the entries they can hold: load ≤ 1/2. */
const FIRST_ENTRIES = 1 << 9;
const MAX_KEY_UNITS = 1 << 20;
const MAX_IDS = 1 << 19;
/** Entry layout in `entries`: hash, key start, ids start, key length << 16 | ids count. */
const STRIDE = 4;

/** The key hash is FNV-1a over the UTF-16 units, then the length, then a shift-xor for the low bits the table uses.
 * The pre-tokenizer runs the same steps while it scans letter runs (no second pass over them). */
export const HASH_SEED = 0x811c9dc5;
export const HASH_PRIME = 0x01000193;

/** The key hash from the FNV-1a state over `length` units. */
export function finishHash(h: number, length: number): number {
  h = Math.imul(h ^ length, HASH_PRIME);
  return h ^ (h >>> 15);
}

/** Hash of text[start..end); pass it to get() and set(). */
export function hashRange(text: string, start: number, end: number): number {
  let h = HASH_SEED;
  for (let i = start; i < end; i++) h = Math.imul(h ^ text.charCodeAt(i), HASH_PRIME);
  return finishHash(h, end - start);
}

export class WordCache {
  /** Entry number + 1 per slot; 0 = empty. Allocated on first use, so building the tokenizer stays cheap. */
  private slots = new Int32Array(0);
  private slotMask = 0;
  private entries = new Int32Array(0);
  private keys = new Uint16Array(0);
  private ids = new Int32Array(0);
  private count = 0;
  private keysUsed = 0;
  private idsUsed = 0;

  /** Appends the cached ids of text[start..end) to out and returns true, or returns false on a miss. */
  get(text: string, start: number, end: number, hash: number, out: number[]): boolean {
    const slots = this.slots;
    if (slots.length === 0) return false;
    const entries = this.entries;
    const keys = this.keys;
    const length = end - start;
    const mask = this.slotMask;
    for (let slot = hash & mask; ; slot = (slot + 1) & mask) {
      const entry = slots[slot] - 1;
      if (entry < 0) return false;
      const base = entry * STRIDE;
      const lengths = entries[base + 3];
      if (entries[base] !== hash || lengths >>> 16 !== length) continue;
      const keyStart = entries[base + 1];
      let i = 0;
      while (i < length && keys[keyStart + i] === text.charCodeAt(start + i)) i++;
      if (i < length) continue;
      const ids = this.ids;
      const idsStart = entries[base + 2];
      const idsEnd = idsStart + (lengths & 0xffff);
      for (let k = idsStart; k < idsEnd; k++) out.push(ids[k]);
      return true;
    }
  }

  /** Caches ids[0..idCount) for text[start..end) (a miss just looked up; at most 65535 units and ids). */
  set(text: string, start: number, end: number, hash: number, wordIds: Int32Array, idCount: number): void {
    const length = end - start;
    if (this.slots.length === 0) this.allocate();
    if (this.count === MAX_ENTRIES || this.keysUsed + length > MAX_KEY_UNITS || this.idsUsed + idCount > MAX_IDS) {
      this.clear();
    } else if (this.count * STRIDE === this.entries.length) {
      this.growTable();
    }
    if (this.keysUsed + length > this.keys.length) {
      const grown = new Uint16Array(grownSize(this.keys.length, this.keysUsed + length));
      grown.set(this.keys);
      this.keys = grown;
    }
    if (this.idsUsed + idCount > this.ids.length) {
      const grown = new Int32Array(grownSize(this.ids.length, this.idsUsed + idCount));
      grown.set(this.ids);
      this.ids = grown;
    }
    const keys = this.keys;
    for (let i = 0; i < length; i++) keys[this.keysUsed + i] = text.charCodeAt(start + i);
    this.ids.set(wordIds.subarray(0, idCount), this.idsUsed);
    const base = this.count * STRIDE;
    this.entries[base] = hash;
    this.entries[base + 1] = this.keysUsed;
    this.entries[base + 2] = this.idsUsed;
    this.entries[base + 3] = (length << 16) | idCount;
    this.keysUsed += length;
    this.idsUsed += idCount;
    this.slots[this.freeSlot(hash)] = ++this.count;
  }

  /** The first empty slot of hash's probe sequence. */
  private freeSlot(hash: number): number {
    const mask = this.slotMask;
    let slot = hash & mask;
    while (this.slots[slot] !== 0) slot = (slot + 1) & mask;
    return slot;
  }

  private allocate(): void {
    this.slots = new Int32Array(FIRST_ENTRIES * 2);
    this.slotMask = this.slots.length - 1;
    this.entries = new Int32Array(FIRST_ENTRIES * STRIDE);
    this.keys = new Uint16Array(1 << 12);
    this.ids = new Int32Array(1 << 11);
  }

  /** Twice the entries and slots (the entries are full, below MAX_ENTRIES): entries copied, slots filled again. */
  private growTable(): void {
    const entries = new Int32Array(this.entries.length * 2);
    entries.set(this.entries);
    this.entries = entries;
    this.slots = new Int32Array(this.slots.length * 2);
    this.slotMask = this.slots.length - 1;
    for (let entry = 0; entry < this.count; entry++) this.slots[this.freeSlot(entries[entry * STRIDE])] = entry + 1;
  }

  private clear(): void {
    this.slots.fill(0);
    this.count = 0;
    this.keysUsed = 0;
    this.idsUsed = 0;
  }
}

/** Pool size after doubling from `size` until `needed` fits. */
function grownSize(size: number, needed: number): number {
  while (size < needed) size *= 2;
  return size;
}
