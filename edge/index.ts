// Worker entry: the edge app (edge/app.ts) as the module's fetch handler. Extensions (auth, rate limits, response
// cache, metering) are passed to createApp here once they exist; see the SEAMS note in edge/app.ts.
import { createApp } from './app.ts';

export default createApp();
export { RateLimiter } from './rate-limiter.ts';
