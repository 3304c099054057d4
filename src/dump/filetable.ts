import fs from 'node:fs';
import type { FileTable, MessageInput, RegExtra } from '../resources/types.ts';
import { FD_TYPE, fown } from '../resources/files/index.ts';
import type { GhostDump } from '../resources/files/ghost.ts';

/** files.img being built: every file object of the dump, ids shared by all fd kinds. */
export class DumpFileTable implements FileTable {
  readonly entries: MessageInput<'file_entry'>[] = [];
  private next = 1;
  private byPath = new Map<string, number>();

  /** Where deleted files go (set once the dump's ghost files are). */
  ghosts?: GhostDump;

  newId(): number {
    return this.next++;
  }
  add(entry: MessageInput<'file_entry'>): void {
    this.entries.push(entry);
  }

  regPath(path: string, flags: number, extra: RegExtra = {}): number {
    return this.reg(`${flags}:${path}`, path, flags, extra);
  }

  regDeleted(name: string, source: string, flags: number, extra: RegExtra = {}): number {
    if (!this.ghosts) throw new Error(`${name} was deleted; this dump saves no deleted files`);
    const st = fs.statSync(source);
    const key = `${flags}:${st.dev}:${st.ino} (deleted)`;
    const known = this.byPath.get(key);
    if (known !== undefined) return known;
    const id = this.reg(key, name, flags, extra);
    this.ghosts.remap(id, source, name);
    return id;
  }

  private reg(key: string, path: string, flags: number, extra: RegExtra): number {
    const known = this.byPath.get(key);
    if (known !== undefined) return known;
    const id = this.newId();
    this.add({ type: FD_TYPE.REG, id, reg: { id, flags, pos: 0n, fown: fown(), name: path, ...extra } });
    this.byPath.set(key, id);
    return id;
  }
}
