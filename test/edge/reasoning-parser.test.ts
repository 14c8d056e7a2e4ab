// Proves edge/reasoning-parser.ts against every Qwen3 reasoning pitfall of docs/chat-format.md#pitfalls: each case is
// checked one-shot, then streamed with the text split at every single boundary, every pair of boundaries and one
// character at a time; every streamed result must equal the one-shot result.
import { describe, expect, it } from 'vitest';
import {
  ReasoningParser,
  splitReasoning,
  type ReasoningFinish,
  type ReasoningParserOptions,
} from '../../edge/reasoning-parser.ts';
import { getTokenizer, StreamingDetokenizer } from '../../edge/tokenizer/index.js';

const THINKING_ON: ReasoningParserOptions = { promptClosedThinking: false };
const THINKING_OFF: ReasoningParserOptions = { promptClosedThinking: true };

function streamPieces(pieces: string[], options: ReasoningParserOptions): ReasoningFinish {
  const parser = new ReasoningParser(options);
  let reasoning = '';
  let content = '';
  for (const piece of pieces) {
    const out = parser.push(piece);
    reasoning += out.reasoning;
    content += out.content;
  }
  const last = parser.finish();
  return { reasoning: reasoning + last.reasoning, content: content + last.content, endedInReasoning: last.endedInReasoning };
}

/** All ways of cutting text at one or two boundaries, plus one character per delta. */
function* splittings(text: string): Generator<string[]> {
  for (let i = 0; i <= text.length; i++) {
    yield [text.slice(0, i), text.slice(i)];
    for (let j = i + 1; j < text.length; j++) yield [text.slice(0, i), text.slice(i, j), text.slice(j)];
  }
  yield [...text];
}

const TAGS = /<\/?think>/;

/** keepsTagText: a tag that marks no boundary where it stands is text and stays in the output. */
type PitfallCase = { name: string; output: string; options: ReasoningParserOptions; expected: ReasoningFinish; keepsTagText?: true };

const CASES: PitfallCase[] = [
  {
    name: 'thinking on: reasoning then answer, newlines around the tags trimmed',
    output: '<think>\nAdd 2 and 2.\n</think>\n\nThe answer is 4.',
    options: THINKING_ON,
    expected: { reasoning: 'Add 2 and 2.', content: 'The answer is 4.', endedInReasoning: false },
  },
  {
    name: 'pitfalls 1-4: enable_thinking false puts the whole answer in content, never in reasoning',
    output: 'Hello! How can I help you today?',
    options: THINKING_OFF,
    expected: { reasoning: '', content: 'Hello! How can I help you today?', endedInReasoning: false },
  },
  {
    name: 'pitfall 4: thinking on but the model skipped <think> entirely: content',
    output: 'Paris is the capital of France.',
    options: THINKING_ON,
    expected: { reasoning: '', content: 'Paris is the capital of France.', endedInReasoning: false },
  },
  {
    name: 'pitfall 5: prompt pre-opened <think>, output has only </think>',
    output: 'Check the units.\n</think>\n\n42 m/s',
    options: { promptClosedThinking: false, promptOpenedThinking: true },
    expected: { reasoning: 'Check the units.', content: '42 m/s', endedInReasoning: false },
  },
  {
    name: 'pitfalls 6 and 15: truncated thinking (no </think>) stays reasoning, content empty',
    output: '<think>\nLet me consider every case.\nFirst, n = 1',
    options: THINKING_ON,
    expected: { reasoning: 'Let me consider every case.\nFirst, n = 1', content: '', endedInReasoning: true },
  },
  {
    name: 'pitfall 7: soft /no_think empty block gives no reasoning and no tags in content',
    output: '<think>\n\n</think>\n\nWhy did the chicken cross the road?',
    options: THINKING_ON,
    expected: { reasoning: '', content: 'Why did the chicken cross the road?', endedInReasoning: false },
  },
  {
    name: 'pitfall 7: empty block emitted although the prompt already closed thinking',
    output: '<think>\n\n</think>\n\nSure.',
    options: THINKING_OFF,
    expected: { reasoning: '', content: 'Sure.', endedInReasoning: false },
  },
  {
    name: 'pitfall 8: a second think block never spills into content',
    output: '<think>\nfirst\n</think>\n\nPart one. <think>\nsecond thought\n</think>\n\nPart two.',
    options: THINKING_ON,
    expected: { reasoning: 'first\n\nsecond thought', content: 'Part one. Part two.', endedInReasoning: false },
  },
  {
    name: 'pitfall 9: thinking disabled, answer with a tool call stays content for the tool parser',
    output: '<tool_call>\n{"name": "get_time", "arguments": {}}\n</tool_call>',
    options: THINKING_OFF,
    expected: { reasoning: '', content: '<tool_call>\n{"name": "get_time", "arguments": {}}\n</tool_call>', endedInReasoning: false },
  },
  {
    name: 'pitfall 10: </think> followed directly by JSON ("<" + "/think>{" split)',
    output: '<think>\nCall the tool.\n</think>{"a": 1}',
    options: THINKING_ON,
    expected: { reasoning: 'Call the tool.', content: '{"a": 1}', endedInReasoning: false },
  },
  {
    name: 'pitfall 11: <tool_call> inside <think> ends reasoning when tools are on',
    output: '<think>\nI need the weather.\n<tool_call>\n{"name": "w", "arguments": {}}\n</tool_call>',
    options: { promptClosedThinking: false, toolCallEndsReasoning: true },
    expected: { reasoning: 'I need the weather.', content: '<tool_call>\n{"name": "w", "arguments": {}}\n</tool_call>', endedInReasoning: false },
  },
  {
    name: 'pitfall 11: without tools, <tool_call> inside <think> stays reasoning',
    output: '<think>\nmaybe <tool_call> later\n</think>\n\nNo.',
    options: THINKING_ON,
    expected: { reasoning: 'maybe <tool_call> later', content: 'No.', endedInReasoning: false },
  },
  {
    name: 'thinking off: a </think> marks no boundary and stays text, lookalikes too (never merged silently)',
    output: 'a </thinker> <thin b</think>\n\nc <',
    options: THINKING_OFF,
    expected: { reasoning: '', content: 'a </thinker> <thin b</think>\n\nc <', endedInReasoning: false },
    keepsTagText: true,
  },
  {
    name: 'thinking on, </think> without <think>: the text before it is reasoning (the issue\'s example)',
    output: 'This is a reasoning section</think>This is the rest',
    options: THINKING_ON,
    expected: { reasoning: 'This is a reasoning section', content: 'This is the rest', endedInReasoning: false },
  },
  {
    name: 'thinking on, </think> without <think>, newlines around it trimmed as for a full block',
    output: '\nThe user wants 2+2.\n\nIt is 4.\n</think>\n\n4',
    options: THINKING_ON,
    expected: { reasoning: 'The user wants 2+2.\n\nIt is 4.', content: '4', endedInReasoning: false },
  },
  {
    name: 'thinking on, text then a <think> block: the text before it is content',
    output: 'Sure. <think>\ncheck\n</think>\n\nDone.',
    options: THINKING_ON,
    expected: { reasoning: 'check', content: 'Sure. Done.', endedInReasoning: false },
  },
  {
    name: 'thinking on, text then a tool call (tools on): content, the call left for the tool parser',
    output: 'Checking.\n<tool_call>\n{"name": "t", "arguments": {}}\n</tool_call>',
    options: { promptClosedThinking: false, toolCallEndsReasoning: true },
    expected: { reasoning: '', content: 'Checking.\n<tool_call>\n{"name": "t", "arguments": {}}\n</tool_call>', endedInReasoning: false },
  },
  {
    name: 'a second </think> after reasoning ended stays text in content',
    output: '<think>\na\n</think>\n\nb</think>c',
    options: THINKING_ON,
    expected: { reasoning: 'a', content: 'b</think>c', endedInReasoning: false },
    keepsTagText: true,
  },
  {
    name: 'a nested <think> stays text in reasoning',
    output: '<think>\nx <think> y\n</think>\n\nz',
    options: THINKING_ON,
    expected: { reasoning: 'x <think> y', content: 'z', endedInReasoning: false },
  },
  {
    name: 'newlines inside reasoning and content are kept',
    output: '<think>\n\nstep 1\n\nstep 2\n\n</think>\n\nline 1\n\nline 2\n',
    options: THINKING_ON,
    expected: { reasoning: 'step 1\n\nstep 2', content: 'line 1\n\nline 2\n', endedInReasoning: false },
  },
  {
    name: 'leading whitespace before <think> is tolerated',
    output: '\n<think>\nhmm\n</think>\n\nok',
    options: THINKING_ON,
    expected: { reasoning: 'hmm', content: 'ok', endedInReasoning: false },
  },
  {
    name: 'output that is only a partial tag is content at the end',
    output: '<thi',
    options: THINKING_ON,
    expected: { reasoning: '', content: '<thi', endedInReasoning: false },
  },
];

describe('ReasoningParser pitfalls (docs/chat-format.md#pitfalls)', () => {
  it.each(CASES.map((c) => [c.name, c] as const))('Should handle %s, one-shot and split at every boundary', (_name, testCase) => {
    const oneShot = splitReasoning(testCase.output, testCase.options);
    expect(oneShot).toEqual(testCase.expected);
    let splits = 0;
    for (const pieces of splittings(testCase.output)) {
      const streamed = streamPieces(pieces, testCase.options);
      if (streamed.content !== oneShot.content || streamed.reasoning !== oneShot.reasoning) {
        expect({ pieces, streamed }).toEqual({ pieces, streamed: oneShot });
      }
      expect(streamed.endedInReasoning).toBe(oneShot.endedInReasoning);
      splits++;
    }
    expect(splits).toBeGreaterThan(testCase.output.length);
    if (!testCase.keepsTagText) expect(oneShot.content).not.toMatch(TAGS);
  });
});

describe('ReasoningParser streaming behaviour', () => {
  it('Should hold back a split </think> instead of leaking "<" into content or reasoning', () => {
    const parser = new ReasoningParser(THINKING_ON);
    expect(parser.push('<think>\nplan')).toEqual({ reasoning: 'plan', content: '' });
    expect(parser.push('\n<')).toEqual({ reasoning: '', content: '' });
    expect(parser.push('/think>{')).toEqual({ reasoning: '', content: '{' });
    expect(parser.finish()).toEqual({ reasoning: '', content: '', endedInReasoning: false });
  });

  it('Should emit reasoning as it arrives and report the state', () => {
    const parser = new ReasoningParser(THINKING_ON);
    parser.push('<think>');
    expect(parser.inReasoning).toBe(true);
    expect(parser.push('\nabc').reasoning).toBe('abc');
    expect(parser.push(' def').reasoning).toBe(' def');
    parser.push('</think>');
    expect(parser.inReasoning).toBe(false);
  });

  it('Should emit nothing when the deltas are only tags', () => {
    const parser = new ReasoningParser(THINKING_ON);
    for (const delta of ['<think>', '\n\n', '</think>', '\n\n']) expect(parser.push(delta)).toEqual({ reasoning: '', content: '' });
  });
});

describe('ReasoningParser token counts agree with the split', () => {
  const tokenizer = getTokenizer();
  /** Output given as [side, text] runs cut at added tokens (so the ids of the whole are the runs' ids concatenated). */
  const RUNS: { name: string; runs: [side: 'reasoning' | 'content', text: string][]; options: ReasoningParserOptions }[] = [
    { name: 'full block', runs: [['reasoning', '<think>\nAdd 2 and 2.\n</think>'], ['content', '\n\nThe answer is 4.']], options: THINKING_ON },
    { name: 'no <think>, then </think>', runs: [['reasoning', 'This is a reasoning section</think>'], ['content', 'This is the rest']], options: THINKING_ON },
    { name: 'skipped thinking', runs: [['content', 'Paris is the capital of France.']], options: THINKING_ON },
    { name: 'truncated thinking', runs: [['reasoning', '<think>\nFirst, n = 1 and é 漢字']], options: THINKING_ON },
    { name: 'content, then a think block', runs: [['content', 'Sure. '], ['reasoning', '<think>\nx\n</think>'], ['content', '\n\nDone.']], options: THINKING_ON },
    { name: 'thinking off with a stray </think>', runs: [['content', 'a</think>b']], options: THINKING_OFF },
    { name: 'tool call ends reasoning', runs: [['reasoning', '<think>\nNeed it.\n'], ['content', '<tool_call>\n{"name": "t"}\n</tool_call>']], options: { promptClosedThinking: false, toolCallEndsReasoning: true } },
  ];

  it.each(RUNS.map((c) => [c.name, c] as const))('Should count %s token by token like the runs it came from', (_name, testCase) => {
    const ids = testCase.runs.flatMap(([, text]) => tokenizer.encode(text));
    expect(ids).toEqual(tokenizer.encode(testCase.runs.map(([, text]) => text).join('')));
    const expected = testCase.runs.filter(([side]) => side === 'reasoning').reduce((n, [, text]) => n + tokenizer.encode(text).length, 0);
    const parser = new ReasoningParser(testCase.options);
    const detok = new StreamingDetokenizer(tokenizer, { skipSpecialTokens: true });
    let reasoning = '';
    for (const id of ids) reasoning += parser.push(detok.push(id), 1).reasoning;
    reasoning += parser.push(detok.flush()).reasoning + parser.finish().reasoning;
    expect(parser.reasoningTokens).toBe(expected);
    expect(reasoning.length > 0).toBe(expected > 0);
  });
});
