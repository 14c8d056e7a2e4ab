#!/usr/bin/env node
// Builds native/ (engine library, qwen3 CLI, N-API addon, C++ tests) with CMake, offline: N-API headers come from
// the node-api-headers and node-addon-api packages, so nothing is downloaded. Incremental: a second run only
// rebuilds what changed. Run by `npm install` (postinstall) and before `npm test`.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const quiet = process.argv.includes('--quiet');
const require = createRequire(import.meta.url);

function includeDir(pkg, sub) {
  try {
    return join(dirname(require.resolve(`${pkg}/package.json`)), sub);
  } catch {
    return '';
  }
}

function run(cmd, args) {
  const r = spawnSync(cmd, args, { cwd: root, stdio: quiet ? ['ignore', 'pipe', 'inherit'] : 'inherit' });
  if (r.error) {
    console.error(`build-native: cannot run ${cmd}: ${r.error.message}`);
    process.exit(1);
  }
  if (r.status !== 0) {
    if (quiet && r.stdout) process.stdout.write(r.stdout);
    console.error(`build-native: ${cmd} ${args.join(' ')} failed (exit ${r.status})`);
    process.exit(r.status ?? 1);
  }
}

const build = join(root, 'native', 'build');
run('cmake', [
  '-S', join(root, 'native'), '-B', build, '-DCMAKE_BUILD_TYPE=Release',
  `-DNODE_API_INCLUDE=${includeDir('node-api-headers', 'include')}`,
  `-DNODE_ADDON_API_INCLUDE=${includeDir('node-addon-api', '')}`,
]);
run('cmake', ['--build', build, '-j', String(Math.max(1, cpus().length))]);
