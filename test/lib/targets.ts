// Starting target processes the way criu-ts needs them: orphans re-parented to this
// process (a double fork), unknown to libuv, which would otherwise reap them behind our back.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { SLOW } from './slow.ts';
import { cmdline, procStat, procState, sleepSync } from './procfs.ts';
import { tail } from './logs.ts';
import { registry } from './reap.ts';
import { current, scratchDir } from './scratch.ts';

export interface StartOptions {
  cwd?: string;
  /** Added to (not replacing) this process's environment. */
  env?: Record<string, string>;
  /** stdout+stderr, opened O_WRONLY|O_APPEND (the test's dir or a new temp dir by default). */
  logFile?: string;
  /** stdin (default /dev/null). */
  stdin?: string;
  /** Run under setsid (its own session and group, no controlling tty). Default true. */
  setsid?: boolean;
  /** How long to wait for the exec to finish. */
  timeoutMs?: number;
  /** Whether the exec is done, by the cmdline (default: it is argv; a program may rename itself at once). */
  execed?: (cmdline: string[]) => boolean;
  /** The command line the program ends up with, when it execs another (default argv). */
  execs?: string[];
}

export interface Target {
  pid: number;
  log: string;
  argv: string[];
}

let logSeq = 0;

/**
 * Start argv as an orphan re-parented to this process (double fork), not a
 * libuv child. Returns once /proc/PID/cmdline shows argv (the exec is done).
 */
export function startTarget(argv: string[], opts: StartOptions = {}): Target {
  if (argv.length === 0) throw new Error('startTarget: empty argv');
  const log = opts.logFile ?? join(scratchDir(), `target-${++logSeq}.log`);
  const useSetsid = opts.setsid ?? true;
  // The background job closes every fd above 2 it inherited (from whoever ran
  // the test), then execs the program with stdin/stdout/stderr redirected.
  const script =
    'log=$1; in=$2; shift 2; { for p in /proc/self/fd/*; do n=${p##*/}; ' +
    'if [ "$n" -gt 2 ]; then eval "exec $n>&-"; fi; done; ' +
    `${useSetsid ? 'exec setsid "$@"' : 'exec "$@"'} <"$in" >>"$log" 2>&1; } & echo $!`;
  const r = spawnSync('bash', ['-c', script, 'bash', log, opts.stdin ?? '/dev/null', ...argv], {
    cwd: opts.cwd,
    env: { ...process.env, ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
    encoding: 'utf8',
    timeout: 10_000 * SLOW,
  });
  const pid = Number(r.stdout.trim());
  if (r.status !== 0 || !Number.isInteger(pid) || pid <= 0) {
    throw new Error(
      `startTarget(${argv.join(' ')}) failed: status ${r.status}, stdout ${JSON.stringify(r.stdout)}, stderr ${JSON.stringify(r.stderr)}`,
    );
  }
  registry.add(pid);
  current.targets.push({ pid, log, argv });
  // The background job first runs `setsid`, which then execs the program.
  const want = (opts.execs ?? argv).join('\0');
  const end = Date.now() + (opts.timeoutMs ?? 5000) * SLOW;
  for (;;) {
    const cl = cmdline(pid);
    if (cl && (opts.execed ? opts.execed(cl) : cl.join('\0') === want)) break;
    const st = procState(pid);
    if (st === null || st === 'Z') throw new Error(`startTarget: ${argv[0]} (PID ${pid}) exited at once; log:\n${tail(log, 10)}`);
    if (Date.now() > end) throw new Error(`startTarget: PID ${pid} did not exec ${argv[0]} (cmdline ${JSON.stringify(cl)})`);
    sleepSync(2);
  }
  const s = procStat(pid);
  if (s && s.ppid !== process.pid)
    throw new Error(`startTarget: PID ${pid}'s parent is ${s.ppid}, not us (${process.pid}): are we a subreaper?`);
  if (useSetsid && s && s.sid !== pid) throw new Error(`startTarget: PID ${pid} is not a session leader (sid ${s.sid})`);
  return { pid, log, argv };
}
