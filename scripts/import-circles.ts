#!/usr/bin/env -S node --import tsx
// Import circles among the project's TypeScript modules. Every relative import of every .ts file under the given
// folders counts — type-only imports, re-exports, `import()` and `import('…').T` types included, since a circle of
// types still ties the modules' meaning together — and imports are followed into other folders, so a circle through
// another part of the tree is found too. TypeScript's own pre-processor reads the import statements (comments and
// strings that merely look like imports are skipped).
//
//   node --import tsx scripts/import-circles.ts edge gpu-worker   # prints each circle, exits 1 when there is one
//
// test/scripts/import-circles.test.ts proves it and runs it on edge/ and gpu-worker/.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

/** The .ts file a relative specifier names ('./x.ts', './x.js' compiled from x.ts, './x', './dir'), or null. */
function resolveImport(fromFile: string, specifier: string): string | null {
  if (!specifier.startsWith('./') && !specifier.startsWith('../')) return null;   // a package
  const base = resolve(dirname(fromFile), specifier);
  const candidates = [base, base.replace(/\.js$/, '.ts'), `${base}.ts`, join(base, 'index.ts')];
  return candidates.find((file) => file.endsWith('.ts') && existsSync(file) && statSync(file).isFile()) ?? null;
}

function tsFilesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return entry.name === 'node_modules' ? [] : tsFilesUnder(path);
    return entry.name.endsWith('.ts') ? [path] : [];
  });
}

/** Module → the modules it imports (absolute paths), for every .ts file under `roots` and everything they reach. */
export function importGraph(roots: string[]): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  const pending = roots.flatMap((root) => tsFilesUnder(resolve(root)));
  while (pending.length > 0) {
    const file = pending.pop()!;
    if (graph.has(file)) continue;
    const { importedFiles } = ts.preProcessFile(readFileSync(file, 'utf8'), true, true);
    const targets = [...new Set(importedFiles.map((f) => resolveImport(file, f.fileName)).filter((t): t is string => t !== null))];
    graph.set(file, targets);
    pending.push(...targets);
  }
  return graph;
}

/** The shortest path of imports from `from` back to `to` inside `members`. */
function shortestPath(graph: Map<string, string[]>, members: Set<string>, from: string, to: string): string[] {
  const previous = new Map<string, string | null>([[from, null]]);
  const queue = [from];
  while (queue.length > 0) {
    const node = queue.shift()!;
    for (const next of graph.get(node) ?? []) {
      if (next === to) {
        const path = [node];
        for (let p = previous.get(node)!; p !== null; p = previous.get(p)!) path.unshift(p);
        return path;
      }
      if (members.has(next) && !previous.has(next)) {
        previous.set(next, node);
        queue.push(next);
      }
    }
  }
  return [from];
}

/**
 * One circle per group of modules that import each other (a strongly connected component, Tarjan's algorithm),
 * written as the shortest import path from the group's first module (by name) back to itself: [a, b, c] means
 * a → b → c → a. A module that imports itself is a circle of one.
 */
export function findCircles(graph: Map<string, string[]>): string[][] {
  const index = new Map<string, number>(), low = new Map<string, number>(), onStack = new Set<string>();
  const stack: string[] = [], groups: string[][] = [];
  let counter = 0;
  // iterative DFS: [node, position in its import list]
  for (const start of graph.keys()) {
    if (index.has(start)) continue;
    const frames: [string, number][] = [[start, 0]];
    index.set(start, counter); low.set(start, counter++); stack.push(start); onStack.add(start);
    while (frames.length > 0) {
      const frame = frames[frames.length - 1];
      const [node, i] = frame;
      const targets = graph.get(node) ?? [];
      if (i < targets.length) {
        frame[1]++;
        const next = targets[i];
        if (!index.has(next)) {
          index.set(next, counter); low.set(next, counter++); stack.push(next); onStack.add(next);
          frames.push([next, 0]);
        } else if (onStack.has(next)) {
          low.set(node, Math.min(low.get(node)!, index.get(next)!));
        }
        continue;
      }
      frames.pop();
      if (frames.length > 0) {
        const parent = frames[frames.length - 1][0];
        low.set(parent, Math.min(low.get(parent)!, low.get(node)!));
      }
      if (low.get(node) === index.get(node)) {
        const group: string[] = [];
        let member: string;
        do {
          member = stack.pop()!;
          onStack.delete(member);
          group.push(member);
        } while (member !== node);
        if (group.length > 1 || targets.includes(node)) groups.push(group.sort());
      }
    }
  }
  return groups.map((group) => shortestPath(graph, new Set(group), group[0], group[0])).sort((a, b) => a[0].localeCompare(b[0]));
}

/** `a.ts → b.ts → a.ts`, paths relative to `base`. */
export function formatCircle(circle: string[], base: string): string {
  return [...circle, circle[0]].map((file) => relative(base, file)).join(' → ');
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const roots = process.argv.slice(2);
  if (roots.length === 0) {
    console.error('usage: node --import tsx scripts/import-circles.ts FOLDER...');
    process.exit(2);
  }
  const circles = findCircles(importGraph(roots));
  for (const circle of circles) console.log(formatCircle(circle, process.cwd()));
  console.log(circles.length === 0 ? `no import circles under ${roots.join(', ')}` : `${circles.length} import circle(s)`);
  process.exit(circles.length === 0 ? 0 : 1);
}
