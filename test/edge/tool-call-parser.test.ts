// Proves edge/tool-call-parser.ts: hermes tool calls become OpenAI tool_calls one-shot and streamed (split at every
// boundary, equal results), text around calls stays content, malformed calls stay content, tool_choice is honoured,
// and the reasoning parser → tool-call parser pipeline survives pitfalls 9–11 of docs/chat-format.md#pitfalls.
import { describe, expect, it } from 'vitest';
import { ReasoningParser, type ReasoningParserOptions } from '../../edge/reasoning-parser.ts';
import {
  createToolCallId,
  parseToolCalls,
  ToolCallParser,
  type ToolCall,
  type ToolCallDelta,
  type ToolCallParserOptions,
} from '../../edge/tool-call-parser.ts';

function counterIds(): () => string {
  let next = 0;
  return () => `call_${next++}`;
}

/** Folds streamed deltas into whole calls, checking the OpenAI order: header (id, type, name) first, then arguments. */
function foldDeltas(deltas: ToolCallDelta[]): ToolCall[] {
  const calls: ToolCall[] = [];
  for (const delta of deltas) {
    if (delta.id !== undefined) {
      expect(delta.index).toBe(calls.length);
      expect(delta.type).toBe('function');
      calls.push({ id: delta.id, type: 'function', function: { name: delta.function.name ?? '', arguments: '' } });
    }
    calls[delta.index].function.arguments += delta.function.arguments ?? '';
  }
  return calls;
}

function streamPieces(pieces: string[], options: ToolCallParserOptions): { content: string; toolCalls: ToolCall[] } {
  const parser = new ToolCallParser({ ...options, createId: counterIds() });
  let content = '';
  const deltas: ToolCallDelta[] = [];
  for (const chunk of [...pieces.map((p) => parser.push(p)), parser.finish()]) {
    content += chunk.content;
    deltas.push(...chunk.toolCalls);
  }
  return { content, toolCalls: foldDeltas(deltas) };
}

function* splittings(text: string): Generator<string[]> {
  for (let i = 0; i <= text.length; i++) {
    yield [text.slice(0, i), text.slice(i)];
    for (let j = i + 1; j < text.length; j += 3) yield [text.slice(0, i), text.slice(i, j), text.slice(j)];
  }
  yield [...text];
}

const call = (id: string, name: string, args: string): ToolCall => ({ id, type: 'function', function: { name, arguments: args } });
const WEATHER = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Zürich", "days": [1, 2]}}\n</tool_call>';
const TIME = '<tool_call>\n{"name": "get_time", "arguments": {}}\n</tool_call>';
const WEATHER_CALL = call('call_0', 'get_weather', '{"city": "Zürich", "days": [1, 2]}');
/** Arguments JSON a parse-and-serialise round trip would change: digits beyond 2^53, 1.0, exponents, escapes, spacing. */
const EXACT_ARGS = '{"id": 12345678901234567890, "ratio": 1.0, "big": 1e2, "tiny": -2.50E-7, "text": "caf\\u00e9 \\"q\\" \\/", "list": [ 1 ,2 ], "empty": {}}';

type ParserCase = { name: string; text: string; options?: ToolCallParserOptions; expected: { content: string; toolCalls: ToolCall[] } };

const CASES: ParserCase[] = [
  { name: 'a single call', text: WEATHER, expected: { content: '', toolCalls: [WEATHER_CALL] } },
  { name: 'text before a call', text: `Let me check.\n${WEATHER}`, expected: { content: 'Let me check.', toolCalls: [WEATHER_CALL] } },
  {
    name: 'two calls separated by a newline',
    text: `${WEATHER}\n${TIME}`,
    expected: { content: '', toolCalls: [WEATHER_CALL, call('call_1', 'get_time', '{}')] },
  },
  {
    name: 'text between and after calls',
    text: `A\n${TIME}\nthen B\n${TIME}\nC`,
    expected: { content: 'Athen BC', toolCalls: [call('call_0', 'get_time', '{}'), call('call_1', 'get_time', '{}')] },
  },
  {
    name: 'malformed JSON stays content',
    text: 'x\n<tool_call>\n{"name": "get_time", "arguments": {</tool_call>\ny',
    expected: { content: 'x\n<tool_call>\n{"name": "get_time", "arguments": {</tool_call>\ny', toolCalls: [] },
  },
  {
    name: 'a call without a name stays content',
    text: '<tool_call>\n{"arguments": {}}\n</tool_call>',
    expected: { content: '<tool_call>\n{"arguments": {}}\n</tool_call>', toolCalls: [] },
  },
  {
    name: 'a good call after a malformed one',
    text: `<tool_call>oops</tool_call>\n${TIME}`,
    expected: { content: '<tool_call>oops</tool_call>', toolCalls: [call('call_0', 'get_time', '{}')] },
  },
  {
    name: 'an unterminated but complete last call (output cut before </tool_call>)',
    text: `${TIME}\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}`,
    expected: { content: '', toolCalls: [call('call_0', 'get_time', '{}'), call('call_1', 'get_weather', '{"city": "Oslo"}')] },
  },
  {
    name: 'an unterminated incomplete call stays content',
    text: 'ok <tool_call>\n{"name": "get_weather", "argu',
    expected: { content: 'ok <tool_call>\n{"name": "get_weather", "argu', toolCalls: [] },
  },
  {
    name: 'string arguments and "parameters" are accepted',
    text: '<tool_call>{"name": "a", "arguments": "{\\"x\\": 1}"}</tool_call><tool_call>{"name": "b", "parameters": {"y": null}}</tool_call>',
    expected: { content: '', toolCalls: [call('call_0', 'a', '{"x": 1}'), call('call_1', 'b', '{"y": null}')] },
  },
  {
    name: 'arguments pass through exactly as written (big integers, 1.0, exponents, unicode escapes, spacing)',
    text: `<tool_call>\n{"name": "lookup", "arguments": ${EXACT_ARGS}}\n</tool_call>`,
    expected: { content: '', toolCalls: [call('call_0', 'lookup', EXACT_ARGS)] },
  },
  {
    name: 'arguments as a string holding a JSON object: the string\'s text, unchanged',
    text: `<tool_call>{"name": "lookup", "arguments": ${JSON.stringify(EXACT_ARGS)}}</tool_call>`,
    expected: { content: '', toolCalls: [call('call_0', 'lookup', EXACT_ARGS)] },
  },
  {
    name: 'arguments that are not a JSON object: the value\'s JSON text (a string stays a JSON-encoded string)',
    text: '<tool_call>{"name": "a", "arguments": "not json {\\u00e9"}</tool_call><tool_call>{"name": "b", "arguments": [1, 2.0]}</tool_call><tool_call>{"name": "c", "arguments": "[1]"}</tool_call>',
    expected: { content: '', toolCalls: [call('call_0', 'a', '"not json {\\u00e9"'), call('call_1', 'b', '[1, 2.0]'), call('call_2', 'c', '"[1]"')] },
  },
  {
    name: 'null or missing arguments are {}, and the last of duplicate keys wins',
    text: '<tool_call>{"name": "a", "arguments": null}</tool_call><tool_call>{"name": "b"}</tool_call><tool_call>{"name": "c", "arguments": {"x": 1}, "arguments": {"x": 2.0}}</tool_call>',
    expected: { content: '', toolCalls: [call('call_0', 'a', '{}'), call('call_1', 'b', '{}'), call('call_2', 'c', '{"x": 2.0}')] },
  },
  {
    name: 'text without calls is untouched, lookalikes and trailing newline included',
    text: 'Use <tool or <tool_cal> tags.\n',
    expected: { content: 'Use <tool or <tool_cal> tags.\n', toolCalls: [] },
  },
  {
    name: 'tool_choice none: no parsing at all',
    text: `Here:\n${TIME}`,
    options: { toolChoice: 'none' },
    expected: { content: `Here:\n${TIME}`, toolCalls: [] },
  },
  {
    name: 'named tool_choice: only that function is a call',
    text: `${WEATHER}\n${TIME}`,
    options: { toolChoice: { type: 'function', function: { name: 'get_time' } } },
    expected: { content: WEATHER, toolCalls: [call('call_0', 'get_time', '{}')] },
  },
  { name: 'tool_choice required parses like auto', text: TIME, options: { toolChoice: 'required' }, expected: { content: '', toolCalls: [call('call_0', 'get_time', '{}')] } },
];

describe('ToolCallParser', () => {
  it.each(CASES.map((c) => [c.name, c] as const))('Should handle %s, one-shot and split at every boundary', (_name, testCase) => {
    const options = testCase.options ?? {};
    expect(parseToolCalls(testCase.text, { ...options, createId: counterIds() })).toEqual(testCase.expected);
    for (const pieces of splittings(testCase.text)) {
      const streamed = streamPieces(pieces, options);
      if (JSON.stringify(streamed) !== JSON.stringify(testCase.expected)) expect({ pieces, streamed }).toEqual({ pieces, streamed: testCase.expected });
    }
  });

  it('Should stream text before a call at once and emit the call when it closes', () => {
    const parser = new ToolCallParser({ createId: counterIds() });
    expect(parser.push('Checking')).toEqual({ content: 'Checking', toolCalls: [] });
    expect(parser.push(' now.\n<tool_')).toEqual({ content: ' now.', toolCalls: [] });
    expect(parser.push('call>\n{"name": "get_time", ')).toEqual({ content: '', toolCalls: [] });
    expect(parser.push('"arguments": {}}\n</tool_call>')).toEqual({
      content: '',
      toolCalls: [
        { index: 0, id: 'call_0', type: 'function', function: { name: 'get_time', arguments: '' } },
        { index: 0, function: { arguments: '{}' } },
      ],
    });
    expect(parser.finish()).toEqual({ content: '', toolCalls: [] });
    expect(parser.callCount).toBe(1);
  });

  it('Should count only calls with JSON-object arguments as valid (what makes finish_reason tool_calls)', () => {
    const count = (text: string) => {
      const parser = new ToolCallParser({ createId: counterIds() });
      parser.push(text);
      parser.finish();
      return [parser.callCount, parser.validCallCount];
    };
    expect(count('<tool_call>{"name": "a", "arguments": "not json"}</tool_call>')).toEqual([1, 0]);
    expect(count('<tool_call>{"name": "a", "arguments": 7}</tool_call>')).toEqual([1, 0]);
    expect(count(`<tool_call>{"name": "a", "arguments": "not json"}</tool_call>${TIME}`)).toEqual([2, 1]);
    expect(count('<tool_call>{"name": "a", "arguments": "{\\"k\\": 1}"}</tool_call>')).toEqual([1, 1]);
    expect(count('<tool_call>{"name": "a", "arguments": {oops}}</tool_call>')).toEqual([0, 0]);
  });

  it('Should never throw on arbitrary model output', () => {
    const junk = ['<tool_call>', '</tool_call>', '{', '}', '"name"', ':', '[', 'null', '\\', '"'];
    for (let seed = 0; seed < 300; seed++) {
      const text = Array.from({ length: 12 }, (_, i) => junk[(seed * 7 + i * i * 13) % junk.length]).join('');
      expect(() => parseToolCalls(text)).not.toThrow();
    }
  });

  it('Should create ids of the form call_<24 alphanumerics>, all different', () => {
    const ids = new Set(Array.from({ length: 100 }, createToolCallId));
    expect(ids.size).toBe(100);
    for (const id of ids) expect(id).toMatch(/^call_[A-Za-z0-9]{24}$/);
  });
});

describe('reasoning parser → tool-call parser pipeline', () => {
  function pipeline(pieces: string[], reasoningOptions: ReasoningParserOptions) {
    const reasoningParser = new ReasoningParser(reasoningOptions);
    const toolParser = new ToolCallParser({ createId: counterIds() });
    let reasoning = '';
    let content = '';
    const deltas: ToolCallDelta[] = [];
    const take = (split: { reasoning: string; content: string }, toolChunk?: { content: string; toolCalls: ToolCallDelta[] }) => {
      reasoning += split.reasoning;
      const chunk = toolChunk ?? toolParser.push(split.content);
      content += chunk.content;
      deltas.push(...chunk.toolCalls);
    };
    for (const piece of pieces) take(reasoningParser.push(piece));
    take(reasoningParser.finish());
    take({ reasoning: '', content: '' }, toolParser.finish());
    return { reasoning, content, toolCalls: foldDeltas(deltas) };
  }

  const PIPELINE_CASES = [
    {
      name: 'pitfall 9: thinking disabled, the call is still parsed',
      text: TIME,
      options: { promptClosedThinking: true },
      expected: { reasoning: '', content: '', toolCalls: [call('call_0', 'get_time', '{}')] },
    },
    {
      name: 'pitfall 10: call right after </think>',
      text: `<think>\nI should call get_weather.\n</think>\n\n${WEATHER}`,
      options: { promptClosedThinking: false, toolCallEndsReasoning: true },
      expected: { reasoning: 'I should call get_weather.', content: '', toolCalls: [WEATHER_CALL] },
    },
    {
      name: 'pitfall 11: call opened inside <think>',
      text: `<think>\nNeed the time.\n${TIME}`,
      options: { promptClosedThinking: false, toolCallEndsReasoning: true },
      expected: { reasoning: 'Need the time.', content: '', toolCalls: [call('call_0', 'get_time', '{}')] },
    },
  ];

  it.each(PIPELINE_CASES.map((c) => [c.name, c] as const))('Should handle %s at every split', (_name, testCase) => {
    for (const pieces of splittings(testCase.text)) {
      const result = pipeline(pieces, testCase.options);
      if (JSON.stringify(result) !== JSON.stringify(testCase.expected)) expect({ pieces, result }).toEqual({ pieces, result: testCase.expected });
    }
  });
});
