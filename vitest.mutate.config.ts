/**
 * The Vitest configuration of `npm run mutate` (stryker.config.mjs): the
 * project's, with the test files narrowed to VDSPEC_MUTATE_TESTS
 * (comma-separated paths) when it is set.
 */
import { defineConfig } from 'vitest/config';

import base from './vitest.config.js';

const only = process.env['VDSPEC_MUTATE_TESTS'];

export default defineConfig({
  ...base,
  test: {
    ...base.test,
    ...(only ? { include: only.split(',').map((f) => f.trim()) } : {}),
  },
});
