/**
 * Debian's crit (python3-pycriu) on a whole images directory in one
 * interpreter: `crit decode -i IMG -o OUT` for every image costs 0.3 s of
 * Python start-up per image when run as a command; here pycriu's own
 * cli.decode runs once per image with the options the command would pass.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export const CRIT = '/usr/bin/crit';

const DRIVER = `
import json, sys
try:
    from pycriu import cli  # crit up to CRIU 3.x
except ImportError:
    import crit.__main__ as cli  # CRIU 4.x moved crit into its own package
out_dir = sys.argv[1]
res = {}
for path in sys.argv[2:]:
    name = path.rsplit('/', 1)[-1]
    try:
        cli.decode({'in': path, 'out': out_dir + '/' + name + '.json', 'pretty': False, 'nopl': False})
        res[name] = 'ok'
    except SystemExit as e:
        res[name] = 'exit %s' % (e.code,)
    except Exception as e:
        res[name] = '%s: %s' % (type(e).__name__, e)
print(json.dumps(res))
`;

export interface Decoded {
  magic: string;
  entries: unknown[];
}

/** Whether crit is installed (the Debian package criu). */
export function haveCrit(): boolean {
  return existsSync(CRIT) && spawnSync(CRIT, ['--help'], { encoding: 'utf8' }).status === 0;
}

/**
 * Decode every named image of `dir` with crit's decoder. Returns name ->
 * decoded JSON; throws naming every image crit could not decode.
 */
export function critDecodeAll(dir: string, names: string[], scratch: string): Map<string, Decoded> {
  mkdirSync(scratch, { recursive: true });
  const r = spawnSync('/usr/bin/python3', ['-c', DRIVER, scratch, ...names.map((n) => join(dir, n))], {
    encoding: 'utf8',
    maxBuffer: 64 << 20,
  });
  if (r.status !== 0) throw new Error(`crit decode driver failed: ${r.stderr}`);
  const res = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as Record<string, string>;
  const bad = Object.entries(res).filter(([, v]) => v !== 'ok');
  if (bad.length) throw new Error(`crit decode failed on:\n  ${bad.map(([k, v]) => `${k}: ${v}`).join('\n  ')}\n${r.stderr}`);
  const out = new Map<string, Decoded>();
  for (const n of names) out.set(n, JSON.parse(readFileSync(join(scratch, `${n}.json`), 'utf8')) as Decoded);
  return out;
}
