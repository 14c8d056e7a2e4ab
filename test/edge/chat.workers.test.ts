// The edge inside workerd (wrangler.toml bindings) against a real GPU worker process on loopback serving the `demo`
// checkpoint (test/edge/worker.global-setup.ts): the reasoning split end to end in every thinking mode, streamed
// and not, usage with reasoning tokens, the thinking budget, stop strings, n, logprobs, completions, tokenize and
// the error shapes.
import { env, exports } from 'cloudflare:workers';
import { beforeAll, describe, expect, it } from 'vitest';
import { issueKey } from '../../edge/key-store.ts';
import { getTokenizer } from '../../edge/tokenizer/index.js';

// the demo checkpoint's script (scripts/gen-demo-script.mjs)
const REASONING = 'The user is chatting with this placeholder checkpoint and my reply explains how they can load proper weights';
const ANSWER =
  "Hello! I'm the demo model: random numbers following one fixed script, not Qwen3-8B-AWQ itself; set MODEL_DIR to that download for real answers.";
const MODEL = 'qwen3-8b-awq';
const THINK_TOKENS = getTokenizer().encode(`<think>${REASONING}</think>`).length;
const ANSWER_TOKENS = getTokenizer().encode(`\n\n${ANSWER}`).length;

type Json = Record<string, any>;
/** The edge under test (the `default` export of wrangler.toml's main), as the pool exposes it. */
const edge = (exports as unknown as { default: { fetch: typeof fetch } }).default;

// An API key of this file's own (storage is isolated per test file), sent on every request.
let auth: Record<string, string> = {};
beforeAll(async () => {
  const issued = await issueKey((env as unknown as { KEYS: KVNamespace }).KEYS, { tenant: 'chat-tests' });
  auth = { authorization: `Bearer ${issued!.secret}` };
});

function post(path: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return edge.fetch(`http://edge${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...auth, ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

const chat = (body: Json) => post('/v1/chat/completions', { model: MODEL, messages: [{ role: 'user', content: 'hi' }], ...body });

/** The `data:` payloads of an SSE body, in order. */
async function frames(res: Response): Promise<string[]> {
  const text = await res.text();
  return text
    .split('\n\n')
    .filter((b) => b.trim())
    .map((b) => b.split('\n').filter((l) => l.startsWith('data: ')).map((l) => l.slice(6)).join('\n'));
}

function joinDeltas(chunks: Json[], field: string, index = 0): string {
  return chunks.flatMap((c) => c.choices.filter((ch: Json) => ch.index === index).map((ch: Json) => ch.delta?.[field] ?? '')).join('');
}

describe('chat completions through workerd and a real worker', () => {
  it('Should split thinking into reasoning_content/reasoning and the answer into content, with no tags', async () => {
    const res = await chat({ chat_template_kwargs: { enable_thinking: true } });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-thinking-mode')).toBe('on; source=explicit');
    expect(res.headers.get('x-request-id')).toMatch(/^req_/);
    const raw = await res.text();
    expect(raw).not.toMatch(/<\/?think>/);
    const body = JSON.parse(raw);
    expect(body.object).toBe('chat.completion');
    const { message, finish_reason } = body.choices[0];
    expect(message).toMatchObject({ role: 'assistant', content: ANSWER, reasoning_content: REASONING, reasoning: REASONING });
    expect(finish_reason).toBe('stop');
    expect(body.usage.completion_tokens_details.reasoning_tokens).toBe(THINK_TOKENS);
    expect(body.usage.completion_tokens).toBe(THINK_TOKENS + ANSWER_TOKENS + 1); // + <|im_end|>
    expect(body.usage.prompt_tokens).toBe(9);
    expect(body.usage.total_tokens).toBe(body.usage.prompt_tokens + body.usage.completion_tokens);
  });

  it('Should answer without reasoning when thinking is off', async () => {
    const res = await chat({ reasoning_effort: 'none' });
    expect(res.headers.get('x-thinking-mode')).toBe('off; source=explicit');
    const body = await res.json<Json>();
    expect(body.choices[0].message.content).toBe(ANSWER);
    expect(body.choices[0].message.reasoning_content).toBeNull();
    expect(body.usage.completion_tokens_details.reasoning_tokens).toBe(0);
  });

  it('Should follow the /no_think and /think soft switches through the template', async () => {
    const off = await chat({ messages: [{ role: 'user', content: 'hi /no_think' }] });
    expect(off.headers.get('x-thinking-mode')).toBe('off; source=soft-switch');
    expect((await off.json<Json>()).choices[0].message).toMatchObject({ content: ANSWER, reasoning_content: null });
    const on = await chat({ messages: [{ role: 'system', content: 'be brief /no_think' }, { role: 'user', content: 'hi /think' }] });
    expect(on.headers.get('x-thinking-mode')).toBe('on; source=soft-switch');
    expect((await on.json<Json>()).choices[0].message).toMatchObject({ content: ANSWER, reasoning_content: REASONING });
  });

  it('Should stream role, reasoning and content deltas, finish_reason, usage, then [DONE]', async () => {
    const res = await chat({ think: true, stream: true, stream_options: { include_usage: true } });
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const data = await frames(res);
    expect(data.at(-1)).toBe('[DONE]');
    const chunks = data.slice(0, -1).map((d) => JSON.parse(d) as Json);
    expect(chunks[0].choices[0].delta).toEqual({ role: 'assistant', content: '' });
    expect(new Set(chunks.map((c) => c.id)).size).toBe(1);
    expect(chunks.every((c) => c.object === 'chat.completion.chunk')).toBe(true);
    for (const c of chunks) expect(JSON.stringify(c)).not.toMatch(/<\/?think>/);
    expect(joinDeltas(chunks, 'reasoning_content')).toBe(REASONING);
    expect(joinDeltas(chunks, 'reasoning')).toBe(REASONING);
    expect(joinDeltas(chunks, 'content')).toBe(ANSWER);
    const finish = chunks.at(-2)!;
    expect(finish.choices[0]).toMatchObject({ delta: {}, finish_reason: 'stop' });
    expect(chunks.slice(0, -2).every((c) => c.choices[0].finish_reason === null && c.usage === null)).toBe(true);
    const usage = chunks.at(-1)!;
    expect(usage.choices).toEqual([]);
    expect(usage.usage.completion_tokens_details.reasoning_tokens).toBe(THINK_TOKENS);
    expect(usage.usage.prompt_tokens_details).toHaveProperty('cached_tokens');
  });

  it('Should drop reasoning when reasoning.exclude is set but still count it', async () => {
    const res = await chat({ reasoning: { enabled: true, exclude: true }, stream: true, stream_options: { include_usage: true } });
    const chunks = (await frames(res)).slice(0, -1).map((d) => JSON.parse(d) as Json);
    expect(joinDeltas(chunks, 'reasoning_content')).toBe('');
    expect(joinDeltas(chunks, 'content')).toBe(ANSWER);
    expect(chunks.at(-1)!.usage.completion_tokens_details.reasoning_tokens).toBe(THINK_TOKENS);
  });

  it('Should enforce a thinking budget by injecting Qwen\'s closing text', async () => {
    const res = await chat({ reasoning: { max_tokens: 4 } });
    expect(res.headers.get('x-thinking-mode')).toBe('on; source=explicit; budget=4');
    const { message } = (await res.json<Json>()).choices[0];
    expect(message.reasoning_content).toMatch(/^The user is chatting\s*Considering the limited time by the user, I have to give the solution based on the thinking directly now\.$/);
    expect(message.content).toBe(ANSWER);
  });

  it('Should end at a stop string without emitting it, and cut at max_tokens with finish_reason length', async () => {
    const stopped = await (await chat({ think: false, stop: [' random'] })).json<Json>();
    expect(stopped.choices[0]).toMatchObject({ message: { content: "Hello! I'm the demo model:" }, finish_reason: 'stop' });
    const cut = await (await chat({ think: true, max_completion_tokens: 5 })).json<Json>();
    expect(cut.choices[0].finish_reason).toBe('length');
    expect(cut.choices[0].message.content).toBe('');
    expect(cut.choices[0].message.reasoning_content).toBe('The user is chatting');
    expect(cut.usage.completion_tokens_details.reasoning_tokens).toBe(5);
  });

  it('Should fan out n choices with logprobs', async () => {
    const body = await (await chat({ think: false, n: 2, seed: 1, logprobs: true, top_logprobs: 2, max_tokens: 3 })).json<Json>();
    expect(body.choices.map((c: Json) => c.index)).toEqual([0, 1]);
    for (const choice of body.choices) {
      expect(choice.message.content).toBe("Hello! I");
      const [first] = choice.logprobs.content;
      expect(first).toMatchObject({ token: 'Hello', bytes: [72, 101, 108, 108, 111] });
      expect(first.top_logprobs).toHaveLength(2);
    }
    expect(body.usage.completion_tokens).toBe(6);
  });

  it('Should serve legacy completions from text and from token ids', async () => {
    const prompt = '<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n';
    const text = await (await post('/v1/completions', { model: MODEL, prompt, max_tokens: 3 })).json<Json>();
    expect(text).toMatchObject({ object: 'text_completion', choices: [{ text: "Hello! I", finish_reason: 'length' }] });
    const ids = getTokenizer().encode(prompt);
    const fromIds = await (await post('/v1/completions', { model: MODEL, prompt: ids, max_tokens: 3 })).json<Json>();
    expect(fromIds.choices[0].text).toBe("Hello! I");
    expect(fromIds.usage.prompt_tokens).toBe(ids.length);
  });

  it('Should tokenize chat exactly as chat completions sends it, and detokenize', async () => {
    const tok = await (await post('/tokenize', { model: MODEL, messages: [{ role: 'user', content: 'hi' }], chat_template_kwargs: { enable_thinking: false } })).json<Json>();
    expect(tok).toMatchObject({ count: 13, max_model_len: 40960 });
    expect(tok.tokens.slice(-4)).toEqual([151667, 271, 151668, 271]); // <think>\n\n</think>\n\n
    const detok = await (await post('/detokenize', { model: MODEL, tokens: tok.tokens })).json<Json>();
    expect(detok.prompt).toBe('<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n');
    const models = await (await edge.fetch('http://edge/v1/models', { headers: auth })).json<Json>();
    expect(models).toEqual({ object: 'list', data: [expect.objectContaining({ id: MODEL, object: 'model' })] });
  });

  it('Should answer errors in OpenAI\'s shape with the right status and param', async () => {
    const cases: [Promise<Response>, number, string | null, string | null][] = [
      [post('/v1/chat/completions', { model: MODEL }), 400, 'messages', null],
      [chat({ temperature: 3 }), 400, 'temperature', null],
      [chat({ messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'x' } }] }] }), 400, 'messages[0].content[0].type', null],
      [chat({ max_tokens: 40_960 }), 400, 'max_tokens', 'context_length_exceeded'],
      [chat({ stop_token_ids: [999_999] }), 400, 'stop_token_ids[0]', null],
      [chat({ model: 'gpt-4o' }), 404, 'model', 'model_not_found'],
      [post('/v1/chat/completions', '{"model":'), 400, null, null],
      [post('/v1/chat/completions', JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'x'.repeat(5_000_000) }] })), 413, null, 'request_too_large'],
    ];
    for (const [pending, status, param, code] of cases) {
      const res = await pending;
      expect(res.status).toBe(status);
      const body = await res.json<Json>();
      expect(body.error).toMatchObject({ param, code });
      expect(typeof body.error.message).toBe('string');
      expect(body.error.type).toBe('invalid_request_error');
    }
  });
});
