// Proves edge/thinking-mode.ts: the precedence explicit > soft switch > auto classifier > deployment default, every
// client convention for the explicit switch and the budget, the header format, the sampling defaults, and the
// classifier's accuracy on a labelled prompt set (its speed is printed, not asserted).
import { describe, expect, it } from 'vitest';
import type { ChatMessage } from '../../edge/chat-template.ts';
import {
  applySamplingDefaults,
  classifyPrompt,
  decideThinkingMode,
  EFFORT_BUDGET_TOKENS,
  findSoftSwitch,
  formatThinkingHeader,
  parseThinkingDefault,
  thinkingControlsSchema,
  type ThinkingControls,
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

/** [prompt, should think] — math, code, logic and multi-step tasks think; chit-chat, lookups and short rewrites do not. */
const LABELLED_PROMPTS: [string, boolean][] = [
  ['What is 17 * 23 + 5?', true],
  ['Solve for x: 3x^2 - 12x + 9 = 0', true],
  ['Prove that the square root of 2 is irrational.', true],
  ['What is the probability of rolling two sixes with two dice?', true],
  ['Compute the derivative of sin(x) * e^x.', true],
  ['How many prime numbers are there below 100?', true],
  ['A train leaves at 3pm going 60 mph; another leaves at 4pm going 80 mph. When does the second catch up?', true],
  ['If I invest $1000 at 5% compounded yearly, how much will I have after 10 years?', true],
  ['Find the eigenvalues of the matrix [[2, 1], [1, 2]].', true],
  ['Calculate the area of a circle with radius 7 cm.', true],
  ['Is 391 divisible by 17?', true],
  ['What is the sum of the first 50 odd numbers?', true],
  ['Write a Python function that returns the n-th Fibonacci number.', true],
  ['Why does this code throw a NullPointerException?\n```java\nString s = null; s.length();\n```', true],
  ['Implement binary search in TypeScript.', true],
  ['Fix the bug: for (let i = 0; i <= arr.length; i++) { sum += arr[i]; }', true],
  ['Write a SQL query that returns the top 5 customers by total order value.', true],
  ['What is the time complexity of quicksort in the worst case and why?', true],
  ['Refactor this function to be async: function load() { return fs.readFileSync(p); }', true],
  ['Write a regex that matches IPv4 addresses.', true],
  ['My Rust program has a borrow checker error when I push to a vector while iterating. How do I fix it?', true],
  ['def f(x):\n    return x * 2\nWhat does f(f(3)) return?', true],
  ['Design an algorithm to detect a cycle in a linked list.', true],
  ['Three boxes are labelled wrongly: apples, oranges, mixed. Pick one fruit to relabel them all. How?', true],
  ['Solve this riddle: what has keys but can\'t open locks?', true],
  ['Knights always tell the truth and knaves always lie. A says "B is a knave". B says "we are both knights". Who is who?', true],
  ['Is this argument logically valid: all cats are mammals, some mammals fly, so some cats fly?', true],
  ['Plan a step-by-step migration of our monolith to microservices, with risks at each step.', true],
  ['Compare PostgreSQL and MongoDB for an analytics workload and explain the trade-offs.', true],
  ['Design the architecture for a URL shortener that handles 10k requests per second.', true],
  ['Analyze the pros and cons of remote work for a 20-person startup and recommend a strategy.', true],
  ['Explain how a CPU cache works and why false sharing hurts performance in multithreaded code.', true],
  ['Hi! Can you solve 3x + 2 = 11 for me?', true],
  ["Hey, what's 15% of 80?", true],
  ['Hi!', false],
  ['hello, how are you today?', false],
  ['Thanks, that was helpful.', false],
  ['Good morning!', false],
  ['lol that is funny', false],
  ['Tell me a joke.', false],
  ['What is your name?', false],
  ['What is the capital of France?', false],
  ['Who wrote Pride and Prejudice?', false],
  ['When did World War II end?', false],
  ['Where is Mount Kilimanjaro?', false],
  ['What does HTTP stand for?', false],
  ['Who is the CEO of Microsoft?', false],
  ['Name three fruits that are red.', false],
  ['What year did the Berlin Wall fall?', false],
  ['Rephrase this more politely: send me the report now.', false],
  ['Translate "good night" into Spanish.', false],
  ['Summarize this in one sentence: The meeting was moved to Friday because the client could not attend on Thursday.', false],
  ['Fix the grammar: me and him goes to the store yesterday.', false],
  ['Make it shorter: We would like to kindly remind you that the payment is due.', false],
  ['Rewrite this sentence in the passive voice: The cat chased the mouse.', false],
  ['Proofread: Their going to the park tomorow.', false],
  ['Paraphrase: the quick brown fox jumps over the lazy dog.', false],
  ['Write a haiku about autumn.', false],
  ['Suggest a name for my new puppy.', false],
  ['Give me a synonym for happy.', false],
  ['What is a good movie to watch tonight?', false],
  ['Write a short birthday message for my sister.', false],
  ['ok cool', false],
  ['Can you recommend a book about gardening?', false],
];

describe('auto classifier', () => {
  it('Should label at least 90% of the labelled prompts correctly', () => {
    const wrong = LABELLED_PROMPTS.filter(([prompt, expected]) => classifyPrompt(prompt).enabled !== expected);
    const accuracy = 1 - wrong.length / LABELLED_PROMPTS.length;
    console.log(`classifier accuracy ${(accuracy * 100).toFixed(1)}% on ${LABELLED_PROMPTS.length} prompts; misses:`, wrong.map(([p]) => p));
    expect(LABELLED_PROMPTS.length).toBeGreaterThanOrEqual(60);
    expect(accuracy).toBeGreaterThanOrEqual(0.9);
  });

  it('Should say which cue decided', () => {
    expect(classifyPrompt('Solve 2x + 3 = 7').reason).toMatch(/^classifier: math/);
    expect(classifyPrompt('hey there').reason).toMatch(/^classifier: chit-chat/);
  });

  it('Should report its speed (printed, not asserted)', () => {
    const longPrompt = `${'Please review the following text carefully. '.repeat(200)}Then compute 2+2.`;
    const prompts = [...LABELLED_PROMPTS.map(([p]) => p), longPrompt];
    const rounds = 200;
    const start = performance.now();
    for (let round = 0; round < rounds; round++) for (const prompt of prompts) classifyPrompt(prompt);
    const perPromptMs = (performance.now() - start) / (rounds * prompts.length);
    console.log(`classifyPrompt: ${(perPromptMs * 1000).toFixed(1)} µs per prompt (mean over ${rounds * prompts.length})`);
    expect(perPromptMs).toBeGreaterThan(0);
  });
});
