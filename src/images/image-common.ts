// Image file framing shared by reader and writer: the error type and small helpers.
import * as path from 'node:path';
import { imageKind } from './magic.ts';
import type { ImageKind, ImageKindId } from './magic.ts';

/** Every image read/write problem; the message is one line starting with the file name. */
export class ImageError extends Error {
  override name = 'ImageError';
  readonly file: string;

  constructor(file: string, problem: string) {
    super(`${path.basename(file)}: ${problem}`);
    this.file = file;
  }
}

export const hex = (v: number) => `0x${(v >>> 0).toString(16).padStart(8, '0')}`;

export function kindOf(k: ImageKind | ImageKindId | undefined): ImageKind | undefined {
  return typeof k === 'string' ? imageKind(k) : k;
}

export function errnoText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
