/** Reads the compiled tokenizer written by scripts/build-tokenizer.mjs: base64 → typed-array views, no JSON parsing
 * except the 26 added tokens; token bytes are rebuilt from the merges when decoding meets them (token-bytes.ts). Layout
 * (little-endian) is documented next to the writer. */
import { CodePointFlags } from './code-point-flags.js';
import { QWEN3_TOKENIZER_BASE64 } from './generated/qwen3-tokenizer-data.js';
import type { NfcTables } from './nfc.js';

const MAGIC = 0x4b545751; // 'QWTK'
const FORMAT_VERSION = 4;
const HEADER_BYTES = 48;
const ASTRAL_BLOCKS = (0x110000 - 0x10000) / 256;

export interface AddedToken {
  id: number;
  content: string;
  /** true for tokens that decode(…, {skipSpecialTokens}) drops (<|im_start|> etc.; not <think> or <tool_call>). */
  special: boolean;
}

/** (mergeCount, 2) left and right token id of each merge, in rank order, as the image stores them: id = low | high << 16. */
export interface MergePairs {
  low: Uint16Array;
  high: Uint8Array;
}

export interface TokenizerData {
  /** Number of token ids with a string behind them (base vocab + added tokens). */
  vocabSize: number;
  /** Ids below this are byte-level BPE tokens; added tokens follow. */
  baseVocabSize: number;
  /** (256) id of the single-byte token for each byte value. */
  byteToId: Uint32Array;
  /** Left and right token id of each merge, in rank order (not joined into one array: that pass would cost start-up). */
  mergePairs: MergePairs;
  /** Token id produced by merge rank 0; merge r produces firstMergeId + r. */
  firstMergeId: number;
  /** Bytes of all tokens together. */
  tokenBytesLength: number;
  addedTokens: AddedToken[];
  /** The reference tokenizer's character classes and NFC flags per code point. */
  codePointFlags: CodePointFlags;
  /** The reference tokenizer's NFC tables. */
  nfc: NfcTables;
}

type Base64Decoder = (base64: string) => Uint8Array;

/** Picks the fastest base64 decoder the platform has: workerd's Uint8Array.fromBase64, Node's Buffer, then atob. */
function base64Decoder(): Base64Decoder {
  const fromBase64 = (Uint8Array as unknown as { fromBase64?: Base64Decoder }).fromBase64;
  if (typeof fromBase64 === 'function') return (s) => fromBase64.call(Uint8Array, s);
  const nodeBuffer = (globalThis as { Buffer?: { from(s: string, enc: string): Uint8Array } }).Buffer;
  if (nodeBuffer) return (s) => nodeBuffer.from(s, 'base64');
  return (s) => {
    const binary = atob(s);
    const bytes = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
    return bytes;
  };
}

/** Parses the compiled tokenizer image; throws if it was written by another format version. */
export function parseTokenizerData(image: Uint8Array): TokenizerData {
  // Typed-array views need 4-byte alignment; a pooled Buffer may start mid-page.
  const bytes = image.byteOffset % 4 === 0 ? image : image.slice();
  const header = new Uint32Array(bytes.buffer, bytes.byteOffset, HEADER_BYTES / 4);
  const [
    magic, version, vocabSize, baseVocabSize, mergeCount, firstMergeId, tokenBytesLength, addedJsonLength,
    decompositionsLength, compositionsLength, astralBlockCount, unstableRangesLength,
  ] = header;
  if (magic !== MAGIC || version !== FORMAT_VERSION) {
    throw new Error('tokenizer data: wrong format; run `node scripts/build-tokenizer.mjs`');
  }
  let offset = bytes.byteOffset + HEADER_BYTES;
  const take = <T>(View: new (buffer: ArrayBufferLike, offset: number, length: number) => T & { byteLength: number }, length: number): T => {
    const view = new View(bytes.buffer, offset, length);
    offset += view.byteLength;
    return view;
  };
  const byteToId = take(Uint32Array, 256);
  const nfc = {
    decompositions: take(Uint32Array, decompositionsLength),
    compositions: take(Uint32Array, compositionsLength),
    unstableRanges: take(Uint32Array, unstableRangesLength),
  };
  const astralIndex = take(Uint16Array, ASTRAL_BLOCKS);
  const codePointFlags = new CodePointFlags(take(Uint16Array, 0x10000), astralIndex, take(Uint16Array, astralBlockCount * 256));
  const mergeLow = take(Uint16Array, mergeCount * 2);
  const mergeHigh = take(Uint8Array, mergeCount * 2);
  const addedTokens = JSON.parse(new TextDecoder().decode(take(Uint8Array, addedJsonLength))) as AddedToken[];

  const mergePairs = { low: mergeLow, high: mergeHigh };
  return { vocabSize, baseVocabSize, byteToId, mergePairs, firstMergeId, tokenBytesLength, addedTokens, codePointFlags, nfc };
}

/** Decodes and parses the bundled Qwen3 tokenizer image. */
export function loadQwen3TokenizerData(): TokenizerData {
  return parseTokenizerData(base64Decoder()(QWEN3_TOKENIZER_BASE64));
}
