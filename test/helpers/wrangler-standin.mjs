#!/usr/bin/env node
// Test helper: a stand-in for the wrangler CLI as scripts/cloudflare.mjs calls it, with a Cloudflare account kept in
// the JSON file named by WRANGLER_STANDIN_STATE (KV namespaces, D1 databases, Workers and their secrets) and every
// call appended to its `calls` (argv, and whether anything came on stdin). Only the commands that script uses; any
// other exits 3. Not a test file.
import { randomBytes, randomUUID } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';

const statePath = process.env.WRANGLER_STANDIN_STATE;
const state = JSON.parse(readFileSync(statePath, 'utf8'));
const argv = process.argv.slice(2);
const stdin = process.stdin.isTTY ? '' : readFileSync(0, 'utf8');
state.calls.push({ argv, stdin: stdin.length > 0 });
const option = (name) => (argv.includes(name) ? argv[argv.indexOf(name) + 1] : undefined);
const save = () => writeFileSync(statePath, JSON.stringify(state, null, 2));
const workerName = () => `qwen3-edge-${option('--env')}`;
const [a, b, c] = argv;

function exit(code, message) {
  save();
  if (message) console.error(message);
  process.exit(code);
}

if (a === 'kv' && b === 'namespace' && c === 'list') {
  console.log(JSON.stringify(state.kv));
} else if (a === 'kv' && b === 'namespace' && c === 'create') {
  state.kv.push({ id: randomBytes(16).toString('hex'), title: argv[3] });
  console.log(`Creating namespace with title "${argv[3]}"`);
} else if (a === 'd1' && b === 'list') {
  console.log(JSON.stringify(state.d1));
} else if (a === 'd1' && b === 'create') {
  state.d1.push({ uuid: randomUUID(), name: argv[2] });
} else if (a === 'secret' && b === 'list') {
  const worker = state.workers[workerName()];
  if (!worker) exit(1, `This Worker does not exist on your account. [code: 10007]`);
  console.log(JSON.stringify(Object.keys(worker.secrets).map((name) => ({ name, type: 'secret_text' }))));
} else if (a === 'secret' && b === 'put') {
  if (!stdin) exit(1, 'no secret value on stdin');
  state.workers[workerName()] ??= { secrets: {}, deployed: false };
  state.workers[workerName()].secrets[c] = stdin;
} else if (a === 'd1' && b === 'migrations' && c === 'apply') {
  console.log('Migrations applied');
} else if (a === 'deploy') {
  state.workers[workerName()] ??= { secrets: {}, deployed: false };
  state.workers[workerName()].deployed = true;
} else {
  exit(3, `wrangler stand-in: unexpected command ${argv.join(' ')}`);
}
exit(0);
