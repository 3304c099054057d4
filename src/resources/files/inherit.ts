// --inherit-fd / RPC inherit_fd: a file of the images is not opened again but replaced by one
// of criu-ts's own fds (runc hands over the container's stdio pipes this way). Keys as CRIU
// forms them: "pipe:[INO]" for a pipe (its pipe_id), the path for a regular file.
import type { FileEntry } from './types.ts';

export interface InheritFd {
  key: string;
  fd: number;
}

/** The keys that name this file. */
function keysOf(file: FileEntry): string[] {
  if (file.pipe) return [`pipe:[${file.pipe.pipe_id}]`];
  if (file.fifo) return [`pipe:[${file.fifo.pipe_id}]`];
  if (file.reg) return [file.reg.name, file.reg.name.replace(/^\/+/, '')];
  return [];
}

/** criu-ts's fd that stands for `file`, if one was given for it. */
export function inheritedFd(file: FileEntry, given: readonly InheritFd[]): number | undefined {
  if (!given.length) return undefined;
  const keys = keysOf(file);
  return given.find((g) => keys.includes(g.key))?.fd;
}
