/**
 * The JSON Schemas of spec/schemas/, applied at run time (issue 12): every
 * file or message vdspec reads is checked against its format's schema, and
 * the first violation becomes one line naming the file and the JSON path,
 * e.g. `model.sparse.json: /layers/0/theta/shape: must be array`. Checks no
 * schema can express (an index in range, a count that must match) stay with
 * the reader of the format.
 */
import { readFileSync } from 'node:fs';
import { Ajv2020, type ErrorObject, type ValidateFunction } from 'ajv/dist/2020.js';

/** A schema of spec/schemas/, by file name without `.schema.json`. */
export type SchemaName = 'results' | 'port-message';

const ajv = new Ajv2020({ strict: true, verbose: true, discriminator: true });
// A schema may word a keyword's failure itself: {"x-messages": {"minProperties": "holds no op"}}.
ajv.addKeyword({ keyword: 'x-messages', schemaType: 'object' });

const compiled = new Map<string, ValidateFunction>();

function load(name: SchemaName): void {
  if (ajv.getSchema(name) !== undefined) return;
  const url = new URL(`../spec/schemas/${name}.schema.json`, import.meta.url);
  ajv.addSchema(JSON.parse(readFileSync(url, 'utf8')) as object, name);
}

/** The validator of a schema, or of one of its definitions (`def`: a name in `$defs`). */
function validator(name: SchemaName, def?: string): ValidateFunction {
  const key = def === undefined ? name : `${name}#/$defs/${def}`;
  let v = compiled.get(key);
  if (v === undefined) {
    load(name);
    v = ajv.getSchema(key);
    if (v === undefined) throw new Error(`spec/schemas/${name}.schema.json has no ${key}`);
    compiled.set(key, v);
  }
  return v;
}

function show(value: unknown): string {
  const s = JSON.stringify(value);
  return s === undefined ? String(value) : s.length > 80 ? `${s.slice(0, 80)}...` : s;
}

/** One violation in words: `/path: what is wrong`. */
function describe(e: ErrorObject): string {
  const path = e.instancePath === '' ? '/' : e.instancePath;
  const own = (e.parentSchema as { 'x-messages'?: Record<string, string> } | undefined)?.[
    'x-messages'
  ]?.[e.keyword];
  if (own !== undefined) return `${path}: ${own}`;
  const p = e.params as Record<string, unknown>;
  switch (e.keyword) {
    case 'required':
      return `${path}: missing "${String(p['missingProperty'])}"`;
    case 'additionalProperties':
      return `${path}: unknown key "${String(p['additionalProperty'])}"`;
    case 'const':
      return `${path}: ${show(e.data)}, expected ${show(p['allowedValue'])}`;
    case 'enum':
      return `${path}: ${show(e.data)}, expected ${(p['allowedValues'] as unknown[]).map(show).join(' or ')}`;
    case 'type':
      return `${path}: ${show(e.data)} is not ${/^[aeiou]/.test(String(p['type'])) ? 'an' : 'a'} ${String(p['type'])}`;
    default:
      return `${path}: ${e.message ?? e.keyword}`;
  }
}

/**
 * Check `value` against a schema (or one of its `$defs`); null when it
 * conforms, else one line, `<what>: <JSON path>: <problem>`.
 */
export function schemaProblem(
  name: SchemaName,
  value: unknown,
  what: string,
  def?: string,
): string | null {
  const validate = validator(name, def);
  if (validate(value)) return null;
  const errors = validate.errors ?? [];
  // The deepest error is the most specific one; ties go to the first reported.
  let best = errors[0];
  for (const e of errors) if (best && e.instancePath.length > best.instancePath.length) best = e;
  return best === undefined ? `${what}: does not match its schema` : `${what}: ${describe(best)}`;
}
