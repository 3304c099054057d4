/*
 * healcheck: threads whose own state a dump must leave exactly as it found it, checked by
 * themselves all the time. Each spinner thread holds a pattern in a vector register (ymm7 on
 * x86_64, v7 on arm64) through a tight loop and has its own signal mask and alternate signal
 * stack; the main thread sleeps in nanosleep (a syscall to restart) between its own checks.
 *
 *   ready pid=N threads=T
 *   i=N state=ok|BAD REASON
 *
 * BAD latches with the first thing found changed: "vector" (the register lost its pattern),
 * "mask" or "altstack" (with the thread's number), or "sleep" (nanosleep failed, e.g. EINTR).
 *
 * Options: -t SPINNER_THREADS (default 3).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static char bad[128];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static void fail(const char *what, int n)
{
	pthread_mutex_lock(&lock);
	if (!bad[0])
		snprintf(bad, sizeof bad, "%s%d", what, n);
	pthread_mutex_unlock(&lock);
}

static const uint8_t pattern[32] __attribute__((aligned(32))) = {
	0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xf0, 0x0f,
	0x1e, 0x2d, 0x3c, 0x4b, 0x5a, 0x69, 0x78, 0x87, 0x96, 0xa5, 0xb4, 0xc3, 0xd2, 0xe1, 0x01, 0x10,
};

/* Loads the pattern once and compares the register with it `rounds` times: 1 if it changed. */
static int spin(long rounds)
{
	int changed;
#if defined(__x86_64__)
	__asm__ volatile(
		"vmovdqa (%[p]), %%ymm7\n"
		"1:\n"
		"vpcmpeqb (%[p]), %%ymm7, %%ymm6\n"
		"vpmovmskb %%ymm6, %%eax\n"
		"cmp $-1, %%eax\n"
		"jne 2f\n"
		"dec %[n]\n"
		"jnz 1b\n"
		"xor %%eax, %%eax\n"
		"jmp 3f\n"
		"2: mov $1, %%eax\n"
		"3: vzeroupper\n"
		: "=a"(changed), [n] "+r"(rounds)
		: [p] "r"(pattern)
		: "xmm6", "xmm7", "cc", "memory");
#elif defined(__aarch64__)
	__asm__ volatile(
		"ld1 {v7.16b}, [%[p]]\n"
		"1:\n"
		"ld1 {v6.16b}, [%[p]]\n"
		"cmeq v5.16b, v6.16b, v7.16b\n"
		"uminv b4, v5.16b\n"
		"umov w9, v4.b[0]\n"
		"cmp w9, #255\n"
		"b.ne 2f\n"
		"subs %[n], %[n], #1\n"
		"b.ne 1b\n"
		"mov %w[c], #0\n"
		"b 3f\n"
		"2: mov %w[c], #1\n"
		"3:\n"
		: [c] "=r"(changed), [n] "+r"(rounds)
		: [p] "r"(pattern)
		: "x9", "v4", "v5", "v6", "v7", "cc", "memory");
#else
#error "x86_64 or aarch64 only"
#endif
	return changed;
}

/* Thread n's own mask and alternate stack, set by itself and checked against what it has. */
static void own_state(int n, sigset_t *mask, stack_t *ss)
{
	sigemptyset(mask);
	sigaddset(mask, SIGUSR1);
	sigaddset(mask, SIGRTMIN + n);
	pthread_sigmask(SIG_SETMASK, mask, NULL);
	ss->ss_size = 65536;
	ss->ss_sp = malloc(ss->ss_size);
	ss->ss_flags = 0;
	sigaltstack(ss, NULL);
}

static void check_state(int n, const sigset_t *mask, const stack_t *ss)
{
	sigset_t now;
	stack_t cur;
	pthread_sigmask(SIG_SETMASK, NULL, &now);
	for (int s = 1; s < 64; s++)
		if (sigismember(&now, s) != sigismember(mask, s))
			fail("mask", n);
	if (sigaltstack(NULL, &cur) || cur.ss_sp != ss->ss_sp || cur.ss_size != ss->ss_size || cur.ss_flags != 0)
		fail("altstack", n);
}

static void *spinner(void *arg)
{
	int n = (int)(intptr_t)arg;
	sigset_t mask;
	stack_t ss;
	own_state(n, &mask, &ss);
	for (;;) {
		if (spin(20000000))
			fail("vector", n);
		check_state(n, &mask, &ss);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	int threads = 3, opt;
	while ((opt = getopt(argc, argv, "t:")) != -1)
		if (opt == 't')
			threads = atoi(optarg);
	setvbuf(stdout, NULL, _IOLBF, 0);
	for (int i = 1; i <= threads; i++) {
		pthread_t t;
		pthread_create(&t, NULL, spinner, (void *)(intptr_t)i);
	}
	sigset_t mask;
	stack_t ss;
	own_state(0, &mask, &ss);
	printf("ready pid=%d threads=%d\n", getpid(), threads);
	for (long i = 0;; i++) {
		struct timespec d = {0, 20 * 1000 * 1000};
		if (nanosleep(&d, NULL))
			fail("sleep", errno);
		check_state(0, &mask, &ss);
		if (i % 5 == 0) {
			pthread_mutex_lock(&lock);
			printf("i=%ld state=%s%s\n", i, bad[0] ? "BAD " : "ok", bad);
			pthread_mutex_unlock(&lock);
		}
	}
}
