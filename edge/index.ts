// Worker entry: the edge app (edge/app.ts) with the accounts layer (API keys, rate limits, response cache, usage
// metering; edge/accounts.ts) as the module's fetch handler, plus the Durable Object classes: the rate limiter and
// the fleet registry (edge/fleet.ts).
import { accountsMiddleware, mountAccounts } from './accounts.ts';
import { createApp } from './app.ts';
import { getPromptCache } from './prompt-cache.ts';
import { getTokenizer } from './tokenizer/index.js';

// What every first request would otherwise pay for happens while the isolate starts (on Workers, during the client's
// TLS handshake), outside the first request's CPU budget: the tokenizer's views on its image made, one tiny chat
// rendered and encoded; V8 compiles the code these run on the way.
getTokenizer();
getPromptCache().chat({ messages: [{ role: 'user', content: 'Hi' }], enableThinking: false, splitSpecialTokens: true });

const app = createApp({ extensions: accountsMiddleware() });
mountAccounts(app);

export default app;
export { RateLimiter } from './rate-limiter-do.ts';
export { Fleet } from './fleet.ts';
