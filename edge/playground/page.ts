// The browser playground the edge serves at `/`: one self-contained HTML page (inline CSS and script, no external
// assets) that chats with this edge's /v1/chat/completions and shows reasoning, mode and timings apart.
import { playgroundScript } from './client.ts';

const escapeHtml = (s: string) =>
  s.replace(/[&<>"']/g, (ch) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[ch]!);

const styles = `
:root { color-scheme: light dark; --fg: #1b1b1f; --muted: #5d5d66; --bg: #fff; --panel: #f4f4f6; --line: #d6d6dc;
  --accent: #2457c5; --error: #b3261e; font: 16px/1.5 system-ui, sans-serif; }
@media (prefers-color-scheme: dark) { :root { --fg: #e6e6ea; --muted: #a3a3ad; --bg: #16161a; --panel: #222228;
  --line: #3a3a44; --accent: #8fb0ff; --error: #ff8a80; } }
* { box-sizing: border-box; }
body { margin: 0; color: var(--fg); background: var(--bg); display: flex; flex-direction: column; min-height: 100vh; }
header, main, #composer { width: 100%; max-width: 52rem; margin: 0 auto; padding: 0.75rem 1rem; }
h1 { font-size: 1.25rem; margin: 0 0 0.5rem; }
h1 .model { font-weight: 400; color: var(--muted); font-size: 0.9rem; margin-left: 0.5rem; }
.settings { display: flex; flex-wrap: wrap; gap: 0.5rem 1rem; align-items: end; }
.settings label { display: flex; flex-direction: column; font-size: 0.8rem; color: var(--muted); }
input, select, textarea, button { font: inherit; color: inherit; background: var(--bg); border: 1px solid var(--line);
  border-radius: 6px; padding: 0.35rem 0.5rem; }
#api-key { width: 16rem; } #budget { width: 8rem; }
button { cursor: pointer; background: var(--panel); }
:disabled { opacity: 0.5; cursor: not-allowed; }
button[type=submit] { background: var(--accent); color: var(--bg); border-color: var(--accent); }
:focus-visible { outline: 2px solid var(--accent); outline-offset: 2px; }
main { flex: 1; }
#log { display: flex; flex-direction: column; gap: 0.75rem; }
.turn { border-radius: 8px; padding: 0.5rem 0.75rem; }
.turn.user { background: var(--panel); align-self: flex-end; max-width: 85%; }
.who { font-size: 0.75rem; text-transform: uppercase; letter-spacing: 0.04em; color: var(--muted); margin: 0 0 0.25rem; }
.mode-label { text-transform: none; letter-spacing: 0; margin-left: 0.5rem; padding: 0 0.4rem; border: 1px solid var(--line);
  border-radius: 999px; }
.answer, .reasoning-text { white-space: pre-wrap; overflow-wrap: anywhere; }
.reasoning { border-left: 3px solid var(--line); padding-left: 0.75rem; margin-bottom: 0.5rem; color: var(--muted); }
.reasoning summary { cursor: pointer; font-size: 0.85rem; }
.reasoning-text { font-size: 0.9rem; font-style: italic; }
.error { color: var(--error); font-weight: 600; margin: 0.25rem 0; }
.stats { font-size: 0.8rem; color: var(--muted); margin: 0.25rem 0 0; font-variant-numeric: tabular-nums; }
.stats:empty { display: none; }
#composer { display: flex; gap: 0.5rem; position: sticky; bottom: 0; background: var(--bg); border-top: 1px solid var(--line); }
#prompt { flex: 1; resize: vertical; }
.visually-hidden { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
`;

/** The playground page for this deployment's model. */
export function playgroundHtml(opts: { modelId: string }): string {
  const model = escapeHtml(opts.modelId);
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>Playground · ${model}</title>
<style>${styles}</style>
</head>
<body data-model="${model}">
<header>
  <h1>Qwen3 playground <span class="model" data-testid="model-id">${model}</span></h1>
  <form class="settings" onsubmit="return false" aria-label="Settings">
    <label>API key <input id="api-key" data-testid="api-key" type="password" autocomplete="off" spellcheck="false"
      placeholder="sk-…" aria-describedby="key-note"></label>
    <label>Mode <select id="mode" data-testid="mode">
      <option value="auto">auto (the edge decides)</option>
      <option value="thinking">thinking</option>
      <option value="fast">fast (no thinking)</option>
    </select></label>
    <label>Thinking budget (tokens) <input id="budget" data-testid="budget" type="number" min="1" step="1"
      inputmode="numeric" placeholder="unlimited"></label>
    <button type="button" id="new-chat" data-testid="new-chat">New chat</button>
    <span id="key-note" class="visually-hidden">Stored in this browser's local storage and sent as a Bearer token.</span>
  </form>
</header>
<main><div id="log" data-testid="log" role="log" aria-label="Conversation"></div></main>
<form id="composer" aria-label="Send a message">
  <label for="prompt" class="visually-hidden">Message</label>
  <textarea id="prompt" data-testid="prompt" rows="2" placeholder="Message (Enter sends, Shift+Enter for a new line)"></textarea>
  <button id="send" data-testid="send" type="submit">Send</button>
  <button id="stop" data-testid="stop" type="button" hidden>Stop</button>
</form>
<script>${playgroundScript}</script>
</body>
</html>`;
}
