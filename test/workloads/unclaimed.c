// unclaimed MODE FILE: put itself into one kind of state criu-ts does not save, print
// "ready", then count once every 50 ms ("i=N") until killed. MODE:
//   timer      a POSIX timer (timer_create) on the CPU clock of its parent, outside the tree
//   seccomp    a seccomp filter that allows everything
//   flock      flock(LOCK_EX) on FILE
//   posixlock  an fcntl(F_SETLK) write lock on FILE
//   ofdlock    an open-file-description lock (F_OFD_SETLK) on FILE
//   lease      a read lease (F_SETLEASE) on FILE being broken: a child waits to open it for writing
//   mlockonfault a page locked on fault (mlock2 MLOCK_ONFAULT)
//   pipedirect a packet-mode pipe (pipe2(O_DIRECT))
//   timens     children would be born in a new time namespace (unshare(CLONE_NEWTIME))
//   slack      a timer slack of 1 ms (PR_SET_TIMERSLACK)
//   sigtrap    a SIGTRAP sent to itself, blocked and pending
//   trapign    SIGTRAP ignored (SIG_IGN)
//   mempolicy  its memory bound to node 0 (set_mempolicy(MPOL_BIND))
//   tsc        rdtsc faults (PR_SET_TSC, PR_TSC_SIGSEGV)
//   mdwe       memory-deny-write-execute (PR_SET_MDWE)
//   mbind      a mapping whose NUMA policy is MPOL_PREFERRED node 0 (mbind)
//   mbindall   every mapping with that policy of its own, the task's the default
//   vfork      a vfork child in flight: the child counts while its parent waits (dies with it)
//   autogroup  the nice value of its session's autogroup set to 5 (it must lead its session)
//   ioflusher  PR_SET_IO_FLUSHER (needs CAP_SYS_RESOURCE)
//   zombieleader a child whose main thread exited (pthread_exit) while another thread runs
//   traced     a child it traces (PTRACE_SEIZE)
//   ldt        an LDT entry (modify_ldt), x86_64
//   epollbusy  an epoll with busy polling set (EPIOCSPARAMS)
//   slice      a time slice of 3 ms (sched_setattr's sched_runtime)
//   sud        syscall user dispatch on (PR_SET_SYSCALL_USER_DISPATCH), its selector allowing
//   keyring    a key in its process keyring
//   sessionkeyring a session keyring of its own (KEYCTL_JOIN_SESSION_KEYRING) holding a key
//   emptysession a session keyring of its own, empty (the dump goes through)
//   threadkeyring a second thread with a key in its thread keyring
//   amx        permission for AMX tile data (arch_prctl ARCH_REQ_XCOMP_PERM)
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/mount.h>
#include <mqueue.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t ticks;
static void on_alarm(int s) { (void)s; ticks++; }

static void die(const char *what) { perror(what); exit(2); }

static volatile char sud_selector; /* SYSCALL_DISPATCH_FILTER_ALLOW */
static volatile int thread_ready;

static void *orphaned_thread(void *a) {
  (void)a;
  prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
  for (;;) pause();
  return NULL;
}

static void *keyring_thread(void *a) {
  (void)a;
  if (syscall(SYS_add_key, "user", "criu-ts-unclaimed", "v", 1, -1 /* KEY_SPEC_THREAD_KEYRING */) < 0) die("add_key");
  thread_ready = 1;
  for (;;) pause();
  return NULL;
}

static int open_file(const char *path) {
  int fd = open(path, O_RDWR | O_CREAT, 0600);
  if (fd < 0) die("open");
  return fd;
}

static void lock(int fd, int cmd) {
  struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0 };
  if (fcntl(fd, cmd, &fl)) die("fcntl lock");
}

int main(int argc, char **argv) {
  if (argc < 2) { fprintf(stderr, "usage: unclaimed MODE [FILE]\n"); return 2; }
  const char *mode = argv[1], *file = argc > 2 ? argv[2] : "/tmp/unclaimed.lock";
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (!strcmp(mode, "timer")) {
    signal(SIGALRM, on_alarm);
    timer_t t;
    struct sigevent ev = { .sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGALRM };
    clockid_t clk;
    if (clock_getcpuclockid(getppid(), &clk)) die("clock_getcpuclockid");
    if (timer_create(clk, &ev, &t)) die("timer_create");
    struct itimerspec its = { .it_interval = { 0, 20000000 }, .it_value = { 0, 20000000 } };
    if (timer_settime(t, 0, &its, NULL)) die("timer_settime");
  } else if (!strcmp(mode, "seccomp")) {
    struct sock_filter allow[] = { BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW) };
    struct sock_fprog prog = { .len = 1, .filter = allow };
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)) die("no_new_privs");
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog)) die("seccomp");
  } else if (!strcmp(mode, "flock")) {
    if (flock(open_file(file), LOCK_EX)) die("flock");
  } else if (!strcmp(mode, "mappedflock")) {
    /* The lock stays with the open file description, which the mapping keeps once the fd is closed. */
    int fd = open_file(file);
    if (ftruncate(fd, 4096) || flock(fd, LOCK_EX)) die("flock");
    if (mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0) == MAP_FAILED) die("mmap");
    close(fd);
  } else if (!strcmp(mode, "ioprio")) {
    if (syscall(SYS_ioprio_set, 1 /* IOPRIO_WHO_PROCESS */, 0, 3 << 13 /* IOPRIO_CLASS_IDLE */)) die("ioprio_set");
  } else if (!strcmp(mode, "detachedmount")) {
    if (syscall(SYS_open_tree, AT_FDCWD, "/tmp", OPEN_TREE_CLONE | O_CLOEXEC) < 0) die("open_tree");
  } else if (!strcmp(mode, "mqueue")) {
    struct mq_attr a = { .mq_maxmsg = 4, .mq_msgsize = 64 };
    mqd_t q = mq_open("/criu-ts-unclaimed", O_CREAT | O_RDWR, 0600, &a);
    if (q < 0 || mq_unlink("/criu-ts-unclaimed")) die("mq_open");
  } else if (!strcmp(mode, "posixlock")) {
    lock(open_file(file), F_SETLK);
  } else if (!strcmp(mode, "ofdlock")) {
    lock(open_file(file), F_OFD_SETLK);
  } else if (!strcmp(mode, "lease")) {
    close(open_file(file));
    int fd = open(file, O_RDONLY);
    if (fd < 0 || fcntl(fd, F_SETLEASE, F_RDLCK)) die("F_SETLEASE");
    signal(SIGIO, SIG_IGN);
    if (fork() == 0) { open(file, O_WRONLY); _exit(0); }
    for (int i = 0; i < 500; i++) {
      char path[64], buf[4096] = "";
      snprintf(path, sizeof path, "/proc/self/fdinfo/%d", fd);
      FILE *f = fopen(path, "r");
      size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
      if (f) fclose(f);
      buf[n] = 0;
      if (strstr(buf, "BREAKING")) break;
      usleep(10000);
    }
  } else if (!strcmp(mode, "mlockonfault")) {
    static char page[4096] __attribute__((aligned(4096)));
    if (syscall(SYS_mlock2, page, sizeof page, 1 /* MLOCK_ONFAULT */)) die("mlock2");
  } else if (!strcmp(mode, "pipedirect")) {
    int p[2];
    if (pipe2(p, O_DIRECT)) die("pipe2");
  } else if (!strcmp(mode, "timens")) {
    if (unshare(CLONE_NEWTIME)) die("unshare");
  } else if (!strcmp(mode, "slack")) {
    if (prctl(PR_SET_TIMERSLACK, 1000000, 0, 0, 0)) die("timerslack");
  } else if (!strcmp(mode, "sigtrap")) {
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGTRAP);
    sigprocmask(SIG_BLOCK, &s, NULL);
    kill(getpid(), SIGTRAP);
  } else if (!strcmp(mode, "trapign")) {
    signal(SIGTRAP, SIG_IGN);
  } else if (!strcmp(mode, "mempolicy")) {
    unsigned long node0 = 1;
    if (syscall(SYS_set_mempolicy, 2 /* MPOL_BIND */, &node0, 8 * sizeof node0)) die("set_mempolicy");
  } else if (!strcmp(mode, "tsc")) {
    if (prctl(PR_SET_TSC, PR_TSC_SIGSEGV, 0, 0, 0)) die("PR_SET_TSC");
  } else if (!strcmp(mode, "mdwe")) {
    if (prctl(65 /* PR_SET_MDWE */, 1 /* PR_MDWE_REFUSE_EXEC_GAIN */, 0, 0, 0)) die("PR_SET_MDWE");
  } else if (!strcmp(mode, "mbind")) {
    unsigned long node0 = 1;
    char *m = mmap(NULL, 65536, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED || syscall(SYS_mbind, m, 65536, 1 /* MPOL_PREFERRED */, &node0, 8 * sizeof node0, 0)) die("mbind");
  } else if (!strcmp(mode, "mbindall")) {
    /* Every mapping's own policy, the task's left the default: numa_maps shows it everywhere. */
    unsigned long node0 = 1, from, to;
    FILE *maps = fopen("/proc/self/maps", "r");
    if (!maps) die("maps");
    char line[512];
    while (fgets(line, sizeof line, maps))
      if (sscanf(line, "%lx-%lx", &from, &to) == 2)
        syscall(SYS_mbind, from, to - from, 1 /* MPOL_PREFERRED */, &node0, 8 * sizeof node0, 0);
    fclose(maps);
  } else if (!strcmp(mode, "vfork")) {
    /* The child goes on below with the parent's memory and stack, which the parent never uses again. */
    if (vfork() == 0) prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    else _exit(0);
  } else if (!strcmp(mode, "autogroup")) {
    /* Only in a session of its own: the autogroup is the session's, shared with whoever made it. */
    int f = getsid(0) == getpid() ? open("/proc/self/autogroup", O_WRONLY) : -1;
    if (f < 0 || write(f, "5", 1) != 1) die("autogroup");
  } else if (!strcmp(mode, "ioflusher")) {
    if (prctl(57 /* PR_SET_IO_FLUSHER */, 1, 0, 0, 0)) die("PR_SET_IO_FLUSHER");
  } else if (!strcmp(mode, "zombieleader")) {
    pid_t c = fork();
    if (c == 0) {
      pthread_t th;
      if (pthread_create(&th, NULL, orphaned_thread, NULL)) die("pthread_create");
      pthread_exit(NULL);
    }
    for (int i = 0; i < 500; i++) { /* until its main thread is gone */
      char st[64];
      snprintf(st, sizeof st, "/proc/%d/stat", c);
      FILE *s = fopen(st, "r");
      char buf[256] = "";
      if (s) { if (!fgets(buf, sizeof buf, s)) buf[0] = 0; fclose(s); }
      char *z = strrchr(buf, ')');
      if (z && z[2] == 'Z') break;
      usleep(10000);
    }
  } else if (!strcmp(mode, "traced")) {
    pid_t c = fork();
    if (c == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
      for (;;) pause();
    }
    if (ptrace(PTRACE_SEIZE, c, 0, 0)) die("PTRACE_SEIZE");
  } else if (!strcmp(mode, "ldt")) {
#ifdef __x86_64__
    struct { unsigned int entry, base, limit, flags; } d = { 0, 0x1000, 0xfff, 1 /* seg_32bit */ | 1 << 6 /* useable */ };
    if (syscall(SYS_modify_ldt, 1, &d, sizeof d)) die("modify_ldt");
#else
    die("ldt is x86_64 only");
#endif
  } else if (!strcmp(mode, "epollbusy")) {
    struct { uint32_t usecs; uint16_t budget; uint8_t prefer, pad; } ep = { 50, 8, 1, 0 };
    int e = epoll_create1(0);
    if (e < 0 || ioctl(e, 0x40088a01 /* EPIOCSPARAMS */, &ep)) die("EPIOCSPARAMS");
  } else if (!strcmp(mode, "slice")) {
    struct { uint32_t size, policy; uint64_t flags; int32_t nice; uint32_t prio; uint64_t runtime, deadline, period; } at = {
      .size = sizeof at, .policy = SCHED_OTHER, .runtime = 3000000 };
    if (syscall(SYS_sched_setattr, 0, &at, 0)) die("sched_setattr");
  } else if (!strcmp(mode, "sud")) {
    if (prctl(59 /* PR_SET_SYSCALL_USER_DISPATCH */, 1 /* PR_SYS_DISPATCH_ON */, 0, 0, &sud_selector)) die("PR_SET_SYSCALL_USER_DISPATCH");
  } else if (!strcmp(mode, "keyring")) {
    if (syscall(SYS_add_key, "user", "criu-ts-unclaimed", "v", 1, -2 /* KEY_SPEC_PROCESS_KEYRING */) < 0) die("add_key");
  } else if (!strcmp(mode, "sessionkeyring") || !strcmp(mode, "emptysession")) {
    if (syscall(SYS_keyctl, 1 /* KEYCTL_JOIN_SESSION_KEYRING */, NULL) < 0) die("join session keyring");
    if (!strcmp(mode, "sessionkeyring") && syscall(SYS_add_key, "user", "criu-ts-unclaimed", "v", 1, -3 /* KEY_SPEC_SESSION_KEYRING */) < 0)
      die("add_key");
  } else if (!strcmp(mode, "threadkeyring")) {
    pthread_t th;
    if (pthread_create(&th, NULL, keyring_thread, NULL)) die("pthread_create");
    while (!thread_ready) usleep(1000);
  } else if (!strcmp(mode, "amx")) {
    if (syscall(SYS_arch_prctl, 0x1023 /* ARCH_REQ_XCOMP_PERM */, 18 /* XFEATURE_XTILEDATA */)) die("ARCH_REQ_XCOMP_PERM");
  } else {
    fprintf(stderr, "unknown mode %s\n", mode);
    return 2;
  }
  printf("ready pid=%d\n", getpid());
  struct timespec d = { 0, 50000000 };
  for (long i = 1;; i++) {
    // A timer signal cuts the sleep short: sleep the rest.
    struct timespec left = d;
    while (nanosleep(&left, &left)) {}
    printf("i=%ld\n", i);
  }
}
