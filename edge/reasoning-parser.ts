// Splits the model's detokenised output into reasoning (inside <think>…</think>) and content, delta by delta, and
// counts the generated tokens on each side, so that `reasoning_tokens` always agrees with the split.
// The pitfalls named below are those listed in docs/chat-format.md#pitfalls.
//
// Rules (one state machine; the one-shot result is the same class fed once, so streaming == non-streaming):
// - Thinking closed in the prompt (enable_thinking false): output starts as content.
// - Prompt ending in an open `<think>\n` (the Qwen3-2507 thinking models' template, Qwen3.5): output starts as reasoning.
// - Thinking on (Qwen3-8B's template does not open `<think>` in the prompt, so the model writes it): output starting
//   with `<think>` (leading whitespace allowed) is reasoning. Output that starts with anything else is held back until
//   the first tag decides it: a `</think>` means the model reasoned without opening the block (what the 2507 models
//   always do, and what vLLM's and SGLang's Qwen3 parsers assume), so everything before it is reasoning; a `<think>`,
//   a `<tool_call>` (when tools end reasoning) or the end of output means the model skipped thinking, so it is content.
//   Only this uncommon case costs streaming anything: its text arrives when the tag (or the end) does.
// - `</think>` ends reasoning. No `</think>` before the end = truncated thinking: everything stays reasoning and the
//   caller keeps its finish_reason ("length").
// - Newlines right after `<think>` and right before `</think>` are dropped from reasoning; newlines right after
//   `</think>` are dropped from content. So the soft-switch block `<think>\n\n</think>\n\n` yields no reasoning at all.
// - A `<think>` block opened later in content (pitfall 8) is routed to reasoning. A tag that marks no boundary where it
//   stands — `<think>` inside reasoning, `</think>` once reasoning has ended or when the prompt closed thinking — is
//   text and stays where it is, so text around it is never merged silently.
// - Pitfall 11 (`<tool_call>` inside <think>): with `toolCallEndsReasoning`, a `<tool_call>` met in reasoning ends
//   the reasoning and goes to content, where the tool-call parser will find it. Without it the call stays reasoning.
// - Tokens: push(text, n) says how many generated tokens produced the text; each token counts on the side its text
//   lands on (tags on the reasoning side, a `<tool_call>` on the content side), once its text has been placed.

export type ReasoningSplit = { reasoning: string; content: string };

export type ReasoningParserOptions = {
  /** The prompt already ends with `<think>\n\n</think>\n\n` (enable_thinking false): output begins as content. */
  promptClosedThinking: boolean;
  /** The prompt already ends with an open `<think>\n` (not Qwen3-8B's template; later Qwen templates do it). */
  promptOpenedThinking?: boolean;
  /** Treat `<think>…<tool_call>` as an implicit end of thinking. Set it when tools are offered and tool_choice != none. */
  toolCallEndsReasoning?: boolean;
};

export type ReasoningFinish = ReasoningSplit & {
  /** True when the output ended inside a think block (truncated thinking); callers must not invent content. */
  endedInReasoning: boolean;
};

const THINK_OPEN = '<think>';
const THINK_CLOSE = '</think>';
const TOOL_CALL_OPEN = '<tool_call>';
// the tags that can end each state (built once: the parser runs once per generated token)
const CONTENT_TAGS = [THINK_OPEN];
const UNDECIDED_TAGS = [THINK_CLOSE, THINK_OPEN];
const UNDECIDED_TAGS_WITH_TOOLS = [THINK_CLOSE, THINK_OPEN, TOOL_CALL_OPEN];
const REASONING_TAGS = [THINK_CLOSE];
const REASONING_TAGS_WITH_TOOLS = [THINK_CLOSE, TOOL_CALL_OPEN];

/** awaiting-think: nothing but whitespace yet; undecided: text without `<think>`, held until a tag or the end decides. */
type ParserState = 'awaiting-think' | 'undecided' | 'reasoning' | 'content';
type Side = 'reasoning' | 'content';

export class ReasoningParser {
  private state: ParserState = 'awaiting-think';
  private pending = '';
  /** Drop newlines at the start of the current section (after `<think>` or `</think>`). */
  private trimLeadingNewlines = false;
  /** Trailing newlines of reasoning, held until we know whether `</think>` follows them. */
  private heldReasoningNewlines = '';
  private reasoningEmitted = false;
  /** A later think block's reasoning is separated from the earlier one by a blank line. */
  private separateNextReasoning = false;
  private readonly toolCallEndsReasoning: boolean;
  /** Characters taken off the front of `pending` since the start (positions of token marks are in these units). */
  private placedChars = 0;
  /** Tokens whose text is not placed yet: `end` is where their text ends, `hasText` false for a token with none. */
  private readonly unplacedTokens: { end: number; count: number; hasText: boolean }[] = [];
  private readonly tokenCounts = { reasoning: 0, content: 0 };

  constructor(options: ReasoningParserOptions) {
    if (options.promptClosedThinking) this.state = 'content';
    else if (options.promptOpenedThinking) this.enter('reasoning');
    else this.state = 'awaiting-think';
    this.toolCallEndsReasoning = options.toolCallEndsReasoning ?? false;
  }

  get inReasoning(): boolean {
    return this.state === 'reasoning';
  }

  /** Generated tokens placed on the reasoning side so far (all of them once finish() has run). */
  get reasoningTokens(): number {
    return this.tokenCounts.reasoning;
  }

  /**
   * Feeds one text delta, produced by `tokens` generated tokens (0 when the caller does not count); returns what can be
   * emitted now. Text that may still be part of a tag, or whose side is undecided, is held back.
   */
  push(delta: string, tokens = 0): ReasoningSplit {
    const out: ReasoningSplit = { reasoning: '', content: '' };
    this.pushInto(out, delta, tokens);
    return out;
  }

  /** push(), appending what can be emitted now to `out` (one split for a run of tokens, rather than one per token). */
  pushInto(out: ReasoningSplit, delta: string, tokens = 0): void {
    this.pending += delta;
    if (tokens > 0) this.unplacedTokens.push({ end: this.placedChars + this.pending.length, count: tokens, hasText: delta.length > 0 });
    this.drain(out, false);
  }

  /** Flushes what was held back; call once after the last delta. */
  finish(): ReasoningFinish {
    const out: ReasoningSplit = { reasoning: '', content: '' };
    this.drain(out, true);
    this.heldReasoningNewlines = '';
    for (const token of this.unplacedTokens.splice(0)) this.tokenCounts[this.state === 'reasoning' ? 'reasoning' : 'content'] += token.count;
    return { ...out, endedInReasoning: this.state === 'reasoning' };
  }

  private drain(out: ReasoningSplit, atEnd: boolean): void {
    for (;;) {
      if (this.state === 'awaiting-think') {
        const afterWhitespace = this.pending.trimStart();
        if (afterWhitespace.startsWith(THINK_OPEN)) {
          this.take(this.pending.length - afterWhitespace.length + THINK_OPEN.length, 'reasoning');
          this.enter('reasoning');
          continue;
        }
        if (!atEnd && THINK_OPEN.startsWith(afterWhitespace)) return; // still could become `<think>`
        this.state = 'undecided';
      }

      const tags = this.tagsFor(this.state);
      const found = findFirstTag(this.pending, tags);
      if (this.state === 'undecided') {
        if (!found && !atEnd) return;
        // `</think>`: what came before was reasoning without its opening tag; anything else: the model skipped thinking
        this.state = found?.tag === THINK_CLOSE ? 'reasoning' : 'content';
        if (this.state === 'reasoning') this.trimLeadingNewlines = true;
        if (!found) continue;
      }
      if (found) {
        this.emit(out, this.take(found.index, this.side()));
        this.onTag(out, found.tag);
        continue;
      }
      const heldLength = atEnd ? 0 : longestTagPrefixSuffix(this.pending, tags);
      this.emit(out, this.take(this.pending.length - heldLength, this.side()));
      return;
    }
  }

  private tagsFor(state: ParserState): readonly string[] {
    if (state === 'content') return CONTENT_TAGS;
    if (state === 'undecided') return this.toolCallEndsReasoning ? UNDECIDED_TAGS_WITH_TOOLS : UNDECIDED_TAGS;
    return this.toolCallEndsReasoning ? REASONING_TAGS_WITH_TOOLS : REASONING_TAGS;
  }

  private onTag(out: ReasoningSplit, tag: string): void {
    if (tag === TOOL_CALL_OPEN) {
      // ends reasoning (or an undecided start) and goes to content for the tool-call parser
      this.take(TOOL_CALL_OPEN.length, 'content');
      this.heldReasoningNewlines = '';
      this.state = 'content';
      this.trimLeadingNewlines = false;
      out.content += TOOL_CALL_OPEN;
      return;
    }
    this.take(tag.length, 'reasoning');
    if (tag === THINK_CLOSE) {
      this.heldReasoningNewlines = '';
      this.enter('content');
      return;
    }
    // `<think>` in content: another reasoning block
    this.separateNextReasoning = this.reasoningEmitted;
    this.enter('reasoning');
  }

  private side(): Side {
    return this.state === 'reasoning' ? 'reasoning' : 'content';
  }

  /** Takes `length` characters off the front of pending and counts the tokens whose text is now placed on `side`. */
  private take(length: number, side: Side): string {
    const taken = this.pending.slice(0, length);
    this.pending = this.pending.slice(length);
    this.placedChars += length;
    let placed = 0;
    for (const token of this.unplacedTokens) {
      if (token.end > this.placedChars || (token.end === this.placedChars && !token.hasText && this.pending.length > 0)) break;
      this.tokenCounts[side] += token.count;
      placed++;
    }
    if (placed > 0) this.unplacedTokens.splice(0, placed);
    return taken;
  }

  private enter(state: ParserState): void {
    this.state = state;
    this.trimLeadingNewlines = true;
  }

  private emit(out: ReasoningSplit, rawText: string): void {
    let text = rawText;
    if (this.trimLeadingNewlines) {
      text = text.replace(/^\n+/, '');
      if (text.length === 0) return;
      this.trimLeadingNewlines = false;
    }
    if (this.state !== 'reasoning') {
      out.content += text;
      return;
    }
    text = this.heldReasoningNewlines + text;
    const bodyLength = text.endsWith('\n') ? text.replace(/\n+$/, '').length : text.length;
    this.heldReasoningNewlines = text.slice(bodyLength);
    if (bodyLength === 0) return;
    if (this.separateNextReasoning) out.reasoning += '\n\n';
    this.separateNextReasoning = false;
    this.reasoningEmitted = true;
    out.reasoning += text.slice(0, bodyLength);
  }
}

/** Non-streaming split: the same parser fed once. Empty strings mean "none" (map them to null/omit on the wire). */
export function splitReasoning(text: string, options: ReasoningParserOptions): ReasoningFinish {
  const parser = new ReasoningParser(options);
  const first = parser.push(text);
  const last = parser.finish();
  return {
    reasoning: first.reasoning + last.reasoning,
    content: first.content + last.content,
    endedInReasoning: last.endedInReasoning,
  };
}

/** Earliest occurrence of any tag in text. */
export function findFirstTag(text: string, tags: readonly string[]): { index: number; tag: string } | undefined {
  let best: { index: number; tag: string } | undefined;
  for (const tag of tags) {
    const index = text.indexOf(tag);
    if (index !== -1 && (best === undefined || index < best.index)) best = { index, tag };
  }
  return best;
}

/** Length of the longest suffix of text that is a proper prefix of some tag (text to hold back for the next delta). */
export function longestTagPrefixSuffix(text: string, tags: readonly string[]): number {
  let longest = 0;
  for (const tag of tags) {
    const maxLength = Math.min(tag.length - 1, text.length);
    // such a suffix starts with the tag's first character: none among the last maxLength, nothing to check (most tokens)
    if (text.lastIndexOf(tag[0]) < text.length - maxLength) continue;
    for (let length = maxLength; length > longest; length--) {
      if (text.endsWith(tag.slice(0, length))) {
        longest = length;
        break;
      }
    }
  }
  return longest;
}
