/** Turns a stream of generated token ids into text deltas for SSE without ever splitting a UTF-8 character: bytes
 * of an unfinished character wait for the next token. Concatenated deltas plus flush() equal decode(all ids). */
import type { DecodeOptions, Qwen3Tokenizer } from './qwen3-tokenizer.js';

/**
 * Per tokenizer, the text of each token met so far whose bytes end on a whole character (nearly all), or null for one
 * that may end inside a character. Shared by every stream of the isolate: a token is decoded once, not once per use.
 */
const wholeTexts = new WeakMap<Qwen3Tokenizer, Map<number, string | null>>();
const wholeDecoder = new TextDecoder('utf-8', { ignoreBOM: true });

export class StreamingDetokenizer {
  /** made when a token first ends inside a character (most streams never need one) */
  private decoder?: TextDecoder;
  private readonly skipSpecialTokens: boolean;
  private readonly texts: Map<number, string | null>;
  /** the decoder holds no bytes of an unfinished character: a token ending on a whole character decodes on its own */
  private clean = true;

  constructor(private readonly tokenizer: Qwen3Tokenizer, options: DecodeOptions = {}) {
    this.skipSpecialTokens = options.skipSpecialTokens === true;
    let texts = wholeTexts.get(tokenizer);
    if (!texts) wholeTexts.set(tokenizer, (texts = new Map()));
    this.texts = texts;
  }

  /** Feeds one id or several; returns the text that became complete (often '' mid-character). */
  push(ids: number | readonly number[]): string {
    if (typeof ids === 'number') return this.pushOne(ids);
    let delta = '';
    for (const id of ids) delta += this.pushOne(id);
    return delta;
  }

  private pushOne(id: number): string {
    if (this.skipSpecialTokens && this.tokenizer.isSpecial(id)) return '';
    if (this.clean) {
      let text = this.texts.get(id);
      if (text === undefined) {
        const bytes = this.tokenizer.tokenBytes(id);
        text = bytes.length === 0 ? '' : endsWhole(bytes) ? wholeDecoder.decode(bytes) : null;
        this.texts.set(id, text);
      }
      if (text !== null) return text;
    }
    const bytes = this.tokenizer.tokenBytes(id);
    this.decoder ??= new TextDecoder('utf-8', { ignoreBOM: true });
    const text = this.decoder.decode(bytes, { stream: true });
    if (bytes.length > 0) this.clean = endsWhole(bytes);
    return text;
  }

  /** Ends the stream: an unfinished character left over becomes U+FFFD, as decode() would render it. */
  flush(): string {
    this.clean = true;
    return this.decoder?.decode() ?? '';
  }
}

/**
 * Whether a streaming UTF-8 decoder is left holding nothing after these bytes, whatever it held before: they end in
 * an ASCII byte, or their last lead byte has all the bytes its sequence needs after it (a valid character, or an
 * invalid one already turned into U+FFFD). False when it cannot tell from these bytes alone (then the decoder decides).
 */
export function endsWhole(bytes: Uint8Array): boolean {
  const end = bytes.length;
  for (let i = end - 1; i >= 0 && i >= end - 4; i--) {
    const b = bytes[i];
    if (b < 0x80) return i === end - 1;
    if (b < 0xc0) continue; // a continuation byte: look further back for its lead
    const needed = b >= 0xf8 ? 1 : b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : 2;
    return end - i >= needed;
  }
  return false;
}
