/**
 * The command line as CRIU's getopt reads it: short options cluster and take attached
 * values, and the log level follows CRIU's arithmetic (ZDTM's `-verbosity=0` is level 0).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { normalize } from '../../src/cli/argv.ts';

const LONG = new Set(['--log-file', '--images-dir', '--work-dir', '--tree', '--pidfile', '--feature']);
const n = (...a: string[]) => normalize(a, LONG);

test('-verbosity=0 is -v with the value "erbosity=0", which atoi reads as 0', () => {
  const r = n('check', '--no-default-config', '-verbosity=0', '--feature', 'timerfd');
  assert.equal(r.level, 0);
  assert.deepEqual(r.args, ['check', '--no-default-config', '--feature', 'timerfd']);
});

test('log levels: default 2, -v adds one, -vv two, -vN and --verbosity=N set, --verbosity adds one, clamped to 0..4', () => {
  const cases: [string[], number][] = [
    [[], 2],
    [['-v'], 3],
    [['-vv'], 4],
    [['-vvvv'], 4],
    [['-v0'], 0],
    [['-v1'], 1],
    [['-v4'], 4],
    [['-v9'], 4],
    [['--verbosity=4'], 4],
    [['--verbosity=0'], 0],
    [['--verbosity'], 3],
    [['-v', '-v'], 4],
    [['-v-3'], 0],
    [['-vfoo'], 0],
  ];
  for (const [args, level] of cases) assert.equal(n('dump', ...args).level, level, args.join(' '));
});

test('short options: clusters split, values attached or next, and -o/-D/-W noted for the log', () => {
  const r = n('restore', '-dj', '-D/tmp/img', '-o', 'r.log', '-W', 'w', '-t123', '-v4');
  assert.deepEqual(r.args, ['restore', '-d', '-j', '-D', '/tmp/img', '-o', 'r.log', '-W', 'w', '-t', '123']);
  assert.equal(r.level, 4);
  assert.deepEqual([r.imagesDir, r.logFile, r.workDir], ['/tmp/img', 'r.log', 'w']);
  // A value that looks like an option is still the value of an option that takes one.
  assert.deepEqual(n('dump', '-o', '-weird.log').args, ['dump', '-o', '-weird.log']);
  assert.equal(n('dump', '-o', '-weird.log').logFile, '-weird.log');
});

test('long options: --name=value and --name value, and what comes after -- is left alone', () => {
  const r = n('dump', '--log-file=d.log', '--images-dir', 'img', '--', '-v4');
  assert.deepEqual(r.args, ['dump', '--log-file=d.log', '--images-dir', 'img', '--', '-v4']);
  assert.deepEqual([r.logFile, r.imagesDir, r.level], ['d.log', 'img', 2]);
});
