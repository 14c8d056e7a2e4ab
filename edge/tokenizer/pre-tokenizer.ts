/** Qwen3's text splitting before BPE: added tokens are cut out of the raw text first (leftmost-longest, before
 * normalisation, as tokenizer.json's `normalized: false` asks), each remaining piece is NFC-normalised and split by
 * the Qwen2 regex. */
import type { AddedToken } from './tokenizer-data.js';

/**
 * tokenizer.json's Oniguruma pattern
 *   (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
 * in JS: `(?i:)` spelled out as ASCII classes, and `\s` as \p{White_Space}, Oniguruma's meaning (U+0085 in, U+FEFF
 * out), as @huggingface/tokenizers translates it. scripts/build-tokenizer.mjs refuses any other pattern.
 */
const QWEN2_SPLIT_SOURCE =
  "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}" +
  '| ?[^\\p{White_Space}\\p{L}\\p{N}]+[\\r\\n]*|\\p{White_Space}*[\\r\\n]+|\\p{White_Space}+(?!\\P{White_Space})|\\p{White_Space}+';

/** A piece of input: either an added token's id, or text still to be split and BPE-encoded. */
export type TextSegment = { addedTokenId: number; text?: undefined } | { addedTokenId?: undefined; text: string };

function escapeRegExp(literal: string): string {
  return literal.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

export class PreTokenizer {
  private readonly splitRegex = new RegExp(QWEN2_SPLIT_SOURCE, 'gu');
  private readonly addedTokenRegex: RegExp;
  private readonly addedTokenIds: Map<string, number>;
  /** Every added token starts with one of these characters; text without them skips the added-token scan. */
  private readonly addedTokenFirstChars: string[];

  constructor(addedTokens: AddedToken[]) {
    this.addedTokenIds = new Map(addedTokens.map((t) => [t.content, t.id]));
    // Longest first, so at one position the longest token wins, as in the reference's trie.
    const contents = addedTokens.map((t) => t.content).sort((a, b) => b.length - a.length);
    this.addedTokenRegex = new RegExp(contents.map(escapeRegExp).join('|'), 'g');
    this.addedTokenFirstChars = [...new Set(contents.map((c) => c[0]))];
  }

  /** Cuts added tokens out of raw text; text segments are NFC-normalised and never empty. */
  segments(text: string): TextSegment[] {
    const result: TextSegment[] = [];
    const pushText = (piece: string): void => {
      const normalized = piece.normalize('NFC');
      if (normalized.length > 0) result.push({ text: normalized });
    };
    if (!this.addedTokenFirstChars.some((c) => text.includes(c))) {
      if (text.length > 0) pushText(text);
      return result;
    }
    const regex = this.addedTokenRegex;
    regex.lastIndex = 0;
    let consumed = 0;
    for (let match = regex.exec(text); match !== null; match = regex.exec(text)) {
      if (match.index > consumed) pushText(text.slice(consumed, match.index));
      result.push({ addedTokenId: this.addedTokenIds.get(match[0])! });
      consumed = match.index + match[0].length;
    }
    if (consumed < text.length) pushText(text.slice(consumed));
    return result;
  }

  /** Pre-tokens of an (already normalised) text segment, in order. */
  preTokens(text: string): string[] {
    // One global match() is much cheaper than an exec() loop (one result array, no per-match objects).
    const matches = text.match(this.splitRegex) ?? [];
    let covered = 0;
    for (let i = 0; i < matches.length; i++) covered += matches[i].length;
    if (covered === text.length) return matches;
    return this.preTokensWithGaps(text);
  }

  /** The "Isolated" split in full: unmatched gaps are pre-tokens too. The Qwen2 pattern matches every code point,
   * so this only runs if the pattern ever changes. */
  private preTokensWithGaps(text: string): string[] {
    const result: string[] = [];
    const regex = new RegExp(this.splitRegex.source, 'gu');
    let consumed = 0;
    for (let match = regex.exec(text); match !== null; match = regex.exec(text)) {
      if (match.index > consumed) result.push(text.slice(consumed, match.index));
      result.push(match[0]);
      consumed = match.index + match[0].length;
    }
    if (consumed < text.length) result.push(text.slice(consumed));
    return result;
  }
}
