/**
 * Generated blocks in spec pages: `<!-- TAG:start -->` ... `<!-- TAG:end -->`.
 * A test passes the text the code produces now; the block must equal it, so
 * a page cannot drift from the code. `npm run spec:update` (which sets
 * VDSPEC_UPDATE_SPEC=1) rewrites the blocks instead of comparing them.
 */
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { expect } from 'vitest';

const SPEC_DIR = resolve(import.meta.dirname, '../../spec');

function blockPattern(tag: string): RegExp {
  return new RegExp(`(<!-- ${tag}:start -->\\n)([\\s\\S]*?)(\\n<!-- ${tag}:end -->)`);
}

export function readSpecBlock(page: string, tag: string): string | undefined {
  const text = readFileSync(resolve(SPEC_DIR, page), 'utf8');
  return blockPattern(tag).exec(text)?.[2]?.trim();
}

/**
 * Assert that the block `tag` of `spec/<page>` is `expected` (surrounding
 * blank lines ignored: prettier adds them around fenced code).
 */
export function expectSpecBlock(page: string, tag: string, expected: string): void {
  const path = resolve(SPEC_DIR, page);
  const text = readFileSync(path, 'utf8');
  const pattern = blockPattern(tag);
  expect(pattern.test(text), `spec/${page} has no block ${tag}`).toBe(true);
  if (process.env['VDSPEC_UPDATE_SPEC'] === '1') {
    const padded = expected.startsWith('```') ? `\n${expected}\n` : expected;
    const updated = text.replace(
      pattern,
      (_m, start: string, _old, end: string) => start + padded + end,
    );
    if (updated !== text) {
      const tmp = `${path}.tmp-${process.pid}`;
      writeFileSync(tmp, updated);
      renameSync(tmp, path);
    }
    return;
  }
  expect(
    readSpecBlock(page, tag),
    `spec/${page} block ${tag} (npm run spec:update rewrites it)`,
  ).toBe(expected.trim());
}
