/** A failure the user sees as one line: what went wrong, in words. */
export class CriuError extends Error {
  /** The errno CRIU reports for this failure (an RPC reply's cr_errno), when it names one. */
  readonly crErrno?: number;
  constructor(message: string, crErrno?: number) { super(message); this.name = 'CriuError'; this.crErrno = crErrno; }
}

/** The fault-injection switch: CRIU_TS_FAULT=<step> makes that step fail, to test cleanup paths. */
export function faultPoint(step: string): void {
  if (process.env.CRIU_TS_FAULT === step) throw new CriuError(`injected fault at step "${step}" (CRIU_TS_FAULT)`);
}
