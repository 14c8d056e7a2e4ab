// A V8 CPU profile of a workerd isolate through its inspector port (Miniflare's `inspectorPort`), and a summary of
// where the time went by source module of an unminified esbuild bundle (esbuild marks each module's code with a
// `// path/to/module.ts` line). Used by bench/edge-overhead.mjs --profile.
import WebSocket from 'ws';

/** An inspector session on the isolate `target` (e.g. "core:user:edge"): `call(method, params)` and `close()`. */
export async function inspectorSession(inspectorPort, target) {
  const targets = await (await fetch(`http://127.0.0.1:${inspectorPort}/json`)).json();
  const found = targets.find((t) => t.id === target);
  if (!found) throw new Error(`no inspector target ${target} (have ${targets.map((t) => t.id).join(', ')})`);
  const socket = new WebSocket(found.webSocketDebuggerUrl);
  await new Promise((resolve, reject) => { socket.once('open', resolve); socket.once('error', reject); });
  let nextId = 1;
  const pending = new Map();
  socket.on('message', (raw) => {
    const msg = JSON.parse(raw.toString());
    const settle = pending.get(msg.id);
    if (!settle) return;
    pending.delete(msg.id);
    if (msg.error) settle.reject(new Error(`${msg.error.message} (${msg.error.code})`));
    else settle.resolve(msg.result);
  });
  const call = (method, params = {}) => new Promise((resolve, reject) => {
    const id = nextId++;
    pending.set(id, { resolve, reject });
    socket.send(JSON.stringify({ id, method, params }));
  });
  return { call, close: () => socket.close() };
}

/** Starts sampling the isolate `target` (e.g. "core:user:edge"); `stop()` returns the profile (Profiler.stop's). */
export async function startProfile(inspectorPort, target, intervalUs = 200) {
  const { call, close } = await inspectorSession(inspectorPort, target);
  await call('Profiler.enable');
  await call('Profiler.setSamplingInterval', { interval: intervalUs });
  await call('Profiler.start');
  return {
    async stop() {
      const { profile } = await call('Profiler.stop');
      close();
      return profile;
    },
  };
}

const SPECIAL = new Set(['(idle)', '(program)', '(garbage collector)', '(root)']);

/** Module paths by line: esbuild's unminified bundle starts each module's code with a `// path` comment. */
function moduleIndex(bundleText) {
  const starts = [];
  bundleText.split('\n').forEach((line, i) => {
    const m = /^\/\/ ((?:node_modules|edge|gpu-worker|scripts)\/\S+)$/.exec(line);
    if (m) starts.push([i, m[1]]);
  });
  return (line) => {
    let lo = 0, hi = starts.length - 1, found = '(bundle prelude)';
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (starts[mid][0] <= line) (found = starts[mid][1]), (lo = mid + 1);
      else hi = mid - 1;
    }
    return found;
  };
}

const BASE64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

/**
 * Module paths by line and column from the bundle's source map (a minified bundle has no `// path` comments): each
 * generated line's segments (column, source) decoded from the map's base64 VLQ `mappings`.
 */
function sourceMapIndex(map) {
  const sources = map.sources.map((source) => {
    const m = /(?:^|\/)(node_modules\/.*)$/.exec(source) ?? /(?:^|\/)((?:edge|gpu-worker|scripts)\/(?!.*\/(?:edge|gpu-worker|scripts)\/).*)$/.exec(source);
    return m ? m[1] : source;
  });
  const lines = [];
  let sourceIndex = 0;
  for (const line of map.mappings.split(';')) {
    const segments = [];
    let column = 0;
    for (const segment of line.split(',')) {
      if (!segment) continue;
      const fields = [];
      let value = 0, shift = 0;
      for (const ch of segment) {
        const digit = BASE64.indexOf(ch);
        value += (digit & 31) << shift;
        if (digit & 32) shift += 5;
        else {
          fields.push(value & 1 ? -(value >>> 1) : value >>> 1);
          value = 0;
          shift = 0;
        }
      }
      column += fields[0];
      if (fields.length > 1) sourceIndex += fields[1];
      segments.push([column, fields.length > 1 ? sourceIndex : -1]); // -1: generated code of no source
    }
    lines.push(segments);
  }
  return (line, column) => {
    const segments = lines[line] ?? [];
    let lo = 0, hi = segments.length - 1, found = '(bundle prelude)';
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (segments[mid][0] <= column) (found = sources[segments[mid][1]] ?? '(bundle prelude)'), (lo = mid + 1);
      else hi = mid - 1;
    }
    return found;
  };
}

/** node_modules/hono/dist/… → "hono"; edge/x.ts stays as it is. */
function packageOf(path) {
  const m = /^node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(path);
  return m ? m[1] : path;
}

const isOurs = (path) => path.startsWith('edge/') || path.startsWith('gpu-worker/');

/**
 * Where the sampled time went: `byModule` attributes each sample to the innermost frame of our own code on its stack
 * (edge/…, gpu-worker/…), so a library's time counts for the module that called it, or to the library / V8 category
 * when none of ours is on the stack; `bySelf` lists functions by their own time. Times in ms; `busyMs` excludes idle;
 * `intervalUs` is the sampling interval the profile was taken with. `windows` ([from, to] in µs of the monotonic clock
 * V8 stamps samples with, Node's process.hrtime on Linux) keeps only the samples taken inside them. `sourceMap` (the
 * bundle's, parsed) names the modules of a minified bundle.
 */
export function summarizeProfile(profile, bundleText, intervalUs = 200, top = 25, windows = undefined, { sourceMap } = {}) {
  const byLine = sourceMap ? null : moduleIndex(bundleText);
  const byPosition = sourceMap ? sourceMapIndex(sourceMap) : null;
  const moduleOf = (line, column) => (byPosition ? byPosition(line, column) : byLine(line));
  const parent = new Map();
  for (const n of profile.nodes) for (const child of n.children ?? []) parent.set(child, n.id);
  const describe = new Map();
  for (const n of profile.nodes) {
    const { functionName, url, lineNumber, columnNumber } = n.callFrame;
    const special = SPECIAL.has(functionName) ? functionName : null;
    // the runtime's own JS (cloudflare-internal:…, node-internal:…) is not the bundle's: its lines name no module of ours
    const runtime = /^[a-z-]+:/.test(url) && !url.startsWith('file:');
    const module = special ?? (!url ? '(native)' : runtime ? `(runtime) ${url}` : moduleOf(lineNumber, columnNumber));
    describe.set(n.id, { module, name: `${packageOf(module)} ${functionName || '(anonymous)'}` });
  }
  const ownerOf = new Map();
  const owner = (id) => {
    if (ownerOf.has(id)) return ownerOf.get(id);
    let at = id;
    let found;
    while (at !== undefined) {
      const d = describe.get(at);
      if (isOurs(d.module)) { found = d.module; break; }
      at = parent.get(at);
    }
    const result = found ?? packageOf(describe.get(id).module);
    ownerOf.set(id, result);
    return result;
  };
  const byModule = new Map();
  const bySelf = new Map();
  let totalUs = 0;
  let idleUs = 0;
  // A delta is the time since the previous sample. workerd takes no samples while its thread is outside the isolate
  // (waiting for I/O), so a long delta is mostly such a wait: each sample counts for at most two intervals.
  const capUs = 2 * intervalUs;
  let at = profile.startTime;
  profile.samples.forEach((id, i) => {
    at += profile.timeDeltas[i] ?? 0;
    if (windows && !windows.some(([from, to]) => at >= from && at < to)) return;
    const us = Math.min(profile.timeDeltas[i] ?? 0, capUs);
    totalUs += us;
    const d = describe.get(id);
    if (d.module === '(idle)') { idleUs += us; return; }
    const mod = owner(id);
    byModule.set(mod, (byModule.get(mod) ?? 0) + us);
    bySelf.set(d.name, (bySelf.get(d.name) ?? 0) + us);
  });
  const busyUs = totalUs - idleUs;
  const rows = (map) => [...map].sort((a, b) => b[1] - a[1]).slice(0, top).map(([name, us]) => ({ name, ms: +(us / 1000).toFixed(1), share: +(us / busyUs).toFixed(3) }));
  return { wallMs: +(totalUs / 1000).toFixed(1), busyMs: +(busyUs / 1000).toFixed(1), byModule: rows(byModule), bySelf: rows(bySelf) };
}
