// Builtins that cost start-up time and that most commands never touch, loaded on first use:
// importing node:crypto alone takes 11-15 ms here, out of a tiny dump's ~250 ms.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

export const nodeCrypto = (): typeof import('node:crypto') => require('node:crypto');
export const workerThreads = (): typeof import('node:worker_threads') => require('node:worker_threads');
