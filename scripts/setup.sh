#!/usr/bin/env bash
# Installs what criu-ts and its tests need on a fresh Debian 12 machine (run as root):
# gcc for the test workloads, Debian's criu package for its `crit` and `pycriu`, runc and
# busybox-static and podman for the container tests, and the npm packages, which pin Node 24
# (node_modules/.bin/node).
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v gcc >/dev/null || need+=(gcc libc6-dev)
command -v crit >/dev/null || need+=(criu)
command -v python3 >/dev/null || need+=(python3)
command -v npm >/dev/null || need+=(npm)
command -v setsid >/dev/null || need+=(util-linux)
command -v script >/dev/null || need+=(bsdutils)
command -v runc >/dev/null || need+=(runc)
[ -x /bin/busybox ] || need+=(busybox-static)
# podman drives runc (and so criu-ts as `criu`) in the container test.
command -v podman >/dev/null || need+=(podman)
# sqlite3 for the file-lock test: a shell holding a write lock on its database.
command -v sqlite3 >/dev/null || need+=(sqlite3)
# nft (nftables): a network namespace's nftables rules, and the lock tests' checks;
# iptables/ip6tables: --network-lock iptables; ss and ip (iproute2) find sockets and addresses.
command -v nft >/dev/null || need+=(nftables)
command -v iptables >/dev/null || need+=(iptables)
command -v ss >/dev/null || need+=(iproute2)
# strace: the swrk test sees which programs answer a version probe.
command -v strace >/dev/null || need+=(strace)
# Real servers for the servers test: redis-server (with redis-cli) and nginx.
command -v redis-server >/dev/null || need+=(redis-server)
# The `nginx` package: Debian has no nginx-light after bookworm, and the lab runs sid.
[ -x /usr/sbin/nginx ] || need+=(nginx)
# A system Node for the "real node program" test: the pinned Node 24 uses io_uring, which
# criu-ts (like CRIU) cannot checkpoint.
[ -x /usr/bin/node ] || need+=(nodejs)
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

stamp=node_modules/.criu-ts-installed
if [ ! -x node_modules/.bin/node ] || [ ! -f "$stamp" ] || [ package-lock.json -nt "$stamp" ]; then
  echo "setup: npm ci" >&2
  npm ci --no-audit --no-fund --loglevel=error >&2
  touch "$stamp"
fi
node_modules/.bin/node --version >/dev/null
