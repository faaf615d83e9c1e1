/**
 * The assertion of the tests written for mutation survivors (spec/mutation.md):
 * a refusal is a VdspecError whose code, argument and whole message are all
 * checked, so that a check forced off, a code or name emptied, or a message
 * reworded each fail a test.
 */
import { expect } from 'vitest';
import { VdspecError } from '../../src/errors.js';

/** `run` throws a VdspecError with this code, argument and message (prefixed by the argument when there is one). */
export function expectRefusal(
  run: () => unknown,
  code: string,
  argument: string | undefined,
  message: string,
): void {
  let caught: unknown;
  try {
    run();
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(VdspecError);
  const error = caught as VdspecError;
  expect(error.code).toBe(code);
  expect(error.argument).toBe(argument);
  expect(error.message).toBe(argument === undefined ? message : `${argument}: ${message}`);
}

/** A deliberately ill-typed argument, as a JavaScript caller could pass it: the checks exist for them. */
export function untyped<T>(value: unknown): T {
  return value as T;
}
