/**
 * Writer and small reader of the safetensors format, written independently of the engine so tests can produce
 * checkpoints byte for byte as the Hugging Face libraries do: an 8-byte little-endian header length, a JSON header
 * `{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}}` padded with spaces to 8 bytes, then
 * the raw little-endian tensor data (offsets relative to the end of the header).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export type Dtype = 'F16' | 'BF16' | 'F32' | 'I32';

export interface Tensor {
  dtype: Dtype;
  shape: number[];
  /** Already-encoded values: F16/BF16 as raw uint16 bits, F32 as float32, I32 as int32. */
  data: Uint16Array | Float32Array | Int32Array;
}

export interface HeaderEntry {
  dtype: string;
  shape: number[];
  data_offsets: [number, number];
}

const BYTES: Record<Dtype, number> = { F16: 2, BF16: 2, F32: 4, I32: 4 };

// ---- scalar encodings ----

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** IEEE binary16 bits of x, round to nearest even (directly from the double, no float32 detour). */
export function f16Bits(x: number): number {
  if (Number.isNaN(x)) return 0x7e00;
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  let a = Math.abs(x);
  if (a >= 65520) return sign | 0x7c00; // rounds to infinity
  if (a < 2 ** -24 * 0.5) return sign; // below half the smallest subnormal
  let e = Math.floor(Math.log2(a));
  if (2 ** e > a) e -= 1; // guard log2 rounding
  if (2 ** (e + 1) <= a) e += 1;
  if (e < -14) {
    // subnormal: units of 2^-24
    const m = roundHalfEven(a / 2 ** -24);
    return sign | m; // m == 1024 becomes the smallest normal, which is the right encoding
  }
  let m = roundHalfEven((a / 2 ** e - 1) * 1024);
  if (m === 1024) {
    m = 0;
    e += 1;
    if (e > 15) return sign | 0x7c00;
  }
  return sign | ((e + 15) << 10) | m;
}

export function f16ToNumber(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return sign * m * 2 ** -24;
  if (e === 31) return m ? NaN : sign * Infinity;
  return sign * (1 + m / 1024) * 2 ** (e - 15);
}

/** bfloat16 bits of x: round the float32 value to its upper 16 bits, nearest even. */
export function bf16Bits(x: number): number {
  f32[0] = x;
  const b = u32[0];
  if (Number.isNaN(f32[0])) return 0x7fc0;
  const lower = b & 0xffff;
  let upper = b >>> 16;
  if (lower > 0x8000 || (lower === 0x8000 && (upper & 1) === 1)) upper += 1;
  return upper & 0xffff;
}

export function bf16ToNumber(h: number): number {
  u32[0] = (h & 0xffff) << 16;
  return f32[0];
}

function roundHalfEven(v: number): number {
  const f = Math.floor(v);
  const d = v - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

// ---- tensor constructors (return the tensor and the values exactly as stored) ----

export function f16Tensor(shape: number[], values: ArrayLike<number>): { tensor: Tensor; stored: Float64Array } {
  const bits = new Uint16Array(values.length);
  const stored = new Float64Array(values.length);
  for (let i = 0; i < values.length; i++) {
    bits[i] = f16Bits(values[i]);
    stored[i] = f16ToNumber(bits[i]);
  }
  return { tensor: { dtype: 'F16', shape, data: bits }, stored };
}

export function bf16Tensor(shape: number[], values: ArrayLike<number>): { tensor: Tensor; stored: Float64Array } {
  const bits = new Uint16Array(values.length);
  const stored = new Float64Array(values.length);
  for (let i = 0; i < values.length; i++) {
    bits[i] = bf16Bits(values[i]);
    stored[i] = bf16ToNumber(bits[i]);
  }
  return { tensor: { dtype: 'BF16', shape, data: bits }, stored };
}

export function f32Tensor(shape: number[], values: ArrayLike<number>): Tensor {
  return { dtype: 'F32', shape, data: Float32Array.from(values) };
}

export function i32Tensor(shape: number[], values: Int32Array): Tensor {
  return { dtype: 'I32', shape, data: values };
}

// ---- files ----

/** Serialises tensors (in insertion order) into one safetensors file image. */
export function encodeSafetensors(tensors: Map<string, Tensor>, metadata: Record<string, string> = { format: 'pt' }): Buffer {
  const header: Record<string, unknown> = { __metadata__: metadata };
  let offset = 0;
  for (const [name, t] of tensors) {
    const count = t.shape.reduce((a, b) => a * b, 1);
    if (count !== t.data.length) throw new Error(`safetensors: ${name}: shape ${t.shape} holds ${count} values, got ${t.data.length}`);
    const bytes = count * BYTES[t.dtype];
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
  const headerBytes = Buffer.from(json, 'utf8');
  const out = Buffer.alloc(8 + headerBytes.length + offset);
  out.writeBigUInt64LE(BigInt(headerBytes.length), 0);
  headerBytes.copy(out, 8);
  let pos = 8 + headerBytes.length;
  for (const t of tensors.values()) {
    const src = Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength); // host is little-endian
    src.copy(out, pos);
    pos += src.length;
  }
  return out;
}

export function writeSafetensors(path: string, tensors: Map<string, Tensor>): void {
  writeFileSync(path, encodeSafetensors(tensors));
}

/** Bytes of tensor data (what model.safetensors.index.json calls total_size). */
export function dataBytes(tensors: Map<string, Tensor>): number {
  let n = 0;
  for (const t of tensors.values()) n += t.data.length * BYTES[t.dtype];
  return n;
}

/**
 * Writes `model.safetensors` (shards = 1) or `model-0000X-of-0000N.safetensors` plus `model.safetensors.index.json`
 * (shards > 1), splitting tensors in order into shards of roughly equal byte size. Returns the file names written.
 */
export function writeCheckpoint(dir: string, tensors: Map<string, Tensor>, shards = 1): string[] {
  if (shards <= 1) {
    writeSafetensors(join(dir, 'model.safetensors'), tensors);
    return ['model.safetensors'];
  }
  const total = dataBytes(tensors);
  const entries = [...tensors];
  const groups: [string, Tensor][][] = Array.from({ length: shards }, () => []);
  let acc = 0;
  for (const e of entries) {
    const idx = Math.min(shards - 1, Math.floor((acc / total) * shards));
    groups[idx].push(e);
    acc += e[1].data.length * BYTES[e[1].dtype];
  }
  const pad = (n: number) => String(n).padStart(5, '0');
  const weightMap: Record<string, string> = {};
  const files: string[] = [];
  groups.forEach((g, i) => {
    const file = `model-${pad(i + 1)}-of-${pad(shards)}.safetensors`;
    writeSafetensors(join(dir, file), new Map(g));
    for (const [name] of g) weightMap[name] = file;
    files.push(file);
  });
  writeFileSync(
    join(dir, 'model.safetensors.index.json'),
    JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2),
  );
  return files;
}

// ---- reader ----

export interface ParsedFile {
  headerLength: number;
  header: Record<string, HeaderEntry>;
  metadata?: Record<string, string>;
  /** Byte offset in the file where tensor data starts. */
  dataStart: number;
  bytes: Buffer;
}

export function parseSafetensors(bytes: Buffer): ParsedFile {
  if (bytes.length < 8) throw new Error('safetensors: file shorter than 8 bytes');
  const n = Number(bytes.readBigUInt64LE(0));
  if (8 + n > bytes.length) throw new Error(`safetensors: header of ${n} bytes runs past the end of the file`);
  const raw = JSON.parse(bytes.subarray(8, 8 + n).toString('utf8')) as Record<string, unknown>;
  const { __metadata__, ...rest } = raw;
  return {
    headerLength: n,
    header: rest as Record<string, HeaderEntry>,
    metadata: __metadata__ as Record<string, string> | undefined,
    dataStart: 8 + n,
    bytes,
  };
}

export function readSafetensors(path: string): ParsedFile {
  return parseSafetensors(readFileSync(path));
}

/** Decodes one tensor to numbers (floats as their exact values, I32 as integers). */
export function tensorValues(file: ParsedFile, name: string): Float64Array | Int32Array {
  const e = file.header[name];
  if (!e) throw new Error(`safetensors: no tensor ${name}`);
  const [b, end] = e.data_offsets;
  const buf = file.bytes.subarray(file.dataStart + b, file.dataStart + end);
  const ab = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength);
  switch (e.dtype) {
    case 'I32':
      return new Int32Array(ab);
    case 'F32':
      return Float64Array.from(new Float32Array(ab));
    case 'F16':
      return Float64Array.from(new Uint16Array(ab), f16ToNumber);
    case 'BF16':
      return Float64Array.from(new Uint16Array(ab), bf16ToNumber);
    default:
      throw new Error(`safetensors: unsupported dtype ${e.dtype}`);
  }
}

/** Rewrites a file with a new header (used to inject faults); data bytes are kept as they are. */
export function withHeader(file: ParsedFile, header: Record<string, unknown>): Buffer {
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
  const hb = Buffer.from(json, 'utf8');
  const out = Buffer.alloc(8 + hb.length + (file.bytes.length - file.dataStart));
  out.writeBigUInt64LE(BigInt(hb.length), 0);
  hb.copy(out, 8);
  file.bytes.copy(out, 8 + hb.length, file.dataStart);
  return out;
}
