#!/usr/bin/env bash
# The whole test suite: typecheck, unit tests, then the end-to-end tests, which start real
# processes and checkpoint and restore them (root needed). Does its own setup.
#
# On an x86_64 host it then runs the same suite on AArch64 with GCS, inside the emulated lab
# (scripts/lab: built on first use, about 13 minutes, then cached in /var/cache/criu-ts-lab),
# and the GCS-less restore check, which needs a second boot. CRIU_TS_LAB=0 skips the lab.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
node=node_modules/.bin/node
echo "== typecheck"
node_modules/.bin/tsc -p tsconfig.json
echo "== tests ($(uname -m))"
unit=(test/unit/*.test.ts)
if [ -n "${LAB_WORKDIR:-}" ]; then
  # In the emulated lab the fuzz suites are left out: they are pure JavaScript, run natively
  # above, take minutes under emulation, and once hit a V8 fatal error there (in its JIT
  # write protection, ThreadIsolation::WriteProtectMemory).
  unit=($(printf '%s\n' "${unit[@]}" | grep -v '/fuzz-'))
fi
# e2e tests share the machine's PID space and timing: one file at a time.
if [ -z "${LAB_WORKDIR:-}" ]; then
  "$node" --test --test-concurrency=1 --test-reporter=spec "${unit[@]}" test/e2e/*.test.ts
else
  # Under emulation the pinned Node has twice died of a V8 fatal error ("Check failed:
  # it->second.Size() > offset" in ThreadIsolation::WriteProtectMemory) at random places.
  # Each file runs on its own, and a file whose Node died that way runs once more; any other
  # failure counts at once.
  out=$(mktemp)
  failed=()
  for f in "${unit[@]}" test/e2e/*.test.ts; do
    for attempt in 1 2; do
      if "$node" --test --test-reporter=spec "$f" 2>&1 | tee "$out"; then break; fi
      if [ "$attempt" = 1 ] && grep -q '^# Fatal error in' "$out"; then
        echo "== $f: V8 died (above); running the file again"
        continue
      fi
      failed+=("$f")
      break
    done
  done
  rm -f "$out"
  if [ ${#failed[@]} -gt 0 ]; then echo "== failed: ${failed[*]}"; exit 1; fi
fi
if [ "$(uname -m)" = x86_64 ] && [ "${CRIU_TS_LAB:-1}" != 0 ]; then
  echo "== tests (aarch64 with GCS, in the emulated lab)"
  scripts/lab/run.sh -t 4800 bash scripts/test.sh
  echo "== GCS dump restored without GCS (two lab boots)"
  scripts/lab/gcs-nogcs.sh
fi
