// Parsers for /proc files: pure functions over text/bytes, plus thin synchronous readers.
export * from './errors.ts';
export * from './maps.ts';
export * from './pagemap.ts';
export * from './status.ts';
export * from './stat.ts';
export * from './fdinfo.ts';
export * from './auxv.ts';
export * from './limits.ts';
export * from './mountinfo.ts';
export * from './timers.ts';
export * from './read.ts';
export * from './locks.ts';
