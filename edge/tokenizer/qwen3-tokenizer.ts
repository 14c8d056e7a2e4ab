/** Qwen3's tokenizer for the edge: encode/decode with ids identical to Hugging Face's Rust tokenizers (what
 * transformers, vLLM and SGLang run) on tokenizer.json, with its Unicode tables rather than the runtime's, built from
 * the compiled image in a few ms instead of ~1 s of JSON parsing. */
import { BytePairEncoder } from './byte-pair-encoder.js';
import type { CodePointFlags } from './code-point-flags.js';
import { NfcNormalizer } from './nfc.js';
import { PreTokenizer, preTokenEnd } from './pre-tokenizer.js';
import { TokenBytes } from './token-bytes.js';
import { loadQwen3TokenizerData, type AddedToken, type TokenizerData } from './tokenizer-data.js';
import { WordCache } from './word-cache.js';

/** Pre-tokens longer than this (UTF-16 units) are not cached; mirrors the reference's 256. */
const MAX_CACHED_PRETOKEN_LENGTH = 256;

export interface EncodeOptions {
  /** What text spelling an added token (<|im_start|>, <|im_end|>, <think>, <tool_call>, … all 26) becomes:
   * 'ids' (default, as the reference's encode) cuts it out as the token's id; 'text' encodes it as ordinary text, the
   * way a client's message content must be encoded so that it cannot forge the template's control tokens. */
  addedTokens?: 'ids' | 'text';
}

export interface DecodeOptions {
  /** Drop <|im_start|>, <|im_end|>, <|endoftext|> and the other `special: true` tokens (not <think>/<tool_call>). */
  skipSpecialTokens?: boolean;
}

/** GPT-2 byte-level alphabet: the character the vocab uses to spell each byte (for idToToken / tokenToId). */
function byteLevelAlphabet(): string[] {
  const alphabet = new Array<string>(256);
  let shifted = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    alphabet[b] = String.fromCharCode(printable ? b : 256 + shifted++);
  }
  return alphabet;
}

export class Qwen3Tokenizer {
  /** Token ids that have a string (151669): the byte-level vocab then the 26 added tokens. */
  readonly vocabSize: number;
  readonly addedTokens: readonly AddedToken[];
  private readonly data: TokenizerData;
  private readonly bpe: BytePairEncoder;
  private readonly bytes: TokenBytes;
  private readonly preTokenizer: PreTokenizer;
  private readonly codePointFlags: CodePointFlags;
  private readonly specialIds: Uint8Array;
  private readonly byteToId: Int32Array;
  private readonly wordCache = new WordCache();
  /** Word-cache hash of the latest pre-token, from preTokenEnd(). */
  private readonly keyHash = new Int32Array(1);
  private symbols = new Int32Array(1024);
  private symbolCount = 0;
  private readonly utf8Decoder = new TextDecoder('utf-8', { ignoreBOM: true });
  private tokenIndex: Map<string, number> | undefined;

  constructor(data: TokenizerData = loadQwen3TokenizerData()) {
    this.data = data;
    this.vocabSize = data.vocabSize;
    this.addedTokens = data.addedTokens;
    this.bpe = new BytePairEncoder(data.mergePairs, data.pairTable, data.firstMergeId);
    this.bytes = new TokenBytes(data.byteToId, data.mergePairs, data.firstMergeId, data.addedTokens, data.vocabSize, data.tokenBytesLength);
    this.codePointFlags = data.codePointFlags;
    this.preTokenizer = new PreTokenizer(data.addedTokens, new NfcNormalizer(data.codePointFlags, data.nfc), data.codePointFlags);
    this.byteToId = Int32Array.from(data.byteToId);
    this.specialIds = new Uint8Array(data.vocabSize);
    for (const t of data.addedTokens) if (t.special) this.specialIds[t.id] = 1;
  }

  /** Token ids of text; added tokens written literally (<|im_start|>, <think>, <tool_call>, …) become their ids
   * unless options.addedTokens is 'text'. */
  encode(text: string, options: EncodeOptions = {}): number[] {
    const ids: number[] = [];
    const segments = options.addedTokens === 'text' ? this.preTokenizer.plainSegments(text) : this.preTokenizer.segments(text);
    for (const segment of segments) {
      if (segment.text === undefined) {
        ids.push(segment.addedTokenId);
        continue;
      }
      const segmentText = segment.text;
      const length = segmentText.length;
      const byteToId = this.byteToId;
      const codePointFlags = this.codePointFlags;
      const keyHash = this.keyHash;
      for (let start = 0; start < length; ) {
        const end = preTokenEnd(codePointFlags, segmentText, start, length, keyHash);
        const first = segmentText.charCodeAt(start);
        // One ASCII character (digits, punctuation, a lone space) is one byte token: skip the cache.
        if (end === start + 1 && first < 0x80) ids.push(byteToId[first]);
        else this.encodePreToken(segmentText, start, end, keyHash[0], ids);
        start = end;
      }
    }
    return ids;
  }

  /** Appends the ids of the pre-token text[start..end) (hash: its hashRange()): from the word cache, else by BPE over its
   * UTF-8 bytes. */
  private encodePreToken(text: string, start: number, end: number, hash: number, ids: number[]): void {
    const cacheable = end - start <= MAX_CACHED_PRETOKEN_LENGTH;
    if (cacheable && this.wordCache.get(text, start, end, hash, ids)) return;
    const symbols = this.writeByteSymbols(text, start, end);
    const count = this.bpe.encodeWord(symbols, this.symbolCount);
    for (let i = 0; i < count; i++) ids.push(symbols[i]);
    if (cacheable) this.wordCache.set(text, start, end, hash, symbols, count);
  }

  /** UTF-8-encodes text[start..end) into this.symbols as single-byte token ids (count in this.symbolCount); lone
   * surrogates become U+FFFD like TextEncoder. */
  private writeByteSymbols(text: string, start: number, end: number): Int32Array {
    if (this.symbols.length < (end - start) * 3) this.symbols = new Int32Array((end - start) * 3 + 64);
    const out = this.symbols;
    const byteToId = this.byteToId;
    let n = 0;
    for (let i = start; i < end; i++) {
      let code = text.charCodeAt(i);
      if (code < 0x80) {
        out[n++] = byteToId[code];
        continue;
      }
      if (code < 0x800) {
        out[n++] = byteToId[0xc0 | (code >> 6)];
        out[n++] = byteToId[0x80 | (code & 0x3f)];
        continue;
      }
      if (code >= 0xd800 && code <= 0xdfff) {
        const low = i + 1 < end ? text.charCodeAt(i + 1) : 0;
        if (code <= 0xdbff && low >= 0xdc00 && low <= 0xdfff) {
          code = 0x10000 + ((code - 0xd800) << 10) + (low - 0xdc00);
          i++;
          out[n++] = byteToId[0xf0 | (code >> 18)];
          out[n++] = byteToId[0x80 | ((code >> 12) & 0x3f)];
          out[n++] = byteToId[0x80 | ((code >> 6) & 0x3f)];
          out[n++] = byteToId[0x80 | (code & 0x3f)];
          continue;
        }
        code = 0xfffd;
      }
      out[n++] = byteToId[0xe0 | (code >> 12)];
      out[n++] = byteToId[0x80 | ((code >> 6) & 0x3f)];
      out[n++] = byteToId[0x80 | (code & 0x3f)];
    }
    this.symbolCount = n;
    return out;
  }

  /** Raw bytes of a token, or an empty array for ids without a token (e.g. padded embedding rows ≥ vocabSize). */
  tokenBytes(id: number): Uint8Array {
    if (!(id >= 0 && id < this.vocabSize)) return new Uint8Array(0);
    return this.bytes.of(id);
  }

  /** Whether skipSpecialTokens drops this id. */
  isSpecial(id: number): boolean {
    return this.specialIds[id] === 1;
  }

  /** Text of ids; invalid UTF-8 becomes U+FFFD as in the reference; ids without a token are ignored. */
  decode(ids: readonly number[], options: DecodeOptions = {}): string {
    const skipSpecial = options.skipSpecialTokens === true;
    let total = 0;
    for (const id of ids) {
      if (id >= 0 && id < this.vocabSize && !(skipSpecial && this.specialIds[id])) total += this.bytes.lengthOf(id);
    }
    const bytes = new Uint8Array(total);
    let position = 0;
    for (const id of ids) {
      if (id >= 0 && id < this.vocabSize && !(skipSpecial && this.specialIds[id])) {
        const token = this.bytes.of(id);
        bytes.set(token, position);
        position += token.length;
      }
    }
    return this.utf8Decoder.decode(bytes);
  }

  /** The token's vocab spelling (byte-level characters, e.g. "Ġhello"; added tokens as written), or undefined. */
  idToToken(id: number): string | undefined {
    if (!(id >= 0 && id < this.vocabSize)) return undefined;
    if (id >= this.data.baseVocabSize) return this.data.addedTokens[id - this.data.baseVocabSize].content;
    const alphabet = (Qwen3Tokenizer.alphabet ??= byteLevelAlphabet());
    let token = '';
    for (const b of this.tokenBytes(id)) token += alphabet[b];
    return token;
  }

  /** Id of a vocab spelling (inverse of idToToken), or undefined. Builds its index on first use (~40 ms). */
  tokenToId(token: string): number | undefined {
    if (this.tokenIndex === undefined) {
      const index = new Map<string, number>();
      for (let id = 0; id < this.vocabSize; id++) index.set(this.idToToken(id)!, id);
      this.tokenIndex = index;
    }
    return this.tokenIndex.get(token);
  }

  private static alphabet: string[] | undefined;
}

let singleton: Qwen3Tokenizer | undefined;

/** The isolate-wide tokenizer, built on first use (a few ms) and kept for the isolate's lifetime. */
export function getTokenizer(): Qwen3Tokenizer {
  return (singleton ??= new Qwen3Tokenizer());
}
