import type { FileTable, MessageInput, RegExtra } from '../resources/types.ts';
import { FD_TYPE, fown } from '../resources/files/index.ts';

/** files.img being built: every file object of the dump, ids shared by all fd kinds. */
export class DumpFileTable implements FileTable {
  readonly entries: MessageInput<'file_entry'>[] = [];
  private next = 1;
  private byPath = new Map<string, number>();

  newId(): number { return this.next++; }
  add(entry: MessageInput<'file_entry'>): void { this.entries.push(entry); }

  regPath(path: string, flags: number, extra: RegExtra = {}): number {
    const key = `${flags}:${path}`;
    const known = this.byPath.get(key);
    if (known !== undefined) return known;
    const id = this.newId();
    this.add({ type: FD_TYPE.REG, id, reg: { id, flags, pos: 0n, fown: fown(), name: path, ...extra } });
    this.byPath.set(key, id);
    return id;
  }
}
