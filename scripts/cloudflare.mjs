#!/usr/bin/env node
// The Cloudflare account steps of a deployment (README "Deployment"), for the environments of wrangler.toml:
//
//   npm run setup:cloudflare -- --env production   once per environment (safe to repeat): finds or creates the KV
//       namespace and the D1 database, writes their ids into wrangler.toml, and sets each required secret that is not
//       set yet (from the environment variable of the same name, else generated and printed once).
//   npm run deploy -- --env production              every release: applies migrations/ to the remote D1 database,
//       then `wrangler deploy`. Refuses while wrangler.toml still holds the placeholder ids or example worker URLs.
//
// Every call goes through the wrangler CLI (log in first: `npx wrangler login`, or CLOUDFLARE_API_TOKEN and
// CLOUDFLARE_ACCOUNT_ID). Secret values go to wrangler on stdin, never on a command line. `--config PATH` works on
// another wrangler.toml; WRANGLER names another wrangler entry point (the tests use a stand-in).
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const ENVIRONMENTS = ['staging', 'production'];
/** what wrangler.toml holds until setup replaces it */
const PLACEHOLDER_ID = /^0+(-0+)*$/;
const EXAMPLE_HOST = /\.example\.com\b/;

/** The environment's resource names; the Worker itself is "<name>-<env>" (wrangler's naming). */
const resourceNames = (env) => ({ kv: `qwen3-edge-${env}-keys`, d1: `qwen3-usage-${env}` });

function usage(message) {
  console.error(`${message}\nusage: node scripts/cloudflare.mjs setup|deploy --env ${ENVIRONMENTS.join('|')} [--config wrangler.toml]`);
  process.exit(2);
}

const [command, ...rest] = process.argv.slice(2);
const option = (name) => (rest.includes(name) ? rest[rest.indexOf(name) + 1] : undefined);
const env = option('--env');
const configPath = resolve(option('--config') ?? join(root, 'wrangler.toml'));
if (!['setup', 'deploy'].includes(command)) usage(`unknown command '${command ?? ''}'`);
if (!ENVIRONMENTS.includes(env)) usage(`--env must be one of ${ENVIRONMENTS.join(', ')}`);

/** Runs wrangler; returns its stdout. Exits with wrangler's status on failure (its output is shown). */
function wrangler(args, { input, quiet = false, allowFailure = false } = {}) {
  const entry = process.env.WRANGLER ?? join(root, 'node_modules', 'wrangler', 'bin', 'wrangler.js');
  const r = spawnSync(process.execPath, [entry, ...args, '--config', configPath], {
    cwd: dirname(configPath), input, encoding: 'utf8', maxBuffer: 64 << 20,
    stdio: [input === undefined ? 'inherit' : 'pipe', quiet ? 'pipe' : 'inherit', quiet ? 'pipe' : 'inherit'],
    env: { ...process.env, WRANGLER_SEND_METRICS: process.env.WRANGLER_SEND_METRICS ?? 'false' },
  });
  if (r.status !== 0 && !allowFailure) {
    if (quiet) process.stderr.write(`${r.stdout ?? ''}${r.stderr ?? ''}`);
    console.error(`[cloudflare] wrangler ${args.join(' ')} failed (exit ${r.status ?? r.error?.message})`);
    process.exit(r.status || 1);
  }
  return { ok: r.status === 0, stdout: r.stdout ?? '' };
}

/** The JSON that a wrangler listing prints (after any banner lines). */
function parseListing(stdout) {
  const start = stdout.indexOf('[');
  if (start < 0) throw new Error(`expected a JSON list from wrangler, got:\n${stdout}`);
  return JSON.parse(stdout.slice(start));
}

// --- wrangler.toml: read and set one value of one table ----------------------------------------------------------

/** The line range [start, end) of the table whose header line is `header` (e.g. `[[env.production.kv_namespaces]]`). */
function tableRange(lines, header) {
  const start = lines.findIndex((line) => line.trim() === header);
  if (start < 0) throw new Error(`${relative(root, configPath)} has no ${header} table`);
  let end = start + 1;
  while (end < lines.length && !lines[end].trim().startsWith('[')) end++;
  return [start + 1, end];
}

const keyLine = (key) => new RegExp(`^(\\s*${key}\\s*=\\s*)"([^"]*)"`);

function readTomlValue(text, header, key) {
  const lines = text.split('\n');
  const [start, end] = tableRange(lines, header);
  for (let i = start; i < end; i++) {
    const m = keyLine(key).exec(lines[i]);
    if (m) return m[2];
  }
  throw new Error(`${header} has no ${key}`);
}

function setTomlValue(text, header, key, value) {
  const lines = text.split('\n');
  const [start, end] = tableRange(lines, header);
  for (let i = start; i < end; i++) {
    if (keyLine(key).test(lines[i])) {
      lines[i] = lines[i].replace(keyLine(key), (_, prefix) => `${prefix}"${value}"`);
      return lines.join('\n');
    }
  }
  throw new Error(`${header} has no ${key}`);
}

const kvHeader = `[[env.${env}.kv_namespaces]]`;
const d1Header = `[[env.${env}.d1_databases]]`;
const varsHeader = `[env.${env}.vars]`;

// --- setup ---------------------------------------------------------------------------------------------------------

function setup() {
  const names = resourceNames(env);
  let toml = readFileSync(configPath, 'utf8');

  const namespaces = parseListing(wrangler(['kv', 'namespace', 'list'], { quiet: true }).stdout);
  let kv = namespaces.find((n) => n.title === names.kv);
  if (!kv) {
    wrangler(['kv', 'namespace', 'create', names.kv]);
    kv = parseListing(wrangler(['kv', 'namespace', 'list'], { quiet: true }).stdout).find((n) => n.title === names.kv);
    if (!kv) throw new Error(`KV namespace ${names.kv} was not listed after creating it`);
  }
  console.log(`[cloudflare] KV namespace ${names.kv}: ${kv.id}`);

  let d1 = parseListing(wrangler(['d1', 'list', '--json'], { quiet: true }).stdout).find((db) => db.name === names.d1);
  if (!d1) {
    wrangler(['d1', 'create', names.d1]);
    d1 = parseListing(wrangler(['d1', 'list', '--json'], { quiet: true }).stdout).find((db) => db.name === names.d1);
    if (!d1) throw new Error(`D1 database ${names.d1} was not listed after creating it`);
  }
  console.log(`[cloudflare] D1 database ${names.d1}: ${d1.uuid}`);

  toml = setTomlValue(toml, kvHeader, 'id', kv.id);
  toml = setTomlValue(toml, d1Header, 'database_name', names.d1);
  toml = setTomlValue(toml, d1Header, 'database_id', d1.uuid);
  writeFileSync(configPath, toml);
  console.log(`[cloudflare] wrote their ids into ${relative(process.cwd(), configPath)} [env.${env}] (commit them)`);

  // secrets: the Worker may not exist yet (no listing); `secret put` then creates it as a draft
  const listing = wrangler(['secret', 'list', '--env', env, '--format', 'json'], { quiet: true, allowFailure: true });
  const present = new Set(listing.ok ? parseListing(listing.stdout).map((s) => s.name) : []);
  const generated = [];
  for (const name of ['WORKER_SECRET', 'ADMIN_TOKEN']) {
    if (present.has(name)) {
      console.log(`[cloudflare] secret ${name} is already set (wrangler secret put ${name} --env ${env} replaces it)`);
      continue;
    }
    const value = process.env[name] || (name === 'ADMIN_TOKEN' ? `adm-${randomBytes(24).toString('base64url')}` : randomBytes(32).toString('hex'));
    if (!process.env[name]) generated.push([name, value]);
    wrangler(['secret', 'put', name, '--env', env], { input: value, quiet: true });
    console.log(`[cloudflare] secret ${name} set${process.env[name] ? ' from the environment' : ''}`);
  }
  if (generated.length) {
    console.log('\nGenerated secrets, shown this once (keep them in your password manager):');
    for (const [name, value] of generated) console.log(`  ${name}=${value}`);
    console.log('WORKER_SECRET is also every GPU worker\'s WORKER_SECRET; ADMIN_TOKEN unlocks /admin/* (creating API keys).');
  }
  const urls = readTomlValue(toml, varsHeader, 'WORKER_URLS');
  if (EXAMPLE_HOST.test(urls)) console.log(`\nNext: set WORKER_URLS in [env.${env}.vars] to your GPU workers (now ${urls}), then npm run deploy -- --env ${env}`);
  else console.log(`\nNext: npm run deploy -- --env ${env}`);
}

// --- deploy --------------------------------------------------------------------------------------------------------

function deploy() {
  const toml = readFileSync(configPath, 'utf8');
  if (PLACEHOLDER_ID.test(readTomlValue(toml, kvHeader, 'id')) || PLACEHOLDER_ID.test(readTomlValue(toml, d1Header, 'database_id'))) {
    console.error(`[cloudflare] [env.${env}] still has placeholder KV/D1 ids: run npm run setup:cloudflare -- --env ${env} first`);
    process.exit(1);
  }
  const urls = readTomlValue(toml, varsHeader, 'WORKER_URLS');
  if (EXAMPLE_HOST.test(urls)) {
    console.error(`[cloudflare] WORKER_URLS in [env.${env}.vars] is still the example (${urls}): set it to your GPU workers' HTTPS origins`);
    process.exit(1);
  }
  // the schema first, so the new version never writes to a table that is not there yet
  wrangler(['d1', 'migrations', 'apply', 'USAGE', '--remote', '--env', env]);
  wrangler(['deploy', '--env', env]);
  console.log(`\n[cloudflare] deployed ${env}. Check it: curl https://<its host>/health  (the URL is printed above)`);
}

if (command === 'setup') setup();
else deploy();
