#!/usr/bin/env bash
# A GCS process dumped on the lab machine, then restored on the same machine booted without
# GCS (the kernel's arm64.nogcs override): the restore must fail with a clear error and leave
# nothing behind. Two boots, so it cannot be one test inside the guest; the two halves are the
# GCS_SAVE_TO and GCS_IMAGES tests of test/e2e/gcs.test.ts.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
dir=$repo/.cache/lab-gcs-nogcs
rm -rf "$dir"

run_one() { # NAME-PATTERN RUN.SH-ARGS...
  local pattern=$1 out
  shift
  out=$("$here/run.sh" "$@" node_modules/.bin/node --test --test-reporter=tap --test-name-pattern="$pattern" test/e2e/gcs.test.ts 2>&1) || { echo "$out"; return 1; }
  echo "$out" | grep -E '^(not )?ok |^# (pass|fail|skipped)' || true
  # Exactly the one test, run and passed, not skipped.
  echo "$out" | grep -qE "^ok [0-9]+ - .*${pattern}[^#]*$" || { echo "$out" | tail -40; echo "gcs-nogcs: '$pattern' did not run and pass" >&2; return 1; }
}

run_one 'first boot' -e GCS_SAVE_TO="$dir"
run_one 'without GCS fails' --kargs arm64.nogcs -e GCS_IMAGES="$dir"
grep -q . "$dir/gcs-pid"
rm -rf "$dir"
echo "gcs-nogcs: ok"
