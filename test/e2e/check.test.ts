/**
 * `criu-ts check`: a report and exit 0 on this machine; --feature NAME exits 0
 * for a feature this kernel has and 1 for a name it does not know.
 */
import assert from 'node:assert/strict';
import { e2e, runCriu, assertCleanError, describeRun } from '../lib/proc.ts';

e2e('check prints a report and exits 0', () => {
  const r = runCriu(['check']);
  assert.equal(r.code, 0, describeRun(r));
  assert.ok((r.stdout + r.stderr).trim().length > 0, 'check printed nothing');
});

// loginuid and pagemap_scan_guard_pages: criu-ts restores both (claims.test.ts, mm-special.test.ts)
// and ZDTM skips loginuid and maps12 when they answer "not supported".
for (const feature of ['clone3_set_tid', 'get_rseq_conf', 'loginuid', 'pagemap_scan_guard_pages']) {
  e2e(`check --feature ${feature} exits 0 on this kernel`, () => {
    const r = runCriu(['check', '--feature', feature]);
    assert.equal(r.code, 0, describeRun(r));
  });
}

e2e('check --feature with an unknown name exits 1', () => {
  const line = assertCleanError(runCriu(['check', '--feature', 'no_such_feature_xyz']));
  assert.ok(line.includes('no_such_feature_xyz'), `the error names the feature: ${line}`);
});
