/** Raised when a /proc file does not have the shape the parser expects. */
export class ProcParseError extends Error {
  /** Which /proc file kind was being parsed ("maps", "status", ...). */
  readonly file: string;
  /** The offending line (or a short excerpt), when there is one. */
  readonly line: string | undefined;

  constructor(file: string, message: string, line?: string) {
    super(`${file}: ${message}${line !== undefined ? `: ${JSON.stringify(line.length > 200 ? line.slice(0, 200) + '…' : line)}` : ''}`);
    this.name = 'ProcParseError';
    this.file = file;
    this.line = line;
  }
}

/** Split text into lines, dropping the empty remainder after a final newline. */
export function splitLines(text: string): string[] {
  const lines = text.split('\n');
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  return lines;
}

/** Parse a decimal integer that must fit a JS number; throws ProcParseError otherwise. */
export function decInt(file: string, s: string, line?: string): number {
  const t = s.trim();
  if (!/^[+-]?\d+$/.test(t)) throw new ProcParseError(file, `bad decimal ${JSON.stringify(s)}`, line);
  return Number(t);
}

/** Parse an unsigned decimal integer into a bigint. */
export function decBig(file: string, s: string, line?: string): bigint {
  const t = s.trim();
  if (!/^[+-]?\d+$/.test(t)) throw new ProcParseError(file, `bad decimal ${JSON.stringify(s)}`, line);
  return BigInt(t);
}

/** Parse a hexadecimal number (no 0x prefix required) into a bigint. */
export function hexBig(file: string, s: string, line?: string): bigint {
  const t = s.trim();
  if (!/^(0x)?[0-9a-fA-F]+$/.test(t)) throw new ProcParseError(file, `bad hex ${JSON.stringify(s)}`, line);
  return BigInt(t.startsWith('0x') ? t : '0x' + t);
}

/** Parse a hexadecimal number into a JS number (must be < 2^53). */
export function hexInt(file: string, s: string, line?: string): number {
  const t = s.trim();
  if (!/^(0x)?[0-9a-fA-F]+$/.test(t)) throw new ProcParseError(file, `bad hex ${JSON.stringify(s)}`, line);
  return parseInt(t.startsWith('0x') ? t.slice(2) : t, 16);
}

/** Parse an octal number into a JS number. */
export function octInt(file: string, s: string, line?: string): number {
  const t = s.trim();
  if (!/^[0-7]+$/.test(t)) throw new ProcParseError(file, `bad octal ${JSON.stringify(s)}`, line);
  return parseInt(t, 8);
}
