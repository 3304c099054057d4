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
if [ -z "${LAB_WORKDIR:-}" ]; then
  echo "== format and lint (biome)"
  node_modules/.bin/biome ci --colors=off --reporter=summary .
fi
echo "== tests ($(uname -m))"
unit=(test/unit/*.test.ts)
e2e=(test/e2e/*.test.ts)
if [ -n "${LAB_WORKDIR:-}" ]; then
  # The emulated lab runs what depends on the architecture (registers, signal frames, TLS,
  # syscall tables, auxv, GCS, clone3, vDSO) and images exchanged with the guest's CRIU 4.2;
  # the x86_64 run covers everything else (parsers, crit, integrity, encryption, the CLI,
  # error paths), and every criu-ts start costs seconds under emulation.
  lab_files='arch-sysnr|foundation|threads|gcs|heal|signals|interop|tree|sharing|check|programs'
  unit=($(printf '%s\n' "${unit[@]}" | grep -E "/($lab_files)\.test\.ts$" || true))
  e2e=($(printf '%s\n' "${e2e[@]}" | grep -E "/($lab_files)\.test\.ts$"))
  # The guest's Debian sid has CRIU 4.2, which works on its kernel: images are exchanged
  # with it both ways (test/e2e/interop.test.ts).
  if [ -z "${CRIU_REF:-}" ] && [ -x /usr/sbin/criu ] && /usr/sbin/criu --version | grep -q '^Version: 4\.'; then
    export CRIU_REF=/usr/sbin/criu
  fi
fi
# e2e tests share the machine's PID space and timing: one file at a time.
if [ -z "${LAB_WORKDIR:-}" ]; then
  "$node" --test --test-concurrency=1 --test-reporter=spec "${unit[@]}" "${e2e[@]}"
else
  # Under emulation the pinned Node dies now and then of a V8 fatal error ("Check failed:
  # it->second.Size() > offset" in ThreadIsolation::WriteProtectMemory), at random: the test
  # runner itself, or a criu-ts command a test runs (its report then quotes V8's message).
  # Each file runs on its own, and a file whose Node died that way runs again, up to three
  # times; any other failure counts at once. (With NODE_OPTIONS=--jitless, which has no
  # JIT pages to protect, the e2e files failed outright: tried, not pursued.)
  out=$(mktemp)
  failed=()
  for f in "${unit[@]}" "${e2e[@]}"; do
    for attempt in 1 2 3; do
      if "$node" --test --test-reporter=spec "$f" 2>&1 | tee "$out"; then break; fi
      # Node under QEMU sometimes dies of V8's fatal error, or of a signal before any
      # test reports (the file itself then fails, with no test inside it failing).
      if [ "$attempt" != 3 ] && { grep -q '# Fatal error in' "$out" || grep -q "^✖ $f (" "$out"; }; then
        echo "== $f: Node died (above); running the file again"
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
