// Two test projects: "node" (engine via the addon and CLI, the GPU worker, edge modules as plain TS) and "workers"
// (files named *.workers.test.ts run inside workerd with the bindings of wrangler.toml).
import { cloudflareTest } from '@cloudflare/vitest-pool-workers';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'node',
          include: ['test/**/*.test.ts'],
          exclude: ['test/**/*.workers.test.ts', 'node_modules/**'],
          environment: 'node',
          testTimeout: 120_000,
          hookTimeout: 300_000,
        },
      },
      {
        // a real GPU worker (demo checkpoint) started by the globalSetup; its URL/secret become the edge's bindings
        plugins: [
          cloudflareTest(({ inject }) => ({
            wrangler: { configPath: './wrangler.toml' },
            miniflare: { bindings: { WORKER_URLS: inject('edgeWorkerUrl'), WORKER_SECRET: inject('edgeWorkerSecret') } },
          })),
        ],
        test: {
          name: 'workers',
          include: ['test/**/*.workers.test.ts'],
          testTimeout: 120_000,
          hookTimeout: 300_000,
          globalSetup: ['test/edge/worker.global-setup.ts'],
        },
      },
    ],
  },
});
