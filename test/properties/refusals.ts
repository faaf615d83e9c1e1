/**
 * The assertion of the tests written for mutation survivors (spec/mutation.md):
 * a refusal is a VdspecError whose code, argument and whole message are all
 * checked, so that a check forced off, a code or name emptied, or a message
 * reworded each fail a test.
 */
import { expect } from 'vitest';
import { VdspecError } from '../../src/errors.js';

/**
 * `run` throws a VdspecError with this code, argument and message (prefixed by
 * the argument when there is one); a RegExp is matched against the whole
 * message instead, for one that ends in the operating system's words.
 */
export function expectRefusal(
  run: () => unknown,
  code: string,
  argument: string | undefined,
  message: string | RegExp,
): void {
  let caught: unknown;
  try {
    run();
  } catch (e) {
    caught = e;
  }
  expectVdspecError(caught, code, argument, message);
}

/** As expectRefusal, for a call that returns a promise: it rejects with that VdspecError. */
export async function expectRejection(
  run: () => Promise<unknown>,
  code: string,
  argument: string | undefined,
  message: string | RegExp,
): Promise<void> {
  const caught = await run().then(
    () => undefined,
    (e: unknown) => e,
  );
  expectVdspecError(caught, code, argument, message);
}

function expectVdspecError(
  caught: unknown,
  code: string,
  argument: string | undefined,
  message: string | RegExp,
): void {
  expect(caught).toBeInstanceOf(VdspecError);
  const error = caught as VdspecError;
  expect(error.code).toBe(code);
  expect(error.argument).toBe(argument);
  if (message instanceof RegExp) expect(error.message).toMatch(message);
  else expect(error.message).toBe(argument === undefined ? message : `${argument}: ${message}`);
}

/** A deliberately ill-typed argument, as a JavaScript caller could pass it: the checks exist for them. */
export function untyped<T>(value: unknown): T {
  return value as T;
}
