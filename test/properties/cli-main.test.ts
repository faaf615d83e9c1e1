import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';

async function run(argv: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(
    argv,
    (s) => out.push(s),
    (s) => err.push(s),
  );
  return { code, out, err };
}

describe('vdspec (the command dispatcher)', () => {
  it('no command: usage on stderr (it is a mistake: exit 2), nothing on stdout', async () => {
    const r = await run([]);
    expect(r.code).toBe(2);
    expect(r.err.join('\n')).toContain('usage: vdspec');
    expect(r.out).toEqual([]);
  });

  it('--help exits 0 and lists kl', async () => {
    const r = await run(['--help']);
    expect(r.code).toBe(0);
    expect(r.out.join('\n')).toMatch(/\bkl\b/);
  });

  it('an unknown command is a one-line error and exit 2, not a stack trace', async () => {
    const r = await run(['frobnicate']);
    expect(r.code).toBe(2);
    expect(r.err[0]).toMatch(/^vdspec: unknown command "frobnicate"/);
    expect(r.err.join('\n')).not.toMatch(/\bat .*\(.*:\d+:\d+\)/);
  });

  it('--version prints the package version', async () => {
    const r = await run(['--version']);
    expect(r.code).toBe(0);
    expect(r.out[0]).toMatch(/^\d+\.\d+\.\d+/);
  });

  const built = resolve(import.meta.dirname, '../../dist/cli/main.js');
  it('the built command survives a reader that closes the pipe early (no EPIPE trace)', (ctx) => {
    // The note is repeated at the end of the run (test/reporters/skip-summary.ts).
    ctx.skip(!existsSync(built), 'the built command: no dist/ (npm run build)');
    const r = spawnSync(
      'bash',
      ['-c', `node "${built}" kl --from -100 --to 100 --step 0.002 | head -1`],
      { encoding: 'utf8' },
    );
    expect(r.stdout.split('\n')[0]).toContain('KL per weight');
    expect(r.stderr).toBe('');
  });
});
