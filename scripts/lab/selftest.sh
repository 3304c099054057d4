#!/usr/bin/env bash
# Checks the lab from inside the guest: `scripts/lab/run.sh bash scripts/lab/selftest.sh`.
# Kernel and CPU with GCS, a GCS-marked C program under glibc's GCS tunable (an `ss` mapping in its
# smaps), and the project's arm64 Node with koffi.
set -u
cd "$(dirname "$0")/../.."
pass=0 fail=0
ok() { echo "ok: $*"; pass=$((pass + 1)); }
bad() { echo "FAILED: $*"; fail=$((fail + 1)); }

echo "== uname -a"
uname -a
echo "== versions"
ldd --version | head -1
gcc --version | head -1
python3 --version
command -v crit >/dev/null && echo "crit: $(command -v crit)"
echo "node in PATH: $(command -v node) $(node --version)  npm: $(npm --version)"
echo "node_modules/.bin/node: $(node_modules/.bin/node --version) $(node_modules/.bin/node -p 'process.platform + "-" + process.arch')"
grep -q '^CONFIG_ARM64_GCS=y' "/usr/lib/modules/$(uname -r)/config" 2>/dev/null && echo "CONFIG_ARM64_GCS=y"

echo "== GCS in /proc/cpuinfo"
n=$(grep -c '^Features.*\bgcs\b' /proc/cpuinfo)
grep -m1 '^Features' /proc/cpuinfo
[ "$n" -gt 0 ] && ok "gcs on $n CPU(s)" || bad "no gcs in /proc/cpuinfo"

t=$(mktemp -d)
cat >"$t/gcs.c" <<'EOF'
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/prctl.h>
#ifndef PR_GET_SHADOW_STACK_STATUS
#define PR_GET_SHADOW_STACK_STATUS 74
#endif
#ifndef HWCAP_GCS
#define HWCAP_GCS (1UL << 32)
#endif
int main(void) {
  unsigned long st = 0;
  int r = prctl(PR_GET_SHADOW_STACK_STATUS, &st, 0, 0, 0);
  printf("HWCAP_GCS=%d PR_GET_SHADOW_STACK_STATUS=%d status=%#lx\n",
         !!(getauxval(AT_HWCAP) & HWCAP_GCS), r, st);
  FILE *f = fopen("/proc/self/smaps", "r");
  char line[512], head[512] = "";
  int ss = 0;
  while (fgets(line, sizeof line, f)) {
    char *dash = strchr(line, '-'), *sp = strchr(line, ' ');
    if (isxdigit((unsigned char)line[0]) && dash && sp && dash < sp)
      strcpy(head, line);
    if (!strncmp(line, "VmFlags:", 8) && strstr(line, " ss")) {
      printf("smaps: %s       %s", head, line);
      ss++;
    }
  }
  printf("ss mappings: %d\n", ss);
  return ss > 0 ? 0 : 3;
}
EOF
echo "== gcc -mbranch-protection=standard"
if gcc -O1 -mbranch-protection=standard -o "$t/gcs" "$t/gcs.c"; then
  readelf -n "$t/gcs" | grep -i 'AArch64 feature' | sed 's/^ */  /'
  readelf -n "$t/gcs" | grep -q 'GCS' && ok "binary is GCS-marked" || bad "binary is not GCS-marked"
  echo "== without the tunable"
  "$t/gcs"; [ $? = 3 ] && ok "no ss mapping without the tunable" || bad "unexpected result without the tunable"
  echo "== GLIBC_TUNABLES=glibc.cpu.aarch64_gcs=1"
  GLIBC_TUNABLES=glibc.cpu.aarch64_gcs=1 "$t/gcs" && ok "GCS on, ss mapping in smaps" || bad "no ss mapping with the tunable"
else
  bad "gcc failed"
fi
rm -rf "$t"

echo "== koffi in node_modules/.bin/node"
out=$(node_modules/.bin/node -e "
const koffi = require('koffi');
const libc = koffi.load('libc.so.6');
const getpid = libc.func('int getpid()');
console.log('koffi', koffi.version, 'getpid() == process.pid:', getpid() === process.pid);
" 2>&1)
echo "$out"
case "$out" in *"getpid() == process.pid: true"*) ok "koffi works" ;; *) bad "koffi" ;; esac

echo "selftest: $pass passed, $fail failed"
[ "$fail" = 0 ]
