// taskprops FILE: a process and its child in state that criu-ts saves and restores, each of
// which checks that state itself. The parent: oom_score_adj 123, child subreaper,
// SCHED_BATCH with nice 3, a thread in SCHED_RR priority 5 with SCHED_RESET_ON_FORK, two
// open file descriptions of one pipe's read end (only the second O_NONBLOCK), a pipe write
// end O_NONBLOCK, FILE opened O_APPEND, and a pipe whose read end is owned by the process
// (F_SETOWN_EX), signals SIGUSR1 (F_SETSIG) and is O_ASYNC; its main thread runs on CPU 0
// only (the other thread on every CPU); a memfd has mode 0640; SIGTRAP has a handler (which
// the kernel resets when a trap hits a thread that blocks SIGTRAP); its audit login uid is 4242. The child: parent-death signal
// SIGPWR and SCHED_IDLE. Both print "ready" and count ("i=N", every 50 ms); on SIGUSR2 each
// prints "check NAME ok" or "check NAME BAD: ..." for each item, then "checked".
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#ifndef SCHED_RESET_ON_FORK
#define SCHED_RESET_ON_FORK 0x40000000
#endif

static volatile sig_atomic_t want_check, sigio_hits;
static int p[2], p2, q[2], fa, mfd;
static pid_t rr_tid;

static void on_usr2(int s) { (void)s; want_check = 1; }
static void on_io(int s, siginfo_t *si, void *uc) { (void)s; (void)uc; if (si->si_fd == q[0]) sigio_hits++; }
static void on_pwr(int s) { (void)s; }
static void on_trap(int s) { (void)s; }

static void die(const char *what) { perror(what); exit(2); }

static void check(const char *name, int ok, const char *fmt, long a, long b) {
  if (ok) { printf("check %s ok\n", name); return; }
  printf("check %s BAD: ", name);
  printf(fmt, a, b);
  printf("\n");
}

static void *rr_thread(void *arg) {
  (void)arg;
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, NULL);
  rr_tid = syscall(SYS_gettid);
  struct sched_param sp = { .sched_priority = 5 };
  if (sched_setscheduler(0, SCHED_RR | SCHED_RESET_ON_FORK, &sp)) die("sched_setscheduler RR");
  for (;;) pause();
  return NULL;
}

static void check_parent(void) {
  FILE *f = fopen("/proc/self/oom_score_adj", "r");
  int adj = -1;
  if (!f || fscanf(f, "%d", &adj) != 1) adj = -1;
  if (f) fclose(f);
  check("oom_score_adj", adj == 123, "%ld, want %ld", adj, 123);
  f = fopen("/proc/self/loginuid", "r");
  long luid = -1;
  if (!f || fscanf(f, "%ld", &luid) != 1) luid = -1;
  if (f) fclose(f);
  check("loginuid", luid == 4242, "%ld, want %ld", luid, 4242);
  int sub = -1;
  prctl(PR_GET_CHILD_SUBREAPER, &sub, 0, 0, 0);
  check("child_subreaper", sub == 1, "%ld, want %ld", sub, 1);
  int pol = sched_getscheduler(0), nice = getpriority(PRIO_PROCESS, 0);
  check("sched_policy", pol == SCHED_BATCH, "%ld, want %ld", pol, SCHED_BATCH);
  check("nice", nice == 3, "%ld, want %ld", nice, 3);
  struct sched_param sp = { 0 };
  int rpol = sched_getscheduler(rr_tid);
  sched_getparam(rr_tid, &sp);
  check("thread_sched_policy", rpol == (SCHED_RR | SCHED_RESET_ON_FORK), "%#lx, want %#lx", rpol, SCHED_RR | SCHED_RESET_ON_FORK);
  check("thread_sched_prio", sp.sched_priority == 5, "%ld, want %ld", sp.sched_priority, 5);
  cpu_set_t cpus;
  CPU_ZERO(&cpus);
  sched_getaffinity(0, sizeof cpus, &cpus);
  check("affinity", CPU_COUNT(&cpus) == 1 && CPU_ISSET(0, &cpus), "%ld CPUs, CPU 0 %ld", CPU_COUNT(&cpus), CPU_ISSET(0, &cpus));
  int f0 = fcntl(p[0], F_GETFL), f2 = fcntl(p2, F_GETFL), f1 = fcntl(p[1], F_GETFL);
  check("pipe_first_blocking", !(f0 & O_NONBLOCK), "flags %#lo%.0ld", f0, 0);
  check("pipe_second_nonblock", (f2 & O_NONBLOCK) != 0, "flags %#lo%.0ld", f2, 0);
  check("pipe_write_nonblock", (f1 & O_NONBLOCK) != 0, "flags %#lo%.0ld", f1, 0);
  int ff = fcntl(fa, F_GETFL);
  check("file_append", (ff & O_APPEND) != 0, "flags %#lo%.0ld", ff, 0);
  struct stat st = { 0 };
  fstat(mfd, &st);
  struct sigaction tr;
  sigaction(SIGTRAP, NULL, &tr);
  check("sigtrap_handler", tr.sa_handler == on_trap, "%#lx%.0ld", (long)tr.sa_handler, 0);
  check("memfd_mode", (st.st_mode & 07777) == 0640, "%#lo, want %#lo", st.st_mode & 07777, 0640);
  struct f_owner_ex own = { 0 };
  fcntl(q[0], F_GETOWN_EX, &own);
  check("owner", own.type == F_OWNER_PID && own.pid == getpid(), "type %ld pid %ld", own.type, own.pid);
  int sig = fcntl(q[0], F_GETSIG), qf = fcntl(q[0], F_GETFL);
  check("owner_signal", sig == SIGUSR1, "%ld, want %ld", sig, SIGUSR1);
  check("owner_async", (qf & O_ASYNC) != 0, "flags %#lo%.0ld", qf, 0);
  // The owner is sent SIGUSR1 when data arrives.
  int before = sigio_hits;
  char c = 'x';
  if (write(q[1], &c, 1) != 1 || read(q[0], &c, 1) != 1) die("q");
  for (int i = 0; i < 100 && sigio_hits == before; i++) usleep(10000);
  check("owner_delivery", sigio_hits > before, "%ld signals%.0ld", sigio_hits - before, 0);
}

static void check_child(void) {
  int sig = -1;
  prctl(PR_GET_PDEATHSIG, &sig, 0, 0, 0);
  check("pdeath_sig", sig == SIGPWR, "%ld, want %ld", sig, SIGPWR);
  int pol = sched_getscheduler(0);
  check("child_sched_policy", pol == SCHED_IDLE, "%ld, want %ld", pol, SCHED_IDLE);
}

static void loop(void (*checker)(void)) {
  printf("ready pid=%d\n", getpid());
  for (long i = 1;; i++) {
    struct timespec d = { 0, 50000000 };
    while (nanosleep(&d, &d)) {}
    if (want_check) {
      want_check = 0;
      checker();
      printf("checked pid=%d\n", getpid());
    }
    printf("i=%ld\n", i);
  }
}

int main(int argc, char **argv) {
  if (argc < 2) { fprintf(stderr, "usage: taskprops FILE\n"); return 2; }
  setvbuf(stdout, NULL, _IOLBF, 0);
  signal(SIGUSR2, on_usr2);
  signal(SIGPWR, on_pwr);
  struct sched_param zero = { 0 };
  pid_t child = fork();
  if (child < 0) die("fork");
  if (child == 0) {
    if (prctl(PR_SET_PDEATHSIG, SIGPWR, 0, 0, 0)) die("pdeathsig");
    if (sched_setscheduler(0, SCHED_IDLE, &zero)) die("sched_setscheduler IDLE");
    loop(check_child);
  }
  FILE *f = fopen("/proc/self/oom_score_adj", "w");
  if (!f || fprintf(f, "123\n") < 0 || fclose(f)) die("oom_score_adj");
  f = fopen("/proc/self/loginuid", "w");
  if (!f || fprintf(f, "4242") < 0 || fclose(f)) die("loginuid");
  if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)) die("subreaper");
  if (sched_setscheduler(0, SCHED_BATCH, &zero) || setpriority(PRIO_PROCESS, 0, 3)) die("batch");
  pthread_t th;
  if (pthread_create(&th, NULL, rr_thread, NULL)) die("pthread_create");
  while (!rr_tid) usleep(1000);
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(0, &one);
  if (sched_setaffinity(0, sizeof one, &one)) die("sched_setaffinity");
  if (pipe(p)) die("pipe");
  char path[64];
  snprintf(path, sizeof path, "/proc/self/fd/%d", p[0]);
  if ((p2 = open(path, O_RDONLY | O_NONBLOCK)) < 0) die("reopen pipe");
  if (fcntl(p[1], F_SETFL, O_NONBLOCK)) die("setfl");
  if ((fa = open(argv[1], O_WRONLY | O_CREAT | O_APPEND, 0600)) < 0) die("open append");
  if ((mfd = memfd_create("props", 0)) < 0 || fchmod(mfd, 0640)) die("memfd");
  signal(SIGTRAP, on_trap);
  struct sigaction sa = { .sa_sigaction = on_io, .sa_flags = SA_SIGINFO | SA_RESTART };
  sigaction(SIGUSR1, &sa, NULL);
  if (pipe(q)) die("pipe q");
  struct f_owner_ex own = { .type = F_OWNER_PID, .pid = getpid() };
  if (fcntl(q[0], F_SETOWN_EX, &own) || fcntl(q[0], F_SETSIG, SIGUSR1) || fcntl(q[0], F_SETFL, O_ASYNC)) die("owner");
  loop(check_parent);
}
