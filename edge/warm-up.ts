// Start-up warm-up: what every first request would otherwise pay for happens while the isolate starts (on Workers,
// during the client's TLS handshake), outside the first request's CPU budget. The first run of a function costs many
// times the next (V8 compiles it, its inline caches start empty), and a cold isolate's first request is its only one
// for a while, so the code on that request's path is run here once, on inputs that touch nothing outside the isolate:
// workerd refuses I/O, timers and random numbers at global scope (and a request body: no POST goes through the app).
import type { Hono } from 'hono';
import type { EdgeEnv } from './edge-env.ts';
import { getPromptCache } from './prompt-cache.ts';
import { ChatChoice } from './routes/chat-completions.ts';
import { getTokenizer } from './tokenizer/index.js';
import { checkChatRequest } from './validate-request.ts';

/**
 * Runs once per isolate, at module evaluation. `env` is the Worker's bindings as `cloudflare:workers` gives them at
 * global scope (vars and secrets readable, no I/O). Never throws: a warm-up that fails leaves the isolate as cold as
 * before, nothing else.
 */
export function warmUp(app: Hono<EdgeEnv>, env: Partial<Env>): void {
  try {
    // the tokenizer's views on its image, one tiny chat body checked, rendered and encoded, and a few tokens of an
    // answer decoded into a choice (detokenizer, reasoning parser, stop strings, tool-call parser)
    getTokenizer();
    checkChatRequest({ model: 'warm-up', messages: [{ role: 'user', content: 'Hi' }], temperature: 0.7, stream: false });
    getPromptCache().chat({ messages: [{ role: 'user', content: 'Hi' }], enableThinking: false, splitSpecialTokens: true });
    const choice = new ChatChoice(0, { thinking: false, excludeReasoning: false, toolsOffered: false, toolChoice: 'auto', stop: null });
    choice.push({ tokens: [9707, 0] });
    choice.finish();
    // the router, the app's own middleware (request id, request context: config, worker pool, lifecycle; required
    // secrets) and a JSON response: a GET /health through the app with the real bindings, so the isolate's worker
    // pool exists before the first request. It brings its request id (a fresh one is random: refused here).
    Promise.resolve(app.fetch(new Request('http://warm-up/health', { headers: { 'x-request-id': 'warm-up' } }), env)).catch(() => {});
  } catch {
    // the first request pays for what did not run
  }
}
