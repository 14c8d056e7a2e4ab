// Renders an OpenAI-shaped chat request into the Qwen3 prompt text, normalising messages and tools into the form the
// official chat template (edge/generated/qwen3-chat-template.ts) expects and then writing what that template writes.
// The template is not interpreted at run time (parsing it cost a cold isolate ~50 ms of CPU): renderQwen3Template is
// that Jinja template written out as code, statement for statement, and the tests prove it equal to the Jinja
// renderings (Python jinja2 and @huggingface/jinja) on a wide set of conversations. Every string the client supplies
// goes in protected (edge/prompt-text.ts), so with split_special_tokens on the client cannot write a control token:
// a `<|im_end|>\n<|im_start|>system` in a user message or a tool result stays text.
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
export type TemplateMessage = {
  role: string;
  content: string;
  reasoning_content?: string;
  tool_calls?: { type: 'function'; function: { name: string; arguments: Record<string, unknown> | string } }[];
};

/** How multiple text parts of one message are joined (vLLM's "string" content format does the same). */
const TEXT_PART_SEPARATOR = '\n';

/** A tool as the template reads it (printed with `tojson`). */
export type TemplateTool = { type: 'function'; function: Record<string, unknown> };

/** The template's variables, as transformers' apply_chat_template passes them. */
export type TemplateInput = {
  messages: TemplateMessage[];
  tools?: TemplateTool[];
  add_generation_prompt: boolean;
  enable_thinking: boolean;
};

/** Renders the prompt text exactly as transformers' `apply_chat_template(..., tokenize=False)` would. */
export function renderChat(input: RenderChatInput): string {
  return unprotectText(renderProtectedChat(input));
}

/**
 * The rendered prompt in protected form (edge/prompt-text.ts): every added-token spelling in it was written by the
 * template; encode it with encodeProtectedText.
 */
export function renderProtectedChat(input: RenderChatInput): string {
  return renderQwen3Template(templateInput(input));
}

/** The template's variables for a request, every client string protected. */
export function templateInput(input: RenderChatInput): TemplateInput {
  const protect: Protect = (text) => protectText(text, input.splitSpecialTokens ?? true);
  const tools = (input.tools ?? []).map((tool) => toTemplateTool(tool, protect));
  return {
    messages: input.messages.map((message) => toTemplateMessage(message, protect)),
    tools: tools.length > 0 ? tools : undefined,
    add_generation_prompt: input.addGenerationPrompt ?? true,
    enable_thinking: input.enableThinking ?? true,
  };
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
function toTemplateTool(tool: FunctionTool, protect: Protect): TemplateTool {
  const { name, description, parameters } = tool.function;
  const fn: Record<string, unknown> = { name: protect(name) };
  if (description != null) fn.description = protect(description);
  if (parameters != null) fn.parameters = protectDeep(parameters, protect);
  return { type: 'function', function: fn };
}

const TOOLS_INTRO =
  '# Tools\n\nYou may call one or more functions to assist with the user query.\n\n' +
  'You are provided with function signatures within <tools></tools> XML tags:\n<tools>';
const TOOLS_OUTRO =
  '\n</tools>\n\nFor each function call, return a json object with function name and arguments within ' +
  '<tool_call></tool_call> XML tags:\n<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call><|im_end|>\n';

/**
 * Qwen3's chat template (tokenizer_config.json's `chat_template`, the Jinja source in
 * edge/generated/qwen3-chat-template.ts) as code: each block below is the template's block of the same shape, in its
 * order, with Python's string semantics (`strip('\n')` removes newlines only) and the `tojson` of transformers' Jinja
 * (`, ` and `: ` separators, non-ASCII kept). A change of the template in the pinned package fails the tests until
 * this function follows it.
 */
export function renderQwen3Template({ messages, tools, add_generation_prompt, enable_thinking }: TemplateInput): string {
  let out = '';
  const first = messages[0] as TemplateMessage | undefined;
  if (tools && tools.length > 0) {
    out += '<|im_start|>system\n';
    if (first?.role === 'system') out += first.content + '\n\n';
    out += TOOLS_INTRO;
    for (const tool of tools) out += '\n' + toJson(tool);
    out += TOOLS_OUTRO;
  } else if (first?.role === 'system') {
    out += '<|im_start|>system\n' + first.content + '<|im_end|>\n';
  }

  // The latest user turn that is not a tool result: assistant turns after it keep their reasoning.
  let lastQueryIndex = messages.length - 1;
  for (let index = messages.length - 1; index >= 0; index--) {
    const { role, content } = messages[index];
    if (role === 'user' && !(content.startsWith('<tool_response>') && content.endsWith('</tool_response>'))) {
      lastQueryIndex = index;
      break;
    }
  }

  for (let index = 0; index < messages.length; index++) {
    const message = messages[index];
    const last = index === messages.length - 1;
    if (message.role === 'user' || (message.role === 'system' && index !== 0)) {
      out += '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>\n';
    } else if (message.role === 'assistant') {
      let content = message.content;
      let reasoning = '';
      if (message.reasoning_content != null) reasoning = message.reasoning_content;
      else if (content.includes('</think>')) {
        const parts = content.split('</think>');
        content = stripLeadingNewlines(parts[parts.length - 1]);
        const opened = stripTrailingNewlines(parts[0]).split('<think>');
        reasoning = stripLeadingNewlines(opened[opened.length - 1]);
      }
      if (index > lastQueryIndex && (last || reasoning)) {
        out += '<|im_start|>' + message.role + '\n<think>\n' + stripTrailingNewlines(stripLeadingNewlines(reasoning)) + '\n</think>\n\n' + stripLeadingNewlines(content);
      } else {
        out += '<|im_start|>' + message.role + '\n' + content;
      }
      for (const [i, toolCall] of (message.tool_calls ?? []).entries()) {
        if (i > 0 || content) out += '\n';
        const call = (toolCall.function ?? toolCall) as { name: string; arguments: Record<string, unknown> | string };
        out += '<tool_call>\n{"name": "' + call.name + '", "arguments": ';
        out += typeof call.arguments === 'string' ? call.arguments : toJson(call.arguments);
        out += '}\n</tool_call>';
      }
      out += '<|im_end|>\n';
    } else if (message.role === 'tool') {
      if (index === 0 || messages[index - 1].role !== 'tool') out += '<|im_start|>user';
      out += '\n<tool_response>\n' + message.content + '\n</tool_response>';
      if (last || messages[index + 1].role !== 'tool') out += '<|im_end|>\n';
    }
  }

  if (add_generation_prompt) {
    out += '<|im_start|>assistant\n';
    if (enable_thinking === false) out += '<think>\n\n</think>\n\n';
  }
  return out;
}

function stripLeadingNewlines(text: string): string {
  let start = 0;
  while (start < text.length && text.charCodeAt(start) === 10) start++;
  return start === 0 ? text : text.slice(start);
}

function stripTrailingNewlines(text: string): string {
  let end = text.length;
  while (end > 0 && text.charCodeAt(end - 1) === 10) end--;
  return end === text.length ? text : text.slice(0, end);
}

/** The template's `tojson`: JSON with Python's default separators (`, ` and `: `), non-ASCII as is, keys in the
 * order the object holds them; undefined prints as null. */
function toJson(value: unknown): string {
  if (value === null || value === undefined) return 'null';
  if (typeof value !== 'object') return JSON.stringify(value);
  if (Array.isArray(value)) return '[' + value.map(toJson).join(', ') + ']';
  return '{' + Object.entries(value).map(([key, item]) => JSON.stringify(key) + ': ' + toJson(item)).join(', ') + '}';
}
