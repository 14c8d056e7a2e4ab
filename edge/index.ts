// Worker entry: the edge app (edge/app.ts) with the accounts layer (API keys, rate limits, response cache, usage
// metering; edge/accounts.ts) as the module's fetch handler, plus the rate limiter's Durable Object class.
import { accountsMiddleware, mountAccounts } from './accounts.ts';
import { createApp } from './app.ts';
import { getTokenizer } from './tokenizer/index.js';

// The tokenizer is built while the isolate starts (on Workers, during the client's TLS handshake), not on the first
// request, whose CPU budget it would otherwise take.
getTokenizer();

const app = createApp({ extensions: accountsMiddleware() });
mountAccounts(app);

export default app;
export { RateLimiter } from './rate-limiter.ts';
