/** What the pre-tokenizer and NFC need to know of each code point, from the reference tokenizer's own Unicode tables
 * (edge/tokenizer/unicode-tables.json, packed by scripts/build-tokenizer.mjs), never from the runtime's: 16 bits a
 * code point, flags in the low byte and the canonical combining class in the high byte; a direct table for the BMP and
 * a two-level one (256-code-point blocks) above it. */

/** \p{L} of the split regex (Oniguruma's, Unicode 16.0.0). */
export const LETTER = 1;
/** \p{N} of the split regex. */
export const NUMBER = 2;
/** \s of the split regex (Oniguruma's: White_Space, so U+0085 in and U+FEFF out). */
export const SPACE = 4;
/** \r or \n (also SPACE). */
export const NEWLINE = 8;
/** A high surrogate: the entry belongs to the pair; look it up with astral(). */
export const HIGH_SURROGATE = 16;
/** NFC (the reference's, Unicode 9.0.0) may remove this code point or join it to the one before: its NFC quick check
 * is No or Maybe. */
export const NFC_QUICK_CHECK_FAILS = 32;
/** entry >>> CLASS_SHIFT = canonical combining class (0 for starters; an order-preserving renumbering of Unicode's). */
export const CLASS_SHIFT = 8;

const ASTRAL_BLOCK_BITS = 8;

export class CodePointFlags {
  /**
   * @param bmp (0x10000) entry of each BMP code unit.
   * @param astralIndex (0x100000 >> 8) block number of each 256-code-point block above the BMP.
   * @param astralBlocks (blocks, 256) entries of each distinct block.
   */
  constructor(
    readonly bmp: Uint16Array,
    private readonly astralIndex: Uint16Array,
    private readonly astralBlocks: Uint16Array,
  ) {}

  /** Entry of a code point above the BMP. */
  astral(codePoint: number): number {
    const offset = codePoint - 0x10000;
    return this.astralBlocks[(this.astralIndex[offset >> ASTRAL_BLOCK_BITS] << ASTRAL_BLOCK_BITS) | (offset & 0xff)];
  }

  /** Entry of any code point (lone surrogates have none). */
  of(codePoint: number): number {
    return codePoint < 0x10000 ? this.bmp[codePoint] & ~HIGH_SURROGATE : this.astral(codePoint);
  }
}
