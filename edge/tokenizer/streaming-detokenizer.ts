/** Turns a stream of generated token ids into text deltas for SSE without ever splitting a UTF-8 character: bytes
 * of an unfinished character wait for the next token. Concatenated deltas plus flush() equal decode(all ids). */
import type { DecodeOptions, Qwen3Tokenizer } from './qwen3-tokenizer.js';

export class StreamingDetokenizer {
  private readonly decoder = new TextDecoder('utf-8', { ignoreBOM: true });
  private readonly skipSpecialTokens: boolean;

  constructor(private readonly tokenizer: Qwen3Tokenizer, options: DecodeOptions = {}) {
    this.skipSpecialTokens = options.skipSpecialTokens === true;
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
    return this.decoder.decode(this.tokenizer.tokenBytes(id), { stream: true });
  }

  /** Ends the stream: an unfinished character left over becomes U+FFFD, as decode() would render it. */
  flush(): string {
    return this.decoder.decode();
  }
}
