// crit names an image by its magic alone (never by file name): the first CRIU name of each value.
import { CRTOOLS_IMAGES_V1_1, IMG_COMMON_MAGIC, IMG_SERVICE_MAGIC, MAGIC, imageKind } from '../images/index.ts';
import type { ImageKind } from '../images/index.ts';

const byValue = new Map<number, string>();
const byName = new Map<string, number>();
for (const [name, value] of [
  ['CRTOOLS_IMAGES_V1_1', CRTOOLS_IMAGES_V1_1],
  ['IMG_COMMON', IMG_COMMON_MAGIC],
  ['IMG_SERVICE', IMG_SERVICE_MAGIC],
  ...Object.entries(MAGIC),
] as [string, number][]) {
  // value 0 marks raw images, which have no magic; later names of a value are aliases
  if (value === 0 || byValue.has(value)) continue;
  byValue.set(value, name);
  byName.set(name, value);
}

export function magicName(value: number): string | undefined {
  return byValue.get(value);
}

export function magicValue(name: string): number | undefined {
  return byName.get(name);
}

/** The image kind crit would handle a magic name with; undefined for magics that are no image. */
export function critKind(name: string): ImageKind | undefined {
  try {
    const k = imageKind(name);
    return k.head === 'raw' ? undefined : k;
  } catch {
    return undefined;
  }
}
