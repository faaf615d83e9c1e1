/**
 * A port as a child process (spec/check.md#protocol, #handshake and
 * #what-ends-a-run): `openProcessPort` on the misbehaving fake port
 * (test/fixtures/ports/fake-port.mjs) and on small ports written here, each
 * way the conversation can go or break asserted with the exact message, the
 * exact handshake and answers, the stderr tail the report shows and the
 * process group ended. check.test.ts runs the same port through `vdspec
 * check`; this file talks to it directly in seconds, and is what the mutation
 * runs of `src/check/processPort.ts` use (spec/mutation.md).
 */
import { mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';

import { CheckInfrastructureError } from '../../src/check/errors.js';
import type { Port, PortCase } from '../../src/check/port.js';
import { openProcessPort, PROTOCOL, STDERR_TAIL_LINES } from '../../src/check/processPort.js';
import { delay, expectDead, fakePid } from './port-processes.js';

const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));
const NODE = process.execPath;
const FAKE_PORT = here('../fixtures/ports/fake-port.mjs');
const SCHEMA = here('../../spec/schemas/port-message.schema.json');
const fake = (mode: string) => `"${NODE}" "${FAKE_PORT}" ${mode}`;

/** What every port written here starts with: a hello, a line reader, a sender. */
const PRELUDE = `
import { createInterface } from 'node:readline';
const send = (m) => process.stdout.write(JSON.stringify(m) + '\\n');
const hello = { type: 'hello', protocol: 'vdspec-port/1', name: 'inline', ops: ['kl.approx'], profile: 'molchanov2017', dtype: 'float64' };
const onLine = (f) => createInterface({ input: process.stdin }).on('line', (line) => f(line, JSON.parse(line)));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
`;

let dir = '';
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'vdspec-check-process-'));
});
afterAll(() => {
  if (dir !== '') rmSync(dir, { recursive: true, force: true });
});

let scripts = 0;
/** The command that runs `body` (after PRELUDE) as a Node port; `exec`: the shell becomes the port. */
function nodePort(body: string): string {
  const file = join(dir, `port-${++scripts}.mjs`);
  writeFileSync(file, `${PRELUDE}\n${body}\n`);
  return `exec "${NODE}" "${file}"`;
}

/** The hello of the shell ports below, as one line. */
const HELLO_LINE = JSON.stringify({
  type: 'hello',
  protocol: 'vdspec-port/1',
  name: 'shell',
  ops: ['kl.approx'],
  profile: 'molchanov2017',
  dtype: 'float64',
});
/** A shell port (it starts in milliseconds, which a short timeout needs): `read`s the hello and answers it, then runs `then`. */
const shellPort = (then: string) => `read line; echo '${HELLO_LINE}'; ${then}`;
/** The command that answers the hello with exactly `text` on stdout, and then lingers. */
function printing(text: string): string {
  const file = join(dir, `stdout-${++scripts}.txt`);
  writeFileSync(file, text);
  return `read line; cat "${file}"; exec sleep 30`;
}

const opened: Port[] = [];
afterEach(async () => {
  for (const port of opened.splice(0)) await port.close(false);
});

async function open(command: string, timeoutMs = 5000, cwd?: string): Promise<Port> {
  const port = await openProcessPort({ command, timeoutMs, ...(cwd === undefined ? {} : { cwd }) });
  opened.push(port);
  return port;
}

/** `run` rejects with a CheckInfrastructureError of kind `port` and this message. */
async function expectPortError(run: () => Promise<unknown>, message: string | RegExp) {
  const caught = await run().then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(caught).toBeInstanceOf(CheckInfrastructureError);
  const error = caught as CheckInfrastructureError;
  expect(error.kind).toBe('port');
  if (typeof message === 'string') expect(error.message).toBe(message);
  else expect(error.message).toMatch(message);
  return error.message;
}

/** The rejection of `openProcessPort` for `command`, whose message must match `message`. */
function openFails(command: string, message: string | RegExp, timeoutMs = 5000, cwd?: string) {
  return expectPortError(() => open(command, timeoutMs, cwd), message);
}

function klCase(caseId: number, data: unknown[] = ['Infinity', '-Infinity']): PortCase {
  const rawInputs = { log_alpha: { shape: [data.length], data } };
  return { op: 'kl.approx', caseId, rawInputs, inputs: rawInputs };
}

/** What the fake port answers for log_alpha [Infinity, -Infinity] (spec/kl.md: KL 0 and Infinity, slopes 0 and -1/2). */
const KL_AT_INFINITIES = {
  kl: { shape: [2], data: [0, 'Infinity'] },
  dkl_dlog_alpha: { shape: [2], data: [0, -0.5] },
};

const WAITED_HELLO = 'while the runner waited for its answer to the handshake (hello)';
const DIAGNOSTICS_HINT = '; stdout is reserved for protocol messages, print diagnostics to stderr';
const NON_FINITE_HINT = '; non-finite numbers must be the strings "NaN", "Infinity", "-Infinity"';
const timeoutMessage = (seconds: string, what: string) =>
  `the port sent no answer within ${seconds} s (--timeout) for ${what}: it hangs, is too slow, ` +
  'or keeps its answer in an output buffer (did the port flush stdout after the line?)';

/** The port's stderr tail once it holds `lines` lines (stderr and stdout are separate pipes: no order between them). */
async function stderrOf(port: Port, lines: number): Promise<readonly string[]> {
  const deadline = Date.now() + 2000;
  while (port.stderrTail().length < lines && Date.now() < deadline) await delay(10);
  return port.stderrTail();
}

const HOOKED = ['exit', 'SIGINT', 'SIGTERM', 'SIGHUP'] as const;
const hookCounts = () => HOOKED.map((event) => process.listenerCount(event));
type Listener = (...args: unknown[]) => void;
const listenersOf = (event: string) =>
  (process as NodeJS.EventEmitter).listeners(event) as Listener[];

describe(
  'spec/check.md#protocol: the conversation with a port that keeps it',
  { timeout: 10_000 },
  () => {
    it('the constants: protocol vdspec-port/1, the last 20 stderr lines', () => {
      expect(PROTOCOL).toBe('vdspec-port/1');
      expect(STDERR_TAIL_LINES).toBe(20);
    });

    it('the fake port: its hello becomes the info, a case its outputs, an error its message; bye ends it', async () => {
      const command = fake('good');
      const port = await open(command);
      expect(port.info).toStrictEqual({
        name: 'fake-good',
        source: command,
        kind: 'process',
        ops: ['kl.approx'],
        profile: 'molchanov2017',
        dtype: 'float64',
      });
      expect(await port.answer(klCase(1))).toStrictEqual({
        kind: 'outputs',
        outputs: KL_AT_INFINITIES,
      });
      expect(await port.answer(klCase(2, [])).then((a) => a.kind)).toBe('outputs');
      const pid = fakePid((await stderrOf(port, 1)).join('\n'));
      expect(port.stderrTail()).toStrictEqual([`fake-port pid=${pid} mode=good`]);
      await port.close();
      expect(port.notes).toStrictEqual([]);
      await expectDead(pid);

      const refusing = await open(fake('error-answer'));
      expect(await refusing.answer(klCase(3))).toStrictEqual({
        kind: 'error',
        message: 'not implemented here',
      });
    });

    it('the runner sends exactly the hello, the case and the bye of the spec, and names the schema in VDSPEC_PORT_SCHEMA', async () => {
      const echo = nodePort(`
setInterval(() => {}, 1000);
onLine((line, m) => {
  if (m.type === 'hello') {
    const name = JSON.stringify({ hello: line, schema: process.env.VDSPEC_PORT_SCHEMA, cwd: process.cwd() });
    send({ ...hello, name, profile: undefined, dtype: 'float32' });
  } else if (m.type === 'case') send({ type: 'error', id: m.id, message: line });
  else process.exit(line === '{"type":"bye"}' ? 0 : 9);
});`);
      const port = await open(echo);
      expect(JSON.parse(port.info.name)).toStrictEqual({
        hello: '{"type":"hello","protocol":"vdspec-port/1"}',
        schema: SCHEMA,
        cwd: process.cwd(),
      });
      // No profile in the hello: none declared; the dtype is the hello's.
      expect(port.info.profile).toBeNull();
      expect(port.info.dtype).toBe('float32');
      expect(await port.answer(klCase(7, ['-0']))).toStrictEqual({
        kind: 'error',
        message:
          '{"type":"case","id":"kl.approx#7","op":"kl.approx","inputs":{"log_alpha":{"shape":[1],"data":["-0"]}}}',
      });
      const started = Date.now();
      await port.close();
      // The port exits 0 only on the exact bye, at once (not killed after the 2 s grace).
      expect(port.notes).toStrictEqual([]);
      expect(Date.now() - started).toBeLessThan(1500);

      // In the directory asked for, and a VDSPEC_PORT_SCHEMA already set is kept.
      vi.stubEnv('VDSPEC_PORT_SCHEMA', '/elsewhere/port-message.schema.json');
      try {
        const inDir = await open(echo, 5000, dir);
        expect(JSON.parse(inDir.info.name)).toStrictEqual({
          hello: '{"type":"hello","protocol":"vdspec-port/1"}',
          schema: '/elsewhere/port-message.schema.json',
          cwd: realpathSync(dir),
        });
      } finally {
        vi.unstubAllEnvs();
      }
    });

    it('a hello without a name is named by the command; a null profile is none', async () => {
      const command = nodePort(`onLine(() => send({ ...hello, name: undefined, profile: null }));`);
      const port = await open(command);
      expect(port.info).toStrictEqual({
        name: command,
        source: command,
        kind: 'process',
        ops: ['kl.approx'],
        profile: null,
        dtype: 'float64',
      });
    });

    it('blank lines, a trailing \\r and leading blanks are tolerated; lines split across writes are joined, several in one write queued', async () => {
      const port = await open(
        nodePort(`
onLine(async (line, m) => {
  if (m.type !== 'hello') return;
  const text = JSON.stringify(hello);
  process.stdout.write('\\n   \\r\\n\\n  ' + text.slice(0, 9));
  await sleep(100);
  process.stdout.write(
    text.slice(9) + '\\r\\n' +
    JSON.stringify({ type: 'error', id: 'kl.approx#1', message: 'first' }) + '\\n\\n' +
    JSON.stringify({ type: 'error', id: 'kl.approx#2', message: 'second' }) + '\\n',
  );
});`),
      );
      expect(port.info.name).toBe('inline');
      // Both answers arrived before their cases were sent: each waits in order for its case.
      expect(await port.answer(klCase(1))).toStrictEqual({ kind: 'error', message: 'first' });
      expect(await port.answer(klCase(2))).toStrictEqual({ kind: 'error', message: 'second' });
      await port.close(false);
      // No blank line was counted as a stray print.
      expect(port.notes).toStrictEqual([]);
    });

    it('a newline that starts a write ends the line before it', async () => {
      const port = await open(
        `read line; printf 'booting'; sleep 0.1; printf '\\n%s\\n' '${HELLO_LINE}'; exec sleep 30`,
      );
      expect(port.info.name).toBe('shell');
      await port.close(false);
      expect(port.notes).toStrictEqual([
        'the port printed 1 line on stdout that is not a protocol message "booting" ' +
          '(ignored; stdout is reserved for protocol messages, print diagnostics to stderr)',
      ]);
    });

    it('an answer that comes after the time the hello had left, but within its own', async () => {
      // The hello's timer (2 s from the start) fires while the case waits, unless the hello stopped
      // it. Margins of 0.6 s and more, for a loaded machine.
      const port = await open(
        `read line; sleep 1; echo '${HELLO_LINE}'; read line; sleep 1.4; ` +
          `echo '{"type":"error","id":"kl.approx#1","message":"in time"}'; exec sleep 30`,
        2000,
      );
      expect(await port.answer(klCase(1))).toStrictEqual({ kind: 'error', message: 'in time' });
    });

    it('a last line without its newline still counts once stdout ends', async () => {
      const port = await open(
        nodePort(
          `onLine(() => { process.stdout.write(JSON.stringify(hello)); process.exit(0); });`,
        ),
        2000,
      );
      expect(port.info.name).toBe('inline');
      await expectPortError(
        () => port.answer(klCase(1)),
        'the port exited with code 0 while the runner waited for its answer to case kl.approx#1',
      );
    });

    it('debug prints on stdout are ignored, counted and shown first in a note, once', async () => {
      const port = await open(fake('chatty'));
      expect(await port.answer(klCase(1))).toStrictEqual({
        kind: 'outputs',
        outputs: KL_AT_INFINITIES,
      });
      expect((await port.answer(klCase(2))).kind).toBe('outputs');
      await port.close();
      await port.close();
      expect(port.notes).toStrictEqual([
        'the port printed 2 lines on stdout that are not protocol messages, the first "DEBUG case kl.approx#1" ' +
          '(ignored; stdout is reserved for protocol messages, print diagnostics to stderr)',
      ]);

      const once = await open(
        nodePort(`onLine((line, m) => {
  if (m.type === 'hello') { process.stdout.write('booting\\r\\n'); send(hello); }
  else if (m.type === 'bye') process.exit(0);
});`),
      );
      await once.close();
      expect(once.notes).toStrictEqual([
        'the port printed 1 line on stdout that is not a protocol message "booting" ' +
          '(ignored; stdout is reserved for protocol messages, print diagnostics to stderr)',
      ]);
    });
  },
);

// The ports of a failed handshake are ended by openProcessPort itself: these tests can overlap.
describe.concurrent(
  'spec/check.md#what-ends-a-run: a failed handshake',
  { timeout: 30_000 },
  () => {
    it('a port that never answers the hello: the timeout message with the stderr tail, and the port killed', async () => {
      const message = await openFails(
        fake('hang-hello'),
        /fake-port pid=\d+ mode=hang-hello$/,
        // Long enough for Node to start and print its pid on a busy machine.
        1500,
      );
      const pid = fakePid(message);
      expect(message).toBe(
        `${timeoutMessage('1.5', 'the handshake (hello)')}\nport stderr (last lines):\n  fake-port pid=${pid} mode=hang-hello`,
      );
      await expectDead(pid);
    });

    it('a port that exits before its hello, with and without stderr', async () => {
      const message = await openFails(fake('silent-exit'), /mode=silent-exit$/);
      expect(message).toBe(
        `the port exited with code 0 ${WAITED_HELLO}\nport stderr (last lines):\n  fake-port pid=${fakePid(message)} mode=silent-exit`,
      );
      await openFails('exit 0', `the port exited with code 0 ${WAITED_HELLO}`);
      await openFails(
        'no-such-port-command-here',
        // The shell's own words: dash's here, bash's elsewhere.
        /^the port exited with code 127 while the runner waited for its answer to the handshake \(hello\)\nport stderr \(last lines\):\n {2}\S*sh: .*no-such-port-command-here: (command )?not found$/,
      );
    });

    it('a port killed by a signal, and one whose command cannot start', async () => {
      await openFails('kill -KILL $$', `the port was killed by SIGKILL ${WAITED_HELLO}`);
      await openFails(
        'true',
        `the port command could not be started: spawn /bin/sh ENOENT ${WAITED_HELLO}`,
        5000,
        join(dir, 'no-such-directory'),
      );
    });

    it('a shell that exits while a process it started holds stdout: the exit is reported, and the group is killed', async () => {
      // The process left behind ignores SIGTERM: only SIGKILL ends it.
      const message = await openFails(
        `(trap '' TERM; exec sleep 30) & echo $! >&2; exit 4`,
        /^the port exited with code 4 while the runner waited for its answer to the handshake \(hello\)\nport stderr \(last lines\):\n {2}\d+$/,
      );
      await expectDead(Number(message.slice(message.lastIndexOf(' ') + 1)));
    });

    it('a port that closes stdout: said so when it lives on, its exit code when it exits a moment later', async () => {
      await openFails('exec >&-; exec sleep 30', `the port closed its stdout ${WAITED_HELLO}`);
      await openFails('exec >&-; sleep 0.1; exit 5', `the port exited with code 5 ${WAITED_HELLO}`);
    });

    it('a hello of another protocol, without one, of another type, or not matching the schema', async () => {
      const old = await openFails(fake('old-protocol'), /mode=old-protocol$/);
      expect(old).toBe(
        `the port speaks protocol "vdspec-port/0"; this runner speaks "vdspec-port/1"\nport stderr (last lines):\n  fake-port pid=${fakePid(old)} mode=old-protocol`,
      );
      const answering = (hello: unknown) => printing(`${JSON.stringify(hello)}\n`);
      await openFails(
        answering({ type: 'hello', ops: [], dtype: 'float64' }),
        'the port speaks protocol undefined; this runner speaks "vdspec-port/1"',
      );
      await openFails(
        answering({ type: 'result', id: 'x#1', outputs: {} }),
        'the port answered the hello with a "result" message',
      );
      await openFails(
        answering({ ...JSON.parse(HELLO_LINE), dtype: 'float16' }),
        `the port's hello: /dtype: "float16", expected "float64" or "float32"`,
      );
      await openFails(
        answering({ ...JSON.parse(HELLO_LINE), ops: undefined }),
        `the port's hello: /ops: missing field`,
      );
      await openFails(
        answering({ type: 5 }),
        'the port answered the handshake (hello) with "{\\"type\\":5}", not a protocol message',
      );
      await openFails(
        answering({ kind: 'hello' }),
        'the port answered the handshake (hello) with "{\\"kind\\":\\"hello\\"}", not a protocol message',
      );
    });

    it('junk on stdout: shown (the first 300 characters), with the hint that fits', async () => {
      const junk = (line: string, hint: string) =>
        `the port printed junk on stdout while the runner waited for the handshake (hello): ${line}${hint}`;
      // The port lingers after the junk and ignores bye: it is killed at once, not after the 2 s grace.
      const started = Date.now();
      await openFails(printing('{hello\r\n'), junk('"{hello"', DIAGNOSTICS_HINT));
      expect(Date.now() - started).toBeLessThan(1500);
      await openFails(printing('{"type": NaN}\n'), junk('"{\\"type\\": NaN}"', NON_FINITE_HINT));
      await openFails(
        printing('{"a": Infinity}\n'),
        junk('"{\\"a\\": Infinity}"', NON_FINITE_HINT),
      );
      await openFails(
        printing('{"a": -Infinity}\n'),
        junk('"{\\"a\\": -Infinity}"', NON_FINITE_HINT),
      );
      await openFails(printing('{"a": NaNa}\n'), junk('"{\\"a\\": NaNa}"', DIAGNOSTICS_HINT));
      await openFails(
        printing('{"a": xInfinity}\n'),
        junk('"{\\"a\\": xInfinity}"', DIAGNOSTICS_HINT),
      );
      const exactly300 = `{${'z'.repeat(299)}`;
      await openFails(printing(`${exactly300}\n`), junk(`"${exactly300}"`, DIAGNOSTICS_HINT));
      await openFails(
        printing(`${exactly300}y\n`),
        junk(`"${exactly300}... (301 characters)"`, DIAGNOSTICS_HINT),
      );
    });

    it('a line longer than 256 Mi characters is junk before it ends', async () => {
      await openFails(
        nodePort(`setInterval(() => {}, 1000);
onLine(() => process.stdout.write('{' + 'x'.repeat(256 * 1024 * 1024)));`),
        `the port printed junk on stdout: a line longer than 268435456 characters ${WAITED_HELLO}`,
        20_000,
      );
    });

    it('a line of exactly 256 Mi characters is read to its end', async () => {
      // All but the newline is written first, so the runner holds exactly 268435456 characters for a while.
      await openFails(
        nodePort(`setInterval(() => {}, 1000);
onLine(() => process.stdout.write('{' + 'x'.repeat(256 * 1024 * 1024 - 1), async () => {
  await sleep(300);
  process.stdout.write('\\n');
}));`),
        `the port printed junk on stdout while the runner waited for the handshake (hello): ` +
          `"{${'x'.repeat(299)}... (268435456 characters)"${DIAGNOSTICS_HINT}`,
        20_000,
      );
    });

    it('debug prints and then silence: the timeout message counts them and shows the first', async () => {
      const timedOut = timeoutMessage('0.3', 'the handshake (hello)');
      await openFails(
        printing('booting\nstill booting\n'),
        `${timedOut}; meanwhile it printed 2 lines on stdout that are not protocol messages, the first "booting"`,
        300,
      );
      await openFails(
        printing('booting\n'),
        `${timedOut}; meanwhile it printed 1 line on stdout that is not a protocol message "booting"`,
        300,
      );
    });
  },
);

describe.concurrent('spec/check.md#protocol: the last stderr lines', { timeout: 10_000 }, () => {
  const failingAfter = (writes: string) =>
    nodePort(`onLine(async () => {
${writes}
  await sleep(100);
  process.exit(1);
});`);
  const exited = `the port exited with code 1 ${WAITED_HELLO}\nport stderr (last lines):\n  `;
  const numbered = (from: number, to: number) =>
    Array.from({ length: to - from + 1 }, (_, i) => `line ${from + i}`);

  it('the last 20 whole lines', async () => {
    await openFails(
      failingAfter(`for (let i = 1; i <= 25; i++) process.stderr.write('line ' + i + '\\n');`),
      exited + numbered(6, 25).join('\n  '),
    );
  });

  it('an unfinished last line counts among the 20', async () => {
    await openFails(
      failingAfter(
        `for (let i = 1; i <= 20; i++) process.stderr.write('line ' + i + '\\n');
  process.stderr.write('unfinished');`,
      ),
      exited + [...numbered(2, 20), 'unfinished'].join('\n  '),
    );
  });

  it('a line is cut at 300 characters, an unfinished one kept whole up to 1200, a \\r before the newline dropped', async () => {
    await openFails(
      failingAfter(`process.stderr.write('a'.repeat(1200));
  await sleep(150);
  process.stderr.write('b\\n' + 'c'.repeat(1201));
  await sleep(150);
  process.stderr.write('d\\n' + 'e'.repeat(300) + '\\n' + 'f'.repeat(301) + '\\nx\\ry\\r\\n');`),
      exited +
        [
          `${'a'.repeat(300)}... (1201 characters)`,
          `${'c'.repeat(300)}... (1201 characters)`,
          'd',
          'e'.repeat(300),
          `${'f'.repeat(300)}... (301 characters)`,
          'x\ry',
        ].join('\n  '),
    );
  });
});

describe(
  'spec/check.md#what-ends-a-run: a port that breaks after the handshake',
  { timeout: 10_000 },
  () => {
    it('a crash: the exit code, with the stderr it left', async () => {
      const port = await open(fake('crash'));
      await expectPortError(
        () => port.answer(klCase(1)),
        'the port exited with code 3 while the runner waited for its answer to case kl.approx#1',
      );
      const tail = await stderrOf(port, 2);
      expect(tail).toStrictEqual([
        `fake-port pid=${fakePid(tail[0]!)} mode=crash`,
        'fake-port: crashing on purpose',
      ]);
      // The crash was the failure: closing after it says nothing more (no bye, no note).
      await port.close();
      expect(port.notes).toStrictEqual([]);
    });

    it('a port that closed its stdin: the case cannot be written (EPIPE), and the wait ends in the timeout', async () => {
      const port = await open(`read line; exec 0<&-; echo '${HELLO_LINE}'; exec sleep 30`, 300);
      await expectPortError(
        () => port.answer(klCase(1)),
        timeoutMessage('0.3', 'case kl.approx#1'),
      );
    });

    it('a port that exited before the case was sent', async () => {
      const port = await open(nodePort(`onLine(() => { send(hello); process.exit(0); });`), 1000);
      await delay(700);
      await expectPortError(
        () => port.answer(klCase(1)),
        'the port exited with code 0 while the runner waited for its answer to case kl.approx#1',
      );
    });

    it('a hang: the timeout message, and a late answer waits for the next case', async () => {
      const hanging = await open(shellPort('exec sleep 30'), 200);
      await expectPortError(
        () => hanging.answer(klCase(1)),
        timeoutMessage('0.2', 'case kl.approx#1'),
      );

      const slow = await open(
        shellPort(
          `read line; sleep 0.4; echo '{"type":"error","id":"kl.approx#1","message":"late"}'; exec sleep 30`,
        ),
        200,
      );
      await expectPortError(
        () => slow.answer(klCase(1)),
        timeoutMessage('0.2', 'case kl.approx#1'),
      );
      await delay(500);
      await expectPortError(
        () => slow.answer(klCase(2)),
        'the port answered case kl.approx#2 with id "kl.approx#1"',
      );
    });

    it('debug prints instead of the answer: the timeout message counts them', async () => {
      const port = await open(
        shellPort(`read line; echo 'computing... done!'; exec sleep 30`),
        200,
      );
      await expectPortError(
        () => port.answer(klCase(1)),
        `${timeoutMessage('0.2', 'case kl.approx#1')}; meanwhile it printed 1 line on stdout that is not a protocol message "computing... done!"`,
      );
    });

    it('junk instead of the answer, with the hint for a bare NaN', async () => {
      const junk = await open(fake('junk'));
      await expectPortError(
        () => junk.answer(klCase(1)),
        `the port printed junk on stdout while the runner waited for case kl.approx#1: "{computing... done!"${DIAGNOSTICS_HINT}`,
      );
      const bareNan = await open(fake('bare-nan'));
      await expectPortError(
        () => bareNan.answer(klCase(1)),
        'the port printed junk on stdout while the runner waited for case kl.approx#1: ' +
          '"{\\"type\\": \\"result\\", \\"id\\": \\"kl.approx#1\\", \\"outputs\\": {\\"kl\\": {\\"shape\\": [1], \\"data\\": [NaN]}}}"' +
          NON_FINITE_HINT,
      );
    });

    it('an answer with another id, no id, another type, or outputs that are no object', async () => {
      const wrongId = await open(fake('wrong-id'));
      await expectPortError(
        () => wrongId.answer(klCase(1)),
        'the port answered case kl.approx#1 with id "kl.approx#1-other"',
      );
      const answering = (answer: string) =>
        nodePort(`onLine((line, m) => send(m.type === 'hello' ? hello : ${answer}));`);
      await expectPortError(
        async () => (await open(answering(`{ type: 'result', outputs: {} }`))).answer(klCase(1)),
        'the port answered case kl.approx#1 with id undefined',
      );
      await expectPortError(
        async () => (await open(answering(`{ ...hello, id: m.id }`))).answer(klCase(1)),
        'the port answered case kl.approx#1 with a "hello" message',
      );
      await expectPortError(
        async () => (await open(answering(`{ type: 'error', id: m.id }`))).answer(klCase(1)),
        `the port's answer to case kl.approx#1: /message: missing field`,
      );
      const list = await open(fake('outputs-list'));
      await expectPortError(
        () => list.answer(klCase(1)),
        `the port's answer to case kl.approx#1: /outputs: [1,2] is not an object`,
      );
    });
  },
);

describe(
  'spec/check.md#what-ends-a-run: the port is ended on every exit path',
  { timeout: 10_000 },
  () => {
    it('exit hooks are set while the port is open and removed when it closes; its pipes are destroyed', async () => {
      const before = hookCounts();
      const port = await open(fake('good'));
      expect(hookCounts()).toStrictEqual(before.map((n) => n + 1));
      await port.close();
      expect(hookCounts()).toStrictEqual(before);
      const child = (
        port as unknown as {
          child: { stdin: Destroyable; stdout: Destroyable; stderr: Destroyable };
        }
      ).child;
      expect([child.stdin.destroyed, child.stdout.destroyed, child.stderr.destroyed]).toStrictEqual(
        [true, true, true],
      );

      await openFails('exit 2', `the port exited with code 2 ${WAITED_HELLO}`);
      expect(hookCounts()).toStrictEqual(before);
    });

    it('a signal to the runner kills the port group, removes the hooks and is raised again', async () => {
      const realKill = process.kill.bind(process);
      const before = HOOKED.map(listenersOf);
      const port = await open(`sleep 30 & echo $! >&2; ${fake('good')}`);
      const added = HOOKED.map((event, i) =>
        listenersOf(event).filter((l) => !before[i]!.includes(l)),
      );
      expect(added.map((hooks) => hooks.length)).toStrictEqual([1, 1, 1, 1]);
      const sigintHook = added[1]!;
      const [sleepPid, fakeLine] = await stderrOf(port, 2);
      const raised: [number, unknown][] = [];
      const kill = vi.spyOn(process, 'kill').mockImplementation(((
        pid: number,
        signal?: string | number,
      ) => {
        if (pid !== process.pid) return realKill(pid, signal);
        raised.push([pid, signal]);
        return true;
      }) as typeof process.kill);
      try {
        sigintHook[0]!('SIGINT');
      } finally {
        kill.mockRestore();
      }
      expect(raised).toStrictEqual([[process.pid, 'SIGINT']]);
      expect(HOOKED.map((event) => listenersOf(event).length)).toStrictEqual(
        before.map((listeners) => listeners.length),
      );
      await expectDead(Number(sleepPid));
      await expectDead(fakePid(fakeLine!));
    });

    it('the runner exiting kills the port group', async () => {
      const before = listenersOf('exit');
      const port = await open(`sleep 30 & echo $! >&2; ${fake('good')}`);
      const hook = listenersOf('exit').filter((l) => !before.includes(l));
      expect(hook.length).toBe(1);
      const [sleepPid, fakeLine] = await stderrOf(port, 2);
      hook[0]!();
      await expectDead(Number(sleepPid));
      await expectDead(fakePid(fakeLine!));
    });

    it('after bye: a port that exits on the end of its stdin, one that exits non-zero, one killed by a signal', async () => {
      const onStdinEnd = await open(
        nodePort(`setInterval(() => {}, 1000);
onLine((line, m) => { if (m.type === 'hello') send(hello); }).on('close', () => process.exit(0));`),
      );
      const started = Date.now();
      await onStdinEnd.close();
      expect(onStdinEnd.notes).toStrictEqual([]);
      expect(Date.now() - started).toBeLessThan(1500);

      const byeExits = (how: string) =>
        nodePort(`onLine((line, m) => { if (m.type === 'hello') send(hello); else ${how}; });`);
      const nonZero = await open(byeExits('process.exit(9)'));
      await nonZero.close();
      expect(nonZero.notes).toStrictEqual(['the port exited with code 9 after "bye" (expected 0)']);
      const signalled = await open(byeExits(`process.kill(process.pid, 'SIGTERM')`));
      await signalled.close();
      expect(signalled.notes).toStrictEqual([
        'the port was killed by SIGTERM after "bye" (expected exit code 0)',
      ]);
    });

    it('a port that lingers after bye is killed after 2 s; closed after a failure, at once and without bye', async () => {
      const lingering = nodePort(
        `setInterval(() => {}, 1000); onLine((line, m) => { if (m.type === 'hello') send(hello); });`,
      );
      const graceful = await open(lingering);
      let started = Date.now();
      await graceful.close();
      expect(Date.now() - started).toBeGreaterThanOrEqual(1900);
      expect(graceful.notes).toStrictEqual([
        'the port did not exit within 2 s of "bye" and was killed',
      ]);

      const failed = await open(lingering);
      started = Date.now();
      await failed.close(false);
      expect(Date.now() - started).toBeLessThan(1000);
      expect(failed.notes).toStrictEqual([]);
    });

    it('closed after a failure, the port has exited and been reaped when close returns', async () => {
      const port = await open(`exec ${fake('good')}`);
      const pid = fakePid((await stderrOf(port, 1))[0]!);
      await port.close(false);
      // Not even a zombie: Node reports a child's exit once it has reaped it.
      expect(() => process.kill(pid, 0)).toThrow(expect.objectContaining({ code: 'ESRCH' }));
    });

    it('a case still waiting when the port is closed is left unanswered', async () => {
      const port = await open(fake('hang'));
      let settled = false;
      const pending = port.answer(klCase(1)).then(
        () => (settled = true),
        () => (settled = true),
      );
      await port.close(false);
      await delay(800);
      expect(settled).toBe(false);
      void pending;
    });
  },
);

interface Destroyable {
  readonly destroyed: boolean;
}
