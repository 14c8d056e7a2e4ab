// Splits the model's detokenised output into reasoning (inside <think>…</think>) and content, delta by delta, so
// that no think tag ever reaches `content` however the tags are split across deltas (api-and-platform.md §6).
//
// Rules (one state machine; the one-shot result is the same class fed once, so streaming == non-streaming):
// - Thinking closed in the prompt (enable_thinking false): output starts as content.
// - Prompt ending in an open `<think>\n` (templates that pre-open thinking, pitfall 5): output starts as reasoning.
// - Thinking on: output starting with `<think>` (leading whitespace allowed) is reasoning; output that does not start
//   with it (the model skipped thinking) is content.
// - `</think>` ends reasoning. No `</think>` before the end = truncated thinking: everything stays reasoning and the
//   caller keeps its finish_reason ("length").
// - Newlines right after `<think>` and right before `</think>` are dropped from reasoning; newlines right after
//   `</think>` are dropped from content. So the soft-switch block `<think>\n\n</think>\n\n` yields no reasoning at all.
// - Tags are never emitted: a stray `</think>` in content and a nested `<think>` in reasoning are dropped, and a
//   `<think>` block opened later in content (pitfall 8) is routed to reasoning, in every mode.
// - Pitfall 11 (`<tool_call>` inside <think>): with `toolCallEndsReasoning`, a `<tool_call>` met in reasoning ends
//   the reasoning and goes to content, where the tool-call parser will find it. Without it the call stays reasoning.

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

type ParserState = 'awaiting-think' | 'reasoning' | 'content';

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

  constructor(options: ReasoningParserOptions) {
    if (options.promptClosedThinking) this.state = 'content';
    else if (options.promptOpenedThinking) this.enter('reasoning');
    else this.state = 'awaiting-think';
    this.toolCallEndsReasoning = options.toolCallEndsReasoning ?? false;
  }

  get inReasoning(): boolean {
    return this.state === 'reasoning';
  }

  /** Feeds one text delta; returns what can be emitted now. Text that may still be part of a tag is held back. */
  push(delta: string): ReasoningSplit {
    const out: ReasoningSplit = { reasoning: '', content: '' };
    this.pending += delta;
    this.drain(out, false);
    return out;
  }

  /** Flushes what was held back; call once after the last delta. */
  finish(): ReasoningFinish {
    const out: ReasoningSplit = { reasoning: '', content: '' };
    this.drain(out, true);
    this.heldReasoningNewlines = '';
    return { ...out, endedInReasoning: this.state === 'reasoning' };
  }

  private drain(out: ReasoningSplit, atEnd: boolean): void {
    for (;;) {
      if (this.state === 'awaiting-think') {
        const afterWhitespace = this.pending.trimStart();
        if (afterWhitespace.startsWith(THINK_OPEN)) {
          this.pending = afterWhitespace.slice(THINK_OPEN.length);
          this.enter('reasoning');
          continue;
        }
        if (!atEnd && THINK_OPEN.startsWith(afterWhitespace)) return; // still could become `<think>`
        this.state = 'content';
      }

      const tags = this.tagsFor(this.state);
      const found = findFirstTag(this.pending, tags);
      if (found) {
        this.emit(out, this.pending.slice(0, found.index));
        this.pending = this.pending.slice(found.index + found.tag.length);
        this.onTag(out, found.tag);
        continue;
      }
      const heldLength = atEnd ? 0 : longestTagPrefixSuffix(this.pending, tags);
      this.emit(out, this.pending.slice(0, this.pending.length - heldLength));
      this.pending = this.pending.slice(this.pending.length - heldLength);
      return;
    }
  }

  private tagsFor(state: ParserState): readonly string[] {
    if (state === 'content') return [THINK_OPEN, THINK_CLOSE];
    return this.toolCallEndsReasoning ? [THINK_CLOSE, THINK_OPEN, TOOL_CALL_OPEN] : [THINK_CLOSE, THINK_OPEN];
  }

  private onTag(out: ReasoningSplit, tag: string): void {
    if (this.state === 'reasoning') {
      if (tag === THINK_OPEN) return; // nested open tag: drop it, stay in reasoning
      this.heldReasoningNewlines = '';
      if (tag === TOOL_CALL_OPEN) {
        this.state = 'content';
        this.trimLeadingNewlines = false;
        out.content += TOOL_CALL_OPEN;
        return;
      }
      this.enter('content');
      return;
    }
    // content: `<think>` opens another reasoning block; a stray `</think>` is a section boundary and is dropped
    if (tag === THINK_OPEN) this.separateNextReasoning = this.reasoningEmitted;
    this.enter(tag === THINK_OPEN ? 'reasoning' : 'content');
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
    if (this.state === 'content') {
      out.content += text;
      return;
    }
    text = this.heldReasoningNewlines + text;
    const bodyLength = text.replace(/\n+$/, '').length;
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
    for (let length = maxLength; length > longest; length--) {
      if (text.endsWith(tag.slice(0, length))) {
        longest = length;
        break;
      }
    }
  }
  return longest;
}
