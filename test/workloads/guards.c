/*
 * Guard regions (MADV_GUARD_INSTALL): 16 private anonymous pages, each filled with its own
 * byte, with guards on pages 3-4 and 10. The check reads pagemap's guard bit for every page,
 * makes sure touching a guard page still faults and every other page still holds its byte.
 * With "fork", a child (printed as "child PID") inherits all that, then removes the guard on
 * page 10 (refilled) and guards page 12 instead: guards differ between parent and child.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include "checkloop.h"

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#define MADV_GUARD_REMOVE 103
#endif
#define NPAGES 16
#define PM_GUARD (1ULL << 58)

static char *area;
static long psz;
static sigjmp_buf jb;
static char why[160];

static void on_segv(int s) { (void)s; siglongjmp(jb, 1); }

static int child;
static int is_guard(int i) { return i == 3 || i == 4 || i == (child ? 12 : 10); }

static int faults(volatile char *p)
{
	struct sigaction sa = { 0 }, old;
	sa.sa_handler = on_segv;
	sigaction(SIGSEGV, &sa, &old);
	int hit = 0;
	if (sigsetjmp(jb, 1)) hit = 1;
	else (void)*p;
	sigaction(SIGSEGV, &old, NULL);
	return hit;
}

static const char *verify(void *arg)
{
	(void)arg;
	int fd = open("/proc/self/pagemap", O_RDONLY);
	if (fd < 0) return "open pagemap";
	for (int i = 0; i < NPAGES; i++) {
		uint64_t e = 0;
		if (pread(fd, &e, 8, ((uintptr_t)area / psz + i) * 8) != 8) { close(fd); return "read pagemap"; }
		int g = (e & PM_GUARD) != 0;
		if (g != is_guard(i)) {
			snprintf(why, sizeof why, "page %d: guard bit %d, want %d", i, g, is_guard(i));
			close(fd);
			return why;
		}
		if (is_guard(i)) {
			if (!faults(area + i * psz)) { snprintf(why, sizeof why, "page %d: no fault", i); close(fd); return why; }
		} else if (area[i * psz] != (char)('a' + i) || area[i * psz + psz - 1] != (char)('a' + i)) {
			snprintf(why, sizeof why, "page %d: holds %d", i, area[i * psz]);
			close(fd);
			return why;
		}
	}
	close(fd);
	return NULL;
}

int main(int argc, char **argv)
{
	psz = sysconf(_SC_PAGESIZE);
	area = mmap(NULL, NPAGES * psz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (area == MAP_FAILED) { perror("mmap"); return 1; }
	for (int i = 0; i < NPAGES; i++) memset(area + i * psz, 'a' + i, psz);
	if (madvise(area + 3 * psz, 2 * psz, MADV_GUARD_INSTALL) || madvise(area + 10 * psz, psz, MADV_GUARD_INSTALL)) {
		perror("madvise(MADV_GUARD_INSTALL)");
		return 1;
	}
	if (argc > 1 && !strcmp(argv[1], "fork")) {
		pid_t p = fork();
		if (p < 0) { perror("fork"); return 1; }
		if (p == 0) {
			child = 1;
			if (madvise(area + 10 * psz, psz, MADV_GUARD_REMOVE) || madvise(area + 12 * psz, psz, MADV_GUARD_INSTALL)) {
				perror("madvise in the child");
				return 1;
			}
			memset(area + 10 * psz, 'a' + 10, psz);
		} else {
			printf("child %d\n", p);
			fflush(stdout);
		}
	}
	const char *w = verify(NULL);
	if (w) { fprintf(stderr, "before dump: %s\n", w); return 1; }
	check_loop(verify, NULL);
}
