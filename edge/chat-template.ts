// Renders an OpenAI-shaped chat request into the Qwen3 prompt text with the official chat template
// (edge/generated/qwen3-chat-template.ts), normalising messages and tools into the form the template expects.
import { Template } from '@huggingface/jinja';
import { QWEN3_CHAT_TEMPLATE } from './generated/qwen3-chat-template.ts';

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
  parsedTemplate ??= new Template(QWEN3_CHAT_TEMPLATE);
  const tools = (input.tools ?? []).map(toTemplateTool);
  return parsedTemplate.render({
    messages: input.messages.map(toTemplateMessage),
    tools: tools.length > 0 ? tools : undefined,
    add_generation_prompt: input.addGenerationPrompt ?? true,
    enable_thinking: input.enableThinking ?? true,
  });
}

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

function toTemplateMessage(message: ChatMessage): TemplateMessage {
  // The template knows system, user, assistant and tool; OpenAI's newer "developer" role is a system message.
  const role = message.role === 'developer' ? 'system' : message.role;
  const rendered: TemplateMessage = { role, content: contentToText(message.content) };
  if (role !== 'assistant') return rendered;

  const reasoning = message.reasoning_content ?? message.reasoning;
  if (reasoning != null) rendered.reasoning_content = reasoning;
  if (message.tool_calls && message.tool_calls.length > 0) {
    rendered.tool_calls = message.tool_calls.map((call) => ({
      type: 'function',
      function: { name: call.function.name, arguments: argumentsToObject(call.function.arguments) },
    }));
  }
  return rendered;
}

/**
 * The template prints string arguments verbatim but objects through `tojson`, which is how the model saw them in
 * training (`{"a": 1}` with Python's separators). A string that is not a JSON object is kept verbatim.
 */
function argumentsToObject(args: string | Record<string, unknown> | undefined): Record<string, unknown> | string {
  if (args === undefined || (typeof args === 'string' && args.trim() === '')) return {};
  if (typeof args !== 'string') return args;
  try {
    const parsed: unknown = JSON.parse(args);
    if (parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed)) return parsed as Record<string, unknown>;
  } catch {
    // not JSON: fall through and keep the client's text
  }
  return args;
}

/** Canonical key order and no null/undefined fields, so equal tools render to equal (cacheable) prompt prefixes. */
function toTemplateTool(tool: FunctionTool): { type: 'function'; function: Record<string, unknown> } {
  const { name, description, parameters } = tool.function;
  const fn: Record<string, unknown> = { name };
  if (description != null) fn.description = description;
  if (parameters != null) fn.parameters = parameters;
  return { type: 'function', function: fn };
}
