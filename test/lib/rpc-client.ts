/**
 * pycriu driving criu-ts (or CRIU) over RPC: test/fixtures/rpc-client.py, which prints one
 * line of JSON per run.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { REPO_ROOT } from './workloads.ts';
import { SLOW } from './slow.ts';

export const PYTHON = '/usr/bin/python3';
const CLIENT = join(REPO_ROOT, 'test', 'fixtures', 'rpc-client.py');
const hasPycriu = spawnSync(PYTHON, ['-c', 'import pycriu'], { stdio: 'ignore' }).status === 0;
/** The e2e option that skips a test without pycriu. */
export const skip: string | false = hasPycriu ? false : 'pycriu is not installed (Debian package criu)';

// biome-ignore lint/suspicious/noExplicitAny: the Python client's JSON, read field by field by the assertions
export type Json = Record<string, any>;

/** Run rpc-client.py with `args`; a last object argument is added to its environment. */
export function client(...args: [...string[], string | Record<string, string>]): Json {
  const env = typeof args.at(-1) === 'object' ? (args.pop() as Record<string, string>) : {};
  const r = spawnSync(PYTHON, [CLIENT, ...(args as string[])], {
    encoding: 'utf8',
    timeout: 120_000 * SLOW,
    env: { ...process.env, ...env },
  });
  assert.equal(r.status, 0, `rpc-client ${args[0]}: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as Json;
}
