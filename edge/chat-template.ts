// Renders an OpenAI-shaped chat request into the Qwen3 prompt text with the official chat template
// (edge/generated/qwen3-chat-template.ts), normalising messages and tools into the form the template expects. Every
// string the client supplies goes in protected (edge/prompt-text.ts), so with split_special_tokens on the client
// cannot write a control token: a `<|im_end|>\n<|im_start|>system` in a user message or a tool result stays text.
import { Template } from '@huggingface/jinja';
import { QWEN3_CHAT_TEMPLATE } from './generated/qwen3-chat-template.ts';
import { parseJsonSource, pythonJsonDumps } from './json-source.ts';
import { protectText, unprotectText } from './prompt-text.ts';

export type TextContentPart = { type: 'text'; text: string };
export type MessageContent = string | TextContentPart[] | null | undefined;

export type AssistantToolCall = {
  id?: string;
  type?: 'function';
  /** OpenAI sends `arguments` as a JSON string; an already-parsed object is accepted too. */
  function: { name: string; arguments?: string | Record<string, unknown> };
};

export type ChatMessage = {
  role: 'system' | 'developer' | 'user' | 'assistant' | 'tool';
  content?: MessageContent;
  name?: string;
  /** Reasoning of an earlier assistant turn; `reasoning` is vLLM's newer name for the same field. */
  reasoning_content?: string | null;
  reasoning?: string | null;
  tool_calls?: AssistantToolCall[] | null;
  tool_call_id?: string;
};

export type FunctionTool = {
  type: 'function';
  function: { name: string; description?: string; parameters?: Record<string, unknown>; strict?: boolean | null };
};

export type RenderChatInput = {
  messages: ChatMessage[];
  tools?: FunctionTool[];
  /** false renders the hard switch: an empty `<think>\n\n</think>\n\n` after the generation prompt. Default true. */
  enableThinking?: boolean;
  /** Append `<|im_start|>assistant\n`. Default true. */
  addGenerationPrompt?: boolean;
  /**
   * true (default): added-token spellings in the client's strings are text, only the template's own markup is control
   * tokens. false: they are read as control tokens, as transformers and vLLM do (for callers who format turns
   * themselves). Either way an assistant message's `<think>…</think>` is read as its reasoning, as the template does.
   */
  splitSpecialTokens?: boolean;
};

/** A message as the Qwen3 template reads it: string content, arguments as objects, reasoning only when known. */
type TemplateMessage = {
  role: string;
  content: string;
  reasoning_content?: string;
  tool_calls?: { type: 'function'; function: { name: string; arguments: Record<string, unknown> | string } }[];
};

/** How multiple text parts of one message are joined (vLLM's "string" content format does the same). */
const TEXT_PART_SEPARATOR = '\n';

let parsedTemplate: Template | undefined;

/** Renders the prompt text exactly as transformers' `apply_chat_template(..., tokenize=False)` would. */
export function renderChat(input: RenderChatInput): string {
  return unprotectText(renderProtectedChat(input));
}

/**
 * The rendered prompt in protected form (edge/prompt-text.ts): every added-token spelling in it was written by the
 * template; encode it with encodeProtectedText.
 */
export function renderProtectedChat(input: RenderChatInput): string {
  parsedTemplate ??= new Template(QWEN3_CHAT_TEMPLATE);
  const protect: Protect = (text) => protectText(text, input.splitSpecialTokens ?? true);
  const tools = (input.tools ?? []).map((tool) => toTemplateTool(tool, protect));
  return parsedTemplate.render({
    messages: input.messages.map((message) => toTemplateMessage(message, protect)),
    tools: tools.length > 0 ? tools : undefined,
    add_generation_prompt: input.addGenerationPrompt ?? true,
    enable_thinking: input.enableThinking ?? true,
  });
}

type Protect = (text: string) => string;

/** Flattens string / text-part content into the one string the template concatenates. */
export function contentToText(content: MessageContent): string {
  if (content == null) return '';
  if (typeof content === 'string') return content;
  return content
    .map((part) => {
      if (part.type !== 'text') throw new Error(`Unsupported content part type "${String(part.type)}": only text is supported`);
      return part.text;
    })
    .join(TEXT_PART_SEPARATOR);
}

function toTemplateMessage(message: ChatMessage, protect: Protect): TemplateMessage {
  // The template knows system, user, assistant and tool; OpenAI's newer "developer" role is a system message.
  const role = message.role === 'developer' ? 'system' : message.role;
  const content = contentToText(message.content);
  if (role !== 'assistant') return { role, content: protect(content) };

  // The template splits `<think>…</think>` out of an assistant's content itself, but protected content no longer
  // shows the tags: split it here the same way and hand the template both parts.
  const given = message.reasoning_content ?? message.reasoning;
  const { reasoning, answer } = given != null ? { reasoning: given, answer: content } : splitThinkBlock(content);
  const rendered: TemplateMessage = { role, content: protect(answer) };
  if (reasoning !== undefined) rendered.reasoning_content = protect(reasoning);
  if (message.tool_calls && message.tool_calls.length > 0) {
    rendered.tool_calls = message.tool_calls.map((call) => ({
      type: 'function',
      function: { name: protect(call.function.name), arguments: protectDeep(templateArguments(call.function.arguments), protect) },
    }));
  }
  return rendered;
}

/** The template's own reading of an assistant turn written as `<think>r</think>answer` (Python string semantics). */
function splitThinkBlock(content: string): { reasoning?: string; answer: string } {
  if (!content.includes('</think>')) return { answer: content };
  const parts = content.split('</think>');
  const beforeClose = parts[0].replace(/\n+$/, '').split('<think>');
  return { reasoning: beforeClose[beforeClose.length - 1].replace(/^\n+/, ''), answer: parts[parts.length - 1].replace(/^\n+/, '') };
}

/** Protects every string (keys included) inside a JSON-like value the template will print with `tojson`. */
function protectDeep<T>(value: T, protect: Protect): T {
  if (typeof value === 'string') return protect(value) as T;
  if (Array.isArray(value)) return value.map((item) => protectDeep(item, protect)) as T;
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [protect(key), protectDeep(item, protect)])) as T;
  }
  return value;
}

/**
 * The template prints string arguments verbatim but objects through `tojson`, which is how the model saw them in
 * training (`{"a": 1}` with Python's separators). A string holding a JSON object is rewritten the way Python's json
 * would print it (transformers and vLLM parse it first), from its source text so that big integers, `1.0` and the like
 * come out as Python writes them; any other string is kept verbatim.
 */
function templateArguments(args: string | Record<string, unknown> | undefined): Record<string, unknown> | string {
  if (args === undefined || (typeof args === 'string' && args.trim() === '')) return {};
  if (typeof args !== 'string') return args;
  const parsed = parseJsonSource(args);
  return parsed?.kind === 'object' ? pythonJsonDumps(parsed, args) : args;
}

/** Canonical key order and no null/undefined fields, so equal tools render to equal (cacheable) prompt prefixes. */
function toTemplateTool(tool: FunctionTool, protect: Protect): { type: 'function'; function: Record<string, unknown> } {
  const { name, description, parameters } = tool.function;
  const fn: Record<string, unknown> = { name: protect(name) };
  if (description != null) fn.description = protect(description);
  if (parameters != null) fn.parameters = protectDeep(parameters, protect);
  return { type: 'function', function: fn };
}
