// A benchmark's baseline: the repository as it is at a git ref, in a temporary detached worktree that shares this
// tree's node_modules and has its own tokenizer data built by its own script, so one run measures both side by side.
import { execFileSync } from 'node:child_process';
import { symlinkSync } from 'node:fs';
import { join } from 'node:path';

/** Checks out `ref` under workRoot/baseline; returns its root. Call removeBaseline(root) when done. */
export function checkoutBaseline(repoRoot, ref, workRoot) {
  const root = join(workRoot, 'baseline');
  execFileSync('git', ['-C', repoRoot, 'worktree', 'add', '--detach', root, ref], { stdio: 'ignore' });
  symlinkSync(join(repoRoot, 'node_modules'), join(root, 'node_modules'));
  execFileSync(process.execPath, [join(root, 'scripts/build-tokenizer.mjs')], { stdio: 'ignore' });
  return root;
}

export function removeBaseline(repoRoot, root) {
  execFileSync('git', ['-C', repoRoot, 'worktree', 'remove', '--force', root]);
}
