// Image files: framing, reading, writing, and a directory helper.
import * as path from 'node:path';
import { ImageReader } from './image-read.ts';
import { ImageWriter } from './image-write.ts';
import { imageFileName } from './magic.ts';
import type { ImageKindId } from './magic.ts';

export { ImageError } from './image-common.ts';
export { ImageReader, readImage, readMessages, readOne, isMessage, messageOf, preloadImage, dropPreloaded, sealDir } from './image-read.ts';
export type { ImageEntry, ReadOptions } from './image-read.ts';
export { ImageWriter, writeImage } from './image-write.ts';
export type { WriteOptions } from './image-write.ts';

export class ImageDir {
  readonly path: string;

  constructor(dir: string) {
    this.path = dir;
  }

  file(id: ImageKindId, ...args: (number | bigint | string)[]): string {
    return path.join(this.path, imageFileName(id, ...args));
  }

  writer(id: ImageKindId, ...args: (number | bigint | string)[]): ImageWriter {
    return new ImageWriter(this.file(id, ...args), { kind: id });
  }

  reader(id: ImageKindId, ...args: (number | bigint | string)[]): ImageReader {
    return new ImageReader(this.file(id, ...args), { kind: id });
  }
}
