// The GPU check's engine comparison (native/dev/cuda/engine_check.cpp, step 2 of native/scripts/gpu-check.sh) in
// its CPU-against-CPU mode: proves the harness (checkpoint writing, logits/greedy/batched/YaRN comparisons, the
// sampler comparison and its power to reject a wrong distribution, the no-device errors) here, so the one GPU run
// later only has to add the device.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const exe = join(__dirname, '..', '..', 'native', 'build', 'engine_check');

function run(args: string[]): Promise<{ status: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(exe, args);
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (out += d));
    p.on('error', reject);
    p.on('close', (status) => resolve({ status, out }));
  });
}

describe('GPU check harness (CPU against CPU)', () => {
  it('Should pass every engine_check comparison with two CPU engines', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'q3-engine-check-'));
    try {
      const r = await run(['--self', '--dir', join(dir, 'model')]);
      expect(r.status, r.out).toBe(0);
      expect(r.out).toMatch(/engine-check: \d+ checks, 0 failed/);
      // the sampler comparison ran: the CPU sampler fits every case, the harness rejects a wrong temperature, and
      // both engines' draws, logprobs, forced tokens, seeded replay and penalties were compared
      expect(r.out).toMatch(/ok +harness: CPU sampler, peaked row, T 0\.8 top-k 50, penalties/);
      expect(r.out).toMatch(/ok +harness: rejects T 1\.0 top-k 20 draws judged against T 0\.8/);
      expect(r.out).toMatch(/ok +checked draws, T 0\.8 top-k 50, rep 1\.3/);
      expect(r.out).toMatch(/ok +top-5 logprobs: same tokens/);
      expect(r.out).toMatch(/ok +seeded sampling .* replays/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 400_000); // the run took 103-220 s on a loaded 2-core machine
});
