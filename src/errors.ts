/**
 * One error type for every rejected input, so callers (and the CLI) can tell a
 * user which argument was wrong and why, without a stack trace.
 */
export type VdspecErrorCode =
  | 'shape_mismatch'
  | 'non_finite'
  | 'invalid_argument'
  | 'unknown_profile'
  | 'unknown_op'
  | 'unsupported'
  | 'io_error'
  | 'invalid_checkpoint'
  | 'interrupted';

export class VdspecError extends Error {
  override readonly name = 'VdspecError';
  readonly code: VdspecErrorCode;
  /** The argument at fault, as named in the spec (e.g. `theta`, `log_sigma2`). */
  readonly argument: string | undefined;

  constructor(code: VdspecErrorCode, message: string, argument?: string) {
    super(argument === undefined ? message : `${argument}: ${message}`);
    this.code = code;
    this.argument = argument;
  }
}

export function isVdspecError(e: unknown): e is VdspecError {
  return e instanceof VdspecError;
}
