// CRIU reads its command line with getopt_long: short options cluster (`-dj`), take their
// value attached or as the next word (`-t123`, `-t 123`), and an optional value only attached
// (`-v4`). Commander knows none of getopt's corners, so the words are put in a plain form
// first: every short option alone, its value as the next word. The log level is settled
// here too, exactly as CRIU does: `-verbosity=0` is `-v` with the value `erbosity=0`, that
// is atoi("erbosity=0") = 0.

/** CRIU 4.2's getopt string: ':' takes a value, '::' an optional attached value. */
const SHORT = 'dSsRt:hD:o:v::x::Vr:jJ:lW:L:M:';

function arity(c: string): 0 | 1 | 2 | undefined {
  const i = SHORT.indexOf(c);
  if (i < 0 || c === ':') return undefined;
  if (SHORT[i + 1] !== ':') return 0;
  return SHORT[i + 2] === ':' ? 2 : 1;
}

/** C's atoi: leading blanks, a sign, digits; anything else gives 0. */
function atoi(s: string): number {
  const m = /^[ \t\n\v\f\r]*([+-]?\d+)/.exec(s);
  return m ? parseInt(m[1], 10) : 0;
}

export const DEFAULT_LOGLEVEL = 2;

/** `-v`, `-vv...`, `-vN`, `--verbosity[=N]` applied to a log level, as CRIU's option parser does. */
function applyVerbosity(level: number, value: string | undefined): number {
  if (value === undefined) return level + 1;
  if (value.startsWith('v')) return level + value.length + 1;
  return atoi(value);
}

export interface Argv {
  /** The words, short options split and their values as separate words, verbosity removed. */
  args: string[];
  /** Log level 0..4 (CRIU's loglevel, clamped). */
  level: number;
  /** Where the log goes, as given (-o), and the directories it is relative to. */
  logFile?: string;
  imagesDir?: string;
  workDir?: string;
}

const VALUE_OF: Record<string, keyof Argv> = {
  '-o': 'logFile',
  '--log-file': 'logFile',
  '-D': 'imagesDir',
  '--images-dir': 'imagesDir',
  '-W': 'workDir',
  '--work-dir': 'workDir',
};

/** Long options that take a value (so that their value is never read as an option or a command). */
export function normalize(argv: string[], longWithValue: ReadonlySet<string>): Argv {
  const args: string[] = [];
  let level = DEFAULT_LOGLEVEL;
  const out: Argv = { args, level };
  const note = (name: string, value: string | undefined) => {
    const k = VALUE_OF[name];
    if (k && value !== undefined) (out as unknown as Record<string, string>)[k] = value;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') {
      args.push(...argv.slice(i));
      break;
    }
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      const name = eq < 0 ? a : a.slice(0, eq);
      if (name === '--verbosity') {
        level = applyVerbosity(level, eq < 0 ? undefined : a.slice(eq + 1));
        continue;
      }
      if (eq < 0 && longWithValue.has(name) && i + 1 < argv.length) {
        note(name, argv[i + 1]);
        args.push(a, argv[++i]);
        continue;
      }
      note(name, eq < 0 ? undefined : a.slice(eq + 1));
      args.push(a);
      continue;
    }
    if (!a.startsWith('-') || a === '-') {
      args.push(a);
      continue;
    }
    for (let j = 1; j < a.length; j++) {
      const c = a[j],
        rest = a.slice(j + 1);
      const n = arity(c);
      if (n === 1) {
        const value = rest !== '' ? rest : argv[++i];
        if (value === undefined) {
          args.push(`-${c}`);
          break;
        }
        note(`-${c}`, value);
        args.push(`-${c}`, value);
        break;
      }
      if (n === 2) {
        if (c === 'v') level = applyVerbosity(level, rest === '' ? undefined : rest);
        else args.push(`-${c}`, ...(rest === '' ? [] : [rest]));
        break;
      }
      args.push(`-${c}`);
    }
  }
  out.level = Math.max(0, Math.min(level, 4));
  return out;
}
