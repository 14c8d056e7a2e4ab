/**
 * Inputs on which edge/tokenizer must give the Rust reference tokenizer's ids, built deterministically and without
 * the runtime's Unicode tables (no normalize(), no \p{…}), so Node, workerd and the digest script see the same
 * strings: a sweep of every code point in contexts that expose its class and its NFC behaviour, and a multilingual and
 * adversarial corpus. test/fixtures/tokenizer-oracle-digests.json holds the reference's ids for them (written by
 * scripts/gen-tokenizer-oracle-digests.mjs); hashIds() is the digest both sides compute.
 */
import fixture from '../fixtures/tokenizer-corpus.json';
import unicodeTables from '../../edge/tokenizer/unicode-tables.json';

/** Code points per sweep document. */
export const SWEEP_CHUNK = 4096;
export const SWEEP_DOCUMENTS = Math.ceil(0x110000 / SWEEP_CHUNK);
/** Size of the corpus in UTF-8 bytes (at least). */
export const CORPUS_BYTES = 5_500_000;

/** Deterministic PRNG (mulberry32). */
export function random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** 64-bit digest (two 32-bit lanes) of an id sequence, as hex; equal ids ⇔ equal digests for all practical purposes. */
export function hashIds(ids: ArrayLike<number>): string {
  let a = 0x811c9dc5 ^ ids.length;
  let b = 0x9e3779b9;
  for (let i = 0; i < ids.length; i++) {
    a = Math.imul(a ^ ids[i], 0x01000193);
    b = Math.imul(b ^ ids[i] ^ (a >>> 15), 0x85ebca77);
  }
  return (a >>> 0).toString(16).padStart(8, '0') + (b >>> 0).toString(16).padStart(8, '0');
}

const decompositionOf = new Map(unicodeTables.decompositions.map(([cp, ...rest]) => [cp, rest]));
const isSurrogate = (cp: number) => cp >= 0xd800 && cp <= 0xdfff;

/** Canonical decomposition of cp by the reference's tables (Hangul by arithmetic), as a string. */
function decomposed(cp: number): string {
  const s = cp - 0xac00;
  if (s >= 0 && s < 11172) {
    const t = s % 28;
    return String.fromCodePoint(0x1100 + Math.floor(s / 588), 0x1161 + Math.floor((s % 588) / 28)) + (t ? String.fromCodePoint(0x11a7 + t) : '');
  }
  const parts = decompositionOf.get(cp);
  return parts ? String.fromCodePoint(...parts) : String.fromCodePoint(cp);
}

/**
 * Sweep document k: one line per code point X in [k·SWEEP_CHUNK, (k+1)·SWEEP_CHUNK) (surrogates skipped): X alone,
 * X between letters (is it \p{L}?), after a space, X before and after marks of classes 220, 230 and 240 (canonical
 * ordering, composition with a following mark), and X's decomposition followed by a Hangul trailing jamo (composing it
 * back, and LV + T).
 */
export function sweepDocument(k: number): string {
  const lines: string[] = [];
  for (let cp = k * SWEEP_CHUNK; cp < (k + 1) * SWEEP_CHUNK && cp <= 0x10ffff; cp++) {
    if (isSurrogate(cp)) continue;
    const x = String.fromCodePoint(cp);
    lines.push(`${x} a${x}a ${x}\u0316\u0301${x}\u0345${decomposed(cp)}\u11a8`);
  }
  return lines.join('\n') + '\n';
}

// --- The corpus --------------------------------------------------------------------------------------------------
type Range = [number, number];
/** Letters of many scripts, for made-up words. */
const SCRIPTS: Range[] = [
  [0x61, 0x7a], [0x41, 0x5a], [0xc0, 0x24f], [0x370, 0x3ff], [0x400, 0x4ff], [0x531, 0x587], [0x5d0, 0x5ea],
  [0x620, 0x64a], [0x905, 0x939], [0x985, 0x9b9], [0xb85, 0xbb9], [0xe01, 0xe30], [0x10d0, 0x10fa], [0x1200, 0x1248],
  [0x3041, 0x3096], [0x30a1, 0x30fa], [0x4e00, 0x9fff], [0xac00, 0xd7a3], [0x1e00, 0x1eff], [0xa000, 0xa48c],
  [0x20000, 0x2a6df], [0x30000, 0x3134a], [0x31350, 0x323af], [0x323b0, 0x3347f], [0x1e900, 0x1e943], [0x16d40, 0x16d79],
];
/** Combining marks old and new (Unicode 1.1 to 17), including blocks NFC tables of different ages disagree on. */
const MARKS: Range[] = [
  [0x300, 0x36f], [0x483, 0x489], [0x591, 0x5c7], [0x610, 0x61a], [0x64b, 0x65f], [0x900, 0x903], [0x93a, 0x94f],
  [0x1ab0, 0x1aff], [0x1dc0, 0x1dff], [0x20d0, 0x20f0], [0x2cef, 0x2cf1], [0x302a, 0x302f], [0x3099, 0x309a],
  [0xfe20, 0xfe2f], [0x10376, 0x1037a], [0x10d24, 0x10d27], [0x10eab, 0x10eac], [0x10efa, 0x10eff], [0x11366, 0x11374],
  [0x113b8, 0x113e2], [0x16af0, 0x16af4], [0x1d165, 0x1d1ad], [0x1e000, 0x1e02a], [0x1e08f, 0x1e08f], [0x1e4ec, 0x1e4ef],
  [0x1e5ee, 0x1e5ef], [0x1e8d0, 0x1e8d6], [0x1e944, 0x1e94a], [0x0b3e, 0x0b57], [0x0bbe, 0x0bd7], [0x1161, 0x11c2],
];
const SPACES = [0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x20, 0x85, 0xa0, 0x1680, 0x180e, 0x2000, 0x2005, 0x200a, 0x200b, 0x2028,
  0x2029, 0x202f, 0x205f, 0x3000, 0xfeff];
const DIGITS: Range[] = [[0x30, 0x39], [0x660, 0x669], [0x966, 0x96f], [0xff10, 0xff19], [0x2460, 0x249b], [0x1d7ce, 0x1d7ff],
  [0x16ac0, 0x16ac9], [0x1ccf0, 0x1ccf9], [0x11bf0, 0x11bf9], [0x1e5f1, 0x1e5fa]];
const SNIPPETS = [
  "it's", "I'M", "we'Ll", "you'VE", "'S", "'ſ", "''", "'d've", '<|im_start|>', '<|im_end|>', '<think>', '</think>',
  '<tool_call>', '<|im_', '<|endoftext|>', '{"a": [1, 2.5e-3, null]}', '\r\n', '\n\n\n', '    ', '\t\t', '...', '!!!',
  '👨‍👩‍👧‍👦', '🏳️‍🌈', '👋🏽', '#️⃣', '\u200d', '\ufe0f', '\u{e0067}', '=>', '::', '//', '/*', 'ﬁ', 'Å', 'Å', 'ǅ',
];

function pick<T>(next: () => number, items: readonly T[]): T {
  return items[Math.floor(next() * items.length)];
}

function fromRanges(next: () => number, ranges: readonly Range[]): string {
  const [first, last] = pick(next, ranges);
  return String.fromCodePoint(first + Math.floor(next() * (last - first + 1)));
}

function anyScalar(next: () => number): string {
  let cp: number;
  do cp = Math.floor(next() * 0x110000); while (isSurrogate(cp));
  return String.fromCodePoint(cp);
}

/** One corpus document of about `size` characters, of a kind chosen by the PRNG. */
function corpusDocument(next: () => number, size: number): string {
  const sources = fixture.cases.map((c) => c.text).filter((t) => t.length > 0);
  let doc = '';
  while (doc.length < size) {
    const roll = next();
    if (roll < 0.3) {
      const source = pick(next, sources); // real multilingual text, sliced anywhere (surrogate pairs kept whole)
      let start = Math.floor(next() * source.length);
      if (isSurrogate(source.charCodeAt(start)) && source.charCodeAt(start) >= 0xdc00) start--;
      let end = Math.min(source.length, start + 1 + Math.floor(next() * 300));
      if (end < source.length && source.charCodeAt(end) >= 0xdc00 && source.charCodeAt(end) <= 0xdfff) end++;
      doc += source.slice(start, end);
    } else if (roll < 0.5) {
      const word = 1 + Math.floor(next() * 12); // made-up words of one script, some with marks
      for (let i = 0; i < word; i++) doc += fromRanges(next, SCRIPTS) + (next() < 0.15 ? fromRanges(next, MARKS) : '');
    } else if (roll < 0.62) {
      doc += fromRanges(next, SCRIPTS); // a base followed by a storm of marks in random order
      for (let i = Math.floor(next() * 9); i > 0; i--) doc += fromRanges(next, MARKS);
    } else if (roll < 0.67) {
      for (let i = 0; i < 8; i++) doc += anyScalar(next); // anything, assigned or not, any plane
    } else if (roll < 0.75) {
      for (let i = Math.floor(next() * 6); i >= 0; i--) doc += fromRanges(next, DIGITS);
    } else if (roll < 0.85) {
      doc += pick(next, SNIPPETS);
    } else if (roll < 0.86) {
      doc += pick(next, ['x', 'é', '中', '\u0301', ' ', '😀', '1']).repeat(1000 + Math.floor(next() * 9000)); // huge pre-tokens
    } else {
      for (let i = Math.floor(next() * 4); i >= 0; i--) doc += String.fromCodePoint(pick(next, SPACES));
    }
    if (next() < 0.5) doc += ' ';
  }
  return doc;
}

/** The multilingual and adversarial corpus: documents of 2–30 k characters, CORPUS_BYTES of UTF-8 at least. */
export function corpusDocuments(): string[] {
  const next = random(20261201);
  const encoder = new TextEncoder();
  const documents: string[] = [];
  let bytes = 0;
  while (bytes < CORPUS_BYTES) {
    const doc = corpusDocument(next, 2000 + Math.floor(next() * 28000));
    documents.push(doc);
    bytes += encoder.encode(doc).length;
  }
  return documents;
}

export interface OracleDigests {
  reference: string;
  corpusBytes: number;
  sweep: string[];
  corpus: string[];
}

/** Documents whose ids under `encode` differ from the reference's digests, as "sweep 12" / "corpus 3". */
export function mismatchingDocuments(encode: (text: string) => number[], digests: OracleDigests): string[] {
  const mismatches: string[] = [];
  for (let k = 0; k < SWEEP_DOCUMENTS; k++) if (hashIds(encode(sweepDocument(k))) !== digests.sweep[k]) mismatches.push(`sweep ${k}`);
  const documents = corpusDocuments();
  documents.forEach((doc, i) => {
    if (hashIds(encode(doc)) !== digests.corpus[i]) mismatches.push(`corpus ${i}`);
  });
  if (digests.sweep.length !== SWEEP_DOCUMENTS || digests.corpus.length !== documents.length) {
    mismatches.push('document count: regenerate with scripts/gen-tokenizer-oracle-digests.mjs');
  }
  return mismatches;
}
