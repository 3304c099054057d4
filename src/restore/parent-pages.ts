// Pages an incremental dump left in its parent dumps (PE_PARENT runs, --prev-images-dir): each
// is found, before any process exists, in the nearest dump up the chain of `parent` links
// that holds it (PE_PRESENT there; PE_PARENT sends the search one dump further up), and is
// filled from that dump's pages file.
import fs from 'node:fs';
import path from 'node:path';
import { ImageError } from '../images/index.ts';
import type { PageSource } from '../resources/types.ts';

export interface PageLayer {
  runs: PageSource[];
  pagesPath: string;
  key?: Buffer;
}

type Range = [bigint, bigint];
const PAGE = 4096n;
const hex = (v: bigint) => `0x${v.toString(16)}`;

/** A dump as this needs it: its directory and its pagemap of a task. */
export interface ParentDump {
  dir: string;
  key?: Buffer;
  pagemap(vpid: number): { runs: PageSource[]; pagesPath: string };
}

const rangesOf = (runs: PageSource[], flag: number): Range[] =>
  runs.filter((r) => r.flags & flag).map((r) => [r.vaddr, r.vaddr + BigInt(r.nrPages) * PAGE] as Range);

/** The parts of `want` (sorted, disjoint) inside `have` (sorted, disjoint). */
function intersect(want: Range[], have: Range[]): Range[] {
  const out: Range[] = [];
  let j = 0;
  for (const [a, b] of want) {
    while (j < have.length && have[j][1] <= a) j++;
    for (let k = j; k < have.length && have[k][0] < b; k++) {
      const s = have[k][0] > a ? have[k][0] : a,
        e = have[k][1] < b ? have[k][1] : b;
      if (s < e) out.push([s, e]);
    }
  }
  return out;
}

const pages = (rs: Range[]): bigint => rs.reduce((n, [a, b]) => n + (b - a) / PAGE, 0n);

/** The dump `dir`/parent links to, or undefined. */
export function parentDir(dir: string): string | undefined {
  const link = path.join(dir, 'parent');
  try {
    if (!fs.lstatSync(link).isSymbolicLink()) return undefined;
  } catch {
    return undefined;
  }
  return path.resolve(dir, fs.readlinkSync(link));
}

/**
 * Where each PE_PARENT page of task `vpid` is: one layer per parent dump that holds some.
 * `open` opens (and checks) the dump in a directory.
 */
export function parentLayers(dir: string, vpid: number, runs: PageSource[], open: (dir: string) => ParentDump): PageLayer[] {
  const ORDER = (x: Range, y: Range) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0);
  let want = rangesOf(runs, 1).sort(ORDER);
  const layers: PageLayer[] = [];
  let from = dir;
  for (let depth = 0; want.length; depth++) {
    const up = parentDir(from);
    const what = `pagemap-${vpid}.img of ${from}`;
    if (!up)
      throw new ImageError(
        path.join(from, `pagemap-${vpid}.img`),
        `pages at ${hex(want[0][0])} are in the parent dump, and there is no parent link`,
      );
    if (depth > 64) throw new ImageError(path.join(from, 'parent'), 'more than 64 parent dumps: a loop of parent links?');
    const p = open(up);
    const pm = p.pagemap(vpid);
    const present = pm.runs.filter((r) => r.flags & 4 && r.offset !== undefined).sort((x, y) => ORDER([x.vaddr, 0n], [y.vaddr, 0n]));
    const hits = intersect(
      want,
      present.map((r) => [r.vaddr, r.vaddr + BigInt(r.nrPages) * PAGE] as Range),
    );
    const further = intersect(want, rangesOf(pm.runs, 1).sort(ORDER));
    const lost = pages(want) - pages(hits) - pages(further);
    if (lost !== 0n) throw new ImageError(path.join(up, `pagemap-${vpid}.img`), `${lost} page(s) that ${what} leaves to it are not in it`);
    // Each hit lies in one present run: its bytes are at that run's offset plus the distance.
    let k = 0;
    const layerRuns: PageSource[] = hits.map(([a, b]) => {
      while (present[k].vaddr + BigInt(present[k].nrPages) * PAGE <= a) k++;
      const r = present[k];
      return { vaddr: a, nrPages: Number((b - a) / PAGE), flags: 4, offset: r.offset! + Number(((a - r.vaddr) / PAGE) * PAGE) };
    });
    if (layerRuns.length) layers.push({ runs: layerRuns.sort((x, y) => x.offset! - y.offset!), pagesPath: pm.pagesPath, key: p.key });
    want = further;
    from = up;
  }
  return layers;
}
