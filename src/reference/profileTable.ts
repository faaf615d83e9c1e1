/**
 * The side-by-side profile table of spec/profiles.md and the list of fields in
 * which each profile departs from its canonical one, generated from
 * src/profiles.ts so that the page cannot drift from the data
 * (test/properties/profiles.test.ts checks that the page contains exactly
 * these blocks).
 *
 * Rows come from the data itself (every leaf of every profile object, in
 * declaration order), so a field added to the Profile type shows up here
 * without editing this file.
 */
import {
  CANONICAL_PROFILE,
  PROFILE_NAMES,
  PROFILES,
  type Profile,
  type ProfileName,
} from '../profiles.js';

/** A leaf value of a profile, or `absent` when an ancestor object is null (e.g. `prune` of VD). */
type Leaf = string | number | boolean | null;
const ABSENT = Symbol('absent');

/**
 * Fields that name or describe a profile rather than a convention: they differ
 * between any two profiles and say nothing about the numbers an operation returns.
 */
const IDENTITY_FIELDS: readonly string[] = ['name', 'canonical'];
const IDENTITY_PREFIXES: readonly string[] = ['source.'];

function isIdentityField(path: string): boolean {
  return IDENTITY_FIELDS.includes(path) || IDENTITY_PREFIXES.some((p) => path.startsWith(p));
}

function collectLeafPaths(value: unknown, prefix: string, out: string[]): void {
  if (value !== null && typeof value === 'object') {
    for (const [key, child] of Object.entries(value)) {
      collectLeafPaths(child, prefix === '' ? key : `${prefix}.${key}`, out);
    }
  } else if (!out.includes(prefix)) {
    out.push(prefix);
  }
}

/**
 * Every leaf field path of the profiles (`dense.logAlpha.clip.min`, ...), in
 * declaration order, the union over all profiles. A null object in one profile
 * (VD's `prune`) does not hide its children: another profile supplies them.
 */
export function profileLeafPaths(): string[] {
  const paths: string[] = [];
  for (const name of PROFILE_NAMES) collectLeafPaths(PROFILES[name], '', paths);
  // A path that is a leaf (null) in one profile and an object in another keeps only its children.
  return paths.filter((p) => !paths.some((q) => q.startsWith(`${p}.`)));
}

/** The value of a leaf path in a profile; ABSENT when an ancestor is null. */
function leafValue(profile: Profile, path: string): Leaf | typeof ABSENT {
  let node: unknown = profile;
  for (const key of path.split('.')) {
    if (node === null) return ABSENT;
    node = (node as Record<string, unknown>)[key];
  }
  return node as Leaf;
}

/**
 * The leaf fields (identity fields excluded) in which `name` differs from the
 * canonical profile of its algorithm. A field under a null ancestor counts as
 * different from any value.
 */
export function profileDifferences(name: ProfileName): string[] {
  const profile = PROFILES[name];
  const canonical = PROFILES[CANONICAL_PROFILE[profile.algorithm]];
  return profileLeafPaths().filter(
    (path) => !isIdentityField(path) && leafValue(profile, path) !== leafValue(canonical, path),
  );
}

function escapeCell(text: string): string {
  return text.replace(/\|/g, '\\|');
}

function formatLeaf(value: Leaf | typeof ABSENT): string {
  if (value === ABSENT) return '—';
  if (value === null) return '`null`';
  if (typeof value === 'number' || typeof value === 'boolean') return `\`${String(value)}\``;
  // Enumerated values and identifiers read as code; sentences (notes, citations) as text.
  return /^[\w./<>=-]+$/.test(value) ? `\`${escapeCell(value)}\`` : escapeCell(value);
}

/**
 * The side-by-side table: one column per profile, one row per leaf field.
 * A cell is bold where the profile differs from the canonical profile of its
 * algorithm; `—` means that an ancestor of the field is null.
 */
export function profileTableMarkdown(): string {
  const header = `| field | ${PROFILE_NAMES.map((n) => `\`${n}\``).join(' | ')} |`;
  const rule = `| --- | ${PROFILE_NAMES.map(() => '---').join(' | ')} |`;
  const rows = profileLeafPaths().map((path) => {
    const cells = PROFILE_NAMES.map((name) => {
      const profile = PROFILES[name];
      const text = formatLeaf(leafValue(profile, path));
      const differs = !isIdentityField(path) && profileDifferences(name).includes(path);
      return differs ? `**${text}**` : text;
    });
    return `| \`${path}\` | ${cells.join(' | ')} |`;
  });
  return [header, rule, ...rows].join('\n');
}

/**
 * One row per non-canonical profile: the canonical profile it is compared with
 * and the convention fields in which it differs.
 */
export function profileDifferencesMarkdown(): string {
  const rows = PROFILE_NAMES.filter((name) => !PROFILES[name].canonical).map((name) => {
    const canonical = CANONICAL_PROFILE[PROFILES[name].algorithm];
    const fields = profileDifferences(name)
      .map((p) => `\`${p}\``)
      .join(', ');
    return `| \`${name}\` | \`${canonical}\` | ${fields} |`;
  });
  return ['| profile | compared with | fields that differ |', '| --- | --- | --- |', ...rows].join(
    '\n',
  );
}
