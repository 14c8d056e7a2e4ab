// Proves scripts/import-circles.ts on a made-up tree (a circle through a type-only import, a `.js` specifier and a
// re-export, a module importing itself, a fake import in a comment and in a string that must not count), then holds
// the project to it: no module of edge/ or gpu-worker/ imports itself back through others.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { findCircles, formatCircle, importGraph } from '../../scripts/import-circles.ts';

const root = join(__dirname, '..', '..');
const made = mkdtempSync(join(tmpdir(), 'q3-import-circles-'));
afterAll(() => rmSync(made, { recursive: true, force: true }));

function tree(name: string, files: Record<string, string>): string {
  const dir = join(made, name);
  for (const [file, text] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, file)), { recursive: true });
    writeFileSync(join(dir, file), text);
  }
  return dir;
}

const circlesUnder = (dir: string, folders: string[]) =>
  findCircles(importGraph(folders.map((f) => join(dir, f)))).map((circle) => formatCircle(circle, dir));

describe('import circles: the checker', () => {
  const files = {
    'app/a.ts': "import type { B } from './b.ts';\nexport const a = 1;\n",
    'app/b.ts': "import { c } from '../lib/c.js';\nexport type B = number;\n",
    'lib/c.ts': "export { a } from '../app/a.ts';\nexport const c = 2;\n",
    'app/self.ts': "import * as me from './self.ts';\nexport const x = me;\n",
    'app/leaf.ts': [
      "import { a } from './a.ts';",
      "import * as z from 'zod';",
      "/** import { leaf } from './leaf.ts'; */",
      "// import { d } from './d.ts';",
      "const text = \"import { leaf } from './leaf.ts'\";",
      'export const leaf = [a, z, text];',
    ].join('\n'),
    'app/d.ts': "import { leaf } from './leaf.ts';\nexport const d = leaf;\n",
  };

  it('Should find a circle through type-only imports, .js specifiers, re-exports and another folder, and a self-import', () => {
    const dir = tree('circles', files);
    expect(circlesUnder(dir, ['app'])).toEqual(['app/a.ts → app/b.ts → lib/c.ts → app/a.ts', 'app/self.ts → app/self.ts']);
  });

  it('Should find none once the circle is cut, and ignore imports written in comments and strings', () => {
    const dir = tree('cut', { ...files, 'lib/c.ts': 'export const c = 2;\n', 'app/self.ts': 'export const x = 1;\n' });
    expect(circlesUnder(dir, ['app'])).toEqual([]);
    expect(importGraph([join(dir, 'app')]).get(join(dir, 'app', 'leaf.ts'))).toEqual([join(dir, 'app', 'a.ts')]);
  });

  it('Should exit 1 and print the circle from the command line', () => {
    const dir = tree('cli', files);
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'scripts/import-circles.ts', join(dir, 'app')], { cwd: root, encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(1);
    expect(r.stdout).toMatch(/cli\/app\/a\.ts → \S*cli\/app\/b\.ts → \S*cli\/lib\/c\.ts → \S*cli\/app\/a\.ts\n/);
  });
});

describe('import circles: the project', () => {
  it('Should have none in edge/ and gpu-worker/', () => {
    expect(circlesUnder(root, ['edge', 'gpu-worker'])).toEqual([]);
  });
});
