// Proves edge/reasoning-parser.ts against every Qwen3 reasoning pitfall of api-and-platform.md §6: each case is
// checked one-shot, then streamed with the text split at every single boundary, every pair of boundaries and one
// character at a time; every streamed result must equal the one-shot result.
import { describe, expect, it } from 'vitest';
import {
  ReasoningParser,
  splitReasoning,
  type ReasoningFinish,
  type ReasoningParserOptions,
} from '../../edge/reasoning-parser.ts';

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

type PitfallCase = { name: string; output: string; options: ReasoningParserOptions; expected: ReasoningFinish };

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
    name: 'stray </think> and lookalike text: tags dropped, near-misses kept',
    output: 'a </thinker> <thin b</think>\n\nc <',
    options: THINKING_OFF,
    expected: { reasoning: '', content: 'a </thinker> <thin bc <', endedInReasoning: false },
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

describe('ReasoningParser pitfalls (api-and-platform.md §6)', () => {
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
    expect(oneShot.content).not.toMatch(TAGS);
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
