// /proc/PID/mountinfo (minimal).

import { ProcParseError, splitLines } from './errors.ts';

export interface MountInfo {
  mntId: number;
  parentId: number;
  major: number;
  minor: number;
  /** root of the mount within its filesystem (octal escapes decoded); '//deleted' stripped into rootDeleted */
  root: string;
  rootDeleted: boolean;
  mountPoint: string;
  /** per-mount options, e.g. "rw,nosuid,relatime" */
  options: string;
  /** shared:N, master:N, propagate_from:N, unbindable */
  optionalFields: string[];
  /** filesystem type as printed (may be "type.subtype", e.g. "fuse.sshfs") */
  fstype: string;
  /** may be '' */
  source: string;
  superOptions: string;
}

/** Undo the kernel's octal escapes (\040 space, \011 tab, \012 newline, \134 backslash). */
export function unescapeOctal(s: string): string {
  if (!s.includes('\\')) return s;
  return s.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)));
}

export function parseMountinfo(text: string): MountInfo[] {
  const out: MountInfo[] = [];
  for (const line of splitLines(text)) {
    if (line === '') continue;
    const sep = line.indexOf(' - ');
    if (sep < 0) throw new ProcParseError('mountinfo', 'no " - " separator', line);
    const head = line.slice(0, sep).split(' ');
    const tail = line.slice(sep + 3).split(' ');
    if (head.length < 6 || tail.length < 2) throw new ProcParseError('mountinfo', 'too few fields', line);
    const dev = /^(\d+):(\d+)$/.exec(head[2]);
    if (!dev || !/^\d+$/.test(head[0]) || !/^\d+$/.test(head[1])) throw new ProcParseError('mountinfo', 'bad ids', line);
    let root = unescapeOctal(head[3]);
    let rootDeleted = false;
    // The kernel marks a removed root "//deleted" (dentry_path).
    if (root.endsWith('//deleted')) {
      root = root.slice(0, -9) || '/';
      rootDeleted = true;
    } else if (root.endsWith(' (deleted)')) {
      root = root.slice(0, -10);
      rootDeleted = true;
    }
    out.push({
      mntId: Number(head[0]),
      parentId: Number(head[1]),
      major: Number(dev[1]),
      minor: Number(dev[2]),
      root,
      rootDeleted,
      mountPoint: unescapeOctal(head[4]),
      options: head[5],
      optionalFields: head.slice(6).filter((x) => x !== ''),
      fstype: tail[0],
      source: unescapeOctal(tail[1]),
      superOptions: tail.slice(2).join(' '),
    });
  }
  return out;
}
