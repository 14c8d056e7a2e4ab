// Which JSON Schema the worker's grammar engine (xgrammar 0.1.27) can enforce, checked at the edge so that a schema
// it would silently loosen is refused with a 400 naming the keyword, before any worker is involved.
//
// Enforced: type (one or a list), enum, const, anyOf, oneOf (as anyOf: a value matching several branches is not
// rejected), allOf with one schema, local $ref (`#`, `#/$defs/…`, `#/definitions/…`, any JSON pointer into the
// document), properties, required, additionalProperties, patternProperties, propertyNames, minProperties,
// maxProperties, unevaluatedProperties, items, prefixItems, minItems, maxItems, unevaluatedItems, minLength,
// maxLength, pattern, format (the values in FORMATS), minimum, maximum, exclusiveMinimum, exclusiveMaximum.
// Refused: the keywords in UNSUPPORTED, allOf with several schemas, remote $ref, draft-4 tuple `items: [...]`, and
// `pattern` together with minLength/maxLength/format (xgrammar would drop the latter). Annotations (title,
// description, default, examples, $schema, $id, $comment, …) and unknown keywords are ignored, as JSON Schema says.

const UNSUPPORTED = new Set([
  'not', 'if', 'then', 'else', 'dependentRequired', 'dependentSchemas', 'dependencies', 'multipleOf', 'uniqueItems',
  'contains', 'minContains', 'maxContains', '$dynamicRef', '$recursiveRef',
]);

const FORMATS = new Set([
  'email', 'date', 'time', 'date-time', 'duration', 'ipv4', 'ipv6', 'hostname', 'uuid', 'uri', 'uri-reference',
  'uri-template', 'json-pointer', 'relative-json-pointer',
]);

const TYPES = new Set(['string', 'number', 'integer', 'boolean', 'null', 'array', 'object']);

/** Keywords whose value is a schema, a list of schemas, or a map of names to schemas. */
const ONE_SCHEMA = ['additionalProperties', 'propertyNames', 'unevaluatedProperties', 'unevaluatedItems', 'items'];
const SCHEMA_LIST = ['anyOf', 'oneOf', 'allOf', 'prefixItems'];
const SCHEMA_MAP = ['properties', 'patternProperties', '$defs', 'definitions'];

/** Why a schema cannot be enforced, naming the keyword and where it is (a JSON pointer); undefined when it can. */
export function unsupportedSchemaReason(schema: unknown): string | undefined {
  return visit(schema, '#');
}

function visit(schema: unknown, at: string): string | undefined {
  if (typeof schema === 'boolean') return schema ? undefined : `the schema at ${at} is false: it accepts no value`;
  if (schema === null || typeof schema !== 'object' || Array.isArray(schema)) return `the schema at ${at} must be an object or a boolean`;
  const s = schema as Record<string, unknown>;
  for (const key of Object.keys(s)) {
    if (UNSUPPORTED.has(key)) return `the keyword "${key}" (at ${at}) is not supported by structured outputs`;
  }
  const types = Array.isArray(s.type) ? s.type : s.type === undefined ? [] : [s.type];
  for (const t of types) if (typeof t !== 'string' || !TYPES.has(t)) return `"type" at ${at} has an unknown type ${JSON.stringify(t)}`;
  if (Array.isArray(s.allOf) && s.allOf.length !== 1) return `"allOf" with ${s.allOf.length} schemas (at ${at}) is not supported by structured outputs; only one`;
  if (Array.isArray(s.items)) return `"items" as an array (at ${at}) is not supported; use "prefixItems" for tuples`;
  if (s.$ref !== undefined && (typeof s.$ref !== 'string' || !s.$ref.startsWith('#'))) {
    return `"$ref" ${JSON.stringify(s.$ref)} (at ${at}) is not supported: only references inside the schema ("#/…")`;
  }
  if (s.format !== undefined && (typeof s.format !== 'string' || !FORMATS.has(s.format))) {
    return `"format": ${JSON.stringify(s.format)} (at ${at}) is not supported; supported formats: ${[...FORMATS].join(', ')}`;
  }
  if (s.pattern !== undefined) {
    const other = ['minLength', 'maxLength', 'format'].find((k) => s[k] !== undefined);
    if (other) return `"pattern" together with "${other}" (at ${at}) is not supported; put the length or format into the pattern`;
  }
  for (const key of ONE_SCHEMA) {
    if (s[key] === undefined || typeof s[key] === 'boolean') continue;   // false: nothing more may follow
    const reason = visit(s[key], `${at}/${key}`);
    if (reason) return reason;
  }
  for (const key of SCHEMA_LIST) {
    if (s[key] === undefined) continue;
    if (!Array.isArray(s[key])) return `"${key}" at ${at} must be an array of schemas`;
    for (const [i, sub] of (s[key] as unknown[]).entries()) {
      const reason = visit(sub, `${at}/${key}/${i}`);
      if (reason) return reason;
    }
  }
  for (const key of SCHEMA_MAP) {
    if (s[key] === undefined) continue;
    if (s[key] === null || typeof s[key] !== 'object' || Array.isArray(s[key])) return `"${key}" at ${at} must be an object of schemas`;
    for (const [name, sub] of Object.entries(s[key] as Record<string, unknown>)) {
      const reason = visit(sub, `${at}/${key}/${name.replaceAll('~', '~0').replaceAll('/', '~1')}`);
      if (reason) return reason;
    }
  }
  return undefined;
}
