/*
 * seccompd: a sandboxed process (seccomp filters) that must still be sandboxed after restore.
 *
 *   seccompd [-s]
 *
 * Two threads; with no_new_privs set, two filters are installed with
 * SECCOMP_FILTER_FLAG_TSYNC, so both threads share them:
 *   1 (also SECCOMP_FILTER_FLAG_LOG)  getppid fails with EPERM
 *   2                                 getpgid fails with EACCES
 * Prints "ready pid=P worker=TID", then every 50 ms
 *   tick i=N main=E1,E2 worker=E1,E2
 * E1, E2: the errno of getppid and getpgid in that thread (0 when it was allowed).
 * -s: strict mode instead (SECCOMP_MODE_STRICT, main thread only): main then writes
 * "tick i=N" lines only, with write(2), and sleeps by spinning on the counter.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static volatile int w_e1 = -1, w_e2 = -1;
static volatile pid_t worker_tid;

static int err_of(long nr) {
  errno = 0;
  return syscall(nr, 0) < 0 ? errno : 0;
}

static void *worker(void *arg) {
  (void)arg;
  worker_tid = syscall(SYS_gettid);
  for (;;) {
    w_e1 = err_of(SYS_getppid);
    w_e2 = err_of(SYS_getpgid);
    usleep(20000);
  }
  return NULL;
}

static void deny(int nr, int err, unsigned flags) {
  struct sock_filter f[] = {
    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, nr, 0, 1),
    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | err),
    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  struct sock_fprog prog = { .len = sizeof f / sizeof f[0], .filter = f };
  if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &prog)) { perror("seccomp"); exit(1); }
}

int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (argc > 1 && !strcmp(argv[1], "-s")) {
    printf("ready pid=%d worker=0\n", getpid());
    if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_STRICT)) { perror("strict"); return 1; }
    char buf[32] = "tick i=";
    for (unsigned long i = 0;; i++) {
      int n = 7;
      unsigned long v = i, d = 1;
      while (v / d >= 10) d *= 10;
      for (; d; d /= 10) buf[n++] = '0' + (v / d) % 10;
      buf[n++] = '\n';
      write(1, buf, n);
      for (volatile unsigned long k = 0; k < 20000000; k++) {}
    }
  }
  pthread_t w;
  pthread_create(&w, NULL, worker, NULL);
  while (!worker_tid) usleep(1000);
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)) { perror("no_new_privs"); return 1; }
  deny(SYS_getppid, EPERM, SECCOMP_FILTER_FLAG_TSYNC | SECCOMP_FILTER_FLAG_LOG);
  deny(SYS_getpgid, EACCES, SECCOMP_FILTER_FLAG_TSYNC);
  while (w_e1 < 0 || w_e2 < 0) usleep(1000);
  printf("ready pid=%d worker=%d\n", getpid(), worker_tid);
  for (int i = 0;; i++) {
    printf("tick i=%d main=%d,%d worker=%d,%d\n", i, err_of(SYS_getppid), err_of(SYS_getpgid), w_e1, w_e2);
    usleep(50000);
  }
}
