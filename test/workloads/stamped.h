/*
 * Pages stamped with their index and a generation, checked word by word (dirtier, cowfile).
 * serve() runs the workload: SIGUSR1 calls `change` and prints "LABEL=N"; SIGUSR2 checks every
 * word of every page and prints "verify=N ok" or "verify=N BAD page=P".
 */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096
#define WORDS (PAGE / 8)

static volatile sig_atomic_t usr1, usr2;
static void on1(int s) { (void)s; usr1++; }
static void on2(int s) { (void)s; usr2++; }

static uint64_t word(size_t page, unsigned gen, size_t w)
{
	return ((uint64_t)page << 32) ^ ((uint64_t)gen << 20) ^ (w * 0x9e3779b97f4a7c15ull);
}

static void stamp(uint64_t *p, size_t page, unsigned gen)
{
	for (size_t w = 0; w < WORDS; w++)
		p[w] = word(page, gen, w);
}

static void serve(uint64_t *mem, const unsigned *gen, size_t pages, const char *label, void (*change)(int n))
{
	signal(SIGUSR1, on1);
	signal(SIGUSR2, on2);
	printf("ready pid=%d pages=%zu\n", (int)getpid(), pages);
	fflush(stdout);
	int done1 = 0, done2 = 0;
	for (;;) {
		while (done1 < usr1) {
			change(++done1);
			printf("%s=%d\n", label, done1);
			fflush(stdout);
		}
		while (done2 < usr2) {
			done2++;
			size_t bad = pages;
			for (size_t i = 0; i < pages && bad == pages; i++)
				for (size_t w = 0; w < WORDS; w++)
					if (mem[i * WORDS + w] != word(i, gen[i], w)) {
						bad = i;
						break;
					}
			if (bad == pages)
				printf("verify=%d ok\n", done2);
			else
				printf("verify=%d BAD page=%zu\n", done2, bad);
			fflush(stdout);
		}
		struct timespec ts = { 0, 20 * 1000000L };
		nanosleep(&ts, NULL);
	}
}
