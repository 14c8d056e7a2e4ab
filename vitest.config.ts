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
        plugins: [cloudflareTest({ wrangler: { configPath: './wrangler.toml' } })],
        test: {
          name: 'workers',
          include: ['test/**/*.workers.test.ts'],
          testTimeout: 120_000,
        },
      },
    ],
  },
});
