// Headless Chromium for the browser tests, from the `@sparticuz/chromium` npm package: its tarball carries the
// browser, the NSS/NSPR/expat libraries the browser links and a font, brotli-compressed. `npm install` is therefore
// the whole set-up: no system Chromium, no root, no download outside the npm registry.
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { brotliDecompressSync } from 'node:zlib';

const root = fileURLToPath(new URL('../..', import.meta.url));
const pkgDir = join(root, 'node_modules', '@sparticuz', 'chromium');

export interface BundledChromium {
  executablePath: string;
  /** Environment for the browser process: the bundled libraries first, the bundled font's fontconfig file. */
  env: Record<string, string>;
}

/** Unpacks the package's browser once per version into `node_modules/.cache/` and says how to launch it. */
export function bundledChromium(): BundledChromium {
  if (!existsSync(join(pkgDir, 'package.json'))) {
    throw new Error(`${pkgDir} is missing: run npm install (the browser test takes Chromium from @sparticuz/chromium)`);
  }
  const { version } = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8')) as { version: string };
  const dir = join(root, 'node_modules', '.cache', `sparticuz-chromium-${version}`);
  if (!existsSync(join(dir, 'chromium'))) unpack(dir);
  return {
    executablePath: join(dir, 'chromium'),
    env: {
      LD_LIBRARY_PATH: [join(dir, 'lib'), process.env.LD_LIBRARY_PATH].filter(Boolean).join(':'),
      FONTCONFIG_FILE: join(dir, 'fonts.conf'),
    },
  };
}

/** Unpacks into a private folder renamed into place at the end, so concurrent runs never see half a browser. */
function unpack(dir: string): void {
  const bin = join(pkgDir, 'bin');
  const tmp = `${dir}.${process.pid}.tmp`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  writeFileSync(join(tmp, 'chromium'), brotliDecompressSync(readFileSync(join(bin, 'chromium.br'))));
  chmodSync(join(tmp, 'chromium'), 0o755);
  // al2023.tar holds lib/*.so (the libraries built for Amazon Linux 2023, which run on any newer glibc);
  // fonts.tar holds fonts/ (Open Sans). `tar` is part of every Linux base system.
  for (const archive of ['al2023.tar.br', 'fonts.tar.br']) {
    execFileSync('tar', ['-x', '-C', tmp], { input: brotliDecompressSync(readFileSync(join(bin, archive))) });
  }
  writeFileSync(join(tmp, 'fonts.conf'), [
    '<?xml version="1.0"?>',
    '<!DOCTYPE fontconfig SYSTEM "fonts.dtd">',
    '<fontconfig>',
    `  <dir>${join(dir, 'fonts')}</dir>`,
    `  <cachedir>${join(dir, 'fontconfig-cache')}</cachedir>`,
    '</fontconfig>',
    '',
  ].join('\n'));
  try {
    renameSync(tmp, dir);
  } catch (err) {
    rmSync(tmp, { recursive: true, force: true });
    if (!existsSync(join(dir, 'chromium'))) throw err; // not a concurrent run that finished first
  }
}
