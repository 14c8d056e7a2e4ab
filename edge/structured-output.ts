// Structured outputs: turns a request's `response_format`, vLLM's `structured_outputs` (and its older `guided_*`
// spellings) and enforced tool calls into the one format the worker constrains decoding with (the
// `structured_output` of gpu-worker/protocol.ts: xgrammar's structural tags). Invalid or unsupported constraints are
// refused here with a 400 naming the field; what only the grammar engine can judge (a regex feature, an EBNF
// grammar, a compilation over the time limit) comes back from the worker as a 400 with the same `param`.
//
// Decisions:
// - One constraint per request: response_format (json_object / json_schema), structured_outputs (exactly one of
//   json, regex, choice, grammar, json_object) or a guided_* field. Two of them → 400.
// - tool_choice "required" or a named function: the answer is Qwen's hermes tool-call block(s)
//   `<tool_call>\n{"name": …, "arguments": …}\n</tool_call>`, "\n"-separated, whose name is an offered tool (the named
//   one) and whose arguments match its `parameters`; one call for a named function or parallel_tool_calls false,
//   one or more otherwise. response_format does not apply to such a turn (OpenAI's semantics); structured_outputs /
//   guided_* with it are a contradiction → 400.
// - tool_choice "auto" (the default with tools): free text until the model opens `<tool_call>`, then the call is
//   constrained; with a response format as well, the answer is either tool calls or that format. If any tool's
//   parameters cannot be enforced, calls stay unconstrained rather than refusing a request that worked before.
// - Thinking: the format applies after the think block (the worker's `after_think`); see protocol.ts.
import type { GrammarFormat, StructuredOutputInput, TagFormat } from '../gpu-worker/protocol.ts';
import { invalidRequest } from './errors.ts';
import { unsupportedSchemaReason } from './json-schema-support.ts';
import type { StructuredOutputFields } from './schemas.ts';

type FunctionTool = { function: { name: string; parameters?: Record<string, unknown> } };
type ToolChoice = 'none' | 'auto' | 'required' | { type: 'function'; function: { name: string } };

export type StructuredOutputRequest = StructuredOutputFields & {
  tools?: FunctionTool[] | null;
  tool_choice?: ToolChoice | null;
  parallel_tool_calls?: boolean | null;
};

type Constraint = { format: GrammarFormat; param: string };

/** The worker's structured_output for a request, or undefined when its output is free. */
export function structuredOutput(body: StructuredOutputRequest, afterThink: boolean): StructuredOutputInput | undefined {
  const constraints = explicitConstraints(body);
  if (constraints.length > 1) {
    throw invalidRequest(
      `Only one of response_format, structured_outputs and guided_* may constrain the output; got ${constraints.map((c) => c.param).join(' and ')}.`,
      constraints[1].param,
    );
  }
  const own = constraints[0];
  const choice = body.tools?.length ? (body.tool_choice ?? 'auto') : 'none';
  let constraint = own;
  if (choice === 'required' || typeof choice === 'object') {
    if (own && own.param !== 'response_format') {
      throw invalidRequest(`${own.param} cannot be combined with tool_choice ${JSON.stringify(choice)}: the answer must be a tool call.`, 'tool_choice');
    }
    const tools = typeof choice === 'object' ? body.tools!.filter((t) => t.function.name === choice.function.name) : body.tools!;
    const tags = tools.map((t) => callTag(t, body.tools!.indexOf(t), true)!);
    const single = typeof choice === 'object' || body.parallel_tool_calls === false;
    constraint = { param: 'tool_choice', format: { type: 'tags_with_separator', separator: '\n', tags, at_least_one: true, stop_after_first: single } };
  } else if (choice === 'auto') {
    const tags = body.tools!.map((t, i) => callTag(t, i, false));
    if (tags.every((t) => t !== undefined)) {
      const stopAfterFirst = body.parallel_tool_calls === false;
      constraint = own
        ? { param: own.param, format: { type: 'or', elements: [{ type: 'tags_with_separator', separator: '\n', tags, at_least_one: true, stop_after_first: stopAfterFirst }, own.format] } }
        : { param: 'tools', format: { type: 'triggered_tags', triggers: ['<tool_call>'], tags, stop_after_first: stopAfterFirst } };
    }
  }
  return constraint && { format: constraint.format, param: constraint.param, after_think: afterThink };
}

/** Hermes call of one tool with its arguments' schema; undefined (or a 400 when `strict`) if it cannot be enforced. */
function callTag(tool: FunctionTool, index: number, strict: boolean): TagFormat | undefined {
  const schema = tool.function.parameters ?? { type: 'object', properties: {} };
  const reason = unsupportedSchemaReason(schema);
  if (reason) {
    if (!strict) return undefined;
    throw invalidRequest(`tools[${index}].function.parameters cannot be enforced: ${reason}.`, `tools[${index}].function.parameters`);
  }
  return {
    type: 'tag',
    begin: `<tool_call>\n{"name": ${JSON.stringify(tool.function.name)}, "arguments": `,
    content: { type: 'json_schema', json_schema: schema },
    end: '}\n</tool_call>',
  };
}

/** Every constraint the request sets, in the order the fields are documented. */
function explicitConstraints(body: StructuredOutputFields): Constraint[] {
  const out: Constraint[] = [];
  const rf = body.response_format;
  if (rf?.type === 'json_object') out.push({ param: 'response_format', format: jsonFormat({ type: 'object' }, 'response_format') });
  if (rf?.type === 'json_schema') out.push({ param: 'response_format', format: jsonFormat(rf.json_schema.schema ?? true, 'response_format') });
  const so = body.structured_outputs;
  if (so) {
    const set: Constraint[] = [];
    if (so.json != null) set.push({ param: 'structured_outputs.json', format: jsonFormat(so.json, 'structured_outputs.json') });
    if (so.regex != null) set.push({ param: 'structured_outputs.regex', format: regexFormat(so.regex, 'structured_outputs.regex') });
    if (so.choice != null) set.push({ param: 'structured_outputs.choice', format: choiceFormat(so.choice) });
    if (so.grammar != null) set.push({ param: 'structured_outputs.grammar', format: { type: 'grammar', grammar: so.grammar } });
    if (so.json_object) set.push({ param: 'structured_outputs.json_object', format: jsonFormat({ type: 'object' }, 'structured_outputs') });
    if (set.length !== 1) {
      throw invalidRequest(`structured_outputs must set exactly one of json, regex, choice, grammar and json_object (got ${set.length}).`, 'structured_outputs');
    }
    out.push(set[0]);
  }
  if (body.guided_json != null) out.push({ param: 'guided_json', format: jsonFormat(body.guided_json, 'guided_json') });
  if (body.guided_regex != null) out.push({ param: 'guided_regex', format: regexFormat(body.guided_regex, 'guided_regex') });
  if (body.guided_choice != null) out.push({ param: 'guided_choice', format: choiceFormat(body.guided_choice) });
  if (body.guided_grammar != null) out.push({ param: 'guided_grammar', format: { type: 'grammar', grammar: body.guided_grammar } });
  return out;
}

/** A JSON schema (an object, a boolean, or JSON text of one) the grammar engine can enforce. */
function jsonFormat(value: unknown, param: string): GrammarFormat {
  let schema = value;
  if (typeof value === 'string') {
    try {
      schema = JSON.parse(value);
    } catch {
      throw invalidRequest(`${param} is not valid JSON.`, param);
    }
  }
  const reason = unsupportedSchemaReason(schema);
  if (reason) throw invalidRequest(`Invalid JSON schema in ${param}: ${reason}.`, param);
  return { type: 'json_schema', json_schema: schema as boolean | Record<string, unknown> };
}

/** A regular expression the whole output must match (syntax checked here; xgrammar refuses lookarounds). */
function regexFormat(pattern: string, param: string): GrammarFormat {
  try {
    new RegExp(pattern, 'u');
  } catch (err) {
    throw invalidRequest(`${param} is not a valid regular expression: ${(err as Error).message}`, param);
  }
  return { type: 'regex', pattern };
}

/** The output is exactly one of the strings. */
function choiceFormat(choices: string[]): GrammarFormat {
  return choices.length === 1 ? { type: 'const_string', value: choices[0] } : { type: 'or', elements: choices.map((value) => ({ type: 'const_string', value })) };
}
