// Turns Qwen3's hermes-style tool calls (`<tool_call>\n{"name": …, "arguments": {…}}\n</tool_call>`) in the content
// stream into OpenAI `tool_calls`, streaming or not, and never throws on what the model writes.
//
// Decisions:
// - Runs on content only, after edge/reasoning-parser.ts. A `<tool_call>` the model opens inside <think> (pitfall 11
//   of docs/chat-format.md#pitfalls) reaches this parser only if the reasoning parser ran with `toolCallEndsReasoning`
//   (it should whenever tools are offered and tool_choice is not "none"); otherwise it stays reasoning, not a call.
// - Each call is buffered until `</tool_call>` (or the end of output) and validated before anything is emitted, so
//   malformed JSON can still go out as plain content: then one header delta {index, id, type, function: {name}} and one
//   arguments delta. Calls are short; a wrong call streamed half-way could not be taken back.
// - A call is `{"name": non-empty string, "arguments": …}` (or "parameters"). Its arguments go out exactly as the model
//   wrote them, never re-serialised (big integers, `1.0`, `1e2`, `\u00e9` and spacing unchanged):
//   an object → its source text; absent or null → `{}`; a string holding a JSON object → that string's text (the
//   model wrote the object as a string). Anything else (a string holding other text, a number, an array) is not valid
//   arguments: the call still goes out, its arguments being the value's JSON text as written — for a string, the
//   JSON-encoded string, as vLLM's hermes parser gives — but it does not count as a valid call, and only valid calls
//   make finish_reason "tool_calls" (`validCallCount`).
// - An unterminated last call (output cut before `</tool_call>`) is accepted if its JSON is complete, as vLLM does.
// - Whitespace directly around an accepted call (the "\n" separators the template uses) is dropped; other text before,
//   between or after calls stays content.
// - tool_choice "none": no parsing, text stays content verbatim. "auto"/"required": any function name (required cannot
//   be enforced here: check `callCount` after finish). Named: only calls to that function; others stay content.

import { jsonMember, parseJsonSource } from './json-source.ts';

export type ToolChoice = 'none' | 'auto' | 'required' | { type: 'function'; function: { name: string } };

export type ToolCall = { id: string; type: 'function'; function: { name: string; arguments: string } };

/** One entry of `choices[].delta.tool_calls`; send each in its own chunk, in order. */
export type ToolCallDelta = {
  index: number;
  id?: string;
  type?: 'function';
  function: { name?: string; arguments?: string };
};

export type ToolCallChunk = { content: string; toolCalls: ToolCallDelta[] };

export type ToolCallParserOptions = {
  toolChoice?: ToolChoice;
  /** Id factory, injectable for tests. Default: `call_` + 24 random alphanumerics. */
  createId?: () => string;
};

const CALL_OPEN = '<tool_call>';
const CALL_CLOSE = '</tool_call>';
const ID_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

export function createToolCallId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(24));
  return `call_${Array.from(bytes, (b) => ID_ALPHABET[b % ID_ALPHABET.length]).join('')}`;
}

export class ToolCallParser {
  private readonly parsingEnabled: boolean;
  private readonly onlyName: string | undefined;
  private readonly createId: () => string;
  private pending = '';
  private insideCall = false;
  /** Whitespace at the end of the content so far: dropped if a call follows, emitted if text follows. */
  private heldWhitespace = '';
  /** Whitespace that preceded the call being buffered (emitted again if the call turns out not to be one). */
  private whitespaceBeforeCall = '';
  private lastWasCall = false;
  private calls = 0;
  private validCalls = 0;

  constructor(options: ToolCallParserOptions = {}) {
    const choice = options.toolChoice ?? 'auto';
    this.parsingEnabled = choice !== 'none';
    this.onlyName = typeof choice === 'object' ? choice.function.name : undefined;
    this.createId = options.createId ?? createToolCallId;
  }

  /** Tool calls emitted so far. */
  get callCount(): number {
    return this.calls;
  }

  /** Emitted calls whose arguments are a JSON object: what makes finish_reason "tool_calls". */
  get validCallCount(): number {
    return this.validCalls;
  }

  push(delta: string): ToolCallChunk {
    if (!this.parsingEnabled) return { content: delta, toolCalls: [] };
    const out: ToolCallChunk = { content: '', toolCalls: [] };
    this.pending += delta;
    this.drain(out, false);
    return out;
  }

  /** Resolves a call left open and releases held text; call once after the last delta. */
  finish(): ToolCallChunk {
    const out: ToolCallChunk = { content: '', toolCalls: [] };
    if (!this.parsingEnabled) return out;
    this.drain(out, true);
    if (this.insideCall) {
      this.resolveCall(out, this.pending, false);
      this.pending = '';
    }
    if (!this.lastWasCall) out.content += this.heldWhitespace;
    this.heldWhitespace = '';
    return out;
  }

  private drain(out: ToolCallChunk, atEnd: boolean): void {
    for (;;) {
      if (this.insideCall) {
        const close = this.pending.indexOf(CALL_CLOSE);
        if (close === -1) return; // keep buffering the call
        this.resolveCall(out, this.pending.slice(0, close), true);
        this.pending = this.pending.slice(close + CALL_CLOSE.length);
        continue;
      }
      const open = this.pending.indexOf(CALL_OPEN);
      if (open !== -1) {
        this.addText(out, this.pending.slice(0, open));
        this.whitespaceBeforeCall = this.heldWhitespace;
        this.heldWhitespace = '';
        this.pending = this.pending.slice(open + CALL_OPEN.length);
        this.insideCall = true;
        continue;
      }
      const held = atEnd ? 0 : longestPrefixSuffix(this.pending, CALL_OPEN);
      this.addText(out, this.pending.slice(0, this.pending.length - held));
      this.pending = this.pending.slice(this.pending.length - held);
      return;
    }
  }

  /** Content text outside calls, with whitespace next to calls held back or dropped. */
  private addText(out: ToolCallChunk, rawText: string): void {
    let text = rawText;
    if (this.lastWasCall) {
      text = text.trimStart();
      if (text.length === 0) return;
      this.heldWhitespace = '';
      this.lastWasCall = false;
    }
    const withHeld = this.heldWhitespace + text;
    const bodyLength = withHeld.trimEnd().length;
    out.content += withHeld.slice(0, bodyLength);
    this.heldWhitespace = withHeld.slice(bodyLength);
  }

  private resolveCall(out: ToolCallChunk, body: string, terminated: boolean): void {
    this.insideCall = false;
    const call = parseCallBody(body);
    if (call === undefined || (this.onlyName !== undefined && call.name !== this.onlyName)) {
      this.heldWhitespace = this.whitespaceBeforeCall;
      this.addText(out, CALL_OPEN + body + (terminated ? CALL_CLOSE : ''));
      return;
    }
    const index = this.calls++;
    if (call.validArguments) this.validCalls++;
    out.toolCalls.push({ index, id: this.createId(), type: 'function', function: { name: call.name, arguments: '' } });
    out.toolCalls.push({ index, function: { arguments: call.arguments } });
    this.whitespaceBeforeCall = '';
    this.heldWhitespace = '';
    this.lastWasCall = true;
  }
}

/** Non-streaming: the same parser fed once, with the deltas folded into whole calls. */
export function parseToolCalls(text: string, options: ToolCallParserOptions = {}): { content: string; toolCalls: ToolCall[] } {
  const parser = new ToolCallParser(options);
  const first = parser.push(text);
  const last = parser.finish();
  const toolCalls: ToolCall[] = [];
  for (const delta of [...first.toolCalls, ...last.toolCalls]) {
    if (delta.id !== undefined) {
      toolCalls[delta.index] = { id: delta.id, type: 'function', function: { name: delta.function.name ?? '', arguments: '' } };
    }
    toolCalls[delta.index].function.arguments += delta.function.arguments ?? '';
  }
  return { content: first.content + last.content, toolCalls };
}

/** `{"name": string, "arguments": …}` (or `parameters`) → name and arguments text as written (see the header for the
 * rule); undefined when the body is not such a JSON object. */
function parseCallBody(body: string): { name: string; arguments: string; validArguments: boolean } | undefined {
  const root = parseJsonSource(body);
  if (root?.kind !== 'object') return undefined;
  const name = jsonMember(root, 'name');
  if (name?.kind !== 'string' || name.value.length === 0) return undefined;
  const args = jsonMember(root, 'arguments') ?? jsonMember(root, 'parameters');
  if (args === undefined || (args.kind === 'literal' && args.value === null)) return { name: name.value, arguments: '{}', validArguments: true };
  if (args.kind === 'object') return { name: name.value, arguments: body.slice(args.start, args.end), validArguments: true };
  if (args.kind === 'string' && parseJsonSource(args.value)?.kind === 'object') return { name: name.value, arguments: args.value, validArguments: true };
  return { name: name.value, arguments: body.slice(args.start, args.end), validArguments: false };
}

function longestPrefixSuffix(text: string, tag: string): number {
  for (let length = Math.min(tag.length - 1, text.length); length > 0; length--) {
    if (text.endsWith(tag.slice(0, length))) return length;
  }
  return 0;
}
