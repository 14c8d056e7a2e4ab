// Vitest globalSetup of the "workers" project: starts one real GPU worker process (CPU engine, `demo` checkpoint) on
// loopback and provides its URL and secret, which vitest.config.ts hands to workerd as the WORKER_URLS /
// WORKER_SECRET bindings of the edge under test. Stopped when the run ends.
import type { TestProject } from 'vitest/node';
import { SECRET, startWorker } from '../gpu-worker/worker-process.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    edgeWorkerUrl: string;
    edgeWorkerSecret: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const worker = await startWorker({}, 'demo');
  project.provide('edgeWorkerUrl', worker.url);
  project.provide('edgeWorkerSecret', SECRET);
  return async () => {
    await worker.stop();
  };
}
