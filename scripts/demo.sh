#!/usr/bin/env bash
# Demo: a counting program is checkpointed, disappears, is restored, and counts on.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec node_modules/.bin/node --disable-warning=ExperimentalWarning scripts/demo.ts
