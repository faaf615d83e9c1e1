/**
 * A port process speaking the JSON-lines protocol on its stdin/stdout
 * (spec/check.md#protocol):
 *
 *   runner -> {"type": "hello", "protocol": "vdspec-port/1"}
 *   port   -> {"type": "hello", "protocol": "vdspec-port/1", "name", "ops", "profile", "dtype"}
 *   runner -> {"type": "case", "id": "<op>#<case id>", "op", "inputs"}
 *   port   -> {"type": "result", "id", "outputs"} | {"type": "error", "id", "message"}
 *   runner -> {"type": "bye"}                       (the port exits 0)
 *
 * Every way the conversation can break (the process cannot start, exits,
 * stays silent past the timeout, prints a line that is not such a message,
 * answers another id) becomes a CheckInfrastructureError('port') with a
 * message that says which, never a hang or a stack trace. The process runs
 * in its own process group, and the group is killed on every exit path.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { CheckInfrastructureError } from './errors.js';
import type { Dtype } from './golden.js';
import type { Port, PortAnswer, PortCase, PortInfo } from './port.js';
import { schemaProblem } from '../schema.js';

export const PROTOCOL = 'vdspec-port/1';

/** Lines of the port's stderr kept for the report. */
export const STDERR_TAIL_LINES = 20;
/** Characters kept per stderr line and shown of a junk line. */
const SHOWN_CHARS = 300;
/** A single protocol line longer than this is junk (guards the runner's memory). */
const MAX_LINE_CHARS = 256 * 1024 * 1024;
/** How long a port may take to exit after "bye" before it is killed. */
const EXIT_GRACE_MS = 2000;
/** After the process exits, how long stdout may still deliver buffered lines. */
const DRAIN_MS = 300;

/** Signals that end the runner: the port's process group goes with it. */
const FORWARDED_SIGNALS: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

export interface ProcessPortOptions {
  /** A shell command line, run with `sh -c` (so quoting, env and `cd` work). */
  readonly command: string;
  /** Per-message timeout (the handshake and each case), in milliseconds. */
  readonly timeoutMs: number;
  readonly cwd?: string;
}

function fail(message: string): never {
  throw new CheckInfrastructureError('port', message);
}

function shorten(s: string): string {
  return s.length > SHOWN_CHARS ? `${s.slice(0, SHOWN_CHARS)}... (${s.length} characters)` : s;
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

interface Waiter {
  resolve(line: string): void;
  reject(e: Error): void;
  what: string;
  timer: NodeJS.Timeout;
}

class ProcessPort implements Port {
  info!: PortInfo;
  readonly notes: string[] = [];
  private readonly child: ChildProcessWithoutNullStreams;
  private readonly lines: string[] = [];
  private stdoutBuffer = '';
  private stdoutEnded = false;
  private stderrBuffer = '';
  private readonly stderrLines: string[] = [];
  private exit: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  private spawnError: Error | null = null;
  private drainExpired = false;
  private junk: string | null = null;
  /** Lines that cannot be a protocol message (not starting with `{`): a porter's debug prints. */
  private strayLines = 0;
  private firstStray: string | null = null;
  private waiter: Waiter | null = null;
  private closed = false;
  private readonly exited: Promise<void>;
  private readonly killOnExit = () => this.killGroup();
  /** Ctrl-C or a kill of the runner: end the port's group, then let the signal do what it would have. */
  private readonly killOnSignal = (signal: NodeJS.Signals) => {
    this.killGroup();
    this.removeProcessHooks();
    process.kill(process.pid, signal);
  };

  constructor(private readonly options: ProcessPortOptions) {
    const detached = process.platform !== 'win32';
    // A port kit validates its messages against the schema of the runner it talks to
    // (spec/check.md#port-kit), wherever the kit was copied.
    const schema = fileURLToPath(
      new URL('../../spec/schemas/port-message.schema.json', import.meta.url),
    );
    this.child = spawn(options.command, {
      shell: true,
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { VDSPEC_PORT_SCHEMA: schema, ...process.env },
      detached,
      ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
    });
    process.on('exit', this.killOnExit);
    for (const signal of FORWARDED_SIGNALS) process.on(signal, this.killOnSignal);
    this.exited = new Promise((resolve) => {
      this.child.once('exit', (code, signal) => {
        this.exit = { code, signal };
        // Lines may still sit in the pipe (or a grandchild holds it open): give stdout a moment to end.
        setTimeout(() => {
          this.drainExpired = true;
          this.failWaiter();
        }, DRAIN_MS);
        resolve();
      });
      this.child.once('error', (e) => {
        this.spawnError = e;
        this.failWaiter();
        resolve();
      });
    });
    this.child.stdout.setEncoding('utf8');
    this.child.stdout.on('data', (chunk: string) => this.onStdout(chunk));
    this.child.stdout.on('end', () => {
      if (this.stdoutBuffer.trim() !== '') this.pushLine(this.stdoutBuffer);
      this.stdoutBuffer = '';
      this.stdoutEnded = true;
      this.failWaiter();
    });
    this.child.stdout.on('error', () => undefined);
    this.child.stderr.setEncoding('utf8');
    this.child.stderr.on('data', (chunk: string) => this.onStderr(chunk));
    this.child.stderr.on('error', () => undefined);
    // A port that exits early closes the pipe: the write fails with EPIPE, and the exit is reported instead.
    this.child.stdin.on('error', () => undefined);
  }

  private onStdout(chunk: string): void {
    // Only the new chunk is searched for newlines: a long line arriving in many chunks stays linear.
    let start = 0;
    let newline = chunk.indexOf('\n');
    while (newline >= 0) {
      this.pushLine(this.stdoutBuffer + chunk.slice(start, newline));
      this.stdoutBuffer = '';
      start = newline + 1;
      newline = chunk.indexOf('\n', start);
    }
    this.stdoutBuffer += chunk.slice(start);
    if (this.stdoutBuffer.length > MAX_LINE_CHARS) {
      this.junk = `a line longer than ${MAX_LINE_CHARS} characters`;
      this.stdoutBuffer = '';
      this.failWaiter();
    }
  }

  private pushLine(raw: string): void {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    // Blank lines carry nothing; tolerating them costs nothing.
    if (line.trim() === '') return;
    // A debug print would otherwise end the run at its first case. A line that starts like a
    // message but does not parse is still junk: it may be the answer, badly encoded.
    if (!line.trimStart().startsWith('{')) {
      this.strayLines++;
      this.firstStray ??= line;
      return;
    }
    if (this.waiter !== null) {
      const w = this.waiter;
      this.waiter = null;
      clearTimeout(w.timer);
      w.resolve(line);
    } else {
      this.lines.push(line);
    }
  }

  private onStderr(chunk: string): void {
    this.stderrBuffer += chunk;
    const parts = this.stderrBuffer.split('\n');
    this.stderrBuffer = parts.pop() ?? '';
    if (this.stderrBuffer.length > SHOWN_CHARS * 4) {
      parts.push(this.stderrBuffer);
      this.stderrBuffer = '';
    }
    for (const p of parts) {
      this.stderrLines.push(shorten(p.replace(/\r$/, '')));
      if (this.stderrLines.length > STDERR_TAIL_LINES) this.stderrLines.shift();
    }
  }

  stderrTail(): readonly string[] {
    const tail = [...this.stderrLines];
    if (this.stderrBuffer !== '') tail.push(shorten(this.stderrBuffer));
    return tail.slice(-STDERR_TAIL_LINES);
  }

  /** Whether no further line can arrive. */
  private isDead(): boolean {
    return this.stdoutEnded || this.junk !== null || this.spawnError !== null || this.drainExpired;
  }

  private deadReason(): string {
    if (this.spawnError !== null)
      return `the port command could not be started: ${this.spawnError.message}`;
    if (this.junk !== null) return `the port printed junk on stdout: ${this.junk}`;
    if (this.exit !== null) {
      return this.exit.signal !== null
        ? `the port was killed by ${this.exit.signal}`
        : `the port exited with code ${this.exit.code}`;
    }
    return 'the port closed its stdout';
  }

  private failWaiter(): void {
    if (this.waiter === null || !this.isDead()) return;
    const w = this.waiter;
    this.waiter = null;
    clearTimeout(w.timer);
    // stdout may end a moment before the exit is reported: wait briefly so the message has the exit code.
    void Promise.race([this.exited, delay(DRAIN_MS)]).then(() =>
      w.reject(
        new CheckInfrastructureError(
          'port',
          `${this.deadReason()} while the runner waited for its answer to ${w.what}`,
        ),
      ),
    );
  }

  private nextLine(what: string): Promise<string> {
    const queued = this.lines.shift();
    if (queued !== undefined) return Promise.resolve(queued);
    return new Promise((resolve, reject) => {
      const seconds = this.options.timeoutMs / 1000;
      const timer = setTimeout(() => {
        if (this.waiter === null) return;
        this.waiter = null;
        reject(
          new CheckInfrastructureError(
            'port',
            `the port sent no answer within ${seconds} s (--timeout) for ${what}: it hangs, is too slow, ` +
              `or keeps its answer in an output buffer (did the port flush stdout after the line?)${this.strayNote(
                '; meanwhile it printed',
              )}`,
          ),
        );
      }, this.options.timeoutMs);
      this.waiter = { resolve, reject, what, timer };
      this.failWaiter();
    });
  }

  private send(message: unknown): void {
    if (this.child.stdin.destroyed || this.child.stdin.writableEnded) return;
    this.child.stdin.write(`${JSON.stringify(message)}\n`);
  }

  private parse(line: string, what: string): Record<string, unknown> {
    let message: unknown;
    try {
      message = JSON.parse(line);
    } catch {
      // Python's json.dumps writes NaN and Infinity as bare tokens unless told otherwise.
      const hint = /\b(NaN|-?Infinity)\b/.test(line)
        ? '; non-finite numbers must be the strings "NaN", "Infinity", "-Infinity"'
        : '; stdout is reserved for protocol messages, print diagnostics to stderr';
      fail(
        `the port printed junk on stdout while the runner waited for ${what}: ${JSON.stringify(shorten(line))}${hint}`,
      );
    }
    if (!isRecord(message) || typeof message['type'] !== 'string') {
      fail(
        `the port answered ${what} with ${JSON.stringify(shorten(line))}, not a protocol message`,
      );
    }
    return message;
  }

  async handshake(): Promise<void> {
    this.send({ type: 'hello', protocol: PROTOCOL });
    const what = 'the handshake (hello)';
    const hello = this.parse(await this.nextLine(what), what);
    if (hello['type'] !== 'hello')
      fail(`the port answered the hello with a "${String(hello['type'])}" message`);
    if (hello['protocol'] !== PROTOCOL) {
      fail(
        `the port speaks protocol ${JSON.stringify(hello['protocol'])}; this runner speaks "${PROTOCOL}"`,
      );
    }
    const problem = schemaProblem('port-message', hello, "the port's hello", 'portHello');
    if (problem !== null) fail(problem);
    const { ops, dtype, profile } = hello as {
      ops: string[];
      dtype: Dtype;
      profile?: string | null;
    };
    this.info = {
      name: typeof hello['name'] === 'string' ? hello['name'] : this.options.command,
      source: this.options.command,
      kind: 'process',
      ops,
      profile: profile ?? null,
      dtype,
    };
  }

  async answer(c: PortCase): Promise<PortAnswer> {
    const id = `${c.op}#${c.caseId}`;
    const what = `case ${id}`;
    this.send({ type: 'case', id, op: c.op, inputs: c.rawInputs });
    const message = this.parse(await this.nextLine(what), what);
    if (message['id'] !== id) {
      fail(`the port answered ${what} with id ${JSON.stringify(message['id'])}`);
    }
    if (message['type'] !== 'result' && message['type'] !== 'error') {
      fail(`the port answered ${what} with a "${String(message['type'])}" message`);
    }
    const problem = schemaProblem('port-message', message, `the port's answer to ${what}`);
    if (problem !== null) fail(problem);
    return message['type'] === 'result'
      ? { kind: 'outputs', outputs: message['outputs'] }
      : { kind: 'error', message: message['message'] as string };
  }

  private killGroup(): void {
    if (this.exit !== null || this.child.pid === undefined) return;
    try {
      // The negative pid names the process group: the shell and everything it started.
      process.kill(-this.child.pid, 'SIGKILL');
    } catch {
      this.child.kill('SIGKILL');
    }
  }

  /** `<lead> N lines on stdout that are not protocol messages, the first "..."`, or '' for none. */
  private strayNote(lead: string): string {
    if (this.strayLines === 0) return '';
    const lines =
      this.strayLines === 1
        ? 'line on stdout that is not a protocol message'
        : 'lines on stdout that are not protocol messages, the first';
    return `${lead} ${this.strayLines} ${lines} ${JSON.stringify(shorten(this.firstStray!))}`;
  }

  async close(graceful = true): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.strayLines > 0) {
      this.notes.push(
        `${this.strayNote('the port printed')} (ignored; stdout is reserved for protocol messages, print diagnostics to stderr)`,
      );
    }
    if (this.waiter !== null) {
      clearTimeout(this.waiter.timer);
      this.waiter = null;
    }
    const alive = this.exit === null && this.spawnError === null;
    if (alive && graceful) {
      this.send({ type: 'bye' });
      this.child.stdin.end();
      const timer = setTimeout(() => this.killGroup(), EXIT_GRACE_MS);
      await this.exited;
      clearTimeout(timer);
      if (this.exit !== null && this.exit.code !== 0) {
        this.notes.push(
          this.exit.signal === 'SIGKILL'
            ? `the port did not exit within ${EXIT_GRACE_MS / 1000} s of "bye" and was killed`
            : this.exit.code !== null
              ? `the port exited with code ${this.exit.code} after "bye" (expected 0)`
              : `the port was killed by ${String(this.exit.signal)} after "bye" (expected exit code 0)`,
        );
      }
    } else if (alive) {
      this.killGroup();
      await this.exited;
    }
    // Even when the shell has exited, a grandchild may hold the pipes: end the group and the streams.
    if (this.child.pid !== undefined) {
      try {
        process.kill(-this.child.pid, 'SIGKILL');
      } catch {
        // No such group left: everything has exited.
      }
    }
    this.child.stdin.destroy();
    this.child.stdout.destroy();
    this.child.stderr.destroy();
    this.removeProcessHooks();
  }

  private removeProcessHooks(): void {
    process.removeListener('exit', this.killOnExit);
    for (const signal of FORWARDED_SIGNALS) process.removeListener(signal, this.killOnSignal);
  }
}

/**
 * Start `command`, do the handshake and return the port. On any failure the
 * process is killed before the error is thrown.
 */
export async function openProcessPort(options: ProcessPortOptions): Promise<Port> {
  const port = new ProcessPort(options);
  try {
    await port.handshake();
  } catch (e) {
    await port.close(false);
    if (e instanceof CheckInfrastructureError) {
      const tail = port.stderrTail();
      throw new CheckInfrastructureError(
        'port',
        tail.length === 0
          ? e.message
          : `${e.message}\nport stderr (last lines):\n  ${tail.join('\n  ')}`,
      );
    }
    throw e;
  }
  return port;
}
