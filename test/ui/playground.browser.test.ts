// The playground in a real browser against the real local stack: `node scripts/start-local.mjs` (worker on the demo
// checkpoint + the edge under wrangler dev) driven by headless Chromium (from the @sparticuz/chromium package) through
// playwright-core.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Page, type Request } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
// @ts-expect-error plain ESM script without types
import { DEMO_ANSWER, DEMO_REASONING } from '../../scripts/gen-demo-script.mjs';
import { bundledChromium } from './chromium.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));
const apiKey = `sk-test-${randomBytes(12).toString('hex')}`;
const secrets = { WORKER_SECRET: `ws-${randomBytes(16).toString('hex')}`, ADMIN_TOKEN: `adm-${randomBytes(16).toString('hex')}` };

let stack: ChildProcess | undefined;
let stackLog = '';
let edgeUrl = '';
let browser: Browser | undefined;
let page: Page;
const chatRequests: Request[] = [];

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer().once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** Starts `npm start`'s script and resolves with the edge URL once it prints `edge ready on`. */
async function startStack(): Promise<string> {
  const port = await freePort();
  const child = spawn(process.execPath, [join(root, 'scripts', 'start-local.mjs')], {
    cwd: root,
    env: { ...process.env, PORT: String(port), DEV_API_KEY: apiKey, ...secrets },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  stack = child;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`local stack not ready after 240 s:\n${stackLog.slice(-4000)}`)), 240_000);
    const onData = (chunk: Buffer) => {
      stackLog += chunk.toString();
      const ready = stackLog.match(/edge ready on (http:\/\/\S+)/);
      if (ready) {
        clearTimeout(timer);
        resolve(ready[1]);
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`start-local.mjs exited (code ${code}) before the edge was ready:\n${stackLog.slice(-4000)}`));
    });
  });
}

async function stopStack(): Promise<void> {
  const child = stack;
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM'); // start-local.mjs stops the worker and wrangler, then exits
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

/** Sends `text` in `mode` and waits for the streamed turn to finish; returns what the turn shows. */
async function ask(mode: 'auto' | 'thinking' | 'fast', text: string) {
  await page.getByTestId('mode').selectOption(mode);
  const before = await page.getByTestId('assistant-turn').count();
  // Count DOM updates to the answer and reasoning while the reply streams in: more than one each = it streamed.
  await page.evaluate(() => {
    const w = window as unknown as { updates: Record<string, number>; observer?: MutationObserver };
    w.observer?.disconnect();
    w.updates = {};
    w.observer = new MutationObserver((records) => {
      for (const r of records) {
        const id = (r.target as Element).getAttribute?.('data-testid');
        if (id) w.updates[id] = (w.updates[id] ?? 0) + 1;
      }
    });
    w.observer.observe(document.getElementById('log')!, { childList: true, subtree: true, characterData: true });
  });
  await page.getByTestId('prompt').fill(text);
  await page.getByTestId('prompt').press('Enter');
  const turn = page.getByTestId('assistant-turn').nth(before);
  await expect.poll(() => turn.getAttribute('data-state'), { timeout: 60_000 }).not.toBe('streaming');
  return {
    state: await turn.getAttribute('data-state'),
    error: await turn.getByTestId('error').textContent(),
    modeLabel: (await turn.getByTestId('mode-label').textContent()) ?? '',
    reasoning: await turn.getByTestId('reasoning-text').textContent(),
    reasoningShown: await turn.getByTestId('reasoning').isVisible(),
    answer: await turn.getByTestId('answer').textContent(),
    stats: (await turn.getByTestId('stats').textContent()) ?? '',
    updates: await page.evaluate(() => (window as unknown as { updates: Record<string, number> }).updates),
  };
}

describe('playground in headless Chromium against the local stack', () => {
  beforeAll(async () => {
    const { executablePath, env } = bundledChromium();
    [edgeUrl, browser] = await Promise.all([
      startStack(),
      chromium.launch({
        executablePath,
        env: { ...process.env, ...env },
        args: ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
          '--disable-background-networking', '--disable-component-update', '--disable-sync'],
      }),
    ]);
    page = await browser.newPage({ viewport: { width: 1000, height: 900 } });
    page.on('request', (r) => r.url().endsWith('/v1/chat/completions') && chatRequests.push(r));
    await page.goto(`${edgeUrl}/`);
  });

  afterAll(async () => {
    await browser?.close();
    await stopStack();
  });

  it('puts no secret on a command line (any local user reads those with ps)', () => {
    const commandLines = readdirSync('/proc').filter((pid) => /^\d+$/.test(pid)).map((pid) => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
      } catch {
        return ''; // exited meanwhile
      }
    });
    // the stack's processes are there to be read: the worker and wrangler dev
    expect(commandLines.some((line) => line.includes('gpu-worker/index.ts'))).toBe(true);
    expect(commandLines.some((line) => /wrangler\S* dev /.test(line))).toBe(true);
    for (const value of Object.values(secrets)) expect(commandLines.filter((line) => line.includes(value))).toEqual([]);
  });

  it('shows the edge\'s OpenAI error readably when the API key is missing', async () => {
    const turn = await ask('fast', 'Hello without a key');
    expect(turn.state).toBe('error');
    expect(turn.error).toMatch(/^HTTP 401: .+/);
    expect(turn.error).not.toContain('{'); // the message, not the raw JSON
  });

  it('streams reasoning and answer in thinking, fast and auto mode, labelled with the mode that ran', async () => {
    await page.getByTestId('new-chat').click();
    await page.getByTestId('api-key').fill(apiKey);

    const thinking = await ask('thinking', 'Hello, who are you?');
    expect(thinking.error).toBe('');
    expect(thinking.state).toBe('done');
    expect(thinking.modeLabel).toMatch(/^thinking \(explicit\b/);
    expect(thinking.reasoningShown).toBe(true);
    expect(thinking.reasoning).toBe(DEMO_REASONING);
    expect(thinking.answer).toBe(DEMO_ANSWER);
    expect(thinking.updates['reasoning-text']).toBeGreaterThan(1);
    expect(thinking.updates['answer']).toBeGreaterThan(1);
    expect(thinking.stats).toMatch(/TTFT \d+ ms · [\d.]+ tokens\/s · \d+ prompt.* \+ \d+ completion \(\d+ reasoning\) tokens/);

    const fast = await ask('fast', 'And again, briefly.');
    expect(fast.error).toBe('');
    expect(fast.modeLabel).toMatch(/^fast \(explicit\b/);
    expect(fast.reasoningShown).toBe(false);
    expect(fast.reasoning).toBe('');
    expect(fast.answer).toBe(DEMO_ANSWER);
    expect(fast.updates['answer']).toBeGreaterThan(1);
    expect(fast.stats).toMatch(/TTFT \d+ ms .* completion tokens/);

    const auto = await ask('auto', 'Thanks!');
    expect(auto.error).toBe('');
    expect(auto.modeLabel).toMatch(/^(thinking|fast) \(auto\b/);
    // Whatever the classifier chose, the page shows reasoning exactly when thinking ran.
    expect(auto.reasoningShown).toBe(auto.modeLabel.startsWith('thinking'));
    expect(auto.reasoning).toBe(auto.reasoningShown ? DEMO_REASONING : '');
    expect(auto.answer).toBe(DEMO_ANSWER);
    // PLAYGROUND_SCREENSHOT=/tmp/playground.png keeps a picture of the conversation for a human to look at.
    if (process.env.PLAYGROUND_SCREENSHOT) await page.screenshot({ path: process.env.PLAYGROUND_SCREENSHOT, fullPage: true });
  });

  it('sends the key, the mode fields and the history without reasoning', async () => {
    const bodies = chatRequests.map((r) => r.postDataJSON());
    const [, thinking, fast, auto] = bodies; // the first went without a key
    expect(chatRequests.length).toBe(4);
    expect(chatRequests[0].headers()['authorization']).toBeUndefined();
    expect(chatRequests[3].headers()['authorization']).toBe(`Bearer ${apiKey}`);
    expect(thinking).toMatchObject({ stream: true, stream_options: { include_usage: true }, chat_template_kwargs: { enable_thinking: true } });
    expect(fast.chat_template_kwargs).toEqual({ enable_thinking: false });
    expect(auto.chat_template_kwargs).toBeUndefined();
    // New chat dropped the failed turn; the assistant turns went back as answers only.
    expect(auto.messages).toEqual([
      { role: 'user', content: 'Hello, who are you?' },
      { role: 'assistant', content: DEMO_ANSWER },
      { role: 'user', content: 'And again, briefly.' },
      { role: 'assistant', content: DEMO_ANSWER },
      { role: 'user', content: 'Thanks!' },
    ]);
  });

  it('sends the thinking budget and remembers the key across reloads', async () => {
    await page.getByTestId('budget').fill('32');
    const budgeted = await ask('thinking', 'Once more, on a budget.');
    expect(budgeted.error).toBe('');
    expect(chatRequests.at(-1)!.postDataJSON().thinking_token_budget).toBe(32);
    expect(budgeted.modeLabel).toMatch(/^thinking \(explicit, budget=32\b/);
    await page.reload();
    await expect.poll(() => page.getByTestId('api-key').inputValue()).toBe(apiKey);
  });
});
