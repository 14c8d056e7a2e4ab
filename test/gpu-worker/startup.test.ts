// The worker refuses to start without WORKER_SECRET (it would serve anyone who reaches its port) unless
// WORKER_INSECURE=1 says so explicitly, in which case unsigned requests are served. Real worker processes.
import { spawnSync } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { demoModel, root, startWorker, type Worker } from './worker-process.ts';

const started: Worker[] = [];
afterAll(() => Promise.all(started.map((w) => w.stop())));

/** Runs the worker to its exit (it must exit by itself: a worker that starts would hit the timeout). */
function runToExit(env: Record<string, string>) {
  const { WORKER_SECRET: _, WORKER_INSECURE: __, ...inherited } = process.env;
  return spawnSync(process.execPath, ['--import', 'tsx', 'gpu-worker/index.ts'], {
    cwd: root, encoding: 'utf8', timeout: 60_000,
    env: { ...inherited, MODEL_DIR: demoModel('tiny'), PORT: '0', HOST: '127.0.0.1', DEVICE: 'cpu', THREADS: '1', ...env },
  });
}

describe('worker start-up without a secret', () => {
  it.each([
    ['unset', {}],
    ['empty', { WORKER_SECRET: '' }],
    ['empty, WORKER_INSECURE=0', { WORKER_SECRET: '', WORKER_INSECURE: '0' }],
  ])('exits with status 2 naming WORKER_SECRET before it listens or loads the model (%s)', (_, env) => {
    const r = runToExit(env);
    expect(r.error).toBeUndefined(); // not killed by the timeout
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('WORKER_SECRET is required (or WORKER_INSECURE=1 for local development)');
    expect(r.stdout).not.toMatch(/listening on|loading/);
  });

  it('serves unsigned requests with WORKER_INSECURE=1', async () => {
    const worker = await startWorker({ WORKER_SECRET: '', WORKER_INSECURE: '1' });
    started.push(worker);
    const res = await fetch(`${worker.url}/v1/generate`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ request_id: 'unsigned', prompt: [1, 2, 3], max_tokens: 2 }),
    });
    expect(res.status).toBe(200);
    expect(await res.text()).toContain('"finish_reason"');
  });

  it('refuses an unsigned request when it has a secret', async () => {
    const worker = await startWorker();
    started.push(worker);
    const res = await fetch(`${worker.url}/v1/generate`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ request_id: 'unsigned', prompt: [1, 2, 3], max_tokens: 2 }),
    });
    expect(res.status).toBe(401);
  });
});
