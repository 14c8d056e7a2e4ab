/** Qwen3's text splitting before BPE: added tokens are cut out of the raw text first (leftmost-longest, before
 * normalisation, as tokenizer.json's `normalized: false` asks), each remaining piece is NFC-normalised (the reference's
 * NFC, see nfc.ts) and split by the Qwen2 pattern. The split is a hand-written scanner over UTF-16 code units that
 * returns piece boundaries, so no substring or match object is allocated per pre-token; it reproduces
 * QWEN2_SPLIT_SOURCE exactly, with the reference regex engine's classes (code-point-flags.ts). */
import { type CodePointFlags, HIGH_SURROGATE, LETTER, NEWLINE, NUMBER, SPACE } from './code-point-flags.js';
import type { NfcNormalizer } from './nfc.js';
import type { AddedToken } from './tokenizer-data.js';
import { finishHash, HASH_PRIME, HASH_SEED, hashRange } from './word-cache.js';

/**
 * tokenizer.json's Oniguruma pattern
 *   (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
 * in JS: `(?i:)` spelled out as ASCII classes, and `\s` as \p{White_Space}, Oniguruma's meaning (U+0085 in, U+FEFF
 * out), as @huggingface/tokenizers translates it. scripts/build-tokenizer.mjs refuses any other pattern. The scanner
 * below implements it; this source is kept as its specification (the runtime's \\p{…} are not Oniguruma's).
 */
export const QWEN2_SPLIT_SOURCE =
  "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}" +
  '| ?[^\\p{White_Space}\\p{L}\\p{N}]+[\\r\\n]*|\\p{White_Space}*[\\r\\n]+|\\p{White_Space}+(?!\\P{White_Space})|\\p{White_Space}+';

/** A piece of input: either an added token's id, or text still to be split and BPE-encoded. */
export type TextSegment = { addedTokenId: number; text?: undefined } | { addedTokenId?: undefined; text: string };

/** Returned by classAt() with the flags when the code point is a surrogate pair (two code units); a free flag bit. */
const WIDE = 64;
const WIDE_SHIFT = 6;

/** Class flags of the code point starting at text[i] (| WIDE for a surrogate pair); a lone surrogate is "other". */
function classAt(table: CodePointFlags, text: string, i: number, end: number): number {
  const c = text.charCodeAt(i);
  const flags = table.bmp[c];
  if ((flags & HIGH_SURROGATE) === 0) return flags;
  const low = i + 1 < end ? text.charCodeAt(i + 1) : 0;
  if (low < 0xdc00 || low > 0xdfff) return 0;
  return table.astral(0x10000 + ((c - 0xd800) << 10) + (low - 0xdc00)) | WIDE;
}

/** End of the run of \\p{L} code points from i, for a pre-token that starts at `start`; keyHash[0] receives the pre-token's
 * word-cache hash (hashRange()), `h` being the FNV-1a state over text[start..i). */
function letterRunEnd(table: CodePointFlags, text: string, start: number, i: number, end: number, h: number, keyHash: Int32Array): number {
  const bmp = table.bmp;
  while (i < end) {
    const unit = text.charCodeAt(i);
    const flags = bmp[unit];
    if ((flags & LETTER) !== 0) {
      h = Math.imul(h ^ unit, HASH_PRIME);
      i++;
      continue;
    }
    if ((flags & HIGH_SURROGATE) === 0 || (classAt(table, text, i, end) & LETTER) === 0) break;
    h = Math.imul(Math.imul(h ^ unit, HASH_PRIME) ^ text.charCodeAt(i + 1), HASH_PRIME);
    i += 2;
  }
  keyHash[0] = finishHash(h, i - start);
  return i;
}

/** `[^\s\p{L}\p{N}]+[\r\n]*` from i (text[i] is known to start such a run). */
function otherRunEnd(table: CodePointFlags, text: string, i: number, end: number): number {
  while (i < end) {
    const flags = classAt(table, text, i, end);
    if ((flags & (LETTER | NUMBER | SPACE)) !== 0) break;
    i += 1 + ((flags & WIDE) >> WIDE_SHIFT);
  }
  for (let c = text.charCodeAt(i); i < end && (c === 0x0a || c === 0x0d); c = text.charCodeAt(++i));
  return i;
}

/** Whether text[i..] starts 's 't 're 've 'm 'll 'd (ASCII case-insensitive); text[i] is known to be "'". */
function contractionEnd(text: string, i: number, end: number): number {
  if (i + 1 >= end) return -1;
  const a = text.charCodeAt(i + 1) | 0x20; // ASCII lower-case; only 'S' and 's' map to 's', etc.
  if (a === 0x73 || a === 0x74 || a === 0x6d || a === 0x64) return i + 2; // s t m d
  if (i + 2 >= end) return -1;
  const b = text.charCodeAt(i + 2) | 0x20;
  if ((b === 0x65 && (a === 0x72 || a === 0x76)) || (a === 0x6c && b === 0x6c)) return i + 3; // re ve ll
  return -1;
}

/** End of the pre-token starting at text[start] (start < end): the first alternative of the pattern that matches,
 * with its backtracking worked out per alternative. keyHash[0] receives the pre-token's hashRange() (the word cache's
 * key), except when the pre-token is one ASCII character: that is its own byte token, never looked up. */
export function preTokenEnd(table: CodePointFlags, text: string, start: number, end: number, keyHash: Int32Array): number {
  const c = text.charCodeAt(start);
  if (c === 0x27) {
    const contraction = contractionEnd(text, start, end);
    if (contraction >= 0) {
      keyHash[0] = hashRange(text, start, contraction);
      return contraction;
    }
  }
  const first = classAt(table, text, start, end);
  // [^\r\n\p{L}\p{N}]?\p{L}+ (most pre-tokens), hashed as it is scanned
  if ((first & LETTER) !== 0) return letterRunEnd(table, text, start, start, end, HASH_SEED, keyHash);
  const next = start + 1 + ((first & WIDE) >> WIDE_SHIFT);
  if ((first & (NUMBER | NEWLINE)) === 0 && next < end && (classAt(table, text, next, end) & LETTER) !== 0) {
    let h = Math.imul(HASH_SEED ^ c, HASH_PRIME);
    if (next === start + 2) h = Math.imul(h ^ text.charCodeAt(start + 1), HASH_PRIME);
    return letterRunEnd(table, text, start, next, end, h, keyHash);
  }
  const tokenEnd = otherPreTokenEnd(table, text, start, end, c, first, next);
  if (tokenEnd !== start + 1 || c >= 0x80) keyHash[0] = hashRange(text, start, tokenEnd);
  return tokenEnd;
}

/** preTokenEnd() of a pre-token that is neither a contraction nor a letter run; c and first: its first unit and class
 * flags, next: the index after its first code point. */
function otherPreTokenEnd(table: CodePointFlags, text: string, start: number, end: number, c: number, first: number, next: number): number {
  // \p{N}
  if ((first & NUMBER) !== 0) return next;
  // ' ?[^\s\p{L}\p{N}]+[\r\n]*'
  if ((first & SPACE) === 0) return otherRunEnd(table, text, start, end);
  if (c === 0x20 && next < end && (classAt(table, text, next, end) & (LETTER | NUMBER | SPACE)) === 0) {
    return otherRunEnd(table, text, next, end);
  }
  // White space (all in the BMP): \s*[\r\n]+ ends after the run's last CR/LF; else \s+(?!\S) leaves the last space
  // of a run followed by a non-space to the next token, unless the run is a single space (\s+).
  let i = start;
  let lastNewline = -1;
  while (i < end) {
    const flags = table.bmp[text.charCodeAt(i)];
    if ((flags & SPACE) === 0) break;
    if ((flags & NEWLINE) !== 0) lastNewline = i;
    i++;
  }
  if (lastNewline >= 0) return lastNewline + 1;
  if (i < end && i - start >= 2) return i - 1;
  return i;
}

function escapeRegExp(literal: string): string {
  return literal.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

export class PreTokenizer {
  private readonly addedTokenRegex: RegExp;
  private readonly addedTokenIds: Map<string, number>;
  /** Every added token starts with one of these characters; text without them skips the added-token scan. */
  private readonly addedTokenFirstChars: string[];

  constructor(
    addedTokens: readonly AddedToken[],
    private readonly nfc: NfcNormalizer,
    private readonly table: CodePointFlags,
  ) {
    this.addedTokenIds = new Map(addedTokens.map((t) => [t.content, t.id]));
    // Longest first, so at one position the longest token wins, as in the reference's trie.
    const contents = addedTokens.map((t) => t.content).sort((a, b) => b.length - a.length);
    this.addedTokenRegex = new RegExp(contents.map(escapeRegExp).join('|'), 'g');
    this.addedTokenFirstChars = [...new Set(contents.map((c) => c[0]))];
  }

  /** Cuts added tokens out of raw text; text segments are NFC-normalised and never empty. (No closures here: a new
   * one per call would send the optimised code back to the interpreter on every call.) */
  segments(text: string): TextSegment[] {
    const result: TextSegment[] = [];
    if (!this.mayHoldAddedToken(text)) {
      this.pushText(result, text);
      return result;
    }
    const regex = this.addedTokenRegex;
    regex.lastIndex = 0;
    let consumed = 0;
    for (let match = regex.exec(text); match !== null; match = regex.exec(text)) {
      if (match.index > consumed) this.pushText(result, text.slice(consumed, match.index));
      result.push({ addedTokenId: this.addedTokenIds.get(match[0])! });
      consumed = match.index + match[0].length;
    }
    if (consumed < text.length) this.pushText(result, text.slice(consumed));
    return result;
  }

  private mayHoldAddedToken(text: string): boolean {
    for (const first of this.addedTokenFirstChars) if (text.includes(first)) return true;
    return false;
  }

  /** Appends the NFC of a piece of text as a text segment, unless empty. */
  private pushText(result: TextSegment[], piece: string): void {
    const normalized = this.nfc.normalize(piece);
    if (normalized.length > 0) result.push({ text: normalized });
  }

  /** The whole text as one NFC-normalised text segment (none if empty): added-token spellings stay text. */
  plainSegments(text: string): TextSegment[] {
    const normalized = this.nfc.normalize(text);
    return normalized.length > 0 ? [{ text: normalized }] : [];
  }

  /** Pre-tokens of an (already normalised) text segment as strings, in order (for inspection; encode() works on
   * boundaries from preTokenEnd() directly). */
  preTokens(text: string): string[] {
    const result: string[] = [];
    const keyHash = new Int32Array(1);
    for (let start = 0; start < text.length; ) {
      const end = preTokenEnd(this.table, text, start, text.length, keyHash);
      result.push(text.slice(start, end));
      start = end;
    }
    return result;
  }
}
