/** A failure the user sees as one line: what went wrong, in words. */
export class CriuError extends Error {
  /** The errno CRIU reports for this failure (an RPC reply's cr_errno), when it names one. */
  readonly crErrno?: number;
  constructor(message: string, crErrno?: number) {
    super(message);
    this.name = 'CriuError';
    this.crErrno = crErrno;
  }
}

/** The fault-injection switch: CRIU_TS_FAULT=<step> makes that step fail, to test cleanup paths. */
export function faultPoint(step: string): void {
  if (process.env.CRIU_TS_FAULT === step) throw new CriuError(`injected fault at step "${step}" (CRIU_TS_FAULT)`);
}

/** CRIU_TS_FAULT=<step> for a fault that is not a failure of criu-ts (a task dying at a given moment). */
export function faultAt(step: string): boolean {
  return process.env.CRIU_TS_FAULT === step;
}

/**
 * What criu-ts refuses because it cannot do it yet (a resource, an option, a command): one line
 * ending "; not supported yet", so a refusal reads differently from a failure.
 */
export class NotSupportedError extends CriuError {
  constructor(what: string, message = `${what}; not supported yet`) {
    super(message);
    this.name = 'NotSupportedError';
  }
  /** A CRIU option or command criu-ts does not implement, as CRIU users grep for it. */
  static option(name: string): NotSupportedError {
    return new NotSupportedError(name, `not supported yet: ${name}`);
  }
}
