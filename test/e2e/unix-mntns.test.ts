/**
 * Unix sockets bound in a nested mount namespace of the tree (ZDTM's sk-unix-mntns): the root,
 * in a mount namespace of its own, and its child, in another one with a tmpfs on DIR, each bind
 * a datagram socket to the same name DIR/sock and connect a client to it. The dump keeps each
 * name's mount (unix_sk_entry.mnt_id); the restore binds each name again in its own namespace
 * (the child's once that namespace exists), so both go on talking to their own socket, also
 * through a client connected anew by the name.
 */
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { e2e, startTarget, killAndReap, waitFor, descendants, readLines, adopt, reap } from '../lib/proc.ts';
import { dumpAndReap, restoreDetached, waitForCounter } from '../lib/cr.ts';
import { readMessages } from '../../src/images/index.ts';
import { workload } from '../lib/workloads.ts';

/**
 * Runs under `unshare -m --propagation private`: $1 new root (a bind of /), $2 the workload's
 * dir, $3 the workload, $4 its log (opened in the namespace: a file of another is refused).
 */
const SETUP = `set -e
mount --bind / $1
mount -t proc proc $1/proc
cd $1
pivot_root . .
umount -l .
exec "$3" "$2" 100 0<&- >>"$4" 2>&1
`;

/** The last progress line of task `pid` in the log, from line `from` on. */
const lastOf = (log: string, pid: number, from = 0): Record<string, string> | undefined => {
  const l = readLines(log)
    .slice(from)
    .filter((x) => x.includes(` pid=${pid} `))
    .at(-1);
  return l === undefined ? undefined : Object.fromEntries(l.split(' ').map((kv) => kv.split('=') as [string, string]));
};

e2e('unix sockets bound to one name in two mount namespaces of the tree each come back in their own', async (c) => {
  const d = c.dir;
  for (const x of ['root', 's']) mkdirSync(join(d, x));
  const script = join(d, 'setup.sh');
  writeFileSync(script, SETUP);
  const log = join(d, 'out.log');
  const bin = workload('unixmntns');
  const t = startTarget(['unshare', '-m', '--propagation', 'private', 'sh', script, join(d, 'root'), join(d, 's'), bin, log], {
    execs: [bin, join(d, 's'), '100'],
  });
  const child = await waitFor(() => descendants(t.pid)[0], 5000, 'the child in the nested mount namespace');
  await waitFor(() => Number(lastOf(log, child)?.i ?? 0) >= 2 && Number(lastOf(log, t.pid)?.i ?? 0) >= 2, 5000, 'both counting');
  assert.deepEqual(
    [lastOf(log, t.pid), lastOf(log, child)].map((r) => [r?.ok, r?.mnt]),
    [
      ['1', 'none'],
      ['1', 'tmpfs'],
    ],
  );
  assert.notEqual(readFileSync(`/proc/${child}/mountinfo`, 'utf8'), readFileSync(`/proc/${t.pid}/mountinfo`, 'utf8'));
  const img = c.subdir('img');
  dumpAndReap(t.pid, img);
  const named = readMessages(join(img, 'files.img'), 'file_entry')
    .flatMap((f) => (f.usk?.name.length ? [f.usk.mnt_id] : []))
    .filter((m) => m !== undefined);
  assert.equal(new Set(named).size, 2, `the two names are on two mounts: ${named}`);
  const marks = readLines(log).length;
  restoreDetached(img, t.pid);
  adopt(child);
  const [root, kid] = [t.pid, child].map((p) => Number(lastOf(log, p)?.i));
  await waitForCounter(log, root + 3, 10_000, marks);
  await waitFor(() => Number(lastOf(log, child, marks)?.i ?? 0) > kid + 3, 10_000, 'the child counting on');
  assert.deepEqual(
    [lastOf(log, t.pid, marks), lastOf(log, child, marks)].map((r) => [r?.ok, r?.mnt]),
    [
      ['1', 'none'],
      ['1', 'tmpfs'],
    ],
    'each sends to, and reconnects by name to, its own socket',
  );
  assert.ok(
    readLines(log)
      .slice(marks)
      .every((l) => l.includes(' ok=1 ')),
    'no message lost or misdelivered after the restore',
  );
  killAndReap(t.pid);
  reap(child, 10_000);
});
