/**
 * A vitest reporter that ends the run with the tests skipped for a reason
 * (`ctx.skip(note)`: a missing python3 with numpy, no built dist/), counted
 * per reason, so that a skip printed once at the top of a long run is not
 * missed. Skips without a note (`-t` filters, `it.skip`) are not listed.
 */
import type { Reporter, TestModule } from 'vitest/node';

export interface SkippedTest {
  /** The test file, relative to the repository. */
  readonly file: string;
  readonly note: string;
}

/** The summary lines: none without skips, else a count and one line per reason. */
export function skipSummary(skipped: readonly SkippedTest[]): string[] {
  if (skipped.length === 0) return [];
  const byNote = new Map<string, { count: number; files: Set<string> }>();
  for (const s of skipped) {
    const entry = byNote.get(s.note) ?? { count: 0, files: new Set<string>() };
    entry.count++;
    entry.files.add(s.file);
    byNote.set(s.note, entry);
  }
  const plural = (n: number) => (n === 1 ? '1 test' : `${n} tests`);
  return [
    `${plural(skipped.length)} skipped, not run:`,
    ...[...byNote].map(
      ([note, { count, files }]) => `  ${plural(count)} (${[...files].join(', ')}): ${note}`,
    ),
  ];
}

export default class SkipSummaryReporter implements Reporter {
  private readonly write: (s: string) => void;
  private readonly colour: boolean;

  /** vitest passes the reporter's options object (none here); a test passes `write`. */
  constructor(options: { write?: (s: string) => void } = {}) {
    this.write = options.write ?? ((s) => process.stdout.write(s));
    // Yellow on a terminal, like vitest's own "skipped".
    this.colour = options.write === undefined && process.stdout.isTTY;
  }

  onTestRunEnd(testModules: ReadonlyArray<TestModule>): void {
    const skipped: SkippedTest[] = [];
    for (const module of testModules) {
      for (const test of module.children.allTests()) {
        const result = test.result();
        if (result.state === 'skipped' && result.note !== undefined) {
          skipped.push({ file: module.relativeModuleId, note: result.note });
        }
      }
    }
    const lines = skipSummary(skipped);
    const colour = (s: string) => (this.colour ? `\x1b[33m${s}\x1b[39m` : s);
    if (lines.length > 0) this.write(`\n${lines.map(colour).join('\n')}\n`);
  }
}
