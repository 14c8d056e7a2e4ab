/**
 * @module The one door to xgrammar (the grammar engine vLLM, SGLang and TensorRT-LLM use): its WebAssembly build from
 * npm, `@mlc-ai/web-xgrammar`, loaded inside grammar threads (grammar-thread.ts). Also what we add around it: the
 * Qwen vocabulary from the checkpoint's tokenizer.json, the compact JSON-schema conversion, the normalisation of a
 * request's structural tag, and readable messages for xgrammar's fatal errors.
 *
 * Why the WASM build and not xgrammar's C++ in native/: the npm package is xgrammar's own build, pinned and updated
 * like any dependency, while vendoring its sources is not something this project does. Masks for one sequence take
 * tens of microseconds to a few milliseconds per token (bench/results/structured-output.md), small next to a decode
 * step, and they are filled on grammar threads while the forward pass runs. Its costs: grammar compilation is
 * single-threaded (hundreds of ms cold, cached afterwards), and a fatal error aborts the WASM instance's current call
 * (see fatalMessage) — which is why requests are checked on a separate thread first.
 *
 * The package ships a UMD script inside a `"type": "module"` package, which Node would load as ESM and break, so it
 * is copied once to a `.cjs` file in the OS temp folder and required from there.
 */
import { copyFileSync, existsSync, readFileSync, renameSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { GrammarFormat } from './protocol.ts';

/** The subset of the package's API the grammar threads use (its own .d.ts types describe the rest). */
export interface XGrammar {
  TokenizerInfo: { createTokenizerInfo(vocab: string[], vocabType: string, prependSpace: boolean, vocabSize: number, stopIds: number[]): Promise<TokenizerInfo> };
  GrammarCompiler: { createGrammarCompiler(info: TokenizerInfo, cacheEnabled: boolean): Promise<GrammarCompiler> };
  GrammarMatcher: { createGrammarMatcher(grammar: CompiledGrammar): Promise<GrammarMatcher> };
  Grammar: { fromStructuralTag(tag: string): Promise<{ dispose(): void }> };
  Testings: {
    _jsonSchemaToEBNF(schema: string, anyWhitespace: boolean, indent: number, separators: undefined, strict: boolean): Promise<string>;
  };
}
export interface TokenizerInfo { getVocabSize(): number; dispose(): void }
export interface CompiledGrammar { dispose(): void }
export interface GrammarCompiler { compileStructuralTag(tag: string): Promise<CompiledGrammar>; dispose(): void }
export interface GrammarMatcher {
  acceptToken(token: number): boolean;
  getNextTokenBitmask(): Promise<Int32Array>;
  isTerminated(): boolean;
  dispose(): void;
}

const PACKAGE = '@mlc-ai/web-xgrammar';
let fatal: string | undefined;

/**
 * Loads the WASM build in this thread. xgrammar reports a fatal error (an invalid schema, regex or grammar) on
 * stderr and then aborts the call with a bare "Aborted()"; its stderr writer is bound to console.error when the
 * module first initialises, so console.error is replaced before that to keep the message for fatalMessage().
 */
export function loadXGrammar(): XGrammar {
  const require = createRequire(import.meta.url);
  const pkgJson = require.resolve(`${PACKAGE}/package.json`);
  const { version } = JSON.parse(readFileSync(pkgJson, 'utf8')) as { version: string };
  const script = join(pkgJson, '..', 'lib', 'index.js');
  const copy = join(tmpdir(), `qwen3-serve-web-xgrammar-${version}-${statSync(script).size}.cjs`);
  if (!existsSync(copy)) {
    const partial = `${copy}.${process.pid}.${Math.random().toString(36).slice(2)}`;
    copyFileSync(script, partial);
    renameSync(partial, copy);   // atomic: concurrent workers never require a half-written copy
  }
  const passOn = console.error.bind(console);
  console.error = (...args: unknown[]) => {
    const text = args.map(String).join(' ');
    if (text.startsWith('[FATAL]')) fatal = text;
    else if (!text.startsWith('[WARNING]') && text !== 'Aborted()') passOn(...args);
  };
  return require(copy) as XGrammar;
}

/**
 * The message of the fatal error behind a failed call ("Unsupported type \"foo\"", "Regex parsing error at position
 * 3: The parenthesis is not closed."), without xgrammar's source path; `error`'s own message when there was none.
 */
export function fatalMessage(error: unknown): string {
  const raw = fatal ?? (error instanceof Error ? error.message : String(error));
  fatal = undefined;
  return raw
    .replace(/^\[FATAL\]\s*\S+:\d+:\s*/, '')
    .replace(/^Check failed: \(.*?\) is false:\s*/, '')
    .trim();
}

/**
 * Encoded vocabulary of a Hugging Face tokenizer.json, indexed by token id, and its xgrammar vocabulary type. Added
 * tokens become "" (xgrammar then never allows them: no <|im_start|> or <think> inside a JSON string) except
 * `keepAdded`, the added tokens a grammar may spell (Qwen's <tool_call> and </tool_call>, which the model emits as one
 * token each). Stop tokens are passed to xgrammar separately and allowed where the grammar may end.
 */
export function tokenizerVocab(tokenizerJson: string, keepAdded: readonly string[]): { vocab: string[]; vocabType: string } {
  const tok = JSON.parse(tokenizerJson) as {
    model: { vocab: Record<string, number> };
    added_tokens?: { id: number; content: string }[];
    decoder?: { type?: string; decoders?: { type?: string }[] };
  };
  const vocab: string[] = [];
  for (const [piece, id] of Object.entries(tok.model.vocab)) vocab[id] = piece;
  for (const added of tok.added_tokens ?? []) vocab[added.id] = keepAdded.includes(added.content) ? added.content : '';
  for (let i = 0; i < vocab.length; i++) vocab[i] ??= '';
  const decoders = [tok.decoder?.type, ...(tok.decoder?.decoders ?? []).map((d) => d.type)];
  const vocabType = decoders.includes('ByteLevel') ? 'byte_level' : decoders.includes('ByteFallback') ? 'byte_fallback' : 'raw';
  return { vocab, vocabType };
}

// xgrammar 0.1.27 writes strings bounded by minLength/maxLength as [^"\\\r\n]{m,n}, which admits raw control
// characters JSON forbids (a random tab token breaks JSON.parse); later xgrammar versions exclude U+0000-U+001F.
const BOUNDED_STRING_CHAR = '[^"\\\\\\r\\n]';
const JSON_STRING_CHAR = '[^\\0-\\x1f"\\\\]';

/** EBNF of a JSON schema as one line with `, ` and `: ` separators and no free whitespace (see protocol.ts). */
export async function jsonSchemaEbnf(xg: XGrammar, schema: unknown): Promise<string> {
  const ebnf = await xg.Testings._jsonSchemaToEBNF(JSON.stringify(schema), false, -1, undefined, true);
  return ebnf.split(BOUNDED_STRING_CHAR).join(JSON_STRING_CHAR);
}

/**
 * The structural tag xgrammar compiles for a request: every json_schema part replaced by its compact EBNF. Throws
 * what xgrammar throws on an invalid schema.
 */
export async function normaliseFormat(xg: XGrammar, format: GrammarFormat): Promise<string> {
  const convert = async (f: GrammarFormat): Promise<GrammarFormat> => {
    switch (f.type) {
      case 'json_schema':
        return { type: 'grammar', grammar: await jsonSchemaEbnf(xg, f.json_schema) };
      case 'sequence':
      case 'or':
        return { ...f, elements: await Promise.all(f.elements.map(convert)) };
      case 'tag':
        return { ...f, content: await convert(f.content) };
      case 'triggered_tags':
      case 'tags_with_separator':
        return { ...f, tags: await Promise.all(f.tags.map(async (t) => ({ ...t, content: await convert(t.content) }))) };
      default:
        return f;
    }
  };
  return JSON.stringify({ type: 'structural_tag', format: await convert(format) });
}
