// The edge's side of structured outputs, in Node: which format each request field becomes (response_format,
// structured_outputs, guided_*, tool_choice required / named / auto, with and without thinking), which JSON Schema
// keywords are refused and where, and the 400s (param, message) for conflicts, invalid JSON, regexes and schemas,
// through the route too (app.request, no worker needed).
import { describe, expect, it } from 'vitest';
import { createApp } from '../../edge/app.ts';
import { unsupportedSchemaReason } from '../../edge/json-schema-support.ts';
import { structuredOutput, type StructuredOutputRequest } from '../../edge/structured-output.ts';

const PERSON = { type: 'object', properties: { name: { type: 'string' } }, required: ['name'] };
const WEATHER = { type: 'object', properties: { city: { type: 'string' } } };
const TOOLS = [
  { type: 'function' as const, function: { name: 'get_weather', parameters: WEATHER } },
  { type: 'function' as const, function: { name: 'now' } },
];
const call = (name: string, schema: unknown) => ({
  type: 'tag', begin: `<tool_call>\n{"name": "${name}", "arguments": `, content: { type: 'json_schema', json_schema: schema }, end: '}\n</tool_call>',
});
const NO_PARAMS = { type: 'object', properties: {} };

/** The OpenAI error body of the 400 a call throws. */
async function errorOf(fn: () => unknown): Promise<{ param: string | null; message: string }> {
  try {
    fn();
  } catch (err) {
    const body = (await (err as { res: Response }).res.json()) as { error: { param: string | null; message: string } };
    return body.error;
  }
  throw new Error('expected a 400');
}

describe('structuredOutput', () => {
  it('Should leave unconstrained requests alone', () => {
    expect(structuredOutput({}, false)).toBeUndefined();
    expect(structuredOutput({ response_format: { type: 'text' } }, true)).toBeUndefined();
    expect(structuredOutput({ tools: TOOLS, tool_choice: 'none' }, false)).toBeUndefined();
  });

  it('Should turn each field into its format, applying after the think block when thinking', () => {
    const cases: [StructuredOutputRequest, object][] = [
      [{ response_format: { type: 'json_object' } }, { param: 'response_format', format: { type: 'json_schema', json_schema: { type: 'object' } } }],
      [{ response_format: { type: 'json_schema', json_schema: { name: 'p', schema: PERSON, strict: true } } }, { param: 'response_format', format: { type: 'json_schema', json_schema: PERSON } }],
      [{ response_format: { type: 'json_schema', json_schema: { name: 'any' } } }, { param: 'response_format', format: { type: 'json_schema', json_schema: true } }],
      [{ structured_outputs: { json: JSON.stringify(PERSON) } }, { param: 'structured_outputs.json', format: { type: 'json_schema', json_schema: PERSON } }],
      [{ structured_outputs: { regex: '\\d+' } }, { param: 'structured_outputs.regex', format: { type: 'regex', pattern: '\\d+' } }],
      [{ structured_outputs: { choice: ['a', 'b'] } }, { param: 'structured_outputs.choice', format: { type: 'or', elements: [{ type: 'const_string', value: 'a' }, { type: 'const_string', value: 'b' }] } }],
      [{ structured_outputs: { grammar: 'root ::= "x"' } }, { param: 'structured_outputs.grammar', format: { type: 'grammar', grammar: 'root ::= "x"' } }],
      [{ structured_outputs: { json_object: true, disable_any_whitespace: true } }, { param: 'structured_outputs.json_object', format: { type: 'json_schema', json_schema: { type: 'object' } } }],
      [{ guided_json: PERSON }, { param: 'guided_json', format: { type: 'json_schema', json_schema: PERSON } }],
      [{ guided_regex: 'a|b' }, { param: 'guided_regex', format: { type: 'regex', pattern: 'a|b' } }],
      [{ guided_choice: ['only'] }, { param: 'guided_choice', format: { type: 'const_string', value: 'only' } }],
      [{ guided_grammar: 'root ::= "y"', guided_decoding_backend: 'xgrammar' }, { param: 'guided_grammar', format: { type: 'grammar', grammar: 'root ::= "y"' } }],
    ];
    for (const [body, want] of cases) {
      expect(structuredOutput(body, false), JSON.stringify(body)).toEqual({ ...want, after_think: false });
      expect(structuredOutput(body, true), JSON.stringify(body)).toEqual({ ...want, after_think: true });
    }
  });

  it('Should enforce hermes tool calls for tool_choice required and a named function', () => {
    expect(structuredOutput({ tools: TOOLS, tool_choice: 'required' }, true)).toEqual({
      param: 'tool_choice', after_think: true,
      format: { type: 'tags_with_separator', separator: '\n', tags: [call('get_weather', WEATHER), call('now', NO_PARAMS)], at_least_one: true, stop_after_first: false },
    });
    expect(structuredOutput({ tools: TOOLS, tool_choice: 'required', parallel_tool_calls: false }, false)!.format).toMatchObject({ stop_after_first: true });
    // a named function: that one, once; response_format does not apply to a tool-call turn
    expect(structuredOutput({ tools: TOOLS, tool_choice: { type: 'function', function: { name: 'now' } }, response_format: { type: 'json_object' } }, false)).toEqual({
      param: 'tool_choice', after_think: false,
      format: { type: 'tags_with_separator', separator: '\n', tags: [call('now', NO_PARAMS)], at_least_one: true, stop_after_first: true },
    });
  });

  it('Should constrain calls under tool_choice auto: free text until <tool_call>, or calls or the response format', () => {
    expect(structuredOutput({ tools: TOOLS }, false)).toEqual({
      param: 'tools', after_think: false,
      format: { type: 'triggered_tags', triggers: ['<tool_call>'], tags: [call('get_weather', WEATHER), call('now', NO_PARAMS)], stop_after_first: false },
    });
    expect(structuredOutput({ tools: TOOLS, tool_choice: 'auto', guided_regex: 'x+' }, false)).toEqual({
      param: 'guided_regex', after_think: false,
      format: { type: 'or', elements: [
        { type: 'tags_with_separator', separator: '\n', tags: [call('get_weather', WEATHER), call('now', NO_PARAMS)], at_least_one: true, stop_after_first: false },
        { type: 'regex', pattern: 'x+' },
      ] },
    });
    // a tool whose parameters cannot be enforced leaves auto calls free (it worked before), the format still applies
    const loose = [{ type: 'function' as const, function: { name: 'f', parameters: { type: 'object', not: {} } } }];
    expect(structuredOutput({ tools: loose }, false)).toBeUndefined();
    expect(structuredOutput({ tools: loose, guided_regex: 'x' }, false)!.format).toEqual({ type: 'regex', pattern: 'x' });
  });

  it('Should refuse conflicts, invalid JSON, regexes and unenforceable schemas with a 400 naming the field', async () => {
    const cases: [StructuredOutputRequest, string, RegExp][] = [
      [{ response_format: { type: 'json_object' }, guided_regex: 'a' }, 'guided_regex', /Only one of response_format, structured_outputs and guided_\*.*response_format and guided_regex/],
      [{ structured_outputs: { regex: 'a', choice: ['b'] } }, 'structured_outputs', /exactly one of json, regex, choice, grammar and json_object \(got 2\)/],
      [{ structured_outputs: {} }, 'structured_outputs', /got 0/],
      [{ guided_json: '{"type":' }, 'guided_json', /not valid JSON/],
      [{ guided_regex: '(a' }, 'guided_regex', /not a valid regular expression/],
      [{ structured_outputs: { json: { type: 'array', uniqueItems: true } } }, 'structured_outputs.json', /"uniqueItems" \(at #\) is not supported/],
      [{ tools: TOOLS, tool_choice: 'required', structured_outputs: { regex: 'a' } }, 'tool_choice', /structured_outputs.regex cannot be combined with tool_choice "required"/],
      [{ tools: [{ function: { name: 'f', parameters: { type: 'object', properties: { n: { type: 'integer', multipleOf: 2 } } } } }], tool_choice: 'required' },
        'tools[0].function.parameters', /"multipleOf" \(at #\/properties\/n\)/],
    ];
    for (const [body, param, message] of cases) {
      const error = await errorOf(() => structuredOutput(body, false));
      expect(error.param, JSON.stringify(body)).toBe(param);
      expect(error.message, JSON.stringify(body)).toMatch(message);
    }
  });

  it('Should refuse the response_format fields the route validates, through the app', async () => {
    const app = createApp();
    const env = { MODEL_ID: 'm', WORKER_URLS: '', WORKER_SECRET: 's' };
    const post = async (extra: object) => {
      const res = await app.request('/v1/chat/completions', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'x' }], ...extra }) }, env);
      return { status: res.status, error: ((await res.json()) as { error: { param: string; message: string } }).error };
    };
    expect(await post({ response_format: { type: 'json_schema', json_schema: { name: 'bad name!', schema: {} } } })).toMatchObject({ status: 400, error: { param: 'response_format.json_schema.name' } });
    expect(await post({ response_format: { type: 'structural_tag' } })).toMatchObject({ status: 400, error: { param: 'response_format.type' } });
    expect(await post({ structured_outputs: { whitespace_pattern: ' ' } })).toMatchObject({ status: 400, error: { param: 'structured_outputs' } });
    expect(await post({ guided_decoding_backend: 'outlines', guided_regex: 'a' })).toMatchObject({ status: 400, error: { param: 'guided_decoding_backend' } });
    expect(await post({ response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { type: 'object', properties: { a: { if: {} } } } } } }))
      .toMatchObject({ status: 400, error: { param: 'response_format', message: expect.stringMatching(/"if" \(at #\/properties\/a\)/) } });
    const completions = await app.request('/v1/completions', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'm', prompt: 'x', guided_choice: [] }) }, env);
    expect(completions.status).toBe(400);
  });
});

describe('unsupportedSchemaReason', () => {
  it('Should accept what xgrammar enforces', () => {
    const ok = [
      true, {}, PERSON, { type: ['string', 'null'], maxLength: 4 }, { enum: [1, 'a', null] }, { const: { a: 1 } },
      { anyOf: [{ type: 'integer' }, { type: 'string' }] }, { oneOf: [{ type: 'boolean' }] }, { allOf: [PERSON] },
      { $ref: '#/$defs/a', $defs: { a: { type: 'integer', minimum: 0, exclusiveMaximum: 9 } } }, { $ref: '#' },
      { type: 'object', additionalProperties: false, patternProperties: { '^x': { type: 'number' } }, propertyNames: { pattern: '^[a-z]+$' }, minProperties: 1, maxProperties: 3 },
      { type: 'array', prefixItems: [{ type: 'string' }], items: false, minItems: 1, maxItems: 2, unevaluatedItems: false },
      { type: 'string', format: 'date-time' }, { type: 'string', pattern: '^a+$' }, { title: 'x', description: 'y', default: 1, examples: [1], 'x-custom': {} },
    ];
    for (const schema of ok) expect(unsupportedSchemaReason(schema), JSON.stringify(schema)).toBeUndefined();
  });

  it('Should name the keyword xgrammar would ignore, and where it is', () => {
    const cases: [unknown, RegExp][] = [
      [false, /is false/],
      [[], /must be an object or a boolean/],
      [{ not: {} }, /"not" \(at #\)/],
      [{ properties: { a: { if: {}, then: {} } } }, /"if" \(at #\/properties\/a\)/],
      [{ items: { uniqueItems: true } }, /"uniqueItems" \(at #\/items\)/],
      [{ type: 'array', contains: {} }, /"contains"/],
      [{ $defs: { 'a/b': { multipleOf: 2 } } }, /"multipleOf" \(at #\/\$defs\/a~1b\)/],
      [{ anyOf: [{}, { dependentRequired: {} }] }, /"dependentRequired" \(at #\/anyOf\/1\)/],
      [{ allOf: [{}, {}] }, /"allOf" with 2 schemas/],
      [{ items: [{}] }, /use "prefixItems"/],
      [{ $ref: 'https://example.com/s.json' }, /only references inside the schema/],
      [{ type: 'string', format: 'credit-card' }, /"format": "credit-card"/],
      [{ type: 'string', pattern: 'a', maxLength: 3 }, /"pattern" together with "maxLength"/],
      [{ type: 'integer128' }, /unknown type "integer128"/],
      [{ properties: { a: false } }, /#\/properties\/a is false/],
      [{ anyOf: {} }, /must be an array of schemas/],
    ];
    for (const [schema, message] of cases) expect(unsupportedSchemaReason(schema), JSON.stringify(schema)).toMatch(message);
  });
});
