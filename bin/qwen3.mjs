#!/usr/bin/env node
// `npx qwen3 ...`: runs the native CLI (native/build/qwen3), built by `npm install`.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const exe = join(dirname(fileURLToPath(import.meta.url)), '..', 'native', 'build', 'qwen3');
if (!existsSync(exe)) {
  console.error(`qwen3: ${exe} is missing; run \`npm install\` (or \`npm run build:native\`) first`);
  process.exit(1);
}
const r = spawnSync(exe, process.argv.slice(2), { stdio: 'inherit' });
process.exit(r.status ?? 1);
