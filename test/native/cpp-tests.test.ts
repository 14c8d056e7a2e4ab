// Runs the C++ test programs (native/tests/*.cpp, built into native/build/) so `npm test` covers them.
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = join(__dirname, '..', '..');
const programs = readdirSync(join(root, 'native', 'tests'))
  .filter((f) => f.endsWith('.cpp'))
  .map((f) => f.replace(/\.cpp$/, ''));

describe('native C++ tests', () => {
  it('Should have test programs to run', () => {
    expect(programs.length).toBeGreaterThan(0);
  });
  for (const name of programs) {
    it(`Should pass ${name}`, () => {
      const r = spawnSync(join(root, 'native', 'build', name), [], { encoding: 'utf8', timeout: 120_000 });
      expect(r.error, `${name} could not run`).toBeUndefined();
      expect(r.status, `${name} failed:\n${r.stdout}\n${r.stderr}`).toBe(0);
    });
  }
});
