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
export type SchemaName =
  'results' | 'port-message' | 'sparse-model' | 'train-record' | 'checkpoint-header';

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

/** The first violation of a schema: where (a JSON pointer, `/` for the root) and what. */
export interface SchemaViolation {
  readonly path: string;
  readonly problem: string;
  /** The schema keyword that failed (`type`, `required`, `minItems`, ...). */
  readonly keyword: string;
  /** The value at `path`. */
  readonly data: unknown;
}

function violation(name: SchemaName, e: ErrorObject): SchemaViolation {
  const p = e.params as Record<string, unknown>;
  const base = { keyword: e.keyword, data: e.data };
  const at = (key: unknown) => `${e.instancePath}/${String(key)}`;
  const own = (e.parentSchema as { 'x-messages'?: Record<string, string> } | undefined)?.[
    'x-messages'
  ]?.[e.keyword];
  const path = e.instancePath === '' ? '/' : e.instancePath;
  if (own !== undefined) return { ...base, path, problem: own };
  switch (e.keyword) {
    case 'required':
      return { ...base, path: at(p['missingProperty']), problem: 'missing field' };
    case 'additionalProperties': {
      const allowed = Object.keys(
        (e.parentSchema as { properties?: object } | undefined)?.properties ?? {},
      );
      return {
        ...base,
        path: at(p['additionalProperty']),
        problem: `unknown field (allowed: ${allowed.join(', ')})`,
      };
    }
    case 'discriminator': {
      // Each branch is a {"$ref": "#/$defs/..."} whose tag property is a const.
      const tag = String(p['tag']);
      const allowed = ((e.parentSchema as { oneOf?: { $ref?: string }[] }).oneOf ?? []).map(
        (branch) => {
          const target = ajv.getSchema(`${name}${branch.$ref ?? ''}`)?.schema as
            { properties?: Record<string, { const?: unknown }> } | undefined;
          return show(target?.properties?.[tag]?.const);
        },
      );
      return {
        ...base,
        path: at(tag),
        problem: `unknown ${tag} ${show(p['tagValue'])} (expected one of ${allowed.join(', ')})`,
      };
    }
    case 'const':
      return { ...base, path, problem: `${show(e.data)}, expected ${show(p['allowedValue'])}` };
    case 'enum': {
      const allowed = (p['allowedValues'] as unknown[]).map(show).join(' or ');
      return { ...base, path, problem: `${show(e.data)}, expected ${allowed}` };
    }
    case 'type': {
      const type = String(p['type']).replace(/,/g, ' or ');
      const article = /^[aeiou]/.test(type) ? 'an' : 'a';
      return { ...base, path, problem: `${show(e.data)} is not ${article} ${type}` };
    }
    case 'minItems':
    case 'maxItems': {
      const bound = e.keyword === 'minItems' ? 'at least' : 'at most';
      const got = Array.isArray(e.data) ? e.data.length : 0;
      return {
        ...base,
        path,
        problem: `expected ${bound} ${String(p['limit'])} entries, got ${got}`,
      };
    }
    default:
      return { ...base, path, problem: e.message ?? e.keyword };
  }
}

/** The first violation of a schema (or of one of its `$defs`: `def`) by `value`; null when it conforms. */
export function schemaViolation(
  name: SchemaName,
  value: unknown,
  def?: string,
): SchemaViolation | null {
  const validate = validator(name, def);
  if (validate(value)) return null;
  const first = validate.errors?.[0];
  return first === undefined
    ? { path: '/', problem: 'does not match its schema', keyword: '', data: value }
    : violation(name, first);
}

/** As schemaViolation, in one line: `<what>: <JSON path>: <problem>`. */
export function schemaProblem(
  name: SchemaName,
  value: unknown,
  what: string,
  def?: string,
): string | null {
  const v = schemaViolation(name, value, def);
  return v === null ? null : `${what}: ${v.path}: ${v.problem}`;
}
