/**
 * The JSON Schemas of spec/schemas/, applied at run time (issue 12): every
 * file or message vdspec reads is checked against its format's schema, and
 * the first violation becomes one line naming the file and the JSON path,
 * e.g. `run/model.sparse.json: /layers/0/shape: expected at most 2 entries, got 3`. Checks no
 * schema can express (an index in range, a count that must match) stay with
 * the reader of the format.
 */
import { readFileSync } from 'node:fs';
import { Ajv2020, type ErrorObject, type ValidateFunction } from 'ajv/dist/2020.js';

/** A schema of spec/schemas/, by file name without `.schema.json`. */
export type SchemaName =
  'golden' | 'results' | 'port-message' | 'sparse-model' | 'train-record' | 'checkpoint-header';

const ajv = new Ajv2020({ strict: true, verbose: true, discriminator: true });
// A schema may word a keyword's failure itself: {"x-messages": {"minProperties": "holds no op"}}.
ajv.addKeyword({ keyword: 'x-messages', schemaType: 'object' });

/** The validator of a schema, or of one of its definitions (`def`: a name in `$defs`); Ajv caches it. */
function validator(name: SchemaName, def?: string): ValidateFunction {
  if (ajv.getSchema(name) === undefined) {
    const url = new URL(`../spec/schemas/${name}.schema.json`, import.meta.url);
    ajv.addSchema(JSON.parse(readFileSync(url, 'utf8')) as object, name);
  }
  const v = ajv.getSchema(def === undefined ? name : `${name}#/$defs/${def}`);
  if (v === undefined) throw new Error(`spec/schemas/${name}.schema.json has no $defs/${def}`);
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

/** Where (a JSON pointer) and what, in words, for one Ajv error. */
function words(name: SchemaName, e: ErrorObject): [string, string] {
  const p = e.params as Record<string, unknown>;
  const path = e.instancePath === '' ? '/' : e.instancePath;
  const at = (key: unknown) => `${e.instancePath}/${String(key)}`;
  const parent = e.parentSchema as {
    'x-messages'?: Record<string, string>;
    properties?: object;
    oneOf?: { $ref?: string }[];
  };
  const own = parent['x-messages']?.[e.keyword];
  if (own !== undefined) return [path, own];
  switch (e.keyword) {
    case 'required':
      return [at(p['missingProperty']), 'missing field'];
    case 'additionalProperties': {
      const allowed = Object.keys(parent.properties ?? {}).join(', ');
      return [at(p['additionalProperty']), `unknown field (allowed: ${allowed})`];
    }
    case 'discriminator': {
      // Each branch is a {"$ref": "#/$defs/..."} whose tag property is a const.
      const tag = String(p['tag']);
      const allowed = (parent.oneOf ?? []).map((branch) => {
        const target = ajv.getSchema(`${name}${branch.$ref ?? ''}`)?.schema as
          { properties?: Record<string, { const?: unknown }> } | undefined;
        return show(target?.properties?.[tag]?.const);
      });
      return [
        at(tag),
        `unknown ${tag} ${show(p['tagValue'])} (expected one of ${allowed.join(', ')})`,
      ];
    }
    case 'const':
      return [path, `${show(e.data)}, expected ${show(p['allowedValue'])}`];
    case 'enum':
      return [
        path,
        `${show(e.data)}, expected ${(p['allowedValues'] as unknown[]).map(show).join(' or ')}`,
      ];
    case 'type': {
      const type = String(p['type']).replace(/,/g, ' or ');
      return [path, `${show(e.data)} is not ${/^[aeiou]/.test(type) ? 'an' : 'a'} ${type}`];
    }
    case 'minItems':
    case 'maxItems': {
      const bound = e.keyword === 'minItems' ? 'at least' : 'at most';
      const got = Array.isArray(e.data) ? e.data.length : 0;
      return [path, `expected ${bound} ${String(p['limit'])} entries, got ${got}`];
    }
    default:
      return [path, e.message ?? e.keyword];
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
  const errors = validate.errors ?? [];
  if (errors[0] === undefined)
    return { path: '/', problem: 'does not match', keyword: '', data: value };
  // The first error of a failed anyOf/oneOf is its first branch's ("not an object"). Where the
  // schema worded a combinator at that place itself, the outermost one's words (Ajv reports a
  // combinator after its branches) say what was expected.
  const worded = errors.filter(
    (e) =>
      e.instancePath === errors[0]!.instancePath &&
      (e.parentSchema as { 'x-messages'?: Record<string, string> })['x-messages']?.[e.keyword] !==
        undefined,
  );
  const first = worded[worded.length - 1] ?? errors[0];
  const [path, problem] = words(name, first);
  return { path, problem, keyword: first.keyword, data: first.data };
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
