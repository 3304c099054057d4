// Network tools (ip, iptables-save, nft...) run in a process's network namespace through
// nsenter: criu-ts's own threads stay home. Input goes in through a memfd (`ip route restore`
// seeks in it).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { CLONE, MFD, memfdCreate, inNamespaces, inNetNsFd, runProgram, type ProgramResult } from '../../kernel/index.ts';

/** Where the tools are, whatever PATH criu-ts was given. */
const PATH = `${process.env.PATH ? `${process.env.PATH}:` : ''}/usr/sbin:/usr/bin:/sbin:/bin`;

/** A network namespace: a task's (pid) or a namespace file's path. */
export type NetAt = number | string;

/** Run `fn` on the main thread in the network namespace `at`. */
export function inNet<T>(at: NetAt, fn: () => T): T {
  if (typeof at === 'number') return inNamespaces(at, CLONE.NEWNET, fn);
  const fd = fs.openSync(at, 'r');
  try {
    return inNetNsFd(fd, fn);
  } finally {
    fs.closeSync(fd);
  }
}

/** A tool's run: its exit status (128 + signal), its output and errors; `error` when it did not start. */
export interface ToolRun extends ProgramResult {
  error?: string;
}

/** Run `cmd ARGS` here, `input` on its stdin (a memfd: `ip route restore` seeks in it). */
export function runTool(cmd: string, args: string[], input?: Buffer): ToolRun {
  let fd: number | undefined;
  if (input) {
    fd = memfdCreate(`criu-ts-${cmd}`, MFD.CLOEXEC);
    fs.writeSync(fd, input, 0, input.length, 0);
  }
  try {
    return runProgram([cmd, ...args], { fds: fd === undefined ? {} : { 0: fd }, env: { ...process.env, PATH } });
  } catch (e) {
    return { status: -1, stdout: Buffer.alloc(0), stderr: '', error: (e as Error).message };
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/** Run `cmd ARGS` in the network namespace of `pid` (or at the namespace file `netns`). */
export function runInNet(netns: NetAt, cmd: string, args: string[], input?: Buffer): ToolRun {
  const at = typeof netns === 'number' ? `/proc/${netns}/ns/net` : netns;
  return runTool('nsenter', [`--net=${at}`, cmd, ...args], input);
}

/** A failed run's reason, in one line: the tool's first line of errors, or its exit status. */
export function failure(r: ToolRun): string | undefined {
  if (r.error) return r.error;
  if (r.status === 0) return undefined;
  const err = r.stderr.trim().split('\n')[0];
  return err || (r.status > 128 ? `killed by signal ${r.status - 128}` : `exit status ${r.status}`);
}

/** Is `cmd` runnable here (criu-ts's namespace)? */
export const hasTool = (cmd: string, args: string[] = ['--version']): boolean =>
  spawnSync(cmd, args, { stdio: 'ignore', env: { ...process.env, PATH } }).status === 0;
