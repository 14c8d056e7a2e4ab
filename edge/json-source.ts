// JSON read without losing how it was written. JSON.parse turns 12345678901234567890 into 12345678901234567000, 1.0
// into 1 and "\u00e9" into "é"; where the edge hands JSON on (tool-call arguments from the model to the client, and
// from the client back into the prompt) it keeps the source text instead. parseJsonSource validates with JSON.parse
// and then walks the text once for the span of every value; pythonJsonDumps writes a value the way Python's
// `json.dumps(json.loads(text), ensure_ascii=False)` does, which is how transformers' chat templates print JSON.

export type JsonSourceNode =
  | { kind: 'object'; start: number; end: number; members: [key: string, value: JsonSourceNode][] }
  | { kind: 'array'; start: number; end: number; items: JsonSourceNode[] }
  | { kind: 'string'; start: number; end: number; value: string }
  | { kind: 'number'; start: number; end: number }
  | { kind: 'literal'; start: number; end: number; value: boolean | null };

/** The value tree of a JSON text with source spans (text.slice(start, end) is the value as written); undefined if the
 * text is not JSON. Members keep their order and duplicates. */
export function parseJsonSource(text: string): JsonSourceNode | undefined {
  try {
    JSON.parse(text);
  } catch {
    return undefined;
  }
  return new SpanWalker(text).root();
}

/** The last member named `key` (JSON.parse keeps the last of duplicates too). */
export function jsonMember(node: JsonSourceNode, key: string): JsonSourceNode | undefined {
  if (node.kind !== 'object') return undefined;
  for (let i = node.members.length - 1; i >= 0; i--) if (node.members[i][0] === key) return node.members[i][1];
  return undefined;
}

/** Walks text already known to be valid JSON, so it checks nothing. */
class SpanWalker {
  private at = 0;
  constructor(private readonly text: string) {}

  root(): JsonSourceNode {
    this.skipSpace();
    return this.value();
  }

  private value(): JsonSourceNode {
    const start = this.at;
    const c = this.text[start];
    if (c === '{') {
      const members: [string, JsonSourceNode][] = [];
      this.at++;
      this.skipSpace();
      while (this.text[this.at] !== '}') {
        const key = this.string();
        this.skipSpace();
        this.at++; // ':'
        this.skipSpace();
        members.push([key.value, this.value()]);
        this.skipSpace();
        if (this.text[this.at] === ',') this.at++;
        this.skipSpace();
      }
      this.at++;
      return { kind: 'object', start, end: this.at, members };
    }
    if (c === '[') {
      const items: JsonSourceNode[] = [];
      this.at++;
      this.skipSpace();
      while (this.text[this.at] !== ']') {
        items.push(this.value());
        this.skipSpace();
        if (this.text[this.at] === ',') this.at++;
        this.skipSpace();
      }
      this.at++;
      return { kind: 'array', start, end: this.at, items };
    }
    if (c === '"') return this.string();
    if (c === 't' || c === 'f' || c === 'n') {
      const value = c === 't' ? true : c === 'f' ? false : null;
      this.at += c === 'f' ? 5 : 4;
      return { kind: 'literal', start, end: this.at, value };
    }
    while (this.at < this.text.length && '+-0123456789.eE'.includes(this.text[this.at])) this.at++;
    return { kind: 'number', start, end: this.at };
  }

  private string(): { kind: 'string'; start: number; end: number; value: string } {
    const start = this.at;
    let i = start + 1;
    while (this.text[i] !== '"') i += this.text[i] === '\\' ? 2 : 1;
    this.at = i + 1;
    return { kind: 'string', start, end: this.at, value: JSON.parse(this.text.slice(start, this.at)) as string };
  }

  private skipSpace(): void {
    for (let c = this.text[this.at]; c === ' ' || c === '\n' || c === '\r' || c === '\t'; c = this.text[++this.at]);
  }
}

/** Python's `json.dumps(json.loads(text), ensure_ascii=False)` for a value of `text`: `", "` and `": "` separators,
 * integers exactly as written, floats as Python's repr, later duplicate keys overriding earlier ones in place. */
export function pythonJsonDumps(node: JsonSourceNode, text: string): string {
  switch (node.kind) {
    case 'object': {
      const members = new Map<string, JsonSourceNode>();
      for (const [key, value] of node.members) members.set(key, value);
      return `{${[...members].map(([key, value]) => `${pythonString(key)}: ${pythonJsonDumps(value, text)}`).join(', ')}}`;
    }
    case 'array':
      return `[${node.items.map((item) => pythonJsonDumps(item, text)).join(', ')}]`;
    case 'string':
      return pythonString(node.value);
    case 'literal':
      return String(node.value);
    case 'number': {
      const written = text.slice(node.start, node.end);
      if (!/[.eE]/.test(written)) return written === '-0' ? '0' : written; // Python ints are exact
      return pythonFloatRepr(Number(written));
    }
  }
}

const PYTHON_SHORT_ESCAPES: Record<string, string> = { '"': '\\"', '\\': '\\\\', '\n': '\\n', '\r': '\\r', '\t': '\\t', '\b': '\\b', '\f': '\\f' };

/** A JSON string literal as Python's json writes it with ensure_ascii off (only quotes, backslashes and C0 escaped). */
function pythonString(value: string): string {
  // eslint-disable-next-line no-control-regex
  return `"${value.replace(/["\\\u0000-\u001f]/g, (c) => PYTHON_SHORT_ESCAPES[c] ?? `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)}"`;
}

/** Python's repr of a float: the shortest round-trip digits, fixed notation for exponents -4..15, else `1.5e+16`. */
export function pythonFloatRepr(x: number): string {
  if (Number.isNaN(x)) return 'NaN';
  if (!Number.isFinite(x)) return x > 0 ? 'Infinity' : '-Infinity';
  if (x === 0) return Object.is(x, -0) ? '-0.0' : '0.0';
  const sign = x < 0 ? '-' : '';
  const [mantissa, exponentText] = Math.abs(x).toExponential().split('e');
  const digits = mantissa.replace('.', '');
  const exponent = Number(exponentText);
  if (exponent < -4 || exponent >= 16) {
    const scaled = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
    return `${sign}${scaled}e${exponent < 0 ? '-' : '+'}${String(Math.abs(exponent)).padStart(2, '0')}`;
  }
  if (exponent < 0) return `${sign}0.${'0'.repeat(-exponent - 1)}${digits}`;
  return `${sign}${digits.slice(0, exponent + 1).padEnd(exponent + 1, '0')}.${digits.slice(exponent + 1) || '0'}`;
}
