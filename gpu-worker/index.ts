/**
 * @module Process entry of the GPU worker: reads the environment, starts listening at once (so /health answers
 * during the load), loads the engine, then serves until SIGTERM/SIGINT drains it. Every variable is listed in
 * ENV below and in gpu-worker/Dockerfile.
 */
import { serve } from '@hono/node-server';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadEngine, type Device, type WorkerEngine } from './engine.ts';
import { GrammarPool, QWEN3_TOKENIZER_JSON } from './grammar-pool.ts';
import { FleetHeartbeat, type MemberReport } from './heartbeat.ts';
import { createApp, type WorkerState } from './http.ts';
import { KvBlocks } from './kv-blocks.ts';
import { WorkerMetrics } from './metrics.ts';
import { Scheduler } from './scheduler.ts';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const env = process.env;
function fail(message: string): never {
  console.error(`[worker] ${message}`);
  process.exit(2);
}
/** A non-negative integer (or, for YARN_FACTOR, number) from the environment; exits on anything else. */
function num(name: string, fallback: number, integer = true): number {
  const raw = env[name];
  if (!raw) return fallback;
  const value = Number(raw);
  if (!(value >= 0) || (integer && !Number.isInteger(value))) fail(`invalid ${name}='${raw}': expected a non-negative ${integer ? 'integer' : 'number'}`);
  return value;
}
const int = (name: string, fallback: number) => num(name, fallback);

/** Configuration, with defaults. */
const ENV = {
  modelDir: env.MODEL_DIR ?? '',                         // checkpoint dir; unset = .models/demo, created on first run
  host: env.HOST ?? '127.0.0.1',
  port: int('PORT', 8790),                               // 0 = any free port (printed in the ready line)
  secret: env.WORKER_SECRET ?? '',                       // HMAC secret shared with the edge
  insecure: env.WORKER_INSECURE === '1',                 // accept unsigned requests (local dev only)
  device: (env.DEVICE ?? 'auto') as Device,              // auto | cpu | cuda
  threads: int('THREADS', 0),                            // CPU threads; 0 = all cores
  kvCacheMiB: int('KV_CACHE_MIB', 0),                    // KV pool size; 0 = engine default
  maxContext: int('MAX_CONTEXT', 0),                     // tokens per sequence; 0 = model's
  maxBatch: int('MAX_BATCH', 64),                        // sequences per step
  maxQueue: int('MAX_QUEUE', 256),                       // waiting requests before 503
  maxQueuePerTenant: int('MAX_QUEUE_PER_TENANT', 0),     // waiting requests of one tenant before 503; 0 = MAX_QUEUE / 2
  prefillChunk: int('PREFILL_CHUNK', 256),               // tokens per step (decode + prefill chunks)
  // prefill tokens one sequence may take per step; unset = PREFILL_CHUNK / 4, 0 = no cap (PREFILL_CHUNK)
  prefillPerRequest: env.PREFILL_PER_REQUEST ? int('PREFILL_PER_REQUEST', 0) : undefined,
  prefixCache: env.PREFIX_CACHE !== '0',                 // PREFIX_CACHE=0 turns the prefix cache off
  graceMs: int('SHUTDOWN_GRACE_MS', 30_000),             // drain time on SIGTERM before cancelling streams
  yarnFactor: num('YARN_FACTOR', 0, false),              // > 0 turns YaRN on (Qwen: 4 for 131072 tokens)
  grammarThreads: int('GRAMMAR_THREADS', 1),             // threads compiling grammars and filling token masks
  grammarTimeoutMs: int('GRAMMAR_COMPILE_TIMEOUT_MS', 30_000),   // longer compilations are refused with 400
  edgeUrl: env.EDGE_URL ?? '',                           // fleet membership: heartbeats to this edge; unset = none
  publicUrl: env.PUBLIC_URL ?? '',                       // where the edge reaches this worker; unset = http://HOST:PORT
};

const log = (msg: string) => console.log(`[worker] ${msg}`);
/** idle keep-alive connections are closed after this long (ms) */
const KEEP_ALIVE_MS = 75_000;
/** request ids logged of those that arrived after the worker left the fleet */
const LATE_IDS_LOGGED = 100;

/** MODEL_DIR, or the demo checkpoint (with Qwen3's tokenizer.json) written once by the native CLI. */
function modelDirectory(): string {
  if (ENV.modelDir) return resolve(ENV.modelDir);
  const dir = join(root, '.models', 'demo');
  if (!existsSync(join(dir, 'tokenizer.json'))) {
    log(`MODEL_DIR unset: writing the demo checkpoint to ${dir}`);
    const cli = join(root, 'native', 'build', 'qwen3');
    const args = ['make-demo-model', '--preset', 'demo', '--out', dir, '--tokenizer', QWEN3_TOKENIZER_JSON];
    const r = spawnSync(cli, args, { stdio: 'inherit' });
    if (r.status !== 0) throw new Error(`${cli} make-demo-model failed (exit ${r.status ?? r.error?.message})`);
  }
  return dir;
}

function progressLogger(): (stage: string, fraction: number) => void {
  let last = '';
  return (stage, fraction) => {
    if (state.scheduler) return;              // late callbacks can arrive after load() resolved
    state.load = { stage, fraction };
    const line = `${stage} ${Math.floor(fraction * 10) * 10}%`;
    if (line !== last) log(`loading: ${line}`);
    last = line;
  };
}

if (!['auto', 'cpu', 'cuda'].includes(ENV.device)) fail(`invalid DEVICE '${ENV.device}': expected auto, cpu or cuda`);
if (ENV.maxBatch < 1 || ENV.prefillChunk < 1) fail('MAX_BATCH and PREFILL_CHUNK must be at least 1');
if (!ENV.secret && !ENV.insecure) fail('WORKER_SECRET is required (or WORKER_INSECURE=1 for local development)');
if (ENV.edgeUrl && !ENV.secret) fail('EDGE_URL needs WORKER_SECRET: heartbeats are signed with it');
if (ENV.edgeUrl && !ENV.publicUrl && ['0.0.0.0', '::', ''].includes(ENV.host)) {
  fail(`EDGE_URL needs PUBLIC_URL when HOST is ${ENV.host || 'empty'}: the edge must be told an address it can reach`);
}
for (const [name, value] of [['EDGE_URL', ENV.edgeUrl], ['PUBLIC_URL', ENV.publicUrl]]) {
  if (value && !URL.canParse(value)) fail(`invalid ${name}='${value}': expected a URL such as http://10.0.0.5:8790`);
}
const modelDir = modelDirectory();
const metrics = new WorkerMetrics();
const state: WorkerState = {
  modelName: basename(modelDir), metrics, secret: ENV.secret || null, load: { stage: 'starting', fraction: 0 },
};
let heartbeat: FleetHeartbeat | undefined;
let stopping = false;
/**
 * SIGTERM: leave the fleet first (one `draining` heartbeat), keep serving for as long as the edge says its isolates
 * may still route here, then stop admitting and let in-flight streams finish for up to SHUTDOWN_GRACE_MS.
 */
async function shutdown(signal: string): Promise<void> {
  if (stopping) return;
  stopping = true;
  state.leaving = true;
  state.arrivedAfterLeaving = [];
  const serveMs = (await heartbeat?.leave()) ?? 0;
  if (!state.scheduler) process.exit(0);      // still loading: nothing in flight
  if (serveMs > 0) {
    log(`${signal}: left the fleet; serving ${serveMs} ms more while edges re-read membership`);
    await new Promise((r) => setTimeout(r, serveMs));
    const late = state.arrivedAfterLeaving;
    const shown = late.slice(0, LATE_IDS_LOGGED).join(', ') + (late.length > LATE_IDS_LOGGED ? ', …' : '');
    log(`${late.length} requests arrived after leaving the fleet${late.length > 0 ? ` (routed on older views): ${shown}` : ''}`);
  }
  log(`${signal}: draining (grace ${ENV.graceMs} ms)`);
  const refused = metrics.rejected;
  await state.scheduler.shutdown(ENV.graceMs);
  state.grammars?.close();
  await new Promise<void>((r) => server.close(() => r()));
  engine?.free();
  log(`stopped (${metrics.rejected - refused} requests refused while draining)`);
  process.exit(0);
}

/** What each heartbeat reports (zeros while loading). */
function memberReport(): MemberReport {
  const g = state.scheduler?.gauges();
  return {
    model: state.modelName, max_context: state.info?.maxContext ?? null, max_batch: ENV.maxBatch,
    kv_blocks_free: g ? g.kvBlocksTotal - g.kvBlocksUsed : 0, kv_blocks_total: g?.kvBlocksTotal ?? 0,
    running: g?.running ?? 0, waiting: g?.waiting ?? 0,
  };
}
process.on('SIGTERM', () => void shutdown('SIGTERM'));
process.on('SIGINT', () => void shutdown('SIGINT'));

const server = serve({ fetch: createApp(state).fetch, hostname: ENV.host, port: ENV.port });
// Idle keep-alive connections stay open longer than the edge's pool keeps them (Node's default is 5 s), so the edge
// is the side that closes them: a connection closed here while the edge sends a request on it loses that request.
(server as import('node:http').Server).keepAliveTimeout = KEEP_ALIVE_MS;
(server as import('node:http').Server).headersTimeout = KEEP_ALIVE_MS + 1_000;
await new Promise<void>((r) => server.once('listening', () => r()));
const address = server.address();
const url = `http://${ENV.host}:${typeof address === 'object' && address ? address.port : ENV.port}`;
log(`listening on ${url} (loading ${modelDir})`);
if (ENV.edgeUrl) {
  heartbeat = new FleetHeartbeat({ edgeUrl: ENV.edgeUrl, publicUrl: (ENV.publicUrl || url).replace(/\/+$/, ''), secret: ENV.secret, report: memberReport, log });
  heartbeat.start();
}

let engine: WorkerEngine | undefined;
try {
  engine = await loadEngine(modelDir, {
    device: ENV.device, threads: ENV.threads, kvCacheMiB: ENV.kvCacheMiB || undefined,
    maxContext: ENV.maxContext || undefined, yarnFactor: ENV.yarnFactor, onProgress: progressLogger(),
  });
} catch (error) {
  state.failed = `model load failed: ${(error as Error).message}`;
  console.error(`[worker] ${state.failed}`);
  server.close();
  process.exit(1);
}
const info = engine.info();
const kv = new KvBlocks(engine, info.kvBlockSize, info.kvBlocks, ENV.prefixCache);
state.info = info;
const tokenizerPath = join(modelDir, 'tokenizer.json');
if (existsSync(tokenizerPath)) {
  state.grammars = new GrammarPool({
    tokenizerPath, vocabSize: info.vocabSize, stopIds: info.eosIds, threads: ENV.grammarThreads,
    compileTimeoutMs: ENV.grammarTimeoutMs, maxRows: ENV.maxBatch,
  });
  state.grammars.warm();
}
const scheduling = {
  maxBatch: ENV.maxBatch, maxQueue: ENV.maxQueue, maxQueuePerTenant: ENV.maxQueuePerTenant || Math.ceil(ENV.maxQueue / 2),
  prefillChunk: ENV.prefillChunk, prefillPerRequest: (ENV.prefillPerRequest ?? Math.ceil(ENV.prefillChunk / 4)) || ENV.prefillChunk,
};
state.scheduler = new Scheduler(engine, kv, metrics, { ...scheduling, maxContext: info.maxContext, eosIds: info.eosIds });
state.maxBatch = scheduling.maxBatch;
state.load = { stage: 'ready', fraction: 1 };
heartbeat?.ready();
log(`engine: ${info.device}; ${info.layers} layers, vocab ${info.vocabSize}, context ${info.maxContext}, ` +
  `KV ${info.kvBlocks} blocks x ${info.kvBlockSize} tokens, prefix cache ${ENV.prefixCache ? 'on' : 'off'}, ` +
  `structured outputs ${state.grammars ? `on (${ENV.grammarThreads} grammar thread(s))` : 'off (no tokenizer.json)'}`);
log(`scheduler: ${scheduling.prefillChunk} tokens per step, prefill <= ${scheduling.prefillPerRequest} per request, ` +
  `batch ${scheduling.maxBatch}, queue ${scheduling.maxQueue} (${scheduling.maxQueuePerTenant} per tenant)`);
log(`ready ${(performance.now() / 1000).toFixed(2)} s after process start`);   // performance.now(): ms since start
console.log(`worker ready on ${url}`);
