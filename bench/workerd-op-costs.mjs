#!/usr/bin/env node
// What one runtime operation costs in workerd: a Worker (run by Miniflare, as the edge is) repeats each operation the
// edge does per request N times inside one request, and the workerd process's CPU over that request (every thread,
// from /proc), less the same request with an empty loop, is divided by N. Operations whose work finishes on the event
// loop (a timer, a Durable Object call, a subtle-crypto promise) are awaited one at a time, as a request would.
// Rounds rotate the order; the table gives the median over rounds, µs per operation. Writes
// bench/results/<name>.{md,json}.
//
//   node bench/workerd-op-costs.mjs [--rounds 7] [--n 2000] [--name workerd-op-costs]
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Miniflare } from 'miniflare';
import { median, option } from './bench-args.mjs';
import { newestWorkerdChild, processCpuNs } from './workerd-process.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const ROUNDS = Number(option('rounds', 7));
const N = Number(option('n', 2000));
const NAME = option('name', 'workerd-op-costs');

/** name -> [what it is, the loop body (`i` is the index; may await)] */
const OPS = {
  'empty loop': ['the loop alone (subtracted from the others)', ''],
  'await Promise.resolve()': ['one microtask turn', 'await Promise.resolve();'],
  'async call + await': ['an async function called and awaited', 'await asyncNoop(i);'],
  'Headers.get': ["the request's authorization header", "sink ^= request.headers.get('authorization').length;"],
  'new Headers + 3 set': ['a worker request\'s headers', "const h = new Headers(); h.set('content-type', 'application/json'); h.set('x-a', 'b'); h.set('x-c', 'd'); sink ^= h.has('x-a') ? 1 : 0;"],
  'crypto.randomUUID': ['a lease id', 'sink ^= crypto.randomUUID().length;'],
  'getRandomValues(12) + hex': ['a request id', "sink ^= hex(crypto.getRandomValues(new Uint8Array(12))).length;"],
  'subtle.digest SHA-256': ["an API key's hash (a 48-byte key)", "sink ^= (await crypto.subtle.digest('SHA-256', keyBytes)).byteLength;"],
  'subtle.sign HMAC': ['a worker request signature (200-byte body)', "sink ^= (await crypto.subtle.sign('HMAC', hmacKey, bodyBytes)).byteLength;"],
  'AbortController + listener': ['an abort controller, a listener added and removed', "const a = new AbortController(); const f = () => {}; a.signal.addEventListener('abort', f); a.signal.removeEventListener('abort', f);"],
  'setTimeout + clearTimeout': ['a timer armed and cancelled', 'clearTimeout(setTimeout(noop, 60000));'],
  'timer that fires (0 ms)': ['a 0 ms timer awaited', 'await new Promise((r) => setTimeout(r, 0));'],
  'waitUntil': ['a resolved promise handed to waitUntil', 'ctx.waitUntil(Promise.resolve());'],
  'TextEncoder.encode': ['200 characters to bytes', 'sink ^= encoder.encode(bodyText).length;'],
  'JSON.parse chat body': ["the benchmark's chat request", 'sink ^= JSON.parse(chatText).messages.length;'],
  'new Response + ReadableStream': ['an SSE response body of JavaScript\'s', "const s = new ReadableStream({ start(c) { c.enqueue(chunk); c.close(); } }); sink ^= new Response(s, { headers: { 'content-type': 'text/event-stream' } }).status;"],
  'DO stub get': ['a Durable Object stub from an id', 'sink ^= env.OBJ.get(objId) ? 1 : 0;'],
  'DO RPC call': ["a call to a Durable Object in the same process, awaited", 'sink ^= await stub.ping(i);'],
};

const SCRIPT = `
import { DurableObject } from 'cloudflare:workers';
export class Obj extends DurableObject { ping(i) { return i & 1; } }
const noop = () => {};
async function asyncNoop(i) { return i; }
const encoder = new TextEncoder();
const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
const bodyText = 'x'.repeat(200);
const bodyBytes = encoder.encode(bodyText);
const keyBytes = encoder.encode('sk-' + 'a'.repeat(45));
const chatText = JSON.stringify({ model: 'qwen3-8b-awq', messages: [{ role: 'system', content: 'You are a helpful assistant.' }, { role: 'user', content: 'hi' }], stream: true, chat_template_kwargs: { enable_thinking: true } });
const chunk = encoder.encode('data: {}\\n\\n');
let hmacKey;
let sink = 0;
const OPS = {
${Object.entries(OPS).map(([name, [, body]]) => `  ${JSON.stringify(name)}: async (n, request, env, ctx, stub, objId) => { for (let i = 0; i < n; i++) { ${body} } },`).join('\n')}
};
export default {
  async fetch(request, env, ctx) {
    hmacKey ??= await crypto.subtle.importKey('raw', encoder.encode('secret'), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
    const url = new URL(request.url);
    const objId = env.OBJ.idFromName('bench');
    const stub = env.OBJ.get(objId);
    await stub.ping(0);
    await OPS[url.searchParams.get('op')](Number(url.searchParams.get('n')), request, env, ctx, stub, objId);
    return new Response(String(sink));
  },
};
`;

const mf = new Miniflare({
  modules: true, script: SCRIPT, host: '127.0.0.1', port: 0, compatibilityDate: '2026-04-01',
  durableObjects: { OBJ: 'Obj' },
});
const url = (await mf.ready).toString();
const pid = newestWorkerdChild();

/** CPU of one request running `op` n times (ns) */
async function cpuOf(op, n) {
  const from = processCpuNs(pid);
  const res = await fetch(`${url}?op=${encodeURIComponent(op)}&n=${n}`, { headers: { authorization: 'Bearer sk-bench' } });
  await res.text();
  if (!res.ok) throw new Error(`${op}: ${res.status}`);
  return processCpuNs(pid) - from;
}

const names = Object.keys(OPS);
for (const name of names) await cpuOf(name, N); // warm-up: compile every loop
const samples = Object.fromEntries(names.map((n) => [n, []]));
for (let round = 0; round < ROUNDS; round++) {
  const order = names.map((_, i) => names[(i + round) % names.length]);
  for (const name of order) samples[name].push(await cpuOf(name, N));
}
await mf.dispose();

const empty = median(samples['empty loop']);
const rows = names.filter((n) => n !== 'empty loop').map((name) => {
  const perOp = samples[name].map((ns) => (ns - empty) / N / 1000);
  return { op: name, what: OPS[name][0], us: +median(perOp).toFixed(3), min: +Math.min(...perOp).toFixed(3), max: +Math.max(...perOp).toFixed(3) };
});
const date = new Date().toISOString();
const machine = `${os.cpus()[0]?.model.trim()} x${os.cpus().length}, Node ${process.version}, load average ${os.loadavg().map((l) => l.toFixed(1)).join(' / ')}`;
const md = [
  '# What one runtime operation costs in workerd',
  '',
  `Command: \`node bench/workerd-op-costs.mjs --rounds ${ROUNDS} --n ${N} --name ${NAME}\`  `,
  `Machine: ${machine}  `,
  `Date: ${date}`,
  '',
  `A Worker run by Miniflare (as the edge is) repeats each operation ${N} times inside one request; the workerd process's CPU over that request (every thread, /proc), less the same request with an empty loop (${(empty / 1e6).toFixed(2)} ms), divided by ${N}. Awaited operations are awaited one at a time. Median over ${ROUNDS} rounds in rotating order (min–max).`,
  '',
  '| operation | what | µs each | min–max |',
  '|---|---|---:|---:|',
  ...rows.map((r) => `| ${r.op} | ${r.what} | ${r.us} | ${r.min}–${r.max} |`),
  '',
].join('\n');
console.log(md);
mkdirSync(join(root, 'bench', 'results'), { recursive: true });
writeFileSync(join(root, 'bench', 'results', `${NAME}.md`), md);
writeFileSync(join(root, 'bench', 'results', `${NAME}.json`), JSON.stringify({ date, machine, rounds: ROUNDS, n: N, empty_loop_ns: empty, rows }, null, 1) + '\n');
