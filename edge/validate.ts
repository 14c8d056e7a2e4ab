// Checks of JSON values without zod, giving zod's answers: the first problem with zod's English message and path, and
// the value to keep (an object's declared fields in the shape's order, others dropped or refused). zod costs a cold
// isolate milliseconds to load and to build its schemas, and its generic parse more on the first request; the edge's
// hot paths (request bodies: edge/validate-request.ts; key records: edge/key-store.ts; worker frames:
// edge/validate-worker.ts) use these few small functions instead, each held to its zod schema by a test.
import { paramName } from '../gpu-worker/protocol-basics.ts';
import { invalidRequest } from './errors.ts';

/**
 * A problem found in a body, as zod reports it: the path from the top, zod's English message, whether it stops the
 * value's other checks (`aborts`: a wrong type does, a failed size or range check does not, which decides what a
 * union reports), and for a union that no branch matched, each branch's problems.
 */
export type Issue = { path: PropertyKey[]; message: string; aborts: boolean; branches?: Issue[][] };

/** Checks one value, adds its problems (paths relative to it) to `issues`, returns the value to keep. */
export type Check = ((input: unknown, issues: Issue[]) => unknown) & { optional?: boolean };

export const issue = (message: string, aborts = true, path: PropertyKey[] = []): Issue => ({ path, message, aborts });

/** The type name zod's messages give a JSON value. */
function typeName(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  return typeof value;
}

const invalidType = (expected: string, input: unknown) => issue(`Invalid input: expected ${expected}, received ${typeName(input)}`);

/** Puts `key` in front of the paths of the problems added since `from`. */
function prefix(issues: Issue[], from: number, key: PropertyKey): void {
  for (let i = from; i < issues.length; i++) issues[i].path.unshift(key);
}

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

// --- leaves ---------------------------------------------------------------------------------------------------------

type Bound = { min?: number; max?: number; gt?: number };

/** Range checks after the type: each failure is reported and does not abort (zod's checks). */
function checkRange(value: number, issues: Issue[], { min, max, gt }: Bound): void {
  if (gt !== undefined && !(value > gt)) issues.push(issue(`Too small: expected number to be >${gt}`, false));
  if (min !== undefined && !(value >= min)) issues.push(issue(`Too small: expected number to be >=${min}`, false));
  if (max !== undefined && !(value <= max)) issues.push(issue(`Too big: expected number to be <=${max}`, false));
}

export function num(bound: Bound = {}): Check {
  return (input, issues) => {
    if (typeof input !== 'number') issues.push(invalidType('number', input));
    else checkRange(input, issues, bound);
    return input;
  };
}

/** An integer (zod's int(): safe integers; a fraction aborts the other checks, an unsafe size does not). */
export function int(bound: Bound = {}): Check {
  return (input, issues) => {
    if (typeof input !== 'number') issues.push(invalidType('number', input));
    else if (!Number.isInteger(input)) issues.push(issue('Invalid input: expected int, received number'));
    else {
      if (input > Number.MAX_SAFE_INTEGER) issues.push(issue(`Too big: expected int to be <=${Number.MAX_SAFE_INTEGER}`, false));
      else if (input < Number.MIN_SAFE_INTEGER) issues.push(issue(`Too small: expected int to be >=${Number.MIN_SAFE_INTEGER}`, false));
      checkRange(input, issues, bound);
    }
    return input;
  };
}

/** A string with a length in [min, max]. */
export function str(bound: { min?: number; max?: number } = {}): Check {
  return (input, issues) => {
    if (typeof input !== 'string') {
      issues.push(invalidType('string', input));
      return input;
    }
    if (bound.min !== undefined && input.length < bound.min) issues.push(issue(`Too small: expected string to have >=${bound.min} characters`, false));
    if (bound.max !== undefined && input.length > bound.max) issues.push(issue(`Too big: expected string to have <=${bound.max} characters`, false));
    return input;
  };
}

export const string = str();
export const nonEmpty = str({ min: 1 });
export const bool: Check = (input, issues) => {
  if (typeof input !== 'boolean') issues.push(invalidType('boolean', input));
  return input;
};
export const anything: Check = (input) => input;

/** One of fixed strings (zod's enum; literal when there is one). */
export function oneOf(values: readonly string[]): Check {
  const message = values.length === 1 ? `Invalid input: expected "${values[0]}"` : `Invalid option: expected one of ${values.map((v) => `"${v}"`).join('|')}`;
  return (input, issues) => {
    if (!values.includes(input as string)) issues.push(issue(message));
    return input;
  };
}

/** A string matching `pattern`, with the schema's own message. */
export function matching(pattern: RegExp, message: string): Check {
  return (input, issues) => {
    if (typeof input !== 'string') issues.push(invalidType('string', input));
    else if (!pattern.test(input)) issues.push(issue(message, false));
    return input;
  };
}

// --- containers and wrappers ----------------------------------------------------------------------------------------

/** Absent (undefined) or null passes as it is; anything else is checked by `inner`. */
export function nullish(inner: Check): Check {
  const check: Check = (input, issues) => (input == null ? input : inner(input, issues));
  check.optional = true;
  return check;
}

/** null passes; anything else, absent (undefined) included, is checked by `inner`. */
export function nullable(inner: Check): Check {
  return (input, issues) => (input === null ? input : inner(input, issues));
}

/** Absent (undefined) passes; null is checked by `inner` like any value. */
export function optional(inner: Check): Check {
  const check: Check = (input, issues) => (input === undefined ? input : inner(input, issues));
  check.optional = true;
  return check;
}

/** An array of `item`; longer than `max` is refused before its items are looked at, shorter than `min` after. */
export function array(item: Check, bound: { min?: number; max?: number } = {}): Check {
  return (input, issues) => {
    if (!Array.isArray(input)) {
      issues.push(invalidType('array', input));
      return input;
    }
    if (bound.max !== undefined && input.length > bound.max) {
      issues.push(issue(`Too big: expected array to have <=${bound.max} items`));
      return input;
    }
    const out = new Array(input.length);
    for (let i = 0; i < input.length; i++) {
      const from = issues.length;
      out[i] = item(input[i], issues);
      if (issues.length > from) prefix(issues, from, i);
    }
    if (bound.min !== undefined && input.length < bound.min) issues.push(issue(`Too small: expected array to have >=${bound.min} items`, false));
    return out;
  };
}

export type Shape = Record<string, Check>;

/**
 * An object with the fields of `shape`, checked and copied in the shape's order (a field the body has is kept, even
 * when its value is undefined; an absent optional field is left out). Other fields: dropped ('strip'), refused after
 * the declared ones ('strict'), or kept as they are after them ('loose').
 */
export function object(shape: Shape, extra: 'strip' | 'strict' | 'loose' = 'strip'): Check {
  const keys = Object.keys(shape);
  return (input, issues) => {
    if (!isObject(input)) {
      issues.push(invalidType('object', input));
      return input;
    }
    const out: Record<string, unknown> = {};
    for (const key of keys) {
      const check = shape[key];
      const present = key in input;
      if (!present && check.optional) continue;
      const from = issues.length;
      const value = check(input[key], issues);
      if (issues.length > from) prefix(issues, from, key);
      if (present) out[key] = value;
    }
    if (extra === 'strip') return out;
    const unknown: string[] = [];
    for (const key in input) {
      if (Object.hasOwn(shape, key)) continue;
      if (extra === 'strict') unknown.push(key);
      else if (key !== '__proto__') out[key] = input[key];
    }
    if (unknown.length > 0) issues.push(issue(`Unrecognized key${unknown.length > 1 ? 's' : ''}: ${unknown.map((k) => `"${k}"`).join(', ')}`, false));
    return out;
  };
}

/** A string-keyed record of `value`s, copied (its own enumerable keys, __proto__ left out). */
export function record(value: Check): Check {
  return (input, issues) => {
    if (!isObject(input)) {
      issues.push(invalidType('record', input));
      return input;
    }
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(input)) {
      if (key === '__proto__') continue;
      const from = issues.length;
      out[key] = value(input[key], issues);
      if (issues.length > from) prefix(issues, from, key);
    }
    return out;
  };
}

/**
 * The first of `options` the value passes; when none does and exactly one failed only checks that do not abort, that
 * one's problems; else one problem holding every branch's (zod's union).
 */
export function union(options: readonly Check[]): Check {
  return (input, issues) => {
    const failed: Issue[][] = [];
    for (const option of options) {
      const own: Issue[] = [];
      const value = option(input, own);
      if (own.length === 0) return value;
      failed.push(own);
    }
    const softly = failed.filter((own) => !own.some((i) => i.aborts));
    if (softly.length === 1) issues.push(...softly[0]);
    else issues.push({ ...issue('Invalid input'), branches: failed });
    return input;
  };
}

/** Objects told apart by their `key` field (zod's discriminatedUnion over literal keys). */
export function tagged(key: string, options: Record<string, Check>): Check {
  const tags = Object.keys(options);
  const message = `Invalid discriminator value. Expected ${tags.map((t) => `'${t}'`).join(' | ')}`;
  return (input, issues) => {
    if (!isObject(input)) {
      issues.push(invalidType('object', input));
      return input;
    }
    const tag = input[key];
    if (typeof tag === 'string' && Object.hasOwn(options, tag)) return options[tag](input, issues);
    issues.push(issue(message, true, [key]));
    return input;
  };
}

// --- reporting ------------------------------------------------------------------------------------------------------

/**
 * What the client is told about the first problem: the message and `param` naming the field. A union that no branch
 * matched is explained by the branch that got furthest into the value (the longest path of each branch's first
 * problem; the first on a tie), inwards.
 */
export function issueReport(first: Issue): { message: string; param: string | null } {
  let found = first;
  let path = [...first.path];
  while (found.branches && found.branches.length > 0) {
    const heads = found.branches.map((own) => own[0]).filter(Boolean);
    const deepest = heads.reduce((a, b) => (b.path.length > a.path.length ? b : a), heads[0]);
    if (!deepest || deepest.path.length === 0) break;
    found = deepest;
    path = [...path, ...deepest.path];
  }
  const param = paramName(path);
  return { message: param ? `Invalid value for '${param}': ${found.message}` : found.message, param };
}

/** The 400 invalid_request_error for the first problem. */
export function requestError(first: Issue): never {
  const { message, param } = issueReport(first);
  throw invalidRequest(message, param);
}
