/** NFC exactly as the reference tokenizer does it (Hugging Face tokenizers' unicode-normalization-alignments tables,
 * Unicode 9.0.0), independent of the runtime's String.prototype.normalize and its Unicode version. Text passes NFC's
 * quick check (every code point's check is Yes, combining classes in order) unchanged; only the runs around the
 * failing code points are normalised: canonical decomposition, canonical ordering of combining marks, canonical
 * composition (UAX #15). Runs of code points NFC can never change are skipped by a RegExp search over explicit
 * ranges (the engine's compiled matcher, not a JS loop per character): the runtime's Unicode data is not involved. */
import { CLASS_SHIFT, type CodePointFlags, HIGH_SURROGATE, NFC_QUICK_CHECK_FAILS } from './code-point-flags.js';

export interface NfcTables {
  /** Full canonical decompositions of all but Hangul syllables, flattened: code point, length, code points…. */
  decompositions: Uint32Array;
  /** (compositions, 3) first, second and composite code point of each primary composite. */
  compositions: Uint32Array;
  /** (ranges, 2) first and last code point of each range NFC may change or reorder (quick check not Yes, or a non-zero
   * combining class); every other code point is left as is and nothing before it combines with or moves across it. */
  unstableRanges: Uint32Array;
}

// Hangul syllables compose and decompose by arithmetic (the Unicode Standard, "Conjoining Jamo Behavior").
const S_BASE = 0xac00;
const L_BASE = 0x1100;
const V_BASE = 0x1161;
const T_BASE = 0x11a7;
const L_COUNT = 19;
const V_COUNT = 21;
const T_COUNT = 28;
const N_COUNT = V_COUNT * T_COUNT;
const S_COUNT = L_COUNT * N_COUNT;
const PAIR_SCALE = 0x110000;

export class NfcNormalizer {
  /** Built on the first text that needs them; most prompts never do. */
  private lookups: { decomposition: Map<number, number>; composition: Map<number, number> } | undefined;
  private codePoints = new Int32Array(256);
  /** Finds the next UTF-16 unit that is in tables.unstableRanges or is the high surrogate of a 1024-code-point block
   * holding some: a RegExp without the u flag (the engine's fastest scan; no Unicode data of the runtime's). */
  private readonly unstable: RegExp;

  constructor(
    private readonly table: CodePointFlags,
    private readonly tables: NfcTables,
  ) {
    let source = '';
    const highSurrogates = new Set<number>();
    const ranges = tables.unstableRanges;
    for (let r = 0; r < ranges.length; r += 2) {
      const [first, last] = [ranges[r], ranges[r + 1]];
      if (first < 0x10000) source += `${hex4(first)}-${hex4(Math.min(last, 0xffff))}`;
      for (let cp = Math.max(first, 0x10000); cp <= last; cp += 0x400) highSurrogates.add(0xd800 + ((cp - 0x10000) >> 10));
      if (last >= 0x10000) highSurrogates.add(0xd800 + ((last - 0x10000) >> 10));
    }
    for (const unit of highSurrogates) source += hex4(unit);
    this.unstable = new RegExp(`[${source}]`, 'g');
  }

  /** NFC of text; text itself when nothing in it can change. Lone surrogates pass through untouched. */
  normalize(text: string): string {
    const length = text.length;
    const unstable = this.unstable;
    let parts: string[] | undefined;
    let copied = 0;
    let stable = 0; // start of the latest code point that nothing before it can combine with or move across
    let lastClass = 0;
    for (let i = 0; i < length; ) {
      // Everything up to the next candidate stays as is, and the code point before it is stable.
      unstable.lastIndex = i;
      if (!unstable.test(text)) break;
      const at = unstable.lastIndex - 1;
      if (at > i) {
        stable = at - (at - 2 >= i && isLowSurrogate(text.charCodeAt(at - 1)) && isHighSurrogate(text.charCodeAt(at - 2)) ? 2 : 1);
        lastClass = 0;
      }
      const candidate = this.entryAt(text, at);
      if (isStable(candidate)) { // a high surrogate whose pair is stable, or a lone one
        stable = at;
        lastClass = 0;
        i = at + (candidate >= 0x10000 ? 2 : 1);
        continue;
      }
      // Code point by code point until the next stable one: marks in order pass, anything else normalises its run.
      for (i = at; i < length; ) {
        const entry = this.entryAt(text, i);
        if (isStable(entry)) {
          stable = i;
          lastClass = 0;
          break;
        }
        const cls = (entry >>> CLASS_SHIFT) & 0xff;
        if ((entry & NFC_QUICK_CHECK_FAILS) === 0 && lastClass <= cls) {
          lastClass = cls;
          i += entry >= 0x10000 ? 2 : 1;
          continue;
        }
        let end = i + (entry >= 0x10000 ? 2 : 1);
        for (let next = this.entryAt(text, end); end < length && !isStable(next); next = this.entryAt(text, end)) {
          end += next >= 0x10000 ? 2 : 1;
        }
        (parts ??= []).push(text.slice(copied, stable), this.normalizeRun(text, stable, end));
        copied = stable = i = end;
        lastClass = 0;
        break;
      }
    }
    if (parts === undefined) return text;
    parts.push(text.slice(copied));
    return parts.join('');
  }

  /** Table entry of the code point at text[i], plus 0x10000 when it takes two code units; 0 past the end. */
  private entryAt(text: string, i: number): number {
    const unit = text.charCodeAt(i);
    if (!(unit >= 0)) return 0;
    const entry = this.table.bmp[unit];
    if ((entry & HIGH_SURROGATE) === 0) return entry;
    const low = text.charCodeAt(i + 1); // NaN past the end
    if (!(low >= 0xdc00 && low <= 0xdfff)) return 0; // a lone surrogate: stable, left as is
    return this.table.astral(0x10000 + ((unit - 0xd800) << 10) + (low - 0xdc00)) | 0x10000;
  }

  private buildLookups(): NonNullable<NfcNormalizer['lookups']> {
    const { decompositions, compositions } = this.tables;
    const decomposition = new Map<number, number>(); // code point → index of its length in `decompositions`
    for (let i = 0; i < decompositions.length; i += 2 + decompositions[i + 1]) decomposition.set(decompositions[i], i + 1);
    const composition = new Map<number, number>();
    for (let i = 0; i < compositions.length; i += 3) composition.set(compositions[i] * PAIR_SCALE + compositions[i + 1], compositions[i + 2]);
    return { decomposition, composition };
  }

  private classOf(codePoint: number): number {
    return this.table.of(codePoint) >>> CLASS_SHIFT;
  }

  /** NFC of text[start..end), a run that starts at a stable code point (or the text's start) and ends before one. */
  private normalizeRun(text: string, start: number, end: number): string {
    const { decomposition, composition } = (this.lookups ??= this.buildLookups());
    const decompositions = this.tables.decompositions;
    // 1. Full canonical decomposition into code points (at most 4 per UTF-16 unit in Unicode 9.0.0's tables).
    if (this.codePoints.length < (end - start) * 4) this.codePoints = new Int32Array((end - start) * 4);
    const cps = this.codePoints;
    let n = 0;
    for (let i = start; i < end; ) {
      const cp = text.codePointAt(i)!;
      i += cp > 0xffff ? 2 : 1;
      const sIndex = cp - S_BASE;
      if (sIndex >= 0 && sIndex < S_COUNT) {
        cps[n++] = L_BASE + Math.floor(sIndex / N_COUNT);
        cps[n++] = V_BASE + Math.floor((sIndex % N_COUNT) / T_COUNT);
        if (sIndex % T_COUNT !== 0) cps[n++] = T_BASE + (sIndex % T_COUNT);
        continue;
      }
      const at = decomposition.get(cp);
      if (at === undefined) {
        cps[n++] = cp;
      } else {
        for (let k = 1; k <= decompositions[at]; k++) cps[n++] = decompositions[at + k];
      }
    }
    // 2. Canonical ordering: a stable insertion sort of each run of combining marks by class.
    for (let i = 1; i < n; i++) {
      const cp = cps[i];
      const cls = this.classOf(cp);
      if (cls === 0) continue;
      let j = i;
      while (j > 0 && this.classOf(cps[j - 1]) > cls) {
        cps[j] = cps[j - 1];
        j--;
      }
      cps[j] = cp;
    }
    // 3. Canonical composition: each code point joins the last starter unless something between blocks it (a starter,
    // or a mark of the same or a higher class).
    let out = 0;
    let starter = -1;
    let lastClass = 0;
    for (let i = 0; i < n; i++) {
      const cp = cps[i];
      const cls = this.classOf(cp);
      if (starter >= 0 && (out === starter + 1 || (lastClass !== 0 && lastClass < cls))) {
        const composite = composeHangul(cps[starter], cp) ?? composition.get(cps[starter] * PAIR_SCALE + cp);
        if (composite !== undefined) {
          cps[starter] = composite;
          continue;
        }
      }
      if (cls === 0) starter = out;
      lastClass = cls;
      cps[out++] = cp;
    }
    let result = '';
    for (let i = 0; i < out; i++) result += String.fromCodePoint(cps[i]);
    return result;
  }
}

/** A UTF-16 unit as a RegExp escape. */
function hex4(unit: number): string {
  return `\\u${unit.toString(16).padStart(4, '0')}`;
}

function isHighSurrogate(unit: number): boolean {
  return unit >= 0xd800 && unit <= 0xdbff;
}

function isLowSurrogate(unit: number): boolean {
  return unit >= 0xdc00 && unit <= 0xdfff;
}

/** A code point nothing before it combines with or moves across: quick check Yes and combining class 0. */
function isStable(entry: number): boolean {
  return (entry & NFC_QUICK_CHECK_FAILS) === 0 && ((entry >>> CLASS_SHIFT) & 0xff) === 0;
}

/** The Hangul syllable made of a leading + vowel jamo, or of an LV syllable + trailing jamo; else undefined. */
function composeHangul(first: number, second: number): number | undefined {
  const lIndex = first - L_BASE;
  const vIndex = second - V_BASE;
  if (lIndex >= 0 && lIndex < L_COUNT && vIndex >= 0 && vIndex < V_COUNT) return S_BASE + (lIndex * V_COUNT + vIndex) * T_COUNT;
  const sIndex = first - S_BASE;
  const tIndex = second - T_BASE;
  if (sIndex >= 0 && sIndex < S_COUNT && sIndex % T_COUNT === 0 && tIndex > 0 && tIndex < T_COUNT) return first + tIndex;
  return undefined;
}
