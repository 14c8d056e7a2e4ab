/** Reads the compiled tokenizer image written by scripts/build-tokenizer.mjs: typed-array views on it, nothing copied,
 * built or parsed except the 26 added tokens' JSON; token bytes are rebuilt from the merges when decoding meets them
 * (token-bytes.ts). Layout (little-endian) is documented next to the writer. In workerd the image is a Data module;
 * Node reads the file (tokenizer-image.*.js, picked by package.json's "imports"). */
import QWEN3_TOKENIZER_IMAGE from '#qwen3-tokenizer-image';
import { CodePointFlags } from './code-point-flags.js';
import type { NfcTables } from './nfc.js';

const MAGIC = 0x4b545751; // 'QWTK'
const FORMAT_VERSION = 5;
const HEADER_BYTES = 56;
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

/** The merges' lookup table, a minimal perfect hash laid out by scripts/build-tokenizer.mjs (byte-pair-encoder.ts
 * reads it with the same hashes). */
export interface PairTable {
  /** (buckets) the pilot of each bucket of pairs. */
  pilots: Uint16Array;
  /** (slots) merge rank + 1 of each slot (0 = empty) = low | high << 16. */
  slotLow: Uint16Array;
  slotHigh: Uint8Array;
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
  pairTable: PairTable;
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

/** Parses the compiled tokenizer image; throws if it was written by another format version. */
export function parseTokenizerData(image: Uint8Array): TokenizerData {
  // Typed-array views need 4-byte alignment; a pooled Buffer may start mid-page.
  const bytes = image.byteOffset % 4 === 0 ? image : image.slice();
  const header = new Uint32Array(bytes.buffer, bytes.byteOffset, HEADER_BYTES / 4);
  const [
    magic, version, vocabSize, baseVocabSize, mergeCount, firstMergeId, tokenBytesLength, addedJsonLength,
    decompositionsLength, compositionsLength, astralBlockCount, unstableRangesLength, slotCount, bucketCount,
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
  const pilots = take(Uint16Array, bucketCount);
  const slotLow = take(Uint16Array, slotCount);
  const mergeLow = take(Uint16Array, mergeCount * 2);
  const slotHigh = take(Uint8Array, slotCount);
  const mergeHigh = take(Uint8Array, mergeCount * 2);
  const pairTable = { pilots, slotLow, slotHigh };
  const addedTokens = JSON.parse(new TextDecoder().decode(take(Uint8Array, addedJsonLength))) as AddedToken[];

  const mergePairs = { low: mergeLow, high: mergeHigh };
  return { vocabSize, baseVocabSize, byteToId, mergePairs, pairTable, firstMergeId, tokenBytesLength, addedTokens, codePointFlags, nfc };
}

/** Views on the bundled Qwen3 tokenizer image. */
export function loadQwen3TokenizerData(): TokenizerData {
  const image = QWEN3_TOKENIZER_IMAGE as ArrayBuffer | Uint8Array;
  return parseTokenizerData(image instanceof Uint8Array ? image : new Uint8Array(image));
}
