// scripts/cloudflare.mjs (npm run setup:cloudflare / npm run deploy) on a copy of wrangler.toml, against a stand-in
// for the wrangler CLI that keeps a pretend account (test/helpers/wrangler-standin.mjs): nothing here can reach
// Cloudflare. Setup finds or creates the environment's KV namespace and D1 database, writes their ids into that
// environment only, and sets the missing secrets through stdin; deploy refuses placeholders and example worker URLs,
// and applies the remote D1 migrations before deploying.
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { unstable_readConfig } from 'wrangler';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { root } from '../gpu-worker/worker-process.ts';

type Account = {
  kv: { id: string; title: string }[];
  d1: { uuid: string; name: string }[];
  workers: Record<string, { secrets: Record<string, string>; deployed: boolean }>;
  calls: { argv: string[]; stdin: boolean }[];
};

const dir = mkdtempSync(join(tmpdir(), 'cloudflare-script-'));
const configPath = join(dir, 'wrangler.toml');
const statePath = join(dir, 'account.json');
const original = readFileSync(join(root, 'wrangler.toml'), 'utf8');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const account = (): Account => JSON.parse(readFileSync(statePath, 'utf8'));
const readConfig = (env?: string) => unstable_readConfig({ config: configPath, env }, { hideWarnings: true });

function script(command: string, env: string, extraEnv: Record<string, string> = {}) {
  const { WORKER_SECRET: _, ADMIN_TOKEN: __, ...inherited } = process.env;
  const before = account().calls.length;
  const r = spawnSync(process.execPath, [join(root, 'scripts/cloudflare.mjs'), command, '--env', env, '--config', configPath], {
    encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...inherited, WRANGLER: join(root, 'test/helpers/wrangler-standin.mjs'), WRANGLER_STANDIN_STATE: statePath, ...extraEnv },
  });
  return { status: r.status, out: r.stdout + r.stderr, calls: account().calls.slice(before).map((c) => c.argv) };
}

beforeAll(() => {
  copyFileSync(join(root, 'wrangler.toml'), configPath);
  // an account that already has someone else's resources
  writeFileSync(statePath, JSON.stringify({ kv: [{ id: 'f'.repeat(32), title: 'other-app' }], d1: [{ uuid: 'other', name: 'other-db' }], workers: {}, calls: [] }));
});

describe('npm run setup:cloudflare', () => {
  let first: ReturnType<typeof script>;
  beforeAll(() => {
    first = script('setup', 'staging');
  });

  it('creates the KV namespace and D1 database of that environment and writes their ids into it alone', () => {
    expect(first.status, first.out).toBe(0);
    const { kv, d1 } = account();
    const keys = kv.find((n) => n.title === 'qwen3-edge-staging-keys')!;
    const usage = d1.find((db) => db.name === 'qwen3-usage-staging')!;
    expect(keys).toBeDefined();
    expect(usage).toBeDefined();
    const staging = readConfig('staging');
    expect(staging.kv_namespaces).toEqual([{ binding: 'KEYS', id: keys.id }]);
    expect(staging.d1_databases[0]).toMatchObject({ binding: 'USAGE', database_name: 'qwen3-usage-staging', database_id: usage.uuid });
    // production and local development untouched; only the two id lines changed, comments kept
    expect(readConfig('production').kv_namespaces).toEqual(unstable_readConfig({ config: join(root, 'wrangler.toml'), env: 'production' }, { hideWarnings: true }).kv_namespaces);
    const changed = readFileSync(configPath, 'utf8').split('\n').filter((line, i) => line !== original.split('\n')[i]);
    expect(changed).toEqual([expect.stringContaining(`id = "${keys.id}"`), expect.stringContaining(`database_id = "${usage.uuid}"`)]);
    expect(changed.every((line) => line.includes('# npm run setup:cloudflare -- --env staging'))).toBe(true);
  });

  it('sets both secrets through stdin, prints generated values once, and never puts one on a command line', () => {
    const { secrets } = account().workers['qwen3-edge-staging'];
    expect(Object.keys(secrets).sort()).toEqual(['ADMIN_TOKEN', 'WORKER_SECRET']);
    expect(secrets.WORKER_SECRET).toMatch(/^[0-9a-f]{64}$/);
    expect(secrets.ADMIN_TOKEN).toMatch(/^adm-/);
    for (const value of Object.values(secrets)) {
      expect(first.out.split(value).length - 1).toBe(1);
      expect(account().calls.some((c) => c.argv.some((arg) => arg.includes(value)))).toBe(false);
    }
    const puts = first.calls.filter((argv) => argv[0] === 'secret' && argv[1] === 'put');
    expect(puts.map((argv) => argv.slice(2, 5))).toEqual([['WORKER_SECRET', '--env', 'staging'], ['ADMIN_TOKEN', '--env', 'staging']]);
    expect(first.out).toMatch(/set WORKER_URLS in \[env\.staging\.vars\]/);
  });

  it('is safe to repeat: finds what exists, creates nothing, keeps the secrets', () => {
    const before = account();
    const again = script('setup', 'staging');
    expect(again.status, again.out).toBe(0);
    expect(again.calls.filter((argv) => argv.includes('create') || argv[1] === 'put')).toEqual([]);
    expect(account().kv).toEqual(before.kv);
    expect(account().workers).toEqual(before.workers);
    expect(again.out).toContain('secret WORKER_SECRET is already set');
    expect(again.out).not.toContain(before.workers['qwen3-edge-staging'].secrets.ADMIN_TOKEN);
  });

  it('takes secrets from the environment when given, and does not print them', () => {
    const given = { WORKER_SECRET: 'shared-with-my-gpu-workers-0123456789', ADMIN_TOKEN: 'adm-chosen-0123456789' };
    const prod = script('setup', 'production', given);
    expect(prod.status, prod.out).toBe(0);
    expect(account().workers['qwen3-edge-production'].secrets).toEqual(given);
    for (const value of Object.values(given)) expect(prod.out).not.toContain(value);
  });
});

describe('npm run deploy', () => {
  it('refuses an environment whose ids are still placeholders, without calling wrangler', () => {
    writeFileSync(configPath, original);
    const r = script('deploy', 'staging');
    expect(r.status).toBe(1);
    expect(r.out).toContain('run npm run setup:cloudflare -- --env staging first');
    expect(r.calls).toEqual([]);
  });

  it('refuses example worker URLs, then applies the remote migrations before deploying', () => {
    expect(script('setup', 'staging').status).toBe(0);
    const example = script('deploy', 'staging');
    expect(example.status).toBe(1);
    expect(example.out).toMatch(/WORKER_URLS in \[env\.staging\.vars\] is still the example/);
    expect(example.calls).toEqual([]);

    writeFileSync(configPath, readFileSync(configPath, 'utf8').replace('https://gpu-staging.example.com', 'https://gpu.staging.internal.test'));
    const deployed = script('deploy', 'staging');
    expect(deployed.status, deployed.out).toBe(0);
    expect(deployed.calls).toEqual([
      ['d1', 'migrations', 'apply', 'USAGE', '--remote', '--env', 'staging', '--config', configPath],
      ['deploy', '--env', 'staging', '--config', configPath],
    ]);
    expect(account().workers['qwen3-edge-staging'].deployed).toBe(true);
  });
});
