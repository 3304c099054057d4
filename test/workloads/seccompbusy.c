/*
 * seccompbusy: a sandboxed process that calls what its filter forbids, without pause.
 *
 *   seccompbusy
 *
 * With no_new_privs, a filter makes getpgid fail with EACCES. Prints "ready", then calls
 * getpgid in a loop. Each time a call gets through the filter it prints "allowed i=N" (at
 * most once per stretch of allowed calls); a call failing otherwise prints "errno E i=N".
 * Every 2^22 calls it prints "tick i=N".
 */
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(void) {
  struct sock_filter code[] = {
    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_getpgid, 0, 1),
    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EACCES),
    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  struct sock_fprog prog = { sizeof code / sizeof code[0], code };
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog)) {
    perror("seccomp");
    return 1;
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
  printf("ready\n");
  int allowed = 0;
  for (unsigned long i = 1;; i++) {
    long r = syscall(SYS_getpgid, 0);
    if (r >= 0 && !allowed) printf("allowed i=%lu\n", i);
    else if (r < 0 && errno != EACCES) printf("errno %d i=%lu\n", errno, i);
    allowed = r >= 0;
    if (!(i & ((1UL << 22) - 1))) printf("tick i=%lu\n", i);
  }
}
