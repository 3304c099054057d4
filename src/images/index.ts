// Public API of the CRIU image layer.
export {
  ProtoError,
  ProtoRegistry,
  ProtoWriter,
  setUnknownFields,
  stringBytes,
  unknownFields,
} from './proto.ts';
export type {
  EnumDef,
  FieldDef,
  FieldLabel,
  FieldOpts,
  FieldType,
  MessageDef,
  ProtoInput,
  ProtoObject,
  ProtoValue,
  ScalarType,
  UnknownField,
} from './proto.ts';
export { decodeMessage, encodeMessage, registry } from './registry.ts';
export { mapIds, type IdKind } from './ids.ts';
export { enums, messages } from './schema/index.ts';
export type { EnumName, EnumValues, Message, MessageInput, MessageName } from './types.ts';
export {
  CRTOOLS_IMAGES_V1_1,
  IMAGE_KINDS,
  IMG_COMMON_MAGIC,
  IMG_SERVICE_MAGIC,
  MAGIC,
  RAW_IMAGE_MAGIC,
  IMG,
  entryMessage,
  imageFileName,
  imageKind,
  imageKindForFile,
  imageKindsForMagic,
  parseImageName,
  splitImageArgs,
} from './magic.ts';
export type { AddArgs, EntryKind, EntryOf, ExtraKind, HeadKind, ImageArgs, ImageKind, ImageKindId } from './magic.ts';
export {
  ImageDir,
  ImageError,
  ImageReader,
  ImageWriter,
  readImage,
  readMessages,
  readOne,
  isMessage,
  messageOf,
  writeImage,
  preloadImage,
  dropPreloaded,
  sealDir,
} from './image.ts';
export type { ImageEntry, ReadOptions, WriteOptions } from './image.ts';
export {
  DEFAULT_PAGE_SIZE,
  PE_LAZY,
  PE_PARENT,
  PE_PRESENT,
  PagemapReader,
  PagemapWriter,
  pagemapRunFlags,
  closing,
} from './pages.ts';
export type { PagemapOptions, PagemapRun, PagemapWriterOptions } from './pages.ts';
export {
  MANIFEST,
  PAGE_SERVER_MANIFEST,
  PAGE_SERVER_RUNS,
  ManifestBuilder,
  readManifest,
  authenticateManifest,
  verifyManifest,
  verifyListedFile,
  BackgroundVerify,
  keyId,
  type Manifest,
  type PagesEncoding,
} from './integrity.ts';
export { PagesWriterThread, PagesWriteStream } from './writer-thread.ts';
export { sealImage, openSealed, isSealed, SEAL_MAGIC } from './seal.ts';
export {
  openImage,
  openImageRead,
  createImage,
  readImageFile,
  writeImageFile,
  setImageOpener,
  checkDumpDir,
  checkRestoreDir,
  UntrustedDirError,
  type ImageOpener,
} from './open.ts';
export { PagesEncoder, PagesStream, pagesInfo, readKeyFile, PAGES_MAGIC, type PagesCodecOptions } from './pagecodec.ts';
export type { PagesTransform } from './pages.ts';
