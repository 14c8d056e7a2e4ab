/** Code-point classes the Qwen2 split pattern tests (\p{L}, \p{N}, White_Space, CR/LF) as bit flags, looked up in a
 * 64 KiB table for the BMP. Each entry is filled on first sight by asking this engine's own RegExp, so the scanner
 * agrees with the regex (and @huggingface/tokenizers) on whatever Unicode version the runtime ships, at no load cost. */

export const LETTER = 1;
export const NUMBER = 2;
/** White_Space, Oniguruma's \s: U+0085 in, U+FEFF out. */
export const SPACE = 4;
/** \r or \n (also SPACE). */
export const NEWLINE = 8;
/** A high surrogate: the class belongs to the pair; resolve with astralClass(). */
export const HIGH_SURROGATE = 16;
/** Set on every filled entry, so 0 means "not looked up yet". */
const KNOWN = 0x80;

const LETTER_REGEX = /^\p{L}$/u;
const NUMBER_REGEX = /^\p{N}$/u;
const SPACE_REGEX = /^\p{White_Space}$/u;

function classify(codePoint: number): number {
  const text = String.fromCodePoint(codePoint);
  let flags = KNOWN;
  if (LETTER_REGEX.test(text)) flags |= LETTER;
  if (NUMBER_REGEX.test(text)) flags |= NUMBER;
  if (SPACE_REGEX.test(text)) flags |= SPACE;
  if (codePoint === 0x0a || codePoint === 0x0d) flags |= NEWLINE;
  return flags;
}

/** Class flags of BMP code units (| KNOWN); 0 = not looked up yet. Lone low surrogates classify as "other". */
export const bmpClasses = new Uint8Array(0x10000);
const astralClasses = new Map<number, number>();

for (let c = 0; c < 0x80; c++) bmpClasses[c] = classify(c);
for (let c = 0xd800; c <= 0xdbff; c++) bmpClasses[c] = KNOWN | HIGH_SURROGATE;

/** Fills and returns the table entry of a BMP code unit seen for the first time. */
export function fillBmpClass(code: number): number {
  return (bmpClasses[code] = code >= 0xdc00 && code <= 0xdfff ? KNOWN : classify(code));
}

/** Class flags of a supplementary-plane code point (cached; these are rare). */
export function astralClass(codePoint: number): number {
  let flags = astralClasses.get(codePoint);
  if (flags === undefined) {
    flags = classify(codePoint);
    if (astralClasses.size < 4096) astralClasses.set(codePoint, flags);
  }
  return flags;
}
