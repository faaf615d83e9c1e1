import { readdirSync, readFileSync, existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
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

describe('spec/ops.md: every operation is defined by a section that exists', () => {
  it.each(OPS.map((op) => [op.name, op.section] as const))('%s -> %s', (_name, section) => {
    const [page, anchor] = section.replace('spec/', '').split('#');
    const text = readFileSync(join(SPEC, page!), 'utf8');
    const anchors = [...text.matchAll(/^#+ (.*)$/gm)].map((m) => slug(m[1]!));
    expect(anchors).toContain(anchor);
  });
});
