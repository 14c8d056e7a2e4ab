/**
 * Test helper: starts the real GPU worker process (`node --import tsx gpu-worker/index.ts`) on loopback with the CPU
 * engine and a tiny random checkpoint written by the native CLI, and talks to it the way the edge does (signed
 * POST /v1/generate, SSE parsing). Not a test file itself.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { QWEN3_TOKENIZER_JSON } from '../../gpu-worker/grammar-pool.ts';
import { parseMetrics } from '../../gpu-worker/metrics.ts';
import type { ErrorBody, GenerateEvent, GenerateRequestInput } from '../../gpu-worker/protocol.ts';
import { signRequest } from '../../gpu-worker/signing.ts';

export const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const SECRET = 'test-secret-0123456789';
const cli = join(root, 'native', 'build', 'qwen3');

/**
 * A checkpoint of the given preset, written once per machine into os.tmpdir() (atomic rename: files may race). The
 * demo preset ships Qwen3's tokenizer.json (structured outputs need it); the tiny one has no matching tokenizer.
 */
export function demoModel(preset: 'tiny' | 'demo'): string {
  const dir = join(tmpdir(), `q3-worker-test-${preset}`);
  if (existsSync(join(dir, preset === 'demo' ? 'tokenizer.json' : 'config.json'))) return dir;
  if (existsSync(join(dir, 'config.json'))) {          // written before checkpoints shipped a tokenizer
    const partial = join(dir, `tokenizer.json.${process.pid}`);
    copyFileSync(QWEN3_TOKENIZER_JSON, partial);
    renameSync(partial, join(dir, 'tokenizer.json'));
    return dir;
  }
  if (!existsSync(cli)) throw new Error(`${cli} is missing: run node scripts/build-native.mjs`);
  const tmp = mkdtempSync(join(tmpdir(), `q3-worker-test-${preset}-`));
  const tokenizer = preset === 'demo' ? ['--tokenizer', QWEN3_TOKENIZER_JSON] : [];
  const r = spawnSync(cli, ['make-demo-model', '--preset', preset, '--out', tmp, ...tokenizer], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`make-demo-model failed: ${r.stderr}`);
  try {
    renameSync(tmp, dir);
  } catch {
    rmSync(tmp, { recursive: true, force: true });   // another file won the race
  }
  return dir;
}

export interface Worker {
  url: string;
  proc: ChildProcess;
  log: () => string;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Spawns a worker and resolves once it prints its ready line. */
export async function startWorker(env: Record<string, string> = {}, preset: 'tiny' | 'demo' = 'tiny'): Promise<Worker> {
  const proc = spawn(process.execPath, ['--import', 'tsx', 'gpu-worker/index.ts'], {
    cwd: root,
    env: {
      ...process.env, MODEL_DIR: demoModel(preset), PORT: '0', HOST: '127.0.0.1', WORKER_SECRET: SECRET,
      DEVICE: 'cpu', THREADS: '1', ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  const url = await new Promise<string>((res, rej) => {
    const onData = (d: Buffer) => {
      output += d.toString();
      const m = /worker ready on (http:\/\/\S+)/.exec(output);
      if (m) res(m[1]);
    };
    proc.stdout!.on('data', onData);
    proc.stderr!.on('data', onData);
    proc.once('exit', (code) => rej(new Error(`worker exited (${code}) before ready:\n${output}`)));
  });
  return {
    url, proc, log: () => output,
    async stop(signal = 'SIGTERM') {
      if (proc.exitCode === null) proc.kill(signal);
      return exited;
    },
  };
}

/** fetch with the edge's HMAC headers. */
export async function signedFetch(url: string, path: string, body: string, init: RequestInit = {}, secret = SECRET) {
  const headers = { 'content-type': 'application/json', ...(await signRequest(secret, { method: 'POST', path, body })) };
  return fetch(url + path, { method: 'POST', body, ...init, headers: { ...headers, ...(init.headers ?? {}) } });
}

/** Splits an SSE body into events. */
export function parseSSE(text: string): { event: string; data: string }[] {
  return text.split('\n\n').filter((b) => b.trim()).map((block) => {
    let event = 'message';
    const data: string[] = [];
    for (const line of block.split('\n')) {
      if (line.startsWith('event: ')) event = line.slice(7);
      else if (line.startsWith('data: ')) data.push(line.slice(6));
    }
    return { event, data: data.join('\n') };
  });
}

export interface Generated {
  status: number;
  tokens: number[];
  events: GenerateEvent[];
  final?: GenerateEvent;
  error?: ErrorBody;
  headers: Headers;
  ttftMs?: number;             // from sending the request to the first frame carrying a token
  firstTokenAt?: number;       // performance.now() when that frame arrived
  doneAt: number;              // performance.now() when the body ended
}

/** One POST /v1/generate read to the end as it streams (frames timed as they arrive). */
export async function generate(w: Worker, body: Partial<GenerateRequestInput> & Record<string, unknown>): Promise<Generated> {
  const t0 = performance.now();
  const res = await signedFetch(w.url, '/v1/generate', JSON.stringify({ request_id: 'r', ...body }));
  if (!res.headers.get('content-type')?.startsWith('text/event-stream')) {
    return { status: res.status, tokens: [], events: [], error: JSON.parse(await res.text()), headers: res.headers, doneAt: performance.now() };
  }
  const out: Generated = { status: res.status, tokens: [], events: [], headers: res.headers, doneAt: 0 };
  const decoder = new TextDecoder();
  let text = '';
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    text += decoder.decode(chunk, { stream: true });
    const end = text.lastIndexOf('\n\n');
    if (end < 0) continue;
    for (const e of parseSSE(text.slice(0, end))) {
      if (e.event === 'error') {
        out.error = JSON.parse(e.data);
        continue;
      }
      const event: GenerateEvent = JSON.parse(e.data);
      out.events.push(event);
      out.tokens.push(...event.tokens);
      if (event.tokens.length && out.firstTokenAt === undefined) {
        out.firstTokenAt = performance.now();
        out.ttftMs = out.firstTokenAt - t0;
      }
    }
    text = text.slice(end + 2);
  }
  out.final = out.events.find((e) => e.finish_reason);
  out.doneAt = performance.now();
  return out;
}

export async function metrics(w: Worker): Promise<Map<string, number>> {
  return parseMetrics(await (await fetch(`${w.url}/metrics`)).text());
}

/** A deterministic prompt of `n` token ids below `vocab`. */
export function prompt(n: number, seed: number, vocab = 1000): number[] {
  return Array.from({ length: n }, (_, i) => (seed * 7919 + i * 104729 + ((i * i) % 97)) % vocab);
}
