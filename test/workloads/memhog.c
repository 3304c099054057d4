/*
 * memhog: touches MIB MiB of anonymous memory with a pattern, prints "ready",
 * then waits. Each SIGUSR1 makes it re-verify every word and print
 * "verify=N ok" or "verify=N BAD" (N counts the checks).
 *
 *   memhog MIB [interval_ms [count]]
 *
 * While waiting it prints nothing, so its only writes after "ready" are the
 * verify lines. interval_ms (default 50) is how often it looks for the signal.
 * With count 1 it also prints "i=N" every interval_ms, and "sleep=BAD errno=E"
 * when its sleep ends in an error other than EINTR (a syscall restart gone wrong).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t usr1_count;

static void on_usr1(int sig)
{
	(void)sig;
	usr1_count++;
}

static inline uint64_t splitmix64(uint64_t x)
{
	x += 0x9E3779B97F4A7C15ULL;
	x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
	x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
	return x ^ (x >> 31);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s MIB [interval_ms [count]]\n", argv[0]);
		return 2;
	}
	size_t mib = strtoul(argv[1], NULL, 10);
	long interval_ms = argc > 2 ? atol(argv[2]) : 50;
	int count = argc > 3 && atoi(argv[3]);
	size_t words = mib * 1024 * 1024 / sizeof(uint64_t);

	uint64_t *mem = mmap(NULL, words * sizeof(uint64_t), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED) {
		perror("mmap");
		return 2;
	}
	for (size_t k = 0; k < words; k++)
		mem[k] = splitmix64(k);

	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr1;
	sa.sa_flags = SA_RESTART;
	sigaction(SIGUSR1, &sa, NULL);

	printf("ready pid=%d mib=%zu addr=%p\n", (int)getpid(), mib, (void *)mem);
	fflush(stdout);

	int seen = 0;
	for (long i = 1;; i++) {
		if (count) {
			printf("i=%ld\n", i);
			fflush(stdout);
		}
		if (usr1_count != seen) {
			seen = usr1_count;
			size_t bad = 0;
			for (size_t k = 0; k < words; k++)
				bad += mem[k] != splitmix64(k);
			printf("verify=%d %s\n", seen, bad ? "BAD" : "ok");
			if (bad)
				fprintf(stderr, "memhog: %zu words differ\n", bad);
			fflush(stdout);
		}
		struct timespec ts = { interval_ms / 1000, (interval_ms % 1000) * 1000000L };
		while (nanosleep(&ts, &ts) != 0) {
			if (errno != EINTR) {
				printf("sleep=BAD errno=%d\n", errno);
				fflush(stdout);
				break;
			}
		}
	}
}
