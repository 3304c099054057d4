/*
 * cloneshare: a parent and a child made with clone(2) that share kernel
 * objects without being threads of one process.
 *
 *   cloneshare -f    CLONE_FILES | CLONE_FS           (fd table and cwd/umask)
 *   cloneshare -s    CLONE_VM | CLONE_SIGHAND | CLONE_FILES | CLONE_FS
 *   cloneshare -g    CLONE_FILES | CLONE_FS, and the child clones a grandchild with
 *                    CLONE_FILES: three processes, one fd table
 *
 * The child uses raw system calls only (with -s it shares the parent's memory,
 * TLS and errno), prints "child pid=P" once and then "c=N" every 100 ms; the
 * parent prints "p=N" every 100 ms. Both write to fd 1.
 *
 * On SIGUSR1 the parent opens /dev/null as fd 100; the child, which shares
 * the fd table, then finds fd 100 valid and reports "c=N fd=100". With -g the
 * grandchild prints "grandchild pid=P", then "g=N" (and " fd=100") likewise.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define SHARED_FD 100
static volatile sig_atomic_t usr1;
static void on_usr1(int s) { (void)s; usr1 = 1; }

static void raw_sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	while (syscall(SYS_nanosleep, &ts, &ts) != 0)
		;
}

static int fmt(char *buf, const char *pre, long n, const char *mid, long m)
{
	/* a tiny formatter: pre n [mid m] '\n' (no stdio in the child) */
	int at = 0;
	for (const char *p = pre; *p; p++)
		buf[at++] = *p;
	char tmp[24];
	int k = 0;
	long v = n;
	do { tmp[k++] = '0' + (char)(v % 10); v /= 10; } while (v);
	while (k)
		buf[at++] = tmp[--k];
	if (mid) {
		for (const char *p = mid; *p; p++)
			buf[at++] = *p;
		v = m;
		do { tmp[k++] = '0' + (char)(v % 10); v /= 10; } while (v);
		while (k)
			buf[at++] = tmp[--k];
	}
	buf[at++] = '\n';
	return at;
}

static int loop_main(const char *hello, const char *tick)
{
	char buf[64];
	int len = fmt(buf, hello, syscall(SYS_getpid), NULL, 0);
	syscall(SYS_write, 1, buf, len);
	for (long n = 1;; n++) {
		/* with a shared fd table the parent's new fd is valid here too */
		int valid = syscall(SYS_fcntl, SHARED_FD, F_GETFD) >= 0;
		len = valid ? fmt(buf, tick, n, " fd=", SHARED_FD) : fmt(buf, tick, n, NULL, 0);
		syscall(SYS_write, 1, buf, len);
		raw_sleep_ms(100);
	}
	return 0;
}

static int grandchild_main(void *arg)
{
	(void)arg;
	return loop_main("grandchild pid=", "g=");
}

static int child_main(void *arg)
{
	if (arg) {
		/* not CLONE_VM: the child has its own copy of the heap */
		char *stack = malloc(256 * 1024);
		if (!stack || clone(grandchild_main, stack + 256 * 1024, CLONE_FILES | SIGCHLD, NULL) < 0)
			return 3;
	}
	return loop_main("child pid=", "c=");
}

int main(int argc, char **argv)
{
	int flags;
	void *grandchild = NULL;
	if (argc == 2 && strcmp(argv[1], "-f") == 0)
		flags = CLONE_FILES | CLONE_FS;
	else if (argc == 2 && strcmp(argv[1], "-g") == 0) {
		flags = CLONE_FILES | CLONE_FS;
		grandchild = argv;
	}
	else if (argc == 2 && strcmp(argv[1], "-s") == 0)
		flags = CLONE_VM | CLONE_SIGHAND | CLONE_FILES | CLONE_FS;
	else
		return 2;
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr1;
	sa.sa_flags = SA_RESTART;
	sigaction(SIGUSR1, &sa, NULL);
	size_t stack_size = 256 * 1024;
	char *stack = malloc(stack_size);
	printf("start pid=%d\n", getpid());
	fflush(stdout);
	pid_t c = clone(child_main, stack + stack_size, flags | SIGCHLD, grandchild);
	if (c < 0)
		return 3;
	for (long n = 1;; n++) {
		if (usr1 == 1) {
			usr1 = 2;
			int fd = open("/dev/null", O_RDONLY);
			if (fd < 0 || dup2(fd, SHARED_FD) != SHARED_FD)
				return 4;
			close(fd);
		}
		printf("p=%ld\n", n);
		fflush(stdout);
		raw_sleep_ms(100);
	}
}
