// Every document the repository cites is in the repository: a name ending in `.md` in a comment or a Markdown file
// (URLs aside) must name a file here, and so must any `docs/….md` anywhere; a `#heading` after it must be a heading
// of that file; a `§` section sign may only follow a `docs/` page on the same line; and a file that names a numbered
// pitfall must cite the list in docs/chat-format.md.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { basename, dirname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../..', import.meta.url));

type SourceFile = { path: string; text: string };

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens. */
function slug(heading: string): string {
  return heading.trim().toLowerCase().replace(/[^\p{L}\p{N} _-]/gu, '').replace(/ /g, '-');
}

function headingSlugs(markdown: string): Set<string> {
  const slugs = new Set<string>();
  let fenced = false;
  for (const line of markdown.split('\n')) {
    if (line.startsWith('```')) fenced = !fenced;
    const heading = !fenced && line.match(/^#{1,6} (.+)$/);
    if (heading) slugs.add(slug(heading[1]));
  }
  return slugs;
}

const PITFALLS = 'docs/chat-format.md#pitfalls';

/** Where the prose of a line starts: all of a Markdown line, the comment of a code line; Infinity when it has none. */
function proseStart(path: string, line: string): number {
  if (path.endsWith('.md')) return 0;
  if (/\.(ts|mjs|js|cpp|h|cu|cuh|c)$/.test(path)) {
    if (/^\s*(\*|\/\*)/.test(line)) return 0; // inside a block comment
    const i = line.indexOf('//');
    return i < 0 ? Infinity : i;
  }
  const i = line.indexOf('#'); // shell, Python, CMake, TOML, Dockerfile
  return i < 0 ? Infinity : i;
}

/** The broken citations in `files`, one message each; `files` holds every text file of the tree. */
export function brokenCitations(files: SourceFile[]): string[] {
  const byPath = new Map(files.map((f) => [f.path, f]));
  const markdownByName = new Map<string, string[]>();
  for (const f of files.filter((f) => f.path.endsWith('.md'))) {
    markdownByName.set(basename(f.path), [...(markdownByName.get(basename(f.path)) ?? []), f.path]);
  }
  const resolve = (from: string, target: string): string | undefined => {
    const candidates = [normalize(target.replace(/^\/+/, '')), normalize(join(dirname(from), target))];
    const found = candidates.find((c) => byPath.has(c));
    if (found) return found;
    const sameName = markdownByName.get(basename(target)) ?? [];
    return target.replace(/^\/+/, '').includes('/') ? undefined : sameName[0]; // a bare name: any file of that name
  };

  const problems: string[] = [];
  for (const file of files) {
    const lines = file.text.split('\n');
    lines.forEach((rawLine, i) => {
      const where = `${file.path}:${i + 1}`;
      const line = rawLine.replace(/[a-z]+:\/\/\S+/g, ' '); // documents cited by URL are outside the repo by design
      const prose = proseStart(file.path, line);
      // `$DATE.md`, `${name}.md` and `%s/out.md` are file names built at run time, not citations
      for (const m of line.matchAll(/(?<![\w$}%.\/-])([\w.\/-]*[\w-]\.md)(#[\w-]+)?\b/g)) {
        const [, target, anchor] = m;
        if (m.index < prose && !target.startsWith('docs/')) continue; // code naming a file it writes or reads
        const path = resolve(file.path, target);
        if (!path) {
          problems.push(`${where} cites ${target}, which is not in the repository`);
        } else if (anchor && !headingSlugs(byPath.get(path)!.text).has(anchor.slice(1))) {
          problems.push(`${where} cites ${target}${anchor}, but ${path} has no such heading`);
        }
      }
      if (line.includes('§') && !/docs\/[\w\/-]+\.md/.test(line.slice(0, line.indexOf('§')))) {
        problems.push(`${where} cites a section (§) of a document it does not name; cite docs/<page>.md#<heading>`);
      }
    });
    if (!file.path.startsWith('docs/') && /\bpitfalls? \d/i.test(file.text) && !file.text.includes(PITFALLS)) {
      problems.push(`${file.path} names a numbered pitfall but does not cite their list, ${PITFALLS}`);
    }
  }
  return problems;
}

/** The repository's text files: tracked and untracked-but-not-ignored, minus the lockfile and binaries. */
function repositoryFiles(): SourceFile[] {
  const listed = execFileSync('git', ['ls-files', '--cached', '--others', '--exclude-standard', '-z'], { cwd: root })
    .toString()
    .split('\0')
    .filter((p) => p && p !== 'package-lock.json' && existsSync(join(root, p)));
  return listed
    .map((path) => ({ path, bytes: readFileSync(join(root, path)) }))
    .filter(({ bytes }) => !bytes.includes(0))
    .map(({ path, bytes }) => ({ path, text: bytes.toString('utf8') }));
}

describe('document citations', () => {
  it('finds each kind of broken citation in a made-up tree', () => {
    const docs = { path: 'docs/model.md', text: '# Model\n\n## AWQ nibble order\n```\n# not a heading\n```\n' };
    const chat = { path: 'docs/chat-format.md', text: '## Pitfalls\n1. one\n' };
    const ok = [
      { path: 'a.ts', text: '// nibbles: docs/model.md#awq-nibble-order, docs/model.md; see https://x.org/guide.md' },
      { path: 'b.sh', text: 'out="$RES/check-$DATE.md"; cp "${name}.md" .; printf "%s/out.md"' },
      { path: 'docs/README.md', text: '[model](model.md#model) and [pitfalls](chat-format.md#pitfalls)' },
      { path: 'c.ts', text: '// pitfall 1 (docs/chat-format.md#pitfalls); docs/model.md §2' },
      { path: 'd.mjs', text: "writeFileSync(join(out, 'results.md'), md); // the table, also printed" },
    ];
    expect(brokenCitations([docs, chat, ...ok])).toEqual([]);

    const bad = [
      { path: 'x.ts', text: '// written from qwen3-spec.md section 4' },
      { path: 'y.cpp', text: '// see docs/model.md#awq-layout\n// the spec §3.2' },
      { path: 'z.ts', text: "it('pitfall 5: prompt opened <think>')" },
      { path: 'w.ts', text: '// see docs/missing.md and not-a-heading: docs/model.md#not-a-heading' },
      { path: 'v.sh', text: 'cat "$DIR/notes.md" # from notes.md' },
      { path: 'u.ts', text: "it('cites docs/gone.md', () => {});\n/**\n * see design.md\n */" },
    ];
    expect(brokenCitations([docs, chat, ...bad])).toEqual([
      'x.ts:1 cites qwen3-spec.md, which is not in the repository',
      'y.cpp:1 cites docs/model.md#awq-layout, but docs/model.md has no such heading',
      'y.cpp:2 cites a section (§) of a document it does not name; cite docs/<page>.md#<heading>',
      `z.ts names a numbered pitfall but does not cite their list, ${PITFALLS}`,
      'w.ts:1 cites docs/missing.md, which is not in the repository',
      'w.ts:1 cites docs/model.md#not-a-heading, but docs/model.md has no such heading',
      'v.sh:1 cites notes.md, which is not in the repository',
      'u.ts:1 cites docs/gone.md, which is not in the repository',
      'u.ts:3 cites design.md, which is not in the repository',
    ]);
  });

  it('every document cited in the repository is in the repository', () => {
    const self = 'test/docs/citations.test.ts'; // its made-up tree cites missing documents on purpose
    const files = repositoryFiles().filter((f) => f.path !== self);
    expect(files.some((f) => f.path === 'docs/model.md')).toBe(true);
    expect(brokenCitations(files)).toEqual([]);
  });
});
