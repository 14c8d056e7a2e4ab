// The GPU check's engine comparison (native/dev/cuda/engine_check.cpp, step 2 of native/scripts/gpu-check.sh) in
// its CPU-against-CPU mode: proves the harness (checkpoint writing, logits/greedy/batched/YaRN comparisons, the
// no-device errors) here, so the one GPU run later only has to add the device.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const exe = join(__dirname, '..', '..', 'native', 'build', 'engine_check');

describe('GPU check harness (CPU against CPU)', () => {
  it('Should pass every engine_check comparison with two CPU engines', () => {
    const dir = mkdtempSync(join(tmpdir(), 'q3-engine-check-'));
    try {
      const r = spawnSync(exe, ['--self', '--dir', join(dir, 'model')], { encoding: 'utf8', timeout: 180_000 });
      expect(r.error, 'engine_check could not run').toBeUndefined();
      expect(r.status, `${r.stdout}\n${r.stderr}`).toBe(0);
      expect(r.stdout + r.stderr).toMatch(/engine-check: \d+ checks, 0 failed/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 200_000); // the run itself may take up to spawnSync's 180 s on a loaded 2-core machine
});
