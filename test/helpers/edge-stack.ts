/**
 * Test helper: the edge in workerd exactly as deployed, without wrangler dev's proxy in front: edge/index.ts bundled
 * by esbuild (as wrangler does) and run by Miniflare with the bindings wrangler derives from wrangler.toml (the
 * accounts layer with local KV, Durable Objects, D1 and Cache, the compatibility date and flags), pointed at the
 * given worker URLs. wrangler dev's proxy is left out on purpose: it answers "503 Your worker restarted mid-request"
 * for any failed connection to the worker behind it, which would hide what the edge itself did. Plus what tests do
 * through the admin API (create keys, read a key's usage records and in-flight count, the edge's view of its
 * workers) and a client that reads an answer streamed or not, aborting it part way if asked. Not a test file.
 */
import { build } from 'esbuild';
import { request, type IncomingMessage } from 'node:http';
import { Log, LogLevel, Miniflare } from 'miniflare';
import { unstable_getMiniflareWorkerOptions } from 'wrangler';

export const ADMIN_TOKEN = 'adm-test-stack-token';
export const MODEL = 'qwen3-8b-awq';

export type Json = Record<string, any>;

export interface EdgeStack {
  url: string;
  createKey(tenant: string, limits?: Json): Promise<{ key: string; id: string }>;
  usageRecords(keyId: string): Promise<Json[]>;
  key(keyId: string): Promise<Json>;
  workers(): Promise<Json[]>;
  dispose(): Promise<void>;
}

let bundled: Promise<string> | undefined;

/** edge/index.ts as one ES module, bundled once per test file. */
function edgeBundle(): Promise<string> {
  bundled ??= build({
    entryPoints: ['edge/index.ts'], bundle: true, format: 'esm', platform: 'neutral', target: 'es2022', write: false,
    conditions: ['workerd', 'worker', 'browser'], mainFields: ['module', 'main'], external: ['node:*', 'cloudflare:*'],
    loader: { '.bin': 'binary' }, // the tokenizer image (a Data module under wrangler)
  }).then((out) => out.outputFiles[0].text);
  return bundled;
}

/** Starts the edge; `vars` override wrangler.toml's [vars] (REQUEST_TIMEOUT_MS, MAX_GENERATIONS_PER_REQUEST, …). */
export async function startEdge(workerUrls: string[], secret: string, vars: Record<string, string> = {}): Promise<EdgeStack> {
  const { workerOptions } = unstable_getMiniflareWorkerOptions('wrangler.toml');
  const mf = new Miniflare({
    ...(workerOptions as object),
    name: 'qwen3-edge',
    modules: true,
    script: await edgeBundle(),
    bindings: { ...workerOptions.bindings, WORKER_URLS: workerUrls.join(','), WORKER_SECRET: secret, ADMIN_TOKEN, ...vars },
    host: '127.0.0.1',
    port: 0,
    // EDGE_LOG=1 shows the edge's console output
    log: new Log(process.env.EDGE_LOG ? LogLevel.DEBUG : LogLevel.WARN),
  } as ConstructorParameters<typeof Miniflare>[0]);
  const url = new URL(await mf.ready).origin;
  const admin = (path: string, init: RequestInit = {}) =>
    fetch(url + path, { ...init, headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json', ...(init.headers ?? {}) } });
  return {
    url,
    async createKey(tenant, limits) {
      const res = await admin('/admin/keys', { method: 'POST', body: JSON.stringify({ tenant, name: tenant, limits }) });
      if (res.status !== 201) throw new Error(`creating a key failed: ${res.status} ${await res.text()}`);
      const { key, id } = (await res.json()) as Json;
      return { key, id };
    },
    async usageRecords(keyId) {
      const records: Json[] = [];
      let after = '';
      for (;;) {
        const page = (await (await admin(`/admin/usage?key_id=${keyId}&limit=1000${after ? `&after=${after}` : ''}`)).json()) as Json;
        records.push(...page.data);
        if (!page.next_cursor) return records;
        after = page.next_cursor;
      }
    },
    key: async (keyId) => (await (await admin(`/admin/keys/${keyId}`)).json()) as Json,
    workers: async () => ((await (await admin('/admin/workers')).json()) as Json).data,
    dispose: () => mf.dispose(),
  };
}

/** One request's answer as the client saw it: streamed (SSE) or not, possibly aborted part way. */
export interface Answer {
  status: number;
  requestId: string | null;
  retryAfter: string | null;
  /** chat: reasoning_content; legacy completions: '' */
  reasoning: string;
  /** chat: content; legacy completions: text */
  content: string;
  finish: string | null;
  usage: Json | null;
  /** the error body (non-2xx) or the error frame (mid-stream) */
  error: Json | null;
  /** the stream ended with [DONE] */
  done: boolean;
  /** the client gave up (abortAfterMs / abortAfterFrames / signal) */
  aborted: boolean;
  /** data frames read */
  frames: number;
  /** ms from sending to the first data frame (streams) or to the answer */
  ttftMs: number | null;
}

export type SendOptions = {
  headers?: Record<string, string>;
  abortAfterMs?: number;
  abortAfterFrames?: number;
  signal?: AbortSignal;
  /** called after each data frame of a stream */
  onFrame?: (answer: Answer) => void;
};

/**
 * Sends one request and reads its answer to the end (or until the client aborts it). Each request has a connection
 * of its own (node:http without keep-alive), so no request meets a pooled connection the server has just closed.
 */
export async function send(url: string, key: string, path: string, body: unknown, options: SendOptions = {}): Promise<Answer> {
  const controller = new AbortController();
  const timer = options.abortAfterMs === undefined ? undefined : setTimeout(() => controller.abort(), options.abortAfterMs);
  options.signal?.addEventListener('abort', () => controller.abort(), { once: true });
  const answer: Answer = {
    status: 0, requestId: null, retryAfter: null, reasoning: '', content: '', finish: null, usage: null, error: null,
    done: false, aborted: false, frames: 0, ttftMs: null,
  };
  const t0 = performance.now();
  const payload = typeof body === 'string' ? body : JSON.stringify(body);
  try {
    const res = await new Promise<IncomingMessage>((resolve, reject) => {
      const req = request(url + path, {
        method: 'POST', agent: false, signal: controller.signal,
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload), ...options.headers },
      }, resolve);
      req.on('error', reject);
      req.end(payload);
    });
    const header = (name: string) => (res.headers[name] as string | undefined) ?? null;
    Object.assign(answer, { status: res.statusCode ?? 0, requestId: header('x-request-id'), retryAfter: header('retry-after') });
    res.setEncoding('utf8');
    if (!header('content-type')?.startsWith('text/event-stream')) {
      let text = '';
      for await (const chunk of res) text += chunk;
      answer.ttftMs = performance.now() - t0;
      let json: Json;
      try {
        json = JSON.parse(text) as Json;
      } catch {
        json = { error: { message: text.slice(0, 200), type: 'not_json', param: null, code: null } }; // not the edge's answer
      }
      if (json.error) answer.error = json;
      const choice = json.choices?.[0];
      answer.reasoning = choice?.message?.reasoning_content ?? '';
      answer.content = choice?.message?.content ?? choice?.text ?? '';
      answer.finish = choice?.finish_reason ?? null;
      answer.usage = json.usage ?? null;
      return answer;
    }
    let buffer = '';
    for await (const chunk of res) {
      buffer += chunk;
      let end: number;
      while ((end = buffer.indexOf('\n\n')) !== -1) {
        const data = buffer.slice(0, end).split('\n').filter((l) => l.startsWith('data: ')).map((l) => l.slice(6)).join('\n');
        buffer = buffer.slice(end + 2);
        if (!data) continue;
        answer.frames++;
        answer.ttftMs ??= performance.now() - t0;
        if (data === '[DONE]') {
          answer.done = true;
          continue;
        }
        const frame = JSON.parse(data) as Json;
        if (frame.error) answer.error = frame;
        if (frame.usage) answer.usage = frame.usage;
        for (const choice of frame.choices ?? []) {
          answer.reasoning += choice.delta?.reasoning_content ?? '';
          answer.content += choice.delta?.content ?? choice.text ?? '';
          answer.finish = choice.finish_reason ?? answer.finish;
        }
        options.onFrame?.(answer);
        if (options.abortAfterFrames !== undefined && answer.frames >= options.abortAfterFrames) controller.abort();
      }
    }
  } catch (err) {
    if (!controller.signal.aborted) throw err;
  } finally {
    clearTimeout(timer);
  }
  answer.aborted = controller.signal.aborted;
  return answer;
}
