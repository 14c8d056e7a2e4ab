// The playground's page script, as plain browser JS in a string (no bundler step): streams a chat completion over
// fetch, splits reasoning from answer, and reports the mode the edge chose (x-thinking-mode) and the timings.
// Kept free of `${` and backticks so it can live in a String.raw template.
export const playgroundScript = String.raw`
'use strict';
const $ = (id) => document.getElementById(id);
const model = document.body.dataset.model;
const KEY_STORAGE = 'qwen3-playground.api-key';
let history = []; // {role, content}[]; assistant turns carry the answer only, never the reasoning
let inFlight = null; // AbortController of the running request
let chatId = 0; // bumped by New chat, so a reply still streaming from the old chat is not added to the new history

$('api-key').value = localStorage.getItem(KEY_STORAGE) || '';
$('api-key').addEventListener('input', (e) => localStorage.setItem(KEY_STORAGE, e.target.value.trim()));
$('mode').addEventListener('change', () => { $('budget').disabled = $('mode').value === 'fast'; });
$('new-chat').addEventListener('click', () => { inFlight?.abort(); chatId++; history = []; $('log').replaceChildren(); $('prompt').focus(); });
$('stop').addEventListener('click', () => inFlight?.abort());
$('prompt').addEventListener('keydown', (e) => {
  if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); $('composer').requestSubmit(); }
});
$('composer').addEventListener('submit', (e) => {
  e.preventDefault();
  const text = $('prompt').value.trim();
  if (text && !inFlight) { $('prompt').value = ''; send(text); }
});

function el(tag, attrs, text) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (text) node.textContent = text;
  return node;
}

/** The request fields for the chosen mode: auto sends no switch, so the edge decides. */
function modeFields() {
  const mode = $('mode').value;
  const budget = Number($('budget').value);
  const fields = {};
  if (mode !== 'auto') fields.chat_template_kwargs = { enable_thinking: mode === 'thinking' };
  if (mode !== 'fast' && budget > 0) fields.thinking_token_budget = Math.floor(budget);
  return fields;
}

/** "on; source=auto; budget=512" -> "thinking (auto, budget=512)": which mode ran and why. */
function describeMode(header) {
  const [state, ...rest] = header.split(';').map((s) => s.trim()).filter(Boolean);
  const why = rest.map((p) => p.replace(/^source=/, '')).join(', ');
  return (state === 'on' ? 'thinking' : state === 'off' ? 'fast' : state) + (why ? ' (' + why + ')' : '');
}

function describeError(status, body) {
  let err = null;
  try { err = JSON.parse(body).error; } catch {}
  const what = err && typeof err === 'object'
    ? (err.message || 'error') + (err.type || err.code ? ' (' + [err.type, err.code].filter(Boolean).join(', ') + ')' : '')
    : (body || 'no response body').slice(0, 500);
  const hint = status === 401 ? ' Paste a valid API key above.' : '';
  return 'HTTP ' + status + ': ' + what + hint;
}

function addTurn() {
  const turn = el('article', { class: 'turn assistant', 'data-testid': 'assistant-turn', 'data-state': 'streaming', 'aria-busy': 'true' });
  const who = el('h2', { class: 'who' }, 'Assistant ');
  const mode = el('span', { class: 'mode-label', 'data-testid': 'mode-label' }, '…');
  who.append(mode);
  const reasoning = el('details', { class: 'reasoning', 'data-testid': 'reasoning', open: '' });
  const summary = el('summary', {}, 'Thinking…');
  const reasoningText = el('div', { class: 'reasoning-text', 'data-testid': 'reasoning-text' });
  reasoning.append(summary, reasoningText);
  reasoning.hidden = true;
  const answer = el('div', { class: 'answer', 'data-testid': 'answer' });
  const error = el('p', { class: 'error', 'data-testid': 'error', role: 'alert' });
  error.hidden = true;
  const stats = el('p', { class: 'stats', 'data-testid': 'stats' });
  turn.append(who, reasoning, answer, error, stats);
  $('log').append(turn);
  return { turn, mode, reasoning, summary, reasoningText, answer, error, stats };
}

async function send(text) {
  const messages = [...history, { role: 'user', content: text }];
  const chat = chatId;
  const userTurn = el('article', { class: 'turn user', 'data-testid': 'user-turn' });
  userTurn.append(el('h2', { class: 'who' }, 'You'), el('div', { class: 'answer' }, text));
  $('log').append(userTurn);
  const ui = addTurn();
  const scroll = () => ui.turn.scrollIntoView({ block: 'end' });
  scroll();
  const ctl = new AbortController();
  inFlight = ctl;
  $('send').hidden = true; $('stop').hidden = false;
  const t0 = performance.now();
  let tFirst = 0, tThinkEnd = 0, usage = null, finish = null, failed = false;
  const fail = (message) => { failed = true; ui.error.textContent = message; ui.error.hidden = false; };
  try {
    const key = $('api-key').value.trim();
    const res = await fetch('/v1/chat/completions', {
      method: 'POST',
      signal: ctl.signal,
      headers: { 'content-type': 'application/json', ...(key ? { authorization: 'Bearer ' + key } : {}) },
      body: JSON.stringify({ model, messages, stream: true, stream_options: { include_usage: true }, ...modeFields() }),
    });
    const header = res.headers.get('x-thinking-mode');
    ui.mode.textContent = header ? describeMode(header) : '';
    if (header) { ui.mode.title = 'x-thinking-mode: ' + header; ui.turn.dataset.thinking = header.split(';')[0].trim(); }
    if (!res.ok || !res.body) throw Object.assign(new Error(describeError(res.status, await res.text())), { shown: true });
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = '';
    for (let done = false; !done;) {
      const chunk = await reader.read();
      if (chunk.done) break;
      buf = (buf + chunk.value).replace(/\r\n/g, '\n');
      let end;
      while (!done && (end = buf.indexOf('\n\n')) >= 0) {
        const data = buf.slice(0, end).split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trimStart()).join('\n');
        buf = buf.slice(end + 2);
        if (!data) continue;
        if (data === '[DONE]') { done = true; break; }
        const frame = JSON.parse(data);
        if (frame.error) { fail(describeError(res.status, data).replace(/^HTTP \d+/, 'stream error')); done = true; break; }
        if (frame.usage) usage = frame.usage;
        const choice = frame.choices && frame.choices[0];
        if (!choice) continue;
        const d = choice.delta || {};
        const thought = d.reasoning_content ?? d.reasoning;
        if ((thought || d.content) && !tFirst) tFirst = performance.now();
        if (thought) { ui.reasoning.hidden = false; ui.reasoningText.textContent += thought; }
        if (d.content) {
          if (!ui.answer.textContent && !ui.reasoning.hidden) { tThinkEnd = performance.now(); ui.reasoning.open = false; }
          ui.answer.textContent += d.content;
        }
        if (choice.finish_reason) finish = choice.finish_reason;
        scroll();
      }
    }
  } catch (err) {
    if (ctl.signal.aborted) finish = 'stopped';
    else fail(err.shown ? err.message : 'Request failed: ' + err.message);
  }
  const tEnd = performance.now();
  if (!ui.reasoning.hidden) {
    const secs = ((tThinkEnd || tEnd) - (tFirst || t0)) / 1000;
    ui.summary.textContent = 'Reasoning (' + secs.toFixed(1) + ' s)';
  }
  const parts = [];
  if (tFirst) parts.push('TTFT ' + Math.round(tFirst - t0) + ' ms');
  if (usage) {
    const decodeSecs = (tEnd - tFirst) / 1000;
    if (tFirst && usage.completion_tokens > 1 && decodeSecs > 0) parts.push(((usage.completion_tokens - 1) / decodeSecs).toFixed(1) + ' tokens/s');
    const cached = usage.prompt_tokens_details?.cached_tokens;
    const thoughtTokens = usage.completion_tokens_details?.reasoning_tokens;
    parts.push(usage.prompt_tokens + ' prompt' + (cached ? ' (' + cached + ' cached)' : '') + ' + ' +
      usage.completion_tokens + ' completion' + (thoughtTokens ? ' (' + thoughtTokens + ' reasoning)' : '') + ' tokens');
  }
  if (finish && finish !== 'stop') parts.push('finish: ' + finish);
  ui.stats.textContent = parts.join(' · ');
  if (!failed && ui.answer.textContent && chat === chatId) history = [...messages, { role: 'assistant', content: ui.answer.textContent }];
  ui.turn.dataset.state = failed ? 'error' : 'done';
  ui.turn.removeAttribute('aria-busy');
  inFlight = null;
  $('send').hidden = false; $('stop').hidden = true;
  if (failed && !$('prompt').value) $('prompt').value = text;
  $('prompt').focus();
}
`;
