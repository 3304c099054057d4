import assert from 'node:assert/strict';
import { test } from 'node:test';
import { closeRanges } from '../../src/resources/files/index.ts';

test('inherited fds: close_range spans around the kept ones, only where inherited fds sit', () => {
  const MAX = 0xffffffff;
  assert.deepEqual(closeRanges([], new Set()), [[0, MAX]], 'a stub from the helper: everything');
  assert.deepEqual(closeRanges([0, 1, 2], new Set([0, 1, 2])), [], 'all kept');
  assert.deepEqual(closeRanges([0, 1, 2, 5, 9], new Set([0, 1, 2])), [[3, MAX]]);
  assert.deepEqual(closeRanges([0, 1, 2, 5, 9], new Set([0, 2, 9])), [
    [1, 1],
    [3, 8],
  ]);
  assert.deepEqual(closeRanges([3, 4], new Set([0])), [[1, MAX]], 'kept fds need not be inherited');
  // A stub from the helper in a new PID namespace keeps the pidfd of criu-ts (and the courier)
  // it inherited, and nothing else of the helper's table.
  assert.deepEqual(
    closeRanges([7, 8], new Set([7, 8]), true),
    [
      [0, 6],
      [9, MAX],
    ],
    "a stub keeping criu-ts's pidfd and courier: every other fd",
  );
  assert.deepEqual(closeRanges([7, 8], new Set([7, 8])), [], 'not so when only the known fds are inherited');
});
