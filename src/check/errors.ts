/**
 * The one error type of the checker: something kept the check from being
 * carried out (a bad command line, an unreadable golden or results file, a
 * port that crashed, hung, printed junk or answered the wrong id). It is
 * never a verdict on the port's numbers; `vdspec check` exits 2 on it.
 */
export type CheckFailureKind = 'usage' | 'golden' | 'results' | 'port';

export class CheckInfrastructureError extends Error {
  override readonly name = 'CheckInfrastructureError';
  readonly kind: CheckFailureKind;

  constructor(kind: CheckFailureKind, message: string) {
    super(message);
    this.kind = kind;
  }
}

export function isCheckInfrastructureError(e: unknown): e is CheckInfrastructureError {
  return e instanceof CheckInfrastructureError;
}

/** A one-line message for any thrown value, never a stack trace. */
export function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
