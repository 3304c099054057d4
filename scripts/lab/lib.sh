# Shared settings of the emulated AArch64 lab (sourced by build.sh and run.sh).
# The lab lives outside the checkout, in $CRIU_TS_LAB_CACHE (default /var/cache/criu-ts-lab):
#   lab-<hash>/    the machine (QEMU chroot, kernel, initrd, root image), <hash> = the lab scripts' content
#   nm-<hash>.img  the guest's arm64 node_modules, <hash> = package.json + package-lock.json + lab scripts

LAB_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LAB_CHECKOUT=$(cd "$LAB_SRC/../.." && pwd)
LAB_CACHE=${CRIU_TS_LAB_CACHE:-/var/cache/criu-ts-lab}
LAB_MIRROR=${CRIU_TS_LAB_MIRROR:-http://deb.debian.org/debian}

lab_log() { printf 'lab: %s\n' "$*" >&2; }
lab_die() { printf 'lab: error: %s\n' "$*" >&2; exit 1; }

# The Debian packages scripts/setup.sh would apt-get install (its `need+=(...)` lines). The guest has no
# network, so its image has them all, except npm, which comes from the npm registry with Node 24.
lab_setup_packages() {
  grep -o 'need+=([^)]*)' "$LAB_CHECKOUT/scripts/setup.sh" 2>/dev/null | sed 's/^need+=(\(.*\))$/\1/' |
    tr ' ' '\n' | grep -v -x -e '' -e npm | sort -u | tr '\n' ' ' || true
}

# Content hash of what the machine is built from: build.sh, lib.sh, guest/ and the list above.
# run.sh, selftest.sh and README.md are not part of it.
lab_hash() {
  { (cd "$LAB_SRC" && sha256sum build.sh lib.sh guest/*); lab_setup_packages; } | sha256sum | cut -c1-16
}
LAB_DIR=$LAB_CACHE/lab-$(lab_hash)

# Hash of what the guest's node_modules is built from.
lab_nm_hash() {
  { cat "$LAB_CHECKOUT/package.json" "$LAB_CHECKOUT/package-lock.json"; lab_hash; } | sha256sum | cut -c1-16
}
LAB_NM_IMG=$LAB_CACHE/nm-$(lab_nm_hash).img
