// End to end with the official `openai` client: a real GPU worker process (demo checkpoint) behind the edge running
// in workerd via wrangler's unstable_startWorker (wrangler.toml, WORKER_URLS/WORKER_SECRET as bindings). Chat
// stream and non-stream with reasoning read by the client, tools accepted and rendered, usage, legacy completions,
// models, and errors arriving as the SDK's error classes — including a mid-stream error frame (stub worker).
import { build } from 'esbuild';
import { Miniflare } from 'miniflare';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import OpenAI, { APIError, BadRequestError, NotFoundError } from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { unstable_startWorker } from 'wrangler';
import { createApp } from '../../edge/app.ts';
import { SECRET, startWorker, type Worker } from '../gpu-worker/worker-process.ts';
// @ts-expect-error plain ESM script without types
import { DEMO_ANSWER, DEMO_REASONING } from '../../scripts/gen-demo-script.mjs';

// the demo checkpoint's script, from its single source
const REASONING: string = DEMO_REASONING;
const ANSWER: string = DEMO_ANSWER;
const MODEL = 'qwen3-8b-awq';
const TOOLS: OpenAI.Chat.ChatCompletionTool[] = [
  { type: 'function', function: { name: 'get_weather', description: 'Weather in a city', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } } },
];

let worker: Worker;
let edge: Awaited<ReturnType<typeof unstable_startWorker>>;
let baseURL: string;
let client: OpenAI;
let apiKey: string;
const ADMIN_TOKEN = 'adm-e2e-test-token';

beforeAll(async () => {
  worker = await startWorker({}, 'demo');
  edge = await unstable_startWorker({
    config: 'wrangler.toml',
    bindings: {
      WORKER_URLS: { type: 'plain_text', value: worker.url }, WORKER_SECRET: { type: 'secret_text', value: SECRET },
      ADMIN_TOKEN: { type: 'secret_text', value: ADMIN_TOKEN },
    },
    dev: { server: { hostname: '127.0.0.1', port: 0 }, inspector: false, persist: false, watch: false, remote: false, logLevel: 'warn' },
  });
  await edge.ready;
  baseURL = new URL('/v1', await edge.url).toString();
  const created = await fetch(new URL('/admin/keys', baseURL), {
    method: 'POST', headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ tenant: 'e2e', name: 'openai-sdk e2e' }),
  });
  expect(created.status).toBe(201);
  apiKey = ((await created.json()) as { key: string }).key;
  client = new OpenAI({ baseURL, apiKey, maxRetries: 0 });
});

afterAll(async () => {
  await edge?.dispose();
  await worker?.stop();
});

describe('the official openai client against the edge in workerd', () => {
  it('Should read reasoning and the answer from a non-streamed completion', async () => {
    const { data, response, request_id } = await client.chat.completions
      .create({ model: MODEL, messages: [{ role: 'user', content: 'hi' }], reasoning_effort: 'low' })
      .withResponse();
    expect(response.headers.get('x-thinking-mode')).toBe('on; source=explicit; budget=1024');
    const message = data.choices[0].message;
    expect((message as any).reasoning_content).toBe(REASONING);
    expect((message as any).reasoning).toBe(REASONING);
    expect(message.content).toBe(ANSWER);
    expect(data.choices[0].finish_reason).toBe('stop');
    expect(data.usage!.completion_tokens_details!.reasoning_tokens).toBeGreaterThan(10);
    expect(request_id).toBe(response.headers.get('x-request-id'));
    expect(request_id).toMatch(/^req_/);
  });

  it('Should stream reasoning then content, and a final usage chunk', async () => {
    const stream = await client.chat.completions.create({
      model: MODEL, messages: [{ role: 'user', content: 'hi' }], stream: true, stream_options: { include_usage: true },
      // vLLM / Ollama extensions pass through the SDK's body untouched
      ...({ chat_template_kwargs: { enable_thinking: true } } as object),
    });
    let reasoning = '';
    let content = '';
    let usage: OpenAI.CompletionUsage | null | undefined;
    const finishes: (string | null)[] = [];
    for await (const chunk of stream) {
      for (const choice of chunk.choices) {
        reasoning += (choice.delta as any).reasoning_content ?? '';
        content += choice.delta.content ?? '';
        if (choice.finish_reason) finishes.push(choice.finish_reason);
      }
      if (chunk.usage) usage = chunk.usage;
    }
    expect(reasoning).toBe(REASONING);
    expect(content).toBe(ANSWER);
    expect(finishes).toEqual(['stop']);
    expect(usage!.completion_tokens_details!.reasoning_tokens).toBeGreaterThan(10);
    expect(usage!.prompt_tokens_details!.cached_tokens).toBeGreaterThanOrEqual(0);
  });

  it('Should accept tools and render them into the prompt', async () => {
    const messages: OpenAI.Chat.ChatCompletionMessageParam[] = [{ role: 'user', content: 'weather in Paris? /no_think' }];
    const completion = await client.chat.completions.create({ model: MODEL, messages, tools: TOOLS, tool_choice: 'auto' });
    expect(completion.choices[0].message.content).toBe(ANSWER);
    const tokenized = await (await fetch(new URL('/tokenize', baseURL), {
      method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${apiKey}` }, body: JSON.stringify({ model: MODEL, messages, tools: TOOLS }),
    })).json() as { count: number; tokens: number[] };
    expect(completion.usage!.prompt_tokens).toBe(tokenized.count);
    const detok = await (await fetch(new URL('/detokenize', baseURL), {
      method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${apiKey}` }, body: JSON.stringify({ model: MODEL, tokens: tokenized.tokens }),
    })).json() as { prompt: string };
    expect(detok.prompt).toContain('<tools>\n{"type": "function", "function": {"name": "get_weather"');
  });

  it('Should serve legacy completions and list the model', async () => {
    const completion = await client.completions.create({ model: MODEL, prompt: '<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n', max_tokens: 3 });
    expect(completion.choices[0].text).toBe('Hello! I');
    const models = await client.models.list();
    expect(models.data.map((m) => m.id)).toEqual([MODEL]);
  });

  it('Should raise BadRequestError with param, and NotFoundError for an unknown model', async () => {
    const bad = await client.chat.completions.create({ model: MODEL, messages: [], temperature: 1 }).catch((e: unknown) => e);
    expect(bad).toBeInstanceOf(BadRequestError);
    expect((bad as BadRequestError).param).toBe('messages');
    const tooLong = await client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'hi' }], max_completion_tokens: 50_000 }).catch((e: unknown) => e);
    expect(tooLong).toBeInstanceOf(BadRequestError);
    expect((tooLong as BadRequestError).code).toBe('context_length_exceeded');
    const missing = await client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] }).catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(NotFoundError);
    expect((missing as NotFoundError).code).toBe('model_not_found');
  });

  it('Should abort the worker request as soon as the client aborts the stream (edge in workerd)', async () => {
    // a slow stub worker (one token per 50 ms) behind the bundled edge run by Miniflare: no dev proxy in between
    let closedEarly = 0;
    let served = 0;
    const server = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.on('close', () => !res.writableFinished && closedEarly++);
        const timer = setInterval(() => {
          if (served++ > 200) res.end();
          else res.write(`data: ${JSON.stringify({ tokens: [1_700] })}\n\n`);
        }, 50);
        res.on('close', () => clearInterval(timer));
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const toml = readFileSync('wrangler.toml', 'utf8');
    // the app without the accounts layer: this test is about abort propagation, and needs no KV/DO/D1 bindings
    const bundle = await build({
      stdin: { contents: "import { createApp } from './edge/app.ts'; export default createApp();", resolveDir: process.cwd(), loader: 'ts' },
      bundle: true, format: 'esm', platform: 'neutral', target: 'es2022', write: false,
      conditions: ['workerd', 'worker', 'browser'], mainFields: ['module', 'main'], external: ['node:*', 'cloudflare:*'],
      loader: { '.bin': 'binary' }, // the tokenizer image (a Data module under wrangler)
    });
    const mf = new Miniflare({
      modules: true, script: bundle.outputFiles[0].text, host: '127.0.0.1', port: 0,
      compatibilityDate: /compatibility_date\s*=\s*"([^"]+)"/.exec(toml)![1], compatibilityFlags: ['nodejs_compat'],
      bindings: { MODEL_ID: MODEL, WORKER_URLS: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, WORKER_SECRET: 'unchecked' },
    });
    try {
      const slow = new OpenAI({ baseURL: new URL('/v1', await mf.ready).toString(), apiKey: 'x', maxRetries: 0 });
      const stream = await slow.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'hi' }], stream: true, reasoning_effort: 'none' });
      let chunks = 0;
      for await (const _ of stream) if (++chunks === 3) break; // leaving the loop aborts the SDK's request
      const abortedAt = served;
      const deadline = Date.now() + 2_000;
      while (closedEarly === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      expect(closedEarly).toBe(1);
      expect(served - abortedAt).toBeLessThan(10); // gone within ~0.5 s, long before the 200 tokens
    } finally {
      await mf.dispose();
      server.closeAllConnections();
      server.close();
    }
  });

  it('Should raise a worker dying mid-stream as an APIError from the stream', async () => {
    // a stub worker that sends one token and dies, behind the same app in-process (SDK → app.fetch)
    const server = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write(`data: ${JSON.stringify({ tokens: [9707] })}\n\n`);
        setTimeout(() => res.destroy(), 20);
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const stubUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const app = createApp();
    const inProcess = new OpenAI({
      baseURL: 'http://edge.test/v1', apiKey: 'x', maxRetries: 0,
      fetch: (input, init) => Promise.resolve(app.request(new Request(input as string, init as RequestInit), undefined, { WORKER_URLS: stubUrl, WORKER_SECRET: 'unchecked', MODEL_ID: MODEL })),
    });
    try {
      const stream = await inProcess.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'hi' }], stream: true, reasoning_effort: 'none' });
      let content = '';
      const failure = await (async () => {
        for await (const chunk of stream) content += chunk.choices[0]?.delta.content ?? '';
      })().catch((e: unknown) => e);
      expect(content).toBe('Hello');
      expect(failure).toBeInstanceOf(APIError);
      expect((failure as APIError).message).toMatch(/failed mid-stream/);
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });
});
