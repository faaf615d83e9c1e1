import { readdirSync, readFileSync, existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
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
