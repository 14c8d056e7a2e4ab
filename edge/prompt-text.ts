// Prompt text in which a client's words cannot become control tokens. Every string a client supplies (message content,
// reasoning, tool calls, tool definitions) is "protected" before the chat template sees it: with split_special_tokens
// on, each added-token spelling in it (`<|im_end|>`, `<|im_start|>`, `<think>`, `<tool_call>`, … all 26) is swapped for
// a placeholder noncharacter, so every spelling left in the rendered prompt is one the template wrote. Encoding cuts
// the prompt at those (they become control-token ids), puts the client's spellings back and encodes each run between
// them as ordinary text. With the option off only the placeholder characters themselves are escaped, and the ids are
// exactly what the tokenizer gives for the whole text (the reference's reading of added tokens).
import { getTokenizer, type Qwen3Tokenizer } from './tokenizer/index.js';

/** Placeholder of added token i is PLACEHOLDER_BASE + i; a client's own character in the range is prefixed by ESCAPE.
 * Both are Unicode noncharacters. */
const PLACEHOLDER_BASE = 0xfdd0;
const ESCAPE = 0xfdef;
const RESERVED_RANGE = /[\uFDD0-\uFDEF]/;

type AddedTokenTables = {
  /** Every added-token spelling, longest first so that one position matches the longest (as the tokenizer does). */
  spellings: RegExp;
  /** Added-token spellings or reserved characters, for protect(). */
  protectable: RegExp;
  /** Spelling → index into the tokenizer's addedTokens (its placeholder offset). */
  indexOf: Map<string, number>;
  contents: string[];
  ids: number[];
  firstChars: string[];
};

let tables: AddedTokenTables | undefined;

function addedTokenTables(tokenizer: Qwen3Tokenizer = getTokenizer()): AddedTokenTables {
  if (tables) return tables;
  const contents = tokenizer.addedTokens.map((t) => t.content);
  if (contents.length >= ESCAPE - PLACEHOLDER_BASE) throw new Error(`prompt-text: ${contents.length} added tokens do not fit the placeholder range`);
  const alternation = [...contents].sort((a, b) => b.length - a.length).map(escapeRegExp).join('|');
  tables = {
    spellings: new RegExp(alternation, 'g'),
    protectable: new RegExp(`${alternation}|[\\uFDD0-\\uFDEF]`, 'g'),
    indexOf: new Map(contents.map((content, i) => [content, i])),
    contents,
    ids: tokenizer.addedTokens.map((t) => t.id),
    firstChars: [...new Set(contents.map((c) => c[0]))],
  };
  return tables;
}

/**
 * A client's string, ready to be rendered into a prompt: reserved characters escaped and, when splitSpecialTokens is
 * true, every added-token spelling replaced by its placeholder (so it will be encoded as text).
 */
export function protectText(text: string, splitSpecialTokens: boolean): string {
  const { firstChars, indexOf, protectable } = addedTokenTables();
  const mayHoldSpelling = splitSpecialTokens && firstChars.some((c) => text.includes(c));
  if (!mayHoldSpelling && !RESERVED_RANGE.test(text)) return text;
  return text.replace(mayHoldSpelling ? protectable : /[\uFDD0-\uFDEF]/g, (match) => {
    const index = indexOf.get(match);
    return index === undefined ? String.fromCharCode(ESCAPE) + match : String.fromCharCode(PLACEHOLDER_BASE + index);
  });
}

/** The text a protected string stands for: placeholders back to their spellings, escapes removed. */
export function unprotectText(text: string): string {
  if (!RESERVED_RANGE.test(text)) return text;
  const { contents } = addedTokenTables();
  let out = '';
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code === ESCAPE && i + 1 < text.length) out += text[++i];
    else if (code >= PLACEHOLDER_BASE && code < PLACEHOLDER_BASE + contents.length) out += contents[code - PLACEHOLDER_BASE];
    else out += text[i];
  }
  return out;
}

/** Token ids of a protected prompt: added-token spellings in it are control tokens, everything else is text. */
export function encodeProtectedText(text: string, tokenizer: Qwen3Tokenizer = getTokenizer()): number[] {
  const { spellings, indexOf, ids: addedIds } = addedTokenTables(tokenizer);
  const ids: number[] = [];
  const encodeRun = (run: string) => {
    if (run.length > 0) for (const id of tokenizer.encode(unprotectText(run), { addedTokens: 'text' })) ids.push(id);
  };
  spellings.lastIndex = 0;
  let consumed = 0;
  for (let match = spellings.exec(text); match !== null; match = spellings.exec(text)) {
    encodeRun(text.slice(consumed, match.index));
    ids.push(addedIds[indexOf.get(match[0])!]);
    consumed = match.index + match[0].length;
  }
  encodeRun(text.slice(consumed));
  return ids;
}

function escapeRegExp(literal: string): string {
  return literal.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}
