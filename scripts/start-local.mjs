#!/usr/bin/env node
// `npm start`: the whole stack on this machine. Starts the GPU worker (CPU engine; the demo checkpoint unless
// MODEL_DIR is set) and the edge under `wrangler dev` (local KV, D1 with migrations/ applied, Durable Objects and
// Cache), wires them with a generated shared secret, creates a development API key, and prints the URL, the key and a
// curl to paste.
// Honours PORT (the edge's port, default 8787), DEV_API_KEY, ADMIN_TOKEN, WORKER_SECRET, MODEL_DIR and the worker's own
// variables. Ctrl-C (or SIGTERM) stops both.
// Secrets never go on a command line (any local user reads those with `ps`): the worker gets WORKER_SECRET in its
// environment; wrangler gets both secrets in its environment and in an env file only this user can read (given with
// --env-file, so a .dev.vars in the checkout cannot replace them), deleted on exit.
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const port = Number(process.env.PORT ?? 8787);
const secret = process.env.WORKER_SECRET || randomBytes(32).toString('hex');
const adminToken = process.env.ADMIN_TOKEN || `adm-${randomBytes(16).toString('hex')}`;
const devKey = process.env.DEV_API_KEY ?? `sk-dev-${randomBytes(18).toString('base64url')}`;
const children = [];

function start(name, cmd, args, env, readyPattern) {
  const child = spawn(cmd, args, { cwd: root, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  return new Promise((resolve, reject) => {
    let done = false;
    const onLine = (stream) => (chunk) => {
      for (const line of chunk.toString().split('\n')) {
        if (!line.trim()) continue;
        stream.write(`[${name}] ${line}\n`);
        const m = !done && line.match(readyPattern);
        if (m) {
          done = true;
          resolve(m[1]);
        }
      }
    };
    child.stdout.on('data', onLine(process.stdout));
    child.stderr.on('data', onLine(process.stderr));
    child.on('exit', (code) => {
      if (!done) reject(new Error(`${name} exited (code ${code}) before it was ready`));
      else if (!stopping) {
        console.error(`[local] ${name} exited (code ${code}); stopping`);
        stop(1);
      }
    });
  });
}

const secretsDir = mkdtempSync(join(tmpdir(), 'qwen3-local-'));   // mode 0700
const edgeEnvFile = join(secretsDir, 'edge.env');
writeFileSync(edgeEnvFile, `WORKER_SECRET=${secret}\nADMIN_TOKEN=${adminToken}\n`, { mode: 0o600 });
process.on('exit', () => rmSync(secretsDir, { recursive: true, force: true }));

let stopping = false;
function stop(code = 0) {
  if (stopping) return;
  stopping = true;
  for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
  setTimeout(() => process.exit(code), 3000).unref();
  Promise.all(children.map((c) => (c.exitCode === null ? new Promise((r) => c.once('exit', r)) : null))).then(() =>
    process.exit(code),
  );
}
process.on('SIGINT', () => stop(0));
process.on('SIGTERM', () => stop(0));

try {
  console.log('[local] starting the worker (first run writes the demo checkpoint)...');
  const workerUrl = await start(
    'worker',
    process.execPath,
    ['--import', 'tsx', join(root, 'gpu-worker', 'index.ts')],
    { PORT: process.env.WORKER_PORT ?? '0', HOST: '127.0.0.1', WORKER_SECRET: secret },
    /worker ready on (http:\/\/\S+)/,
  );
  const wrangler = join(root, 'node_modules', 'wrangler', 'bin', 'wrangler.js');
  // the usage table, as `npm run deploy` creates it remotely (wrangler dev's local D1; applied once, then a no-op)
  const migrate = spawnSync(process.execPath, [wrangler, 'd1', 'migrations', 'apply', 'USAGE', '--local'], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
  if (migrate.status !== 0) throw new Error(`applying the D1 migrations failed:\n${migrate.stdout}${migrate.stderr}`);
  console.log('[local] starting the edge under wrangler dev...');
  await start(
    'edge',
    process.execPath,
    [
      wrangler, 'dev', '--ip', '127.0.0.1', '--port', String(port), '--show-interactive-dev-session=false',
      '--var', `WORKER_URLS:${workerUrl}`, '--env-file', edgeEnvFile,
    ],
    { WORKER_SECRET: secret, ADMIN_TOKEN: adminToken },
    /Ready on (http:\/\/\S+)/,
  );
  const edge = `http://127.0.0.1:${port}`;
  const res = await fetch(`${edge}/admin/keys`, {
    method: 'POST',
    headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ key: devKey, tenant: 'dev', name: 'development key' }),
  });
  if (!res.ok && res.status !== 409) throw new Error(`creating the development key failed: ${res.status} ${await res.text()}`);
  console.log(`
edge ready on ${edge}
  playground:  ${edge}/
  API key:     ${devKey}
  admin token: ${adminToken}
  try:
    curl -N ${edge}/v1/chat/completions -H "Authorization: Bearer ${devKey}" -H "Content-Type: application/json" \\
      -d '{"model":"qwen3-8b-awq","stream":true,"messages":[{"role":"user","content":"Hello!"}]}'
(Ctrl-C stops both)`);
} catch (error) {
  console.error(`[local] ${error.message}`);
  stop(1);
}
