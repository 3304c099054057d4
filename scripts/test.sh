#!/usr/bin/env bash
# The whole test suite: typecheck, unit tests, then the end-to-end tests, which start real
# processes and checkpoint and restore them (root needed). Does its own setup.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
node=node_modules/.bin/node
echo "== typecheck"
node_modules/.bin/tsc -p tsconfig.json
echo "== tests"
# e2e tests share the machine's PID space and timing: one file at a time.
exec "$node" --test --test-concurrency=1 --test-reporter=spec test/unit/*.test.ts test/e2e/*.test.ts
