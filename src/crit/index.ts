// crit: CRIU image <-> JSON, as CRIU's crit tool does it (decode/encode/show/info/x).
export { base64Lines, fromBase64, fromQuotedPrintable, humanReadable, parsePyInt, toQuotedPrintable } from './codecs.ts';
export { EncodeError, dumpImage } from './dump.ts';
export { EXPLORERS, explore } from './explore.ts';
export type { Explorer } from './explore.ts';
export { parseJson, quote, toJson } from './json.ts';
export type { JsonObject, JsonValue } from './json.ts';
export { MAX_EXTRA, MAX_IMAGE, checkImage, critEntries, detectImage, imageInfo, loadImage } from './load.ts';
export type { CritImage, DecodeOptions } from './load.ts';
export { critKind, magicName, magicValue } from './magic.ts';
export { DictError, fromDict, toDict } from './pb2dict.ts';
