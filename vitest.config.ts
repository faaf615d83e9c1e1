import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    // The second repeats, at the end, the tests skipped for a reason (no numpy, no dist/).
    reporters: ['default', './test/reporters/skip-summary.ts'],
  },
});
