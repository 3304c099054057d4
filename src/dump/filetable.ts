import type { FileTable, Msg } from '../resources/types.ts';
import { FD_TYPE } from '../resources/files/index.ts';

const fown = (): Msg => ({ uid: 0, euid: 0, signum: 0, pid_type: 0, pid: 0 });

/** files.img being built: every file object of the dump, ids shared by all fd kinds. */
export class DumpFileTable implements FileTable {
  readonly entries: Msg[] = [];
  private next = 1;
  private byPath = new Map<string, number>();

  newId(): number { return this.next++; }
  add(entry: Msg): void { this.entries.push(entry); }

  regPath(path: string, flags: number, extra: Msg = {}): number {
    const key = `${flags}:${path}`;
    const known = this.byPath.get(key);
    if (known !== undefined) return known;
    const id = this.newId();
    this.add({ type: FD_TYPE.REG, id, reg: { id, flags, pos: 0n, fown: fown(), name: path, ...extra } });
    this.byPath.set(key, id);
    return id;
  }
}
