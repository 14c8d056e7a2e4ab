// Worker entry: the edge app (edge/app.ts) with the accounts layer (API keys, rate limits, response cache, usage
// metering; edge/accounts.ts) as the module's fetch handler, plus the Durable Object classes: the rate limiter and
// the fleet registry (edge/fleet.ts).
import { accountsMiddleware, mountAccounts } from './accounts.ts';
import { createApp } from './app.ts';
import { getPromptCache } from './prompt-cache.ts';
import { ChatChoice } from './routes/chat-completions.ts';
import { getTokenizer } from './tokenizer/index.js';
import { checkChatRequest } from './validate-request.ts';

// What every first request would otherwise pay for happens while the isolate starts (on Workers, during the client's
// TLS handshake), outside the first request's CPU budget: the tokenizer's views on its image made, one tiny chat
// body checked, rendered and encoded, and a few tokens of an answer decoded into a choice; V8 compiles the code these
// run on the way (the first run of a function costs many times the next).
getTokenizer();
checkChatRequest({ model: 'warm-up', messages: [{ role: 'user', content: 'Hi' }], temperature: 0.7, stream: false });
getPromptCache().chat({ messages: [{ role: 'user', content: 'Hi' }], enableThinking: false, splitSpecialTokens: true });
const warmUp = new ChatChoice(0, { thinking: false, excludeReasoning: false, toolsOffered: false, toolChoice: 'auto', stop: null });
warmUp.push({ tokens: [9707, 0] });
warmUp.finish();

const app = createApp({ extensions: accountsMiddleware() });
mountAccounts(app);

export default app;
export { RateLimiter } from './rate-limiter-do.ts';
export { Fleet } from './fleet.ts';
