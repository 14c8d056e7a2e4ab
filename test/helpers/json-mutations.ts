// Random edits of valid JSON bodies, for tests that hold two checks of one format to each other
// (test/edge/validate-request.test.ts, test/edge/validate-worker.test.ts): a value anywhere replaced by one from POOL,
// a field removed or added.
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

export const LONG_NAME = 'f'.repeat(65);
/** Values a field may be replaced with: valid ones for some field, and every JSON type at its edges. */
export const POOL: Json[] = [
  null, true, false, 0, -0, 1, -1, 2, 0.5, 1.5, 2.5, -2.5, 3, 5, 6, 10, 10.5, 16, 17, 20, 21, 64, 65, 100, 101, 128, 129,
  1e300, -1e300, 2 ** 53, -(2 ** 53), 151645, 151669, 999999,
  '', 'x', 'hi', 'text', 'function', 'auto', 'none', 'required', 'low', 'medium', 'high', 'max', 'extreme', 'user', 'assistant', 'tool',
  'system', 'robot', 'json_schema', 'json_object', 'xgrammar', 'a b', 'qwen3-8b-awq', LONG_NAME, '100', 'abc',
  [], [1], [-1], [1.5], [0, 151645], [151645, 999999], ['a'], [''], ['a', 1], [[]], [[1]], [[1], [2]], [[1], []], [[1], ['a']], [{}],
  Array(17).fill('s'), Array(65).fill(1), Array(129).fill({}),
  {}, { a: 1 }, { a: 'b' }, { '100': 0 }, { '100': 5 }, { '100': 101 }, { abc: 1 }, { '999999': 0 }, { '100': 'x' },
  { type: 'text' }, { type: 'text', text: 'x' }, { type: 'image_url' }, { type: 'json_object' }, { type: 'json_schema' },
  { type: 'json_schema', json_schema: { name: 'a b' } }, { type: 'json_schema', json_schema: { name: 'ok', schema: { type: 'object' }, strict: true } },
  { type: 'function', function: { name: 'f' } }, { type: 'function', function: { name: '' } }, { type: 'function', function: { name: 'g' } },
  { type: 'function', function: { name: LONG_NAME } }, { type: 'function', function: { name: 'f', parameters: [] } },
  { function: { name: 'f', arguments: '{}' } }, { function: { name: 'f', arguments: { a: 1 } } }, { function: { name: 'f', arguments: 5 } }, { function: {} },
  { role: 'user', content: 'x' }, { role: 'user', content: [{ type: 'text', text: 'x' }] }, { role: 'user', content: [{ type: 'image_url' }] },
  { role: 'assistant', content: null, tool_calls: [{ function: { name: 'f' } }] }, { role: 'robot' }, { role: 'user', content: 5 },
  { enable_thinking: true, other: [1] }, { enable_thinking: 'x' }, { effort: 'low', max_tokens: 10 }, { effort: 'extreme' }, { max_tokens: -1 },
  { include_usage: true }, { include_usage: 'x' }, { json: { type: 'object' } }, { json: 5 }, { regex: '' }, { choice: [] }, { choice: ['a'] }, { foo: 1, bar: 2 },
  JSON.parse('{"__proto__": 1, "a": 2}'),
];

/** Every path (object keys, array indices) in a value, the root included. */
function paths(value: Json, at: (string | number)[] = [], out: (string | number)[][] = []): (string | number)[][] {
  out.push(at);
  if (Array.isArray(value)) value.forEach((v, i) => paths(v, [...at, i], out));
  else if (value && typeof value === 'object') for (const [k, v] of Object.entries(value)) paths(v, [...at, k], out);
  return out;
}

const FIELD_NAMES = ['model', 'messages', 'prompt', 'n', 'stop', 'tools', 'tool_choice', 'logprobs', 'top_logprobs', 'response_format', 'structured_outputs',
  'guided_json', 'stream_options', 'think', 'reasoning', 'chat_template_kwargs', 'suffix', 'best_of', 'logit_bias', 'stop_token_ids', 'max_tokens', 'unknown_field',
  'role', 'content', 'function', 'name', 'arguments', 'tool_calls', 'type', 'json_schema', 'schema', 'text', 'enable_thinking', 'effort', 'json', 'choice'];

/** A valid body with one to three random edits: a value replaced by one from POOL, a field removed, or a field added. */
export function mutate(base: Json, rand: () => number, fieldNames: readonly string[] = FIELD_NAMES): Json {
  const body = structuredClone(base);
  const pick = <T>(list: readonly T[]): T => list[Math.floor(rand() * list.length)];
  const edits = 1 + Math.floor(rand() * 3);
  let root: Json = body;
  for (let e = 0; e < edits; e++) {
    const path = pick(paths(root));
    const value = pick(POOL);
    if (path.length === 0) {
      if (rand() < 0.05) root = structuredClone(value);
      continue;
    }
    let parent: any = root;
    for (const key of path.slice(0, -1)) parent = parent[key];
    const last = path[path.length - 1];
    const roll = rand();
    if (roll < 0.7) parent[last] = structuredClone(value);
    else if (roll < 0.85 && !Array.isArray(parent)) delete parent[last];
    else if (!Array.isArray(parent)) parent[pick(fieldNames)] = structuredClone(value);
    else parent.push(structuredClone(value));
  }
  return root;
}

