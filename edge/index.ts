// Worker entry: the edge app (edge/app.ts) with the accounts layer (API keys, rate limits, response cache, usage
// metering; edge/accounts.ts) as the module's fetch handler, plus the Durable Object classes: the rate limiter and
// the fleet registry (edge/fleet.ts).
import { env } from 'cloudflare:workers';
import { accountsMiddleware, mountAccounts } from './accounts.ts';
import { createApp } from './app.ts';
import { warmUp } from './warm-up.ts';

const app = createApp({ extensions: accountsMiddleware() });
mountAccounts(app);
void warmUp(app, env as Partial<Env>); // its report is for tests

export default app;
export { RateLimiter } from './rate-limiter-do.ts';
export { Fleet } from './fleet.ts';
