/*
 * keepstate: one piece of state that a restore must bring back as it was, checked from
 * inside after restore.
 *
 *   keepstate -m MODE [-f FILE]
 *
 * Modes:
 *   ambient    ambient capabilities CAP_KILL and CAP_NET_RAW raised (CAP_CHOWN dropped from
 *              the effective set)
 *   ghostmode  FILE made with mode 06604 (set-user-ID, set-group-ID) and mtime 123456, kept
 *              open and removed; its mode and mtime must stay
 *   fdshare    a child has FILE open twice, as fds A, A+1 (dup, made close-on-exec by the
 *              child alone) and A+2 (its own open file description, shared with the parent);
 *              the child checks that A+2 is still open and still shares its offset with the
 *              parent's (the parent moves it on SIGUSR1 before passing the signal on)
 *   timerfd    a periodic timerfd (1 ms, then every 2 s) that fired and was never read: it
 *              must still run every 2 s
 *   mapprot    FILE opened read-write and mapped shared, read-only, then the fd closed: the
 *              mapping may still be made writable (mprotect)
 *   shmpriv    shared anonymous memory mapped again privately through map_files: a page the
 *              private mapping never wrote shows what the shared one writes
 *   memfdexec  a memfd holding "#!/bin/true": execveat(fd, "", AT_EMPTY_PATH) runs it
 *   membarrier registered for MEMBARRIER_CMD_PRIVATE_EXPEDITED: the barrier must work
 *   cgroup     (-f DIR, a cgroup v2 directory the test made and put the task in) the task is
 *              still in DIR, whose cgroup.max.descendants is still 5
 *   fownuid    a pipe owned by the task (F_SETOWN) set while its euid was 1: the owner's uids
 *              (F_GETOWNER_UIDS) stay 0 and 1
 *   symlink    (-f FILE) an O_PATH|O_NOFOLLOW fd of the symlink FILE (to "target"): still the
 *              symlink
 *   novdso     the task unmapped its [vdso] and [vvar]: they stay gone (and it runs on)
 *   pty        a child in a session of its own whose controlling terminal is a pseudo-terminal
 *              (both ends held open), in raw mode, 33x77; it checks them and that data still
 *              flows from the master to the slave (the parent passes SIGUSR1 on)
 *   mlock      an mlock'd mapping: still locked (its VmFlags have "lo")
 *   rmdir      (-f DIR) DIR/sub held open, then DIR/sub and DIR removed: still a removed directory
 *   nsfd       fds of its own net and uts namespaces (/proc/self/ns/...): still those it is in
 *   console    (-f FILE) FILE made as a node of the console (5:1) and held open: still the console
 *   procfd     files of /proc of the tree held open: the child's /proc/CHILD/stat and the
 *              task's own /proc/self/fdinfo/N of an eventfd it opened after it
 *   rseq       (x86_64) a thread blocked in pause() inside an rseq critical section: a
 *              signal must still abort the section (send it to its abort handler)
 *
 * Prints "tick n=N" every 50 ms; on SIGUSR1 prints "CHECK ok" or "CHECK fail: WHY".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <unistd.h>
#include <utime.h>
#include "checkloop.h"

#define PAGE 4096
static int fd_a = -1, fd_c = -1, tfd = -1, mfd = -1;
static char *map, *shared, *priv;
static char why[256];

static void die(const char *what) { perror(what); exit(3); }

static int capget_(struct __user_cap_data_struct d[2]) {
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	return syscall(SYS_capget, &h, d);
}
static int capset_(struct __user_cap_data_struct d[2]) {
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	return syscall(SYS_capset, &h, d);
}

static void setup_ambient(void) {
	struct __user_cap_data_struct d[2];
	if (capget_(d)) die("capget");
	d[0].effective &= ~(1u << CAP_CHOWN);
	d[0].inheritable = d[0].permitted;
	d[1].inheritable = d[1].permitted;
	if (capset_(d)) die("capset");
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_KILL, 0, 0) ||
	    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_NET_RAW, 0, 0))
		die("PR_CAP_AMBIENT_RAISE");
}

static const char *check_ambient(void) {
	for (int cap = 0; cap < 64; cap++) {
		int want = cap == CAP_KILL || cap == CAP_NET_RAW;
		int got = prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, cap, 0, 0);
		if (got < 0) break; /* past the last capability */
		if (got != want) {
			snprintf(why, sizeof why, "ambient capability %d is %s", cap, got ? "set" : "not set");
			return why;
		}
	}
	struct __user_cap_data_struct d[2];
	if (capget_(d)) return "capget";
	if (d[0].effective & (1u << CAP_CHOWN)) return "CAP_CHOWN is effective again";
	return NULL;
}

static void setup_ghostmode(const char *file) {
	if ((fd_a = open(file, O_RDWR | O_CREAT | O_TRUNC, 0644)) < 0) die("open");
	if (write(fd_a, "ghost", 5) != 5) die("write");
	struct utimbuf ut = { 0, 123456 };
	if (utime(file, &ut) || fchmod(fd_a, 06604) || unlink(file)) die("utime/fchmod/unlink");
}

static const char *check_ghostmode(void) {
	struct stat st;
	if (fstat(fd_a, &st)) return "fstat";
	if ((st.st_mode & 07777) != 06604) {
		snprintf(why, sizeof why, "mode %#o, want 06604", st.st_mode & 07777);
		return why;
	}
	if (st.st_mtime != 123456) return "mtime changed";
	return NULL;
}

static pid_t child;
static void forward(int s) {
	(void)s;
	if (fd_c >= 0) lseek(fd_c, 777, SEEK_SET); /* the child must see this offset: one open file description */
	kill(child, SIGUSR1);
}

static const char *check_fdshare(void *arg) {
	(void)arg;
	if (fcntl(fd_c, F_GETFD) < 0) return "fd A+2 was closed";
	if (fcntl(fd_a + 1, F_GETFD) != FD_CLOEXEC) return "fd A+1 lost close-on-exec";
	if (lseek(fd_c, 0, SEEK_CUR) != 777) return "fd A+2 no longer shares its offset with the parent";
	return NULL;
}

static void run_fdshare(const char *file) {
	if ((fd_a = open(file, O_RDWR | O_CREAT, 0644)) < 0 || dup(fd_a) != fd_a + 1) die("open/dup");
	if ((fd_c = open(file, O_RDWR)) != fd_a + 2) die("open again");
	child = fork();
	if (child < 0) die("fork");
	if (child == 0) {
		if (fcntl(fd_a + 1, F_SETFD, FD_CLOEXEC)) die("F_SETFD");
		check_loop(check_fdshare, NULL);
	}
	signal(SIGUSR1, forward);
	for (;;) pause();
}

static void setup_timerfd(void) {
	struct itimerspec it = { { 2, 0 }, { 0, 1000000 } };
	if ((tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK)) < 0 || timerfd_settime(tfd, 0, &it, NULL)) die("timerfd");
	usleep(20000); /* it fires once, and nobody reads it */
}

static const char *check_timerfd(void) {
	struct itimerspec it;
	if (timerfd_gettime(tfd, &it)) return "timerfd_gettime";
	if (it.it_interval.tv_sec != 2 || it.it_interval.tv_nsec != 0) return "its interval is gone";
	if (it.it_value.tv_sec == 0 && it.it_value.tv_nsec == 0) return "it is no longer armed";
	uint64_t ticks = 0;
	if (read(tfd, &ticks, sizeof ticks) != sizeof ticks || ticks < 1) return "its expiry before the dump was lost";
	return NULL;
}

static void setup_mapprot(const char *file) {
	int fd = open(file, O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || ftruncate(fd, PAGE)) die("open/ftruncate");
	if ((map = mmap(NULL, PAGE, PROT_READ, MAP_SHARED, fd, 0)) == MAP_FAILED) die("mmap");
	close(fd);
}

static const char *check_mapprot(void) {
	if (mprotect(map, PAGE, PROT_READ | PROT_WRITE)) return "mprotect(PROT_WRITE) of the shared file mapping failed";
	map[0] = 1;
	return mprotect(map, PAGE, PROT_READ) ? "mprotect back" : NULL;
}

static void setup_shmpriv(void) {
	if ((shared = mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0)) == MAP_FAILED) die("mmap");
	shared[PAGE] = 11;
	char path[128];
	snprintf(path, sizeof path, "/proc/self/map_files/%lx-%lx", (long)shared, (long)shared + 4 * PAGE);
	int fd = open(path, O_RDWR);
	if (fd < 0) die("open map_files");
	if ((priv = mmap(NULL, 3 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, PAGE)) == MAP_FAILED) die("mmap private");
	close(fd);
	priv[PAGE] = 22; /* its own copy of the object's third page */
}

static const char *check_shmpriv(void) {
	if (priv[0] != 11) return "the private mapping lost the object's page";
	if (priv[PAGE] != 22) return "the private mapping lost its own page";
	static char n = 40;
	shared[3 * PAGE] = ++n; /* a new value on each check */
	if (priv[2 * PAGE] != n) return "the private mapping no longer sees the shared object";
	return NULL;
}

static void setup_memfdexec(void) {
	static const char script[] = "#!/bin/true\n";
	if ((mfd = memfd_create("script", 0)) < 0 || write(mfd, script, sizeof script - 1) != sizeof script - 1) die("memfd");
}

static const char *check_memfdexec(void) {
	pid_t p = fork();
	if (p == 0) {
		char *argv[] = { "true", NULL }, *envp[] = { NULL };
		syscall(SYS_execveat, mfd, "", argv, envp, AT_EMPTY_PATH);
		_exit(errno == ETXTBSY ? 26 : 99);
	}
	int st = 0;
	if (p < 0 || waitpid(p, &st, 0) != p) return "fork/waitpid";
	if (WIFEXITED(st) && WEXITSTATUS(st) == 26) return "execveat of the memfd: ETXTBSY";
	if (!WIFEXITED(st) || WEXITSTATUS(st)) return "execveat of the memfd failed";
	return NULL;
}

#define MB_PRIVATE_EXPEDITED (1 << 3)
#define MB_REGISTER_PRIVATE_EXPEDITED (1 << 4)
static const char *check_membarrier(void) {
	return syscall(SYS_membarrier, MB_PRIVATE_EXPEDITED, 0, 0) ? "membarrier(PRIVATE_EXPEDITED) is refused: not registered" : NULL;
}

#ifdef __x86_64__
#include <sys/rseq.h>
static volatile uint64_t *rseq_cs_of_thread;
static volatile int aborts;
static pthread_t rseq_th;
extern char keepstate_cs[];

static void on_usr2(int s) { (void)s; }

static void *rseq_thread(void *arg) {
	(void)arg;
	struct rseq *r = (struct rseq *)((char *)__builtin_thread_pointer() + __rseq_offset);
	rseq_cs_of_thread = (volatile uint64_t *)&r->rseq_cs;
	sigset_t usr2;
	sigemptyset(&usr2);
	sigaddset(&usr2, SIGUSR2);
	pthread_sigmask(SIG_UNBLOCK, &usr2, NULL);
	/*
	 * Block in pause() inside the critical section. A signal aborts it: the kernel sends
	 * the thread to the abort handler, which counts and enters the section again.
	 */
	__asm__ volatile(
		".pushsection .data.rel.ro, \"aw\"\n\t"
		".balign 32\n\t"
		"keepstate_cs:\n\t"
		".long 0, 0\n\t" /* version, flags */
		".quad 1f, 2f - 1f, 4f\n\t"
		".popsection\n\t"
		"3:\n\t"
		"leaq keepstate_cs(%%rip), %%rax\n\t"
		"movq %%rax, (%0)\n\t"
		"1:\n\t"
		"movl $34, %%eax\n\t" /* pause */
		"syscall\n\t"
		"jmp 1b\n\t"
		"2:\n\t"
		".long 0x53053053\n\t"
		"4:\n\t"
		"lock incl (%1)\n\t"
		"jmp 3b\n\t"
		:
		: "r"(&r->rseq_cs), "r"(&aborts)
		: "rax", "rcx", "r11", "memory");
	return NULL;
}

static int wait_aborts(int above) {
	for (int i = 0; i < 200 && aborts <= above; i++) usleep(5000);
	return aborts > above;
}

static void setup_rseq(void) {
	if (__rseq_size == 0) die("glibc registered no rseq");
	signal(SIGUSR2, on_usr2);
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	if (pthread_create(&rseq_th, NULL, rseq_thread, NULL)) die("pthread_create");
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	while (!rseq_cs_of_thread || *rseq_cs_of_thread != (uint64_t)keepstate_cs) usleep(1000);
	usleep(20000);
	/* A signal aborts the section (the thread sits in it from here on). */
	pthread_kill(rseq_th, SIGUSR2);
	if (!wait_aborts(0)) die("the rseq critical section is not aborted by a signal");
	while (*rseq_cs_of_thread != (uint64_t)keepstate_cs) usleep(1000);
}

static const char *check_rseq(void) {
	int before = aborts;
	pthread_kill(rseq_th, SIGUSR2);
	if (!wait_aborts(before)) return "a signal no longer aborts the thread's rseq critical section";
	return NULL;
}
#else
static void setup_rseq(void) { die("rseq mode: x86_64 only"); }
static const char *check_rseq(void) { return "x86_64 only"; }
#endif

static int stat_fd = -1, fdinfo_fd = -1;
static pid_t proc_child;

static void setup_procfd(void) {
	if ((proc_child = fork()) < 0) die("fork");
	if (proc_child == 0) for (;;) pause();
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/stat", proc_child);
	if ((stat_fd = open(path, O_RDONLY)) < 0) die("open stat");
	fdinfo_fd = open("/dev/null", O_RDONLY); /* its number is taken by the fdinfo file below */
	int efd = syscall(SYS_eventfd2, 5, 0);
	if (efd < 0) die("eventfd");
	snprintf(path, sizeof path, "/proc/self/fdinfo/%d", efd);
	close(fdinfo_fd);
	if ((fdinfo_fd = open(path, O_RDONLY)) < 0) die("open fdinfo");
}

static const char *check_procfd(void) {
	char buf[512], want[32];
	ssize_t n = pread(stat_fd, buf, sizeof buf - 1, 0);
	if (n <= 0) return "the child's /proc/PID/stat cannot be read";
	buf[n] = 0;
	snprintf(want, sizeof want, "%d (keepstate)", proc_child);
	if (strncmp(buf, want, strlen(want))) return "the stat file is not the child's";
	n = pread(fdinfo_fd, buf, sizeof buf - 1, 0);
	if (n <= 0) return "the fdinfo file cannot be read";
	buf[n] = 0;
	if (!strstr(buf, "eventfd-count:")) return "the fdinfo file is not the eventfd's";
	return NULL;
}

#ifndef F_GETOWNER_UIDS
#define F_GETOWNER_UIDS 17
#endif
static int own_pipe[2], link_fd = -1;

static void setup_fownuid(void) {
	if (pipe(own_pipe) || seteuid(1) || fcntl(own_pipe[0], F_SETOWN, getpid()) || seteuid(0)) die("fownuid");
}

static const char *check_fownuid(void) {
	unsigned uids[2] = { 99, 99 };
	if (fcntl(own_pipe[0], F_GETOWN) != getpid()) return "the owner is gone";
	if (fcntl(own_pipe[0], F_GETOWNER_UIDS, uids)) return "F_GETOWNER_UIDS";
	if (uids[0] != 0 || uids[1] != 1) {
		snprintf(why, sizeof why, "the owner was set by uids %u/%u, want 0/1", uids[0], uids[1]);
		return why;
	}
	return NULL;
}

static void setup_symlink(const char *file) {
	if (symlink("target", file) || (link_fd = open(file, O_PATH | O_NOFOLLOW)) < 0) die("symlink");
}

static const char *check_symlink(void) {
	struct stat st;
	char buf[64];
	if (fstatat(link_fd, "", &st, AT_EMPTY_PATH)) return "fstat";
	if (!S_ISLNK(st.st_mode)) return "the fd is no longer the symlink";
	ssize_t n = readlinkat(link_fd, "", buf, sizeof buf - 1);
	if (n != 6 || memcmp(buf, "target", 6)) return "the symlink's target changed";
	return NULL;
}

/* Unmap (or, with unmap 0, count) the task's [vdso] and [vvar...] mappings. */
static int specials(int unmap) {
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	unsigned long s[8], e[8];
	int n = 0;
	while (f && fgets(line, sizeof line, f) && n < 8)
		if (strstr(line, "[vdso]") || strstr(line, "[vvar")) sscanf(line, "%lx-%lx", &s[n], &e[n]), n++;
	if (f) fclose(f);
	for (int i = 0; unmap && i < n; i++)
		if (munmap((void *)s[i], e[i] - s[i])) die("munmap vdso");
	return n;
}

static const char *check_novdso(void) { return specials(0) ? "the [vdso] or [vvar] is back" : NULL; }

#include <termios.h>
#include <sys/ioctl.h>
static int pty_m = -1, pty_s = -1;
static char pty_name[64];

static const char *check_pty(void *arg) {
	(void)arg;
	pid_t sid = -1;
	struct termios t;
	struct winsize ws;
	char link[64] = { 0 }, path[64], buf[8];
	if (ioctl(pty_s, TIOCGSID, &sid) || sid != getpid()) return "the pseudo-terminal is not its controlling terminal";
	if (tcgetattr(pty_s, &t) || (t.c_lflag & (ICANON | ECHO))) return "the terminal left raw mode";
	if (ioctl(pty_s, TIOCGWINSZ, &ws) || ws.ws_row != 33 || ws.ws_col != 77) return "the window size changed";
	snprintf(path, sizeof path, "/proc/self/fd/%d", pty_s);
	if (readlink(path, link, sizeof link - 1) < 0 || strcmp(link, pty_name)) return "the slave is another pseudo-terminal";
	if (write(pty_m, "ping", 4) != 4) return "write to the master";
	usleep(20000);
	if (read(pty_s, buf, sizeof buf) != 4 || memcmp(buf, "ping", 4)) return "data no longer flows from the master to the slave";
	return NULL;
}

static void run_pty(void) {
	if ((pty_m = posix_openpt(O_RDWR | O_NOCTTY)) < 0 || grantpt(pty_m) || unlockpt(pty_m)) die("posix_openpt");
	snprintf(pty_name, sizeof pty_name, "%s", ptsname(pty_m));
	child = fork();
	if (child < 0) die("fork");
	if (child == 0) {
		if (setsid() < 0 || (pty_s = open(pty_name, O_RDWR)) < 0) die("setsid/open slave");
		struct termios t;
		struct winsize ws = { .ws_row = 33, .ws_col = 77 };
		tcgetattr(pty_s, &t);
		cfmakeraw(&t);
		if (tcsetattr(pty_s, TCSANOW, &t) || ioctl(pty_s, TIOCSWINSZ, &ws)) die("termios");
		check_loop(check_pty, NULL);
	}
	signal(SIGUSR1, forward);
	for (;;) pause();
}

static char *locked;

static const char *check_mlock(void) {
	FILE *f = fopen("/proc/self/smaps", "r");
	char line[512];
	int in = 0, lo = 0;
	while (f && fgets(line, sizeof line, f)) {
		unsigned long s, e;
		if (sscanf(line, "%lx-%lx ", &s, &e) == 2) in = s == (unsigned long)locked; /* a mapping's first line */
		if (in && !strncmp(line, "VmFlags:", 8)) lo = strstr(line, " lo") != NULL;
	}
	if (f) fclose(f);
	return lo ? NULL : "the mapping is no longer locked";
}

static int rmdir_fd = -1;

static void setup_rmdir(const char *dir) {
	char sub[4096];
	snprintf(sub, sizeof sub, "%s/sub", dir);
	if (mkdir(dir, 0700) || mkdir(sub, 0700) || (rmdir_fd = open(sub, O_DIRECTORY)) < 0 || rmdir(sub) || rmdir(dir)) die("rmdir");
}

static const char *check_rmdir(void) {
	struct stat st;
	if (fstat(rmdir_fd, &st) || !S_ISDIR(st.st_mode)) return "the fd is no longer a directory";
	return st.st_nlink ? "the directory is no longer removed" : NULL;
}

static int ns_fds[2] = { -1, -1 };
static const char *const ns_names[2] = { "/proc/self/ns/net", "/proc/self/ns/uts" };

static const char *check_nsfd(void) {
	for (int i = 0; i < 2; i++) {
		struct stat a, b;
		if (fstat(ns_fds[i], &a) || stat(ns_names[i], &b)) return "stat";
		if (a.st_ino != b.st_ino || a.st_dev != b.st_dev) return "an fd is not of the namespace the task is in";
	}
	return NULL;
}

#include <sys/sysmacros.h>
static int console_fd = -1;

static const char *check_console(void) {
	struct stat st;
	if (fstat(console_fd, &st) || !S_ISCHR(st.st_mode) || st.st_rdev != makedev(5, 1)) return "the fd is no longer the console";
	return NULL;
}

static const char *cg_dir;

static const char *check_cgroup(void) {
	/* DIR is ROOT/REL where ROOT is the v2 mount: /proc/self/cgroup says 0::REL. */
	char line[512], want[512];
	FILE *f = fopen("/proc/self/cgroup", "r");
	int found = 0;
	while (f && fgets(line, sizeof line, f)) {
		if (strncmp(line, "0::", 3)) continue;
		line[strcspn(line, "\n")] = 0;
		size_t n = strlen(line + 3), d = strlen(cg_dir);
		found = n > 1 && d >= n && !strcmp(cg_dir + d - n, line + 3);
	}
	if (f) fclose(f);
	if (!found) return "not in its cgroup";
	snprintf(want, sizeof want, "%s/cgroup.max.descendants", cg_dir);
	f = fopen(want, "r");
	if (!f || !fgets(line, sizeof line, f)) return "its cgroup has no cgroup.max.descendants";
	fclose(f);
	return atoi(line) == 5 ? NULL : "its cgroup.max.descendants is not 5";
}

static const char *mode;
static const char *verify(void *arg) {
	(void)arg;
	if (!strcmp(mode, "ambient")) return check_ambient();
	if (!strcmp(mode, "ghostmode")) return check_ghostmode();
	if (!strcmp(mode, "timerfd")) return check_timerfd();
	if (!strcmp(mode, "mapprot")) return check_mapprot();
	if (!strcmp(mode, "shmpriv")) return check_shmpriv();
	if (!strcmp(mode, "memfdexec")) return check_memfdexec();
	if (!strcmp(mode, "membarrier")) return check_membarrier();
	if (!strcmp(mode, "rseq")) return check_rseq();
	if (!strcmp(mode, "procfd")) return check_procfd();
	if (!strcmp(mode, "cgroup")) return check_cgroup();
	if (!strcmp(mode, "novdso")) return check_novdso();
	if (!strcmp(mode, "console")) return check_console();
	if (!strcmp(mode, "nsfd")) return check_nsfd();
	if (!strcmp(mode, "rmdir")) return check_rmdir();
	if (!strcmp(mode, "mlock")) return check_mlock();
	if (!strcmp(mode, "fownuid")) return check_fownuid();
	if (!strcmp(mode, "symlink")) return check_symlink();
	return "unknown mode";
}

int main(int argc, char **argv) {
	const char *file = NULL;
	int opt;
	while ((opt = getopt(argc, argv, "m:f:")) != -1) {
		if (opt == 'm') mode = optarg;
		else if (opt == 'f') file = optarg;
		else return 2;
	}
	if (!mode) return 2;
	if (!strcmp(mode, "ambient")) setup_ambient();
	else if (!strcmp(mode, "ghostmode") && file) setup_ghostmode(file);
	else if (!strcmp(mode, "fdshare") && file) run_fdshare(file);
	else if (!strcmp(mode, "pty")) run_pty();
	else if (!strcmp(mode, "timerfd")) setup_timerfd();
	else if (!strcmp(mode, "mapprot") && file) setup_mapprot(file);
	else if (!strcmp(mode, "shmpriv")) setup_shmpriv();
	else if (!strcmp(mode, "memfdexec")) setup_memfdexec();
	else if (!strcmp(mode, "membarrier")) {
		if (syscall(SYS_membarrier, MB_REGISTER_PRIVATE_EXPEDITED, 0, 0)) die("membarrier register");
	} else if (!strcmp(mode, "rseq")) setup_rseq();
	else if (!strcmp(mode, "procfd")) setup_procfd();
	else if (!strcmp(mode, "cgroup") && file) cg_dir = file;
	else if (!strcmp(mode, "novdso")) {
		if (!specials(1)) die("no [vdso]");
	}
	else if (!strcmp(mode, "fownuid")) setup_fownuid();
	else if (!strcmp(mode, "console") && file) {
		if (mknod(file, S_IFCHR | 0600, makedev(5, 1)) || (console_fd = open(file, O_RDONLY | O_NOCTTY)) < 0) die("console");
	}
	else if (!strcmp(mode, "nsfd")) {
		for (int i = 0; i < 2; i++)
			if ((ns_fds[i] = open(ns_names[i], O_RDONLY)) < 0) die("open ns");
	}
	else if (!strcmp(mode, "rmdir") && file) setup_rmdir(file);
	else if (!strcmp(mode, "mlock")) {
		locked = mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (locked == MAP_FAILED || mlock(locked, 4 * PAGE)) die("mlock");
		locked[0] = 1;
	}
	else if (!strcmp(mode, "symlink") && file) setup_symlink(file);
	else return 2;
	check_loop(verify, NULL);
}
