// A tree in namespaces of its own dumped by one tool (criu-ts or CRIU 4.2) and restored by either.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { adopt, reap, CRIU_BIN } from './proc.ts';
import { CRIU42 } from './runc.ts';

/** Dump `box` (the tree is killed), restore with `tool` and more options; the restored root. */
export async function across(
  box: { unshare: number; init: number },
  img: string,
  dumpWith: string,
  restoreWith: string,
  more: { dump?: string[]; restore?: string[]; between?: () => void } = {},
): Promise<number> {
  const tool = (w: string) => (w === 'criu' ? CRIU42 : CRIU_BIN);
  const d = spawnSync(tool(dumpWith), ['dump', '-t', String(box.init), '-D', img, '-v4', '-o', 'dump.log', ...(more.dump ?? [])], {
    encoding: 'utf8',
  });
  assert.equal(d.status, 0, `${dumpWith} dump: ${d.stderr}`);
  reap(box.unshare, 10_000);
  reap(box.init, 10_000);
  more.between?.();
  const pidfile = join(img, 'root.pid');
  const extra = restoreWith !== 'criu' && dumpWith === 'criu' ? ['--skip-verify'] : [];
  const r = spawnSync(
    tool(restoreWith),
    ['restore', '-D', img, '-d', '-v4', '-o', 'restore.log', '--pidfile', pidfile, ...extra, ...(more.restore ?? [])],
    { encoding: 'utf8' },
  );
  assert.equal(r.status, 0, `${restoreWith} restore: ${r.stderr}`);
  const host = Number(readFileSync(pidfile, 'utf8'));
  adopt(host);
  return host;
}
