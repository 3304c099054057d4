#!/usr/bin/env bash
# Boots the emulated AArch64 lab (building it first if needed: see build.sh), runs a command in it as root
# from the checkout, streams its output (stdout and stderr together), powers off, and exits with the
# command's status (124: timed out, 125: the machine gave no status).
#
# Usage: scripts/lab/run.sh [options] [command [args...]]     (default: bash scripts/test.sh)
#   -t SEC         time limit for the whole run (default 3600)
#   -m MEM         guest memory (default 4G)      -s N   guest CPUs (default 2)
#   -e VAR=VALUE   set a variable for the command (repeatable; CI is passed on when set)
#   --cpu MODEL    QEMU CPU (default max,pauth-impdef=on: FEAT_GCS with a fast pointer-auth algorithm)
#   --kargs ARGS   extra kernel command line
#   --shell        interactive root shell on the serial console instead of a command
#   -v             also print the kernel's console log
#
# The guest sees the checkout read-write over 9p at the same path as on the host; its node_modules is
# the lab's arm64 image (/dev/vdb) bind-mounted over it, so the host's x64 node_modules is not touched.
# The root disk is a snapshot: every run starts from the built image and nothing of it is kept.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

timeout_s=3600 mem=4G smp=2 cpu=max,pauth-impdef=on kargs="" shell=0 verbose=0
envs=()
while [ $# -gt 0 ]; do
  case "$1" in
    -t) timeout_s=$2; shift 2 ;;
    -m) mem=$2; shift 2 ;;
    -s) smp=$2; shift 2 ;;
    -e) envs+=("$2"); shift 2 ;;
    --cpu) cpu=$2; shift 2 ;;
    --kargs) kargs=$2; shift 2 ;;
    --shell) shell=1; shift ;;
    -v) verbose=1; shift ;;
    --) shift; break ;;
    -*) lab_die "unknown option $1" ;;
    *) break ;;
  esac
done
[ $# -gt 0 ] || set -- bash scripts/test.sh
[ "$(id -u)" = 0 ] || lab_die "run.sh must run as root"

bash "$LAB_SRC/build.sh" >&2
W=$LAB_DIR
HS=$W/host-sid
[ -f "$W/.complete" ] && [ -f "$LAB_NM_IMG" ] || lab_die "the lab is not built"

ctl=$(mktemp -d /tmp/criu-ts-lab-run.XXXXXX)
cleanup() { rm -rf "$ctl"; }
trap cleanup EXIT
{
  printf 'export LAB_WORKDIR=%q\n' "$LAB_CHECKOUT"
  [ "$shell" = 1 ] && echo 'export LAB_SHELL=1'
  [ -n "${CI:-}" ] && printf 'export CI=%q\n' "$CI"
  # Emulation runs 10-30 times slower: the tests scale their waits by this.
  echo 'export CRIU_TS_SLOW=10'
  for e in ${envs[@]+"${envs[@]}"}; do printf 'export %s=%q\n' "${e%%=*}" "${e#*=}"; done
} >"$ctl/env"
{
  printf 'cd %q\n' "$LAB_CHECKOUT"
  printf '%q ' "$@"; echo
} >"$ctl/cmd"

lab=$(basename "$W") nm=$(basename "$LAB_NM_IMG")
# QEMU runs from host-sid, chrooted in a private mount namespace where the lab, the checkout and the
# control folder are bind-mounted; nothing is mounted in the host's namespace.
qemu_args=(
  -M virt -cpu "$cpu" -smp "$smp" -m "$mem" -no-reboot -display none -monitor none
  -kernel "/cache/$lab/vmlinuz" -initrd "/cache/$lab/initrd.img"
  -append "console=ttyAMA0 quiet panic=-1 guestinit=/usr/local/sbin/guest-init $kargs"
  -drive "file=/cache/$lab/rootfs.img,format=raw,if=none,id=root,snapshot=on,cache=unsafe"
  -device virtio-blk-pci,drive=root
  -drive "file=/cache/$nm,format=raw,if=none,id=nm,snapshot=on,cache=unsafe"
  -device virtio-blk-pci,drive=nm
  -fsdev "local,id=ctl,path=/ctl,security_model=passthrough"
  -device virtio-9p-pci,fsdev=ctl,mount_tag=ctl
  -fsdev "local,id=work,path=/work,security_model=passthrough"
  -device virtio-9p-pci,fsdev=work,mount_tag=work
  -device virtio-rng-pci
)
if [ "$shell" = 1 ]; then
  qemu_args+=(-serial stdio)
else
  qemu_args+=(-serial "file:/ctl/console.log"
    -chardev stdio,id=out,signal=off -device virtio-serial-pci -device virtconsole,chardev=out)
fi

t0=$(date +%s.%N)
rc=0
stdin=/dev/null
[ "$shell" = 1 ] && stdin=/dev/stdin
timeout -k 10 "$timeout_s" unshare -m --propagation private -- /bin/sh -ec '
  hs=$1 cache=$2 work=$3 ctl=$4; shift 4
  mount --rbind /dev "$hs/dev"
  mount -t proc proc "$hs/proc"
  mkdir -p "$hs/cache" "$hs/work" "$hs/ctl"
  mount --bind "$cache" "$hs/cache"
  mount --bind "$work" "$hs/work"
  mount --bind "$ctl" "$hs/ctl"
  exec chroot "$hs" /usr/bin/env -i PATH=/usr/bin:/bin TMPDIR=/var/tmp qemu-system-aarch64 "$@"' \
  sh "$HS" "$LAB_CACHE" "$LAB_CHECKOUT" "$ctl" "${qemu_args[@]}" <"$stdin" || rc=$?
t1=$(date +%s.%N)

if [ "$verbose" = 1 ] && [ -f "$ctl/console.log" ]; then
  echo "lab: ---- console log" >&2; cat "$ctl/console.log" >&2
fi
wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
if [ -f "$ctl/rc" ]; then
  rc=$(cat "$ctl/rc")
  started=$(cat "$ctl/started" 2>/dev/null || echo '?')
  ended=$(cat "$ctl/ended" 2>/dev/null || echo '?')
  lab_log "wall ${wall} s; boot ${started} s (guest uptime when the command started); command ended at ${ended} s; exit status $rc"
elif [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
  lab_log "timed out after $timeout_s s (wall ${wall} s)"
  rc=124
else
  lab_log "the machine gave no exit status (QEMU status $rc, wall ${wall} s); console log tail:"
  tail -30 "$ctl/console.log" >&2 2>/dev/null || true
  rc=125
fi
exit "$rc"
