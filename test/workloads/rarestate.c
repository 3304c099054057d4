/*
 * rarestate: one piece of state rarely put into a process, checked from inside after restore
 * (checkloop.h: "tick n=N", SIGUSR1 -> "CHECK ok" or "CHECK fail: WHY").
 *
 *   rarestate -m MODE [-f PATH]
 *
 * Modes:
 *   pipesz     a pipe of 1 MiB (F_SETPIPE_SZ)
 *   mbind      an anonymous mapping whose NUMA policy is MPOL_PREFERRED node 0 (mbind)
 *   dnotify    (-f DIR) DIR watched with F_NOTIFY (DN_CREATE|DN_MULTISHOT, signal SIGRTMIN+1):
 *              a file made in it must still signal
 *   ioflusher  PR_SET_IO_FLUSHER
 *   dumpable   PR_SET_DUMPABLE 0
 *   keepcaps   PR_SET_KEEPCAPS 1
 *   secbits    securebits SECBIT_NOROOT
 *   thpdisable PR_SET_THP_DISABLE
 *   autodisarm a sigaltstack with SS_AUTODISARM
 *   efdsem     an eventfd in semaphore mode holding 3
 *   futurewrite a memfd sealed with F_SEAL_FUTURE_WRITE
 *   abstime    a CLOCK_REALTIME timerfd armed with TFD_TIMER_ABSTIME|TFD_TIMER_CANCEL_ON_SET
 *   madvfork   mappings with MADV_DONTFORK and MADV_WIPEONFORK
 *   slice      a custom time slice of 3 ms (sched_setattr's sched_runtime for SCHED_OTHER)
 *   sud        syscall user dispatch (PR_SET_SYSCALL_USER_DISPATCH) on, its selector allowing:
 *              a syscall with the selector set to block must raise SIGSYS
 *   keyring    a key in the process keyring (add_key KEY_SPEC_PROCESS_KEYRING)
 *   amx        permission for AMX tile data (arch_prctl ARCH_REQ_XCOMP_PERM)
 *   join       a thread waiting to exit: pthread_join must see it go (clear_child_tid)
 *   robust     a thread holding a robust mutex dies on SIGUSR1: the lock must say EOWNERDEAD
 *   zombieleader the main thread gone (pthread_exit), another thread checks
 *   autogroup  its autogroup's nice value set to 5 (/proc/self/autogroup)
 *   exefile    its /proc/self/exe changed to /bin/true (PR_SET_MM_EXE_FILE)
 *   vfork      a vfork child in flight (its parent waiting): the child checks that it still
 *              shares its parent's memory
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
#include "checkloop.h"

#ifndef PR_SET_IO_FLUSHER
#define PR_SET_IO_FLUSHER 57
#define PR_GET_IO_FLUSHER 58
#endif
#ifndef PR_SET_SYSCALL_USER_DISPATCH
#define PR_SET_SYSCALL_USER_DISPATCH 59
#endif
#define PR_SYS_DISPATCH_ON 1
#define SYSCALL_DISPATCH_FILTER_ALLOW 0
#define SYSCALL_DISPATCH_FILTER_BLOCK 1
#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010
#endif
#ifndef SS_AUTODISARM
#define SS_AUTODISARM (1U << 31)
#endif
#define SECBIT_NOROOT 1
#define MPOL_PREFERRED 1
#define MPOL_F_ADDR 2
#define ARCH_GET_XCOMP_PERM 0x1022
#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA 18

static const char *mode, *path;
static int fd1;
static char *map1, *map2;
static volatile int counter;
static volatile char selector = SYSCALL_DISPATCH_FILTER_ALLOW;
static volatile sig_atomic_t hits;
static pthread_t th;
static pthread_mutex_t robust_mx;
static volatile int go;
static pid_t vfork_parent;
static volatile long shared_word;
static char why[200];

static void die(const char *what) { perror(what); exit(2); }
static void on_hit(int s) { (void)s; hits++; }
static void on_sigsys(int s) { (void)s; selector = SYSCALL_DISPATCH_FILTER_ALLOW; hits++; }

static const char *fail(const char *fmt, long a, long b)
{
	snprintf(why, sizeof(why), fmt, a, b);
	return why;
}

static long prctl_get(int op)
{
	return prctl(op, 0, 0, 0, 0);
}

struct sched_attr_ {
	uint32_t size, policy;
	uint64_t flags;
	int32_t nice;
	uint32_t prio;
	uint64_t runtime, deadline, period;
};

static void *waiter(void *a)
{
	(void)a;
	while (!go) usleep(10000);
	return NULL;
}

static void *robust_holder(void *a)
{
	(void)a;
	if (pthread_mutex_lock(&robust_mx)) die("lock");
	while (!go) usleep(10000);
	return NULL; /* dies holding it */
}

static const char *verify(void *arg)
{
	(void)arg;
	if (!strcmp(mode, "pipesz")) {
		long n = fcntl(fd1, F_GETPIPE_SZ);
		return n == 1 << 20 ? NULL : fail("pipe size %ld, not %ld", n, 1 << 20);
	}
	if (!strcmp(mode, "mbind")) {
		int m = -1;
		if (syscall(SYS_get_mempolicy, &m, NULL, 0, map1, MPOL_F_ADDR)) return "get_mempolicy failed";
		return m == MPOL_PREFERRED ? NULL : fail("policy %ld, not %ld", m, MPOL_PREFERRED);
	}
	if (!strcmp(mode, "dnotify")) {
		char name[4200];
		int before = hits;
		snprintf(name, sizeof(name), "%s/f%d", path, counter++);
		int f = open(name, O_CREAT | O_WRONLY, 0600);
		if (f < 0) return "create failed";
		close(f);
		for (int i = 0; i < 100 && hits == before; i++) usleep(10000);
		return hits > before ? NULL : "no signal for a file made in the watched directory";
	}
	if (!strcmp(mode, "ioflusher")) {
		long v = prctl_get(PR_GET_IO_FLUSHER);
		return v == 1 ? NULL : fail("PR_GET_IO_FLUSHER %ld", v, 0);
	}
	if (!strcmp(mode, "dumpable")) {
		long v = prctl_get(PR_GET_DUMPABLE);
		return v == 0 ? NULL : fail("PR_GET_DUMPABLE %ld", v, 0);
	}
	if (!strcmp(mode, "keepcaps")) {
		long v = prctl_get(PR_GET_KEEPCAPS);
		return v == 1 ? NULL : fail("PR_GET_KEEPCAPS %ld", v, 0);
	}
	if (!strcmp(mode, "secbits")) {
		long v = prctl_get(PR_GET_SECUREBITS);
		return v == SECBIT_NOROOT ? NULL : fail("securebits %ld", v, 0);
	}
	if (!strcmp(mode, "thpdisable")) {
		long v = prctl_get(PR_GET_THP_DISABLE);
		return v == 1 ? NULL : fail("PR_GET_THP_DISABLE %ld", v, 0);
	}
	if (!strcmp(mode, "autodisarm")) {
		stack_t ss;
		if (sigaltstack(NULL, &ss)) return "sigaltstack failed";
		return (ss.ss_flags & SS_AUTODISARM) && ss.ss_sp == map1 ? NULL : fail("ss_flags %#lx, sp %#lx", (long)ss.ss_flags, (long)ss.ss_sp);
	}
	if (!strcmp(mode, "efdsem")) {
		uint64_t v = 0;
		if (read(fd1, &v, 8) != 8) return "read failed";
		uint64_t one = 1;
		if (write(fd1, &one, 8) != 8) return "write failed";
		return v == 1 ? NULL : fail("read %ld from a semaphore eventfd, not 1", v, 0);
	}
	if (!strcmp(mode, "futurewrite")) {
		long s = fcntl(fd1, F_GET_SEALS);
		return s == F_SEAL_FUTURE_WRITE ? NULL : fail("seals %#lx, not %#lx", s, F_SEAL_FUTURE_WRITE);
	}
	if (!strcmp(mode, "abstime")) {
		char p[64], buf[1024];
		snprintf(p, sizeof(p), "/proc/self/fdinfo/%d", fd1);
		int f = open(p, O_RDONLY);
		long n = read(f, buf, sizeof(buf) - 1);
		close(f);
		buf[n > 0 ? n : 0] = 0;
		char *l = strstr(buf, "settime flags:");
		long fl = l ? strtol(l + 14, NULL, 8) : -1;
		struct itimerspec its;
		timerfd_gettime(fd1, &its);
		if (fl != 3) return fail("settime flags %lo, not 3", fl, 0);
		return its.it_value.tv_sec > 900 && its.it_value.tv_sec <= 1000 ? NULL : fail("%ld s left%s", its.it_value.tv_sec, 0);
	}
	if (!strcmp(mode, "madvfork")) {
		FILE *f = fopen("/proc/self/smaps", "r");
		char line[512];
		unsigned long lo = 0;
		int dc = 0, wf = 0;
		while (fgets(line, sizeof(line), f)) {
			unsigned long a, b;
			if (sscanf(line, "%lx-%lx ", &a, &b) == 2) lo = a;
			if (!strncmp(line, "VmFlags:", 8)) {
				if (lo == (unsigned long)map1 && strstr(line, " dc")) dc = 1;
				if (lo == (unsigned long)map2 && strstr(line, " wf")) wf = 1;
			}
		}
		fclose(f);
		return dc && wf ? NULL : fail("dontfork %ld, wipeonfork %ld", dc, wf);
	}
	if (!strcmp(mode, "slice")) {
		struct sched_attr_ at = { 0 };
		if (syscall(SYS_sched_getattr, 0, &at, sizeof(at), 0)) return "sched_getattr failed";
		return at.runtime == 3000000 ? NULL : fail("slice %ld ns, not %ld", (long)at.runtime, 3000000);
	}
	if (!strcmp(mode, "sud")) {
		int before = hits;
		selector = SYSCALL_DISPATCH_FILTER_BLOCK;
		syscall(SYS_getppid);
		selector = SYSCALL_DISPATCH_FILTER_ALLOW;
		return hits == before + 1 ? NULL : "a blocked syscall raised no SIGSYS";
	}
	if (!strcmp(mode, "keyring")) {
		long k = syscall(SYS_keyctl, 10 /* KEYCTL_SEARCH */, -2 /* KEY_SPEC_PROCESS_KEYRING */, "user", "criu-ts-probe", 0);
		return k > 0 ? NULL : fail("the key is gone from the process keyring (%ld, errno %ld)", k, errno);
	}
	if (!strcmp(mode, "amx")) {
		uint64_t perm = 0;
		if (syscall(SYS_arch_prctl, ARCH_GET_XCOMP_PERM, &perm)) return "ARCH_GET_XCOMP_PERM failed";
		return perm & (1ull << XFEATURE_XTILEDATA) ? NULL : fail("XCOMP permission %#lx lacks tile data", perm, 0);
	}
	if (!strcmp(mode, "join")) {
		go = 1;
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 3;
		int r = pthread_timedjoin_np(th, NULL, &ts);
		if (r) return fail("pthread_timedjoin_np: %ld", r, 0);
		go = 0;
		pthread_create(&th, NULL, waiter, NULL);
		return NULL;
	}
	if (!strcmp(mode, "robust")) {
		go = 1;
		pthread_join(th, NULL);
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 3;
		int r = pthread_mutex_timedlock(&robust_mx, &ts);
		if (r != EOWNERDEAD) return fail("lock of a dead owner's robust mutex: %ld, not EOWNERDEAD", r, 0);
		pthread_mutex_consistent(&robust_mx);
		pthread_mutex_unlock(&robust_mx);
		go = 0;
		pthread_create(&th, NULL, robust_holder, NULL);
		usleep(50000);
		return NULL;
	}
	if (!strcmp(mode, "zombieleader")) {
		char p[64], buf[512];
		snprintf(p, sizeof(p), "/proc/self/task/%d/stat", getpid());
		int f = open(p, O_RDONLY);
		long n = f < 0 ? -1 : read(f, buf, sizeof(buf) - 1);
		if (f >= 0) close(f);
		if (n <= 0) return "no leader thread";
		buf[n] = 0;
		char *s = strrchr(buf, ')');
		return s && s[2] == 'Z' ? NULL : fail("the leader is in state %c%s", s ? s[2] : '?', 0);
	}
	if (!strcmp(mode, "vfork")) {
		shared_word = 1000 + counter++;
		long seen = 0;
		struct iovec l = { &seen, sizeof(seen) }, r = { (void *)&shared_word, sizeof(seen) };
		if (process_vm_readv(vfork_parent, &l, 1, &r, 1, 0) != sizeof(seen)) return "cannot read the parent";
		if (getppid() != vfork_parent) return fail("parent %ld, not %ld", getppid(), vfork_parent);
		return seen == shared_word ? NULL : fail("the parent sees %ld, not %ld: memory no longer shared", seen, shared_word);
	}
	if (!strcmp(mode, "autogroup")) {
		char buf[128] = "";
		int f = open("/proc/self/autogroup", O_RDONLY);
		long n = f < 0 ? -1 : read(f, buf, sizeof(buf) - 1);
		if (f >= 0) close(f);
		if (n > 0) buf[n] = 0;
		char *v = strstr(buf, " nice ");
		long nice = v ? strtol(v + 6, NULL, 10) : -100;
		return nice == 5 ? NULL : fail("autogroup nice %ld, not %ld", nice, 5);
	}
	if (!strcmp(mode, "exefile")) {
		char buf[256];
		long n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
		if (n < 0) return "readlink failed";
		buf[n] = 0;
		return !strcmp(buf, "/usr/bin/true") || !strcmp(buf, "/bin/true") ? NULL : fail("exe is another file (%ld bytes)%s", n, 0);
	}
	return "unknown mode";
}

static void *leaderless(void *a)
{
	check_loop(verify, a);
	return NULL;
}

int main(int argc, char **argv)
{
	int o;
	while ((o = getopt(argc, argv, "m:f:")) != -1) {
		if (o == 'm') mode = optarg;
		else if (o == 'f') path = optarg;
	}
	if (!mode) { fprintf(stderr, "usage: rarestate -m MODE [-f PATH]\n"); return 2; }
	map1 = mmap(NULL, 65536, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	map2 = mmap(NULL, 65536, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	map1[0] = map2[0] = 1;
	if (!strcmp(mode, "pipesz")) {
		int p[2];
		if (pipe(p) || fcntl(p[0], F_SETPIPE_SZ, 1 << 20) < 0) die("pipe size");
		fd1 = p[0];
	} else if (!strcmp(mode, "mbind")) {
		unsigned long mask = 1;
		if (syscall(SYS_mbind, map1, 65536, MPOL_PREFERRED, &mask, 64, 0)) die("mbind");
	} else if (!strcmp(mode, "dnotify")) {
		struct sigaction sa = { .sa_handler = on_hit };
		sigaction(SIGRTMIN + 1, &sa, NULL);
		fd1 = open(path, O_RDONLY | O_DIRECTORY);
		if (fd1 < 0 || fcntl(fd1, F_SETSIG, SIGRTMIN + 1) || fcntl(fd1, F_NOTIFY, DN_CREATE | DN_MULTISHOT)) die("dnotify");
	} else if (!strcmp(mode, "ioflusher")) {
		if (prctl(PR_SET_IO_FLUSHER, 1, 0, 0, 0)) die("io flusher");
	} else if (!strcmp(mode, "dumpable")) {
		if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)) die("dumpable");
	} else if (!strcmp(mode, "keepcaps")) {
		if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0)) die("keepcaps");
	} else if (!strcmp(mode, "secbits")) {
		if (prctl(PR_SET_SECUREBITS, SECBIT_NOROOT, 0, 0, 0)) die("securebits");
	} else if (!strcmp(mode, "thpdisable")) {
		if (prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0)) die("thp disable");
	} else if (!strcmp(mode, "autodisarm")) {
		stack_t ss = { .ss_sp = map1, .ss_size = 65536, .ss_flags = SS_AUTODISARM };
		if (sigaltstack(&ss, NULL)) die("sigaltstack");
	} else if (!strcmp(mode, "efdsem")) {
		fd1 = eventfd(3, EFD_SEMAPHORE);
		if (fd1 < 0) die("eventfd");
	} else if (!strcmp(mode, "futurewrite")) {
		fd1 = memfd_create("probe", MFD_ALLOW_SEALING);
		if (fd1 < 0 || ftruncate(fd1, 4096) || fcntl(fd1, F_ADD_SEALS, F_SEAL_FUTURE_WRITE)) die("memfd seal");
	} else if (!strcmp(mode, "abstime")) {
		fd1 = timerfd_create(CLOCK_REALTIME, 0);
		struct itimerspec its = { 0 };
		clock_gettime(CLOCK_REALTIME, &its.it_value);
		its.it_value.tv_sec += 1000;
		if (fd1 < 0 || timerfd_settime(fd1, TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET, &its, NULL)) die("timerfd");
	} else if (!strcmp(mode, "madvfork")) {
		if (madvise(map1, 65536, MADV_DONTFORK) || madvise(map2, 65536, MADV_WIPEONFORK)) die("madvise");
	} else if (!strcmp(mode, "slice")) {
		struct sched_attr_ at = { .size = sizeof(at), .policy = SCHED_OTHER, .runtime = 3000000 };
		if (syscall(SYS_sched_setattr, 0, &at, 0)) die("sched_setattr");
	} else if (!strcmp(mode, "sud")) {
		struct sigaction sa = { .sa_handler = on_sigsys };
		sigaction(SIGSYS, &sa, NULL);
		if (prctl(PR_SET_SYSCALL_USER_DISPATCH, PR_SYS_DISPATCH_ON, 0, 0, &selector)) die("syscall user dispatch");
	} else if (!strcmp(mode, "keyring")) {
		if (syscall(SYS_add_key, "user", "criu-ts-probe", "v", 1, -2) < 0) die("add_key");
	} else if (!strcmp(mode, "amx")) {
		if (syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)) die("ARCH_REQ_XCOMP_PERM");
	} else if (!strcmp(mode, "autogroup")) {
		int f = open("/proc/self/autogroup", O_WRONLY);
		if (f < 0 || write(f, "5", 1) != 1) die("autogroup");
		close(f);
	} else if (!strcmp(mode, "exefile")) {
		int f = open("/bin/true", O_RDONLY);
		if (f < 0 || prctl(PR_SET_MM, PR_SET_MM_EXE_FILE, f, 0, 0)) die("PR_SET_MM_EXE_FILE");
	} else if (!strcmp(mode, "join")) {
		pthread_create(&th, NULL, waiter, NULL);
	} else if (!strcmp(mode, "robust")) {
		pthread_mutexattr_t ma;
		pthread_mutexattr_init(&ma);
		pthread_mutexattr_setrobust(&ma, PTHREAD_MUTEX_ROBUST);
		pthread_mutex_init(&robust_mx, &ma);
		pthread_create(&th, NULL, robust_holder, NULL);
		usleep(50000);
	} else if (!strcmp(mode, "zombieleader")) {
		pthread_create(&th, NULL, leaderless, NULL);
		pthread_exit(NULL);
	} else if (!strcmp(mode, "vfork")) {
		vfork_parent = getpid();
		if (vfork() == 0) check_loop(verify, NULL);
		return 0;
	} else {
		fprintf(stderr, "unknown mode %s\n", mode);
		return 2;
	}
	check_loop(verify, NULL);
	return 0;
}
