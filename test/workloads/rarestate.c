/*
 * rarestate: one piece of state rarely put into a process, checked from inside after restore
 * (checkloop.h: "tick n=N", SIGUSR1 -> "CHECK ok" or "CHECK fail: WHY").
 *
 *   rarestate -m MODE
 *
 * Modes:
 *   pipesz     a pipe of 1 MiB (F_SETPIPE_SZ)
 *   dumpable   PR_SET_DUMPABLE 0
 *   keepcaps   PR_SET_KEEPCAPS 1
 *   secbits    securebits SECBIT_NOROOT
 *   thpdisable PR_SET_THP_DISABLE
 *   autodisarm a sigaltstack with SS_AUTODISARM
 *   efdsem     an eventfd in semaphore mode holding 3
 *   futurewrite a memfd sealed with F_SEAL_FUTURE_WRITE
 *   abstime    a CLOCK_REALTIME timerfd armed with TFD_TIMER_ABSTIME|TFD_TIMER_CANCEL_ON_SET
 *   madvfork   a mapping with MADV_DONTFORK, MADV_DONTDUMP and MADV_NOHUGEPAGE, another with
 *              MADV_WIPEONFORK, MADV_HUGEPAGE and MADV_MERGEABLE (their VmFlags)
 *   itimers    ITIMER_VIRTUAL and ITIMER_PROF armed for 1000 s of CPU time
 *   epollflags an eventfd in an epoll set with EPOLLEXCLUSIVE, another with EPOLLONESHOT that
 *              fired (disarmed: readable, yet not reported)
 *   sealexec   a memfd sealed with F_SEAL_EXEC (and the seals the kernel adds with it)
 *   onaltstack the main thread runs (and checks) inside a SIGUSR2 handler on its sigaltstack
 *   personality its personality UNAME26|ADDR_NO_RANDOMIZE
 *   join       a thread waiting to exit: pthread_join must see it go (clear_child_tid)
 *   robust     a thread holding a robust mutex dies on SIGUSR1: the lock must say EOWNERDEAD
 *   sigsuspend a thread whose mask blocks SIGUSR2 waits in sigsuspend() with none blocked: after a
 *              SIGUSR2 (from the check) wakes it, its mask must block SIGUSR2 again
 *
 * A thread whose own state differs from the main thread's, which the thread checks itself:
 *   thpersonality its personality UNAME26 (personality() is per thread)
 *   thfs       its own fs_struct (unshare CLONE_FS): umask 077, cwd /
 *   thfiles    its own fd table (unshare CLONE_FILES) with a pipe the main thread does not have
 *   thnnp      PR_SET_NO_NEW_PRIVS in that thread only
 *   thcaps     CAP_NET_RAW dropped from that thread's effective set only
 *   thnetns    its own network namespace (unshare CLONE_NEWNET)
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
#include <linux/capability.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/time.h>
#include <sys/personality.h>
#include <sys/stat.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>
#include "checkloop.h"

#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010
#endif
#ifndef SS_AUTODISARM
#define SS_AUTODISARM (1U << 31)
#endif
#ifndef F_SEAL_EXEC
#define F_SEAL_EXEC 0x0020
#endif
#define SECBIT_NOROOT 1

static const char *mode;
static int fd1, fd2, fd3;
static char *map1, *map2;
static pthread_t th;
static pthread_mutex_t robust_mx;
static volatile int go;
static char why[200];
static pid_t susp_tid;
static volatile int susp_wakes, susp_mask_ok;

static void die(const char *what) { perror(what); exit(2); }

/* /proc/self/fdinfo/FD into buf, NUL-terminated (empty if unreadable). */
static void fdinfo(int fd, char *buf, size_t size)
{
	char p[64];
	snprintf(p, sizeof(p), "/proc/self/fdinfo/%d", fd);
	int f = open(p, O_RDONLY);
	long n = f < 0 ? -1 : read(f, buf, size - 1);
	if (f >= 0)
		close(f);
	buf[n > 0 ? n : 0] = 0;
}

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

static void on_usr2(int s) { (void)s; }

static void *suspender(void *a)
{
	(void)a;
	sigset_t blk, none, now;
	sigemptyset(&blk);
	sigaddset(&blk, SIGUSR2);
	sigemptyset(&none);
	pthread_sigmask(SIG_BLOCK, &blk, NULL);
	susp_tid = syscall(SYS_gettid);
	for (;;) {
		sigsuspend(&none);
		pthread_sigmask(SIG_BLOCK, NULL, &now);
		susp_mask_ok = sigismember(&now, SIGUSR2);
		susp_wakes++;
	}
	return NULL;
}

static const char *verify(void *arg);
static volatile int th_asked, th_answered, th_ready;
static const char *volatile th_result;
static int th_fd = -1;
static char main_net[64];

static int caps_have_net_raw(pid_t tid)
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, tid };
	struct __user_cap_data_struct d[2];
	if (syscall(SYS_capget, &h, d)) return -1;
	return !!(d[0].effective & (1u << CAP_NET_RAW));
}

static const char *thread_check(void)
{
	static char cwd[256];
	if (!strcmp(mode, "thpersonality")) {
		int p = personality(0xffffffff);
		return p == UNAME26 ? NULL : fail("the thread's personality is %#lx, not %#lx", p, UNAME26);
	}
	if (!strcmp(mode, "thfs")) {
		mode_t m = umask(077);
		if (m != 077) return fail("the thread's umask is %lo, not %lo", m, 077);
		if (!getcwd(cwd, sizeof(cwd)) || strcmp(cwd, "/")) return "the thread's cwd is not /";
		return NULL;
	}
	if (!strcmp(mode, "thfiles"))
		return fcntl(th_fd, F_GETFD) >= 0 ? NULL : "the thread's own pipe is gone from its fd table";
	if (!strcmp(mode, "thnnp")) {
		long v = prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0);
		return v == 1 ? NULL : fail("the thread's no_new_privs is %ld", v, 0);
	}
	if (!strcmp(mode, "thcaps"))
		return caps_have_net_raw(0) == 0 ? NULL : "the thread has CAP_NET_RAW again";
	if (!strcmp(mode, "thnetns")) {
		char l[64] = "";
		if (readlink("/proc/thread-self/ns/net", l, sizeof(l) - 1) < 0) return "no /proc/thread-self/ns/net";
		return strcmp(l, main_net) ? NULL : "the thread is in the main thread's network namespace";
	}
	return "unknown thread mode";
}

static void *own_state_thread(void *a)
{
	(void)a;
	if (!strcmp(mode, "thpersonality")) {
		if (personality(UNAME26) < 0) die("personality");
	} else if (!strcmp(mode, "thfs")) {
		if (unshare(CLONE_FS) || chdir("/")) die("unshare CLONE_FS");
		umask(077);
	} else if (!strcmp(mode, "thfiles")) {
		int p[2];
		if (unshare(CLONE_FILES) || pipe(p)) die("unshare CLONE_FILES");
		th_fd = p[0];
	} else if (!strcmp(mode, "thnnp")) {
		if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)) die("no_new_privs");
	} else if (!strcmp(mode, "thcaps")) {
		struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
		struct __user_cap_data_struct d[2];
		if (syscall(SYS_capget, &h, d)) die("capget");
		d[0].effective &= ~(1u << CAP_NET_RAW);
		if (syscall(SYS_capset, &h, d)) die("capset");
	} else if (!strcmp(mode, "thnetns")) {
		if (unshare(CLONE_NEWNET)) die("unshare CLONE_NEWNET");
	}
	th_ready = 1;
	for (;;) {
		while (th_asked == th_answered) usleep(5000);
		th_result = thread_check();
		th_answered = th_asked;
	}
	return NULL;
}

static void on_usr2_alt(int s)
{
	(void)s;
	check_loop(verify, NULL);
}

static const char *verify(void *arg)
{
	(void)arg;
	if (!strcmp(mode, "pipesz")) {
		long n = fcntl(fd1, F_GETPIPE_SZ);
		return n == 1 << 20 ? NULL : fail("pipe size %ld, not %ld", n, 1 << 20);
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
		char buf[1024];
		fdinfo(fd1, buf, sizeof(buf));
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
		int one = 0, two = 0;
		while (fgets(line, sizeof(line), f)) {
			unsigned long a, b;
			if (sscanf(line, "%lx-%lx ", &a, &b) == 2) lo = a;
			if (!strncmp(line, "VmFlags:", 8)) {
				if (lo == (unsigned long)map1) one = strstr(line, " dc") && strstr(line, " dd") && strstr(line, " nh");
				if (lo == (unsigned long)map2) two = strstr(line, " wf") && strstr(line, " hg") && strstr(line, " mg");
			}
		}
		fclose(f);
		return one && two ? NULL : fail("VmFlags of the first mapping %ld, of the second %ld", one, two);
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
	if (!strncmp(mode, "th", 2)) {
		int want = th_asked + 1;
		th_asked = want;
		for (int i = 0; i < 300 && th_answered != want; i++) usleep(10000);
		if (th_answered != want) return "the thread did not answer";
		if (th_result) return th_result;
		/* The main thread has none of it. */
		if (!strcmp(mode, "thpersonality") && personality(0xffffffff) != 0) return "the main thread's personality changed";
		if (!strcmp(mode, "thfiles") && fcntl(th_fd, F_GETFD) >= 0) return "the main thread has the thread's pipe";
		if (!strcmp(mode, "thnnp") && prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 0) return "the main thread has no_new_privs";
		if (!strcmp(mode, "thcaps") && caps_have_net_raw(0) != 1) return "the main thread lost CAP_NET_RAW";
		if (!strcmp(mode, "thfs")) {
			mode_t m = umask(022);
			if (m != 022) return fail("the main thread's umask is %lo%s", m, 0);
		}
		return NULL;
	}
	if (!strcmp(mode, "onaltstack")) {
		stack_t ss;
		char here;
		if (sigaltstack(NULL, &ss)) return "sigaltstack failed";
		if (!(ss.ss_flags & SS_ONSTACK)) return fail("ss_flags %#lx: not on the alternate stack%s", ss.ss_flags, 0);
		if (ss.ss_sp != map1 || &here < map1 || &here >= map1 + 65536) return "the handler does not run on the alternate stack";
		return NULL;
	}
	if (!strcmp(mode, "personality")) {
		int p = personality(0xffffffff);
		return p == (UNAME26 | ADDR_NO_RANDOMIZE) ? NULL : fail("personality %#lx, not %#lx", p, UNAME26 | ADDR_NO_RANDOMIZE);
	}
	if (!strcmp(mode, "itimers")) {
		struct itimerval v, p;
		getitimer(ITIMER_VIRTUAL, &v);
		getitimer(ITIMER_PROF, &p);
		if (v.it_value.tv_sec < 900 || v.it_value.tv_sec > 1000) return fail("ITIMER_VIRTUAL has %ld s left%s", v.it_value.tv_sec, 0);
		if (p.it_value.tv_sec < 900 || p.it_value.tv_sec > 1000) return fail("ITIMER_PROF has %ld s left%s", p.it_value.tv_sec, 0);
		return NULL;
	}
	if (!strcmp(mode, "epollflags")) {
		struct epoll_event ev[4];
		int n = epoll_wait(fd1, ev, 4, 0);
		if (n != 1 || ev[0].data.fd != fd2) return fail("%ld events ready, not only the exclusive one (%ld)", n, n > 0 ? ev[0].data.fd : -1);
		char buf[1024];
		fdinfo(fd1, buf, sizeof(buf));
		char *l = strstr(buf, "tfd:");
		for (; l; l = strstr(l + 1, "tfd:")) {
			int tfd = atoi(l + 4);
			char *e = strstr(l, "events:");
			unsigned long evs = e ? strtoul(e + 7, NULL, 16) : 0;
			if (tfd == fd2 && !(evs & EPOLLEXCLUSIVE)) return fail("the exclusive registration has events %#lx%s", evs, 0);
		}
		return NULL;
	}
	if (!strcmp(mode, "sealexec")) {
		long s = fcntl(fd1, F_GET_SEALS);
		return s == fd2 && (s & F_SEAL_EXEC) ? NULL : fail("seals %#lx, not %#lx", s, fd2);
	}
	if (!strcmp(mode, "sigsuspend")) {
		int before = susp_wakes;
		syscall(SYS_tgkill, getpid(), susp_tid, SIGUSR2);
		for (int i = 0; i < 200 && susp_wakes == before; i++) usleep(10000);
		if (susp_wakes == before) return "the thread in sigsuspend did not wake";
		return susp_mask_ok ? NULL : "after sigsuspend returned, its mask no longer blocks SIGUSR2";
	}
	return "unknown mode";
}

int main(int argc, char **argv)
{
	int o;
	while ((o = getopt(argc, argv, "m:")) != -1) {
		if (o == 'm') mode = optarg;
	}
	if (!mode) { fprintf(stderr, "usage: rarestate -m MODE\n"); return 2; }
	map1 = mmap(NULL, 65536, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	map2 = mmap(NULL, 65536, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	map1[0] = map2[0] = 1;
	if (!strcmp(mode, "pipesz")) {
		int p[2];
		if (pipe(p) || fcntl(p[0], F_SETPIPE_SZ, 1 << 20) < 0) die("pipe size");
		fd1 = p[0];



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
		if (madvise(map1, 65536, MADV_DONTFORK) || madvise(map1, 65536, MADV_DONTDUMP) || madvise(map1, 65536, MADV_NOHUGEPAGE) ||
		    madvise(map2, 65536, MADV_WIPEONFORK) || madvise(map2, 65536, MADV_HUGEPAGE) || madvise(map2, 65536, MADV_MERGEABLE))
			die("madvise");




	} else if (!strncmp(mode, "th", 2)) {
		umask(022);
		if (readlink("/proc/thread-self/ns/net", main_net, sizeof(main_net) - 1) < 0) die("readlink ns");
		pthread_create(&th, NULL, own_state_thread, NULL);
		while (!th_ready) usleep(1000);
	} else if (!strcmp(mode, "onaltstack")) {
		stack_t ss = { .ss_sp = map1, .ss_size = 65536 };
		struct sigaction sa = { .sa_handler = on_usr2_alt, .sa_flags = SA_ONSTACK };
		if (sigaltstack(&ss, NULL) || sigaction(SIGUSR2, &sa, NULL)) die("sigaltstack");
		raise(SIGUSR2);
	} else if (!strcmp(mode, "personality")) {
		if (personality(UNAME26 | ADDR_NO_RANDOMIZE) < 0) die("personality");
	} else if (!strcmp(mode, "itimers")) {
		struct itimerval v = { .it_value = { 1000, 0 } };
		if (setitimer(ITIMER_VIRTUAL, &v, NULL) || setitimer(ITIMER_PROF, &v, NULL)) die("setitimer");
	} else if (!strcmp(mode, "epollflags")) {
		fd1 = epoll_create1(0);
		fd2 = eventfd(1, 0);
		fd3 = eventfd(1, 0);
		struct epoll_event x = { .events = EPOLLIN | EPOLLEXCLUSIVE, .data.fd = fd2 };
		struct epoll_event o = { .events = EPOLLIN | EPOLLONESHOT, .data.fd = fd3 };
		if (epoll_ctl(fd1, EPOLL_CTL_ADD, fd2, &x) || epoll_ctl(fd1, EPOLL_CTL_ADD, fd3, &o)) die("epoll_ctl");
		struct epoll_event ev[4];
		/* Fires the one-shot registration once, which disarms it. */
		if (epoll_wait(fd1, ev, 4, 0) != 2) die("epoll_wait");
	} else if (!strcmp(mode, "sealexec")) {
		fd1 = memfd_create("probe", MFD_ALLOW_SEALING);
		if (fd1 < 0 || fcntl(fd1, F_ADD_SEALS, F_SEAL_EXEC)) die("memfd seal");
		fd2 = fcntl(fd1, F_GET_SEALS); /* with those the kernel adds */
	} else if (!strcmp(mode, "sigsuspend")) {
		signal(SIGUSR2, on_usr2);
		pthread_create(&th, NULL, suspender, NULL);
		while (!susp_tid) usleep(1000);
		sigset_t blk;
		sigemptyset(&blk);
		sigaddset(&blk, SIGUSR2);
		pthread_sigmask(SIG_BLOCK, &blk, NULL); /* only the thread takes it */


	} else if (!strcmp(mode, "join")) {
		pthread_create(&th, NULL, waiter, NULL);
	} else if (!strcmp(mode, "robust")) {
		pthread_mutexattr_t ma;
		pthread_mutexattr_init(&ma);
		pthread_mutexattr_setrobust(&ma, PTHREAD_MUTEX_ROBUST);
		pthread_mutex_init(&robust_mx, &ma);
		pthread_create(&th, NULL, robust_holder, NULL);
		usleep(50000);


	} else {
		fprintf(stderr, "unknown mode %s\n", mode);
		return 2;
	}
	check_loop(verify, NULL);
	return 0;
}
