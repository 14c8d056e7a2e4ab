// Proves edge/thinking-mode.ts: the precedence explicit > soft switch > auto classifier > deployment default, every
// client convention for the explicit switch and the budget, the header format and the sampling defaults (the auto
// classifier itself: test/edge/thinking-classifier.test.ts).
import { describe, expect, it } from 'vitest';
import type { ChatMessage } from '../../edge/chat-template.ts';
import { thinkingControlsSchema, type ThinkingControls } from '../../edge/schemas.ts';
import {
  applySamplingDefaults,
  decideThinkingMode,
  EFFORT_BUDGET_TOKENS,
  findSoftSwitch,
  formatThinkingHeader,
  parseThinkingDefault,
  type ThinkingDefault,
} from '../../edge/thinking-mode.ts';

const user = (content: string): ChatMessage => ({ role: 'user', content });
const decide = (controls: ThinkingControls, messages: ChatMessage[] = [user('hi')], thinkingDefault: ThinkingDefault = 'auto') =>
  decideThinkingMode({ controls, messages, thinkingDefault });

describe('explicit controls', () => {
  it('Should honour chat_template_kwargs.enable_thinking both ways', () => {
    expect(decide({ chat_template_kwargs: { enable_thinking: false } })).toEqual({
      enabled: false,
      source: 'explicit',
      reason: 'chat_template_kwargs.enable_thinking=false',
      excludeReasoning: false,
    });
    expect(decide({ chat_template_kwargs: { enable_thinking: true } }).enabled).toBe(true);
  });

  it('Should map reasoning_effort none to off and the other levels to on with the budget table', () => {
    expect(decide({ reasoning_effort: 'none' }, [user('Prove Fermat')])).toMatchObject({ enabled: false, source: 'explicit' });
    for (const effort of ['minimal', 'low', 'medium', 'high'] as const) {
      const decision = decide({ reasoning_effort: effort });
      expect(decision).toMatchObject({ enabled: true, source: 'explicit', budget: EFFORT_BUDGET_TOKENS[effort] });
    }
    expect(EFFORT_BUDGET_TOKENS).toMatchObject({ minimal: 256, low: 1024, medium: 4096, high: 16384 });
  });

  it("Should read OpenRouter's reasoning object: enabled, effort, max_tokens and exclude", () => {
    expect(decide({ reasoning: { enabled: false } }, [user('Solve 3x+1=7')])).toMatchObject({ enabled: false, source: 'explicit' });
    expect(decide({ reasoning: { enabled: true } })).toMatchObject({ enabled: true, reason: 'reasoning.enabled=true' });
    expect(decide({ reasoning: { effort: 'low' } })).toMatchObject({ enabled: true, budget: 1024 });
    expect(decide({ reasoning: { max_tokens: 3000 } })).toMatchObject({ enabled: true, budget: 3000 });
    expect(decide({ reasoning: { max_tokens: 0 } })).toMatchObject({ enabled: false });
    // exclude alone does not choose the mode; it only hides the reasoning
    expect(decide({ reasoning: { exclude: true } }, [user('hi')])).toMatchObject({ source: 'auto', excludeReasoning: true });
  });

  it("Should read Ollama's think flag", () => {
    expect(decide({ think: false }, [user('Prove it /think')])).toMatchObject({ enabled: false, source: 'explicit', reason: 'think=false' });
    expect(decide({ think: true })).toMatchObject({ enabled: true, source: 'explicit' });
    expect(decide({ think: 'high' })).toMatchObject({ enabled: true, budget: 16384 });
  });

  it('Should take the budget from reasoning.max_tokens, then thinking_token_budget, then the effort level', () => {
    expect(decide({ reasoning_effort: 'high', thinking_token_budget: 2000 })).toMatchObject({ budget: 2000 });
    expect(decide({ reasoning: { max_tokens: 500 }, thinking_token_budget: 2000 })).toMatchObject({ budget: 500 });
    expect(decide({ thinking_token_budget: 2048 }, [user('/think')])).toMatchObject({ source: 'soft-switch', budget: 2048 });
    expect(decide({ thinking_token_budget: 0 })).toMatchObject({ enabled: false, source: 'explicit' });
    expect(decide({ reasoning_effort: 'max' }).budget).toBeUndefined();
  });

  it('Should let the vLLM kwarg win over other conventions and hard-disable soft switches', () => {
    const decision = decide({ chat_template_kwargs: { enable_thinking: false }, reasoning_effort: 'high' }, [user('Prove it /think')]);
    expect(decision).toMatchObject({ enabled: false, source: 'explicit' });
    expect(decision.budget).toBeUndefined();
  });

  it('Should report excludeReasoning for include_reasoning=false', () => {
    expect(decide({ include_reasoning: false }).excludeReasoning).toBe(true);
  });

  it('Should validate the controls with the exported zod schema', () => {
    expect(thinkingControlsSchema.safeParse({ reasoning_effort: 'medium', chat_template_kwargs: { enable_thinking: true, other: 1 } }).success).toBe(true);
    expect(thinkingControlsSchema.safeParse({ reasoning_effort: 'extreme' }).success).toBe(false);
    expect(thinkingControlsSchema.safeParse({ reasoning: { max_tokens: -1 } }).success).toBe(false);
  });
});

describe('soft switches', () => {
  it('Should follow the latest instruction across the conversation', () => {
    const messages: ChatMessage[] = [
      { role: 'system', content: 'Be helpful. /no_think' },
      user('Prove that there are infinitely many primes. /think'),
      { role: 'assistant', content: 'Proof…' },
      user('Now a joke please'),
    ];
    expect(decide({}, messages)).toMatchObject({ enabled: true, source: 'soft-switch', reason: '/think in the latest instruction' });
    expect(decide({}, [...messages, user('another /no_think')])).toMatchObject({ enabled: false, source: 'soft-switch' });
  });

  it('Should take the last switch within one message and read text parts', () => {
    expect(findSoftSwitch([user('/think no wait /no_think')])).toBe('/no_think');
    expect(findSoftSwitch([{ role: 'user', content: [{ type: 'text', text: 'Q' }, { type: 'text', text: '/think' }] }])).toBe('/think');
  });

  it('Should ignore lookalikes and switches in assistant or tool messages', () => {
    expect(findSoftSwitch([user('see src/think.ts and /thinking and a/no_think')])).toBeUndefined();
    expect(findSoftSwitch([{ role: 'assistant', content: '/think' }, { role: 'tool', content: '/no_think' }])).toBeUndefined();
  });
});

describe('default and header', () => {
  it('Should use THINKING_DEFAULT on/off without the classifier, and auto with it', () => {
    expect(decide({}, [user('Prove that sqrt(2) is irrational')], 'off')).toMatchObject({ enabled: false, source: 'default', reason: 'THINKING_DEFAULT=off' });
    expect(decide({}, [user('hello!')], 'on')).toMatchObject({ enabled: true, source: 'default' });
    expect(decide({}, [user('hello!')], 'auto')).toMatchObject({ enabled: false, source: 'auto' });
    expect(decide({}, [], 'auto')).toMatchObject({ enabled: true, source: 'default' });
    expect(parseThinkingDefault(' OFF ')).toBe('off');
    expect(parseThinkingDefault(undefined)).toBe('auto');
    expect(parseThinkingDefault('maybe')).toBe('auto');
  });

  it('Should format the header value', () => {
    expect(formatThinkingHeader(decide({}, [user('x /think')]))).toBe('on; source=soft-switch');
    expect(formatThinkingHeader(decide({ reasoning_effort: 'low' }))).toBe('on; source=explicit; budget=1024');
    expect(formatThinkingHeader(decide({}, [user('hey')]))).toBe('off; source=auto');
  });
});

describe('sampling defaults', () => {
  it('Should fill only missing fields with the per-mode values', () => {
    expect(applySamplingDefaults({}, true)).toEqual({ temperature: 0.6, top_p: 0.95, top_k: 20, min_p: 0, presence_penalty: 0 });
    expect(applySamplingDefaults({}, false, { presencePenalty: 1.5 })).toEqual({ temperature: 0.7, top_p: 0.8, top_k: 20, min_p: 0, presence_penalty: 1.5 });
    const sent = applySamplingDefaults({ temperature: 0, top_p: null, presence_penalty: 0.5, max_tokens: 10 }, true, { presencePenalty: 1.5 });
    expect(sent).toEqual({ temperature: 0, top_p: 0.95, top_k: 20, min_p: 0, presence_penalty: 0.5, max_tokens: 10 });
  });
});
