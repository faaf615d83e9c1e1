/**
 * Watching a port's processes from a test: the fake port's pid from what it
 * printed, and whether a pid still runs. Shared by check.test.ts (ports run
 * through `vdspec check`) and check-process.test.ts (the process port alone).
 */
import { readFileSync } from 'node:fs';
import { expect } from 'vitest';

/** The pid test/fixtures/ports/fake-port.mjs printed on stderr (`fake-port pid=N`). */
export function fakePid(text: string): number {
  const m = /fake-port pid=(\d+)/.exec(text);
  expect(m).not.toBeNull();
  return Number(m![1]);
}

/**
 * Whether `pid` still runs. A killed grandchild (the port under `sh -c`) is
 * reparented and may stay a zombie where nothing reaps it (a container's
 * init): on Linux a zombie counts as dead. A process whose /proc entry went
 * away between the two looks is dead too.
 */
function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A kill reaches a grandchild asynchronously: allow it up to 2 s to die. */
export async function expectDead(pid: number): Promise<void> {
  const deadline = Date.now() + 2000;
  while (isAlive(pid) && Date.now() < deadline) await delay(20);
  expect(isAlive(pid), `process ${pid} still running`).toBe(false);
}
