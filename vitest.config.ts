import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    // The second repeats, at the end, the tests skipped for a reason (no numpy, no dist/).
    reporters: ['default', './test/reporters/skip-summary.ts'],
    // vdspec train defaults to every core; the suite's runs are single-threaded unless a
    // test asks for threads (parallel.test.ts), so that no result depends on the machine.
    env: { VDSPEC_THREADS: '1' },
  },
});
