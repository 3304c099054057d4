/*
 * cowtree: copy-on-write sharing across a tree.
 *
 *   cowtree [-n CHILDREN] [-s SHARED_MIB] [-c OWN_MIB]
 *
 * The parent maps SHARED_MIB (default 16) of private anonymous memory and
 * writes every page (a pattern that differs per page), then forks CHILDREN
 * (default 50). The children inherit those pages copy-on-write and never
 * write them; each maps OWN_MIB (default 1) of its own and writes every page.
 * So the unique memory is SHARED + CHILDREN * OWN MiB. The shared region has
 * PROT_NONE guard pages around it, so that it stays one VMA of its own, the
 * same in the parent and in every child. Once every child is
 * set up the parent prints "ready n=N" (N processes in all); then everybody
 * sleeps. On SIGUSR1 the parent checks its pages, and each child its own and
 * the inherited ones, and the parent prints "verify ok" or "verify BAD".
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define PAGE 4096UL

static void fill(uint64_t *p, size_t bytes, uint64_t seed)
{
	for (size_t k = 0; k < bytes / 8; k++)
		p[k] = seed ^ (k * 0x9E3779B97F4A7C15ULL);
}

static int check(const uint64_t *p, size_t bytes, uint64_t seed)
{
	for (size_t k = 0; k < bytes / 8; k++)
		if (p[k] != (seed ^ (k * 0x9E3779B97F4A7C15ULL)))
			return 0;
	return 1;
}

static volatile sig_atomic_t usr1;
static void on_usr1(int s) { (void)s; usr1++; }

int main(int argc, char **argv)
{
	int children = 50, opt;
	size_t shared_mib = 16, own_mib = 1;
	while ((opt = getopt(argc, argv, "n:s:c:")) != -1) {
		switch (opt) {
		case 'n': children = atoi(optarg); break;
		case 's': shared_mib = atol(optarg); break;
		case 'c': own_mib = atol(optarg); break;
		default: return 2;
		}
	}
	size_t shared_bytes = shared_mib << 20, own_bytes = own_mib << 20;
	/* PROT_NONE guard pages on both sides: a child's own mapping must not merge into this VMA */
	char *area = mmap(NULL, shared_bytes + 2 * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (area == MAP_FAILED)
		return 3;
	uint64_t *shared = (uint64_t *)(area + PAGE);
	if (mprotect(shared, shared_bytes, PROT_READ | PROT_WRITE) != 0)
		return 3;
	fill(shared, shared_bytes, 0x5555);

	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr1;
	sigaction(SIGUSR1, &sa, NULL);
	sigset_t block, old;
	sigemptyset(&block);
	sigaddset(&block, SIGUSR1);
	sigprocmask(SIG_BLOCK, &block, &old);

	int ready[2], result[2];
	if (pipe(ready) || pipe(result))
		return 5;
	pid_t *pids = calloc(children, sizeof(pid_t));
	for (int c = 0; c < children; c++) {
		pid_t p = fork();
		if (p < 0)
			return 4;
		if (p == 0) {
			close(ready[0]);
			close(result[0]);
			uint64_t *own = mmap(NULL, own_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
			if (own == MAP_FAILED)
				_exit(3);
			fill(own, own_bytes, 0x1000 + c);
			if (write(ready[1], "c", 1) != 1)
				_exit(3);
			for (int handled = 0;;) {
				sigsuspend(&old);
				while (handled < usr1) {
					handled++;
					int ok = check(own, own_bytes, 0x1000 + c) && check(shared, shared_bytes, 0x5555);
					if (write(result[1], ok ? "y" : "n", 1) != 1)
						_exit(3);
				}
			}
		}
		pids[c] = p;
	}
	close(ready[1]);
	close(result[1]);
	for (int got = 0; got < children;) {
		char buf[64];
		ssize_t n = read(ready[0], buf, sizeof(buf));
		if (n <= 0)
			return 6;
		got += (int)n;
	}
	printf("ready n=%d\n", children + 1);
	fflush(stdout);
	for (int handled = 0;;) {
		sigsuspend(&old);
		while (handled < usr1) {
			handled++;
			int ok = check(shared, shared_bytes, 0x5555);
			for (int c = 0; c < children; c++)
				kill(pids[c], SIGUSR1);
			for (int got = 0; got < children;) {
				char buf[64];
				ssize_t n = read(result[0], buf, sizeof(buf));
				if (n <= 0)
					return 6;
				for (ssize_t k = 0; k < n; k++)
					ok &= buf[k] == 'y';
				got += (int)n;
			}
			printf("verify %s\n", ok ? "ok" : "BAD");
			fflush(stdout);
		}
	}
}
