import { readdirSync, readFileSync, existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { OPS } from '../../src/ops.js';
import { constantsTableMarkdown } from '../../src/reference/constantsTable.js';
import { expectSpecBlock } from './spec-blocks.js';

const SPEC = resolve(import.meta.dirname, '../../spec');
const pages = readdirSync(SPEC).filter((f) => f.endsWith('.md'));

describe('spec pages', () => {
  it('spec/constants.md: the table is generated from src/constants.ts, unchanged', () => {
    expectSpecBlock('constants.md', 'constants-table', constantsTableMarkdown());
  });

  it.each(pages)('spec/%s: every relative link points to an existing file', (page) => {
    const text = readFileSync(join(SPEC, page), 'utf8');
    const links = [...text.matchAll(/\]\(([^)#\s]+)(#[^)\s]*)?\)/g)]
      .map((m) => m[1]!)
      .filter((href) => !/^[a-z]+:/.test(href));
    for (const href of links) {
      expect(existsSync(resolve(dirname(join(SPEC, page)), href)), `${page} -> ${href}`).toBe(true);
    }
  });
});

/** GitHub's heading anchor: lower case, punctuation other than - and _ dropped, spaces to -. */
function slug(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\w\- ]/g, '')
    .replace(/ /g, '-');
}

/** The heading anchors of a spec page, as GitHub makes them (headings inside code blocks are none). */
function anchorsOf(page: string): string[] {
  const text = readFileSync(join(SPEC, page), 'utf8').replace(/^```[\s\S]*?^```/gm, '');
  return [...text.matchAll(/^#+ (.*)$/gm)].map((m) => slug(m[1]!));
}

const ROOT = resolve(SPEC, '..');
/** TypeScript files under `dir`, at any depth. */
function sourcesUnder(dir: string): string[] {
  return readdirSync(resolve(ROOT, dir), { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.ts'))
    .map((f) => resolve(ROOT, dir, f));
}
/**
 * What a reader sees (the spec pages, the README, the CLI's help and output)
 * and what a maintainer follows (the sources' comments, the tests' names).
 * This file itself cites a made-up page.
 */
const CITING = [
  ...pages.map((p) => join(SPEC, p)),
  join(ROOT, 'README.md'),
  ...sourcesUnder('src'),
  ...sourcesUnder('test/properties').filter((f) => f !== fileURLToPath(import.meta.url)),
];

describe('spec anchors: every spec/<page>.md#anchor cited in the spec, README, sources and tests is a heading of that page', () => {
  it.each(CITING.map((f) => [f.slice(ROOT.length + 1), f] as const))('%s', (_name, file) => {
    const text = readFileSync(file, 'utf8');
    const inSpec = dirname(file) === SPEC;
    // `spec/x.md#a` anywhere; in the spec pages also links `](x.md#a)` and `](#a)`.
    const cited = [
      ...[...text.matchAll(/spec\/([a-z0-9-]+\.md)#([\w.-]*\w)/g)].map((m) => [m[1]!, m[2]!]),
      ...(inSpec
        ? [...text.matchAll(/\]\(([a-z0-9-]+\.md)?#([^)\s]+)\)/g)].map((m) => [
            m[1] ?? file.slice(SPEC.length + 1),
            m[2]!,
          ])
        : []),
    ];
    for (const [page, anchor] of cited) {
      if (!pages.includes(page!)) continue;
      expect(anchorsOf(page!), `${page}#${anchor}`).toContain(anchor);
    }
  });
});

describe('spec/ops.md: every operation is defined by a section that exists', () => {
  it.each(OPS.map((op) => [op.name, op.section] as const))('%s -> %s', (_name, section) => {
    const [page, anchor] = section.replace('spec/', '').split('#');
    const text = readFileSync(join(SPEC, page!), 'utf8');
    const anchors = [...text.matchAll(/^#+ (.*)$/gm)].map((m) => slug(m[1]!));
    expect(anchors).toContain(anchor);
  });
});
