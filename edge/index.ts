// Worker entry: the edge app (edge/app.ts) with the accounts layer (API keys, rate limits, response cache, usage
// metering; edge/accounts.ts) as the module's fetch handler, plus the rate limiter's Durable Object class.
import { accountsMiddleware, mountAccounts } from './accounts.ts';
import { createApp } from './app.ts';

const app = createApp({ extensions: accountsMiddleware() });
mountAccounts(app);

export default app;
export { RateLimiter } from './rate-limiter.ts';
