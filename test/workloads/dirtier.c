/*
 * dirtier: MIB MiB of anonymous memory, each page stamped with its index and a generation.
 * SIGUSR1 rewrites one page in eight (a different eighth each time) with the next generation
 * and prints "dirtied=N"; SIGUSR2 checks every word of every page and prints "verify=N ok" or
 * "verify=N BAD page=P". The generations live in the process's memory too. With "thp", the
 * memory is given to transparent huge pages (MADV_HUGEPAGE).
 *
 *   dirtier MIB [thp]
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
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

int main(int argc, char **argv)
{
	size_t pages = (size_t)atol(argc > 1 ? argv[1] : "16") * 256;
	uint64_t *mem = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	unsigned *gen = calloc(pages, sizeof(*gen));
	if (mem == MAP_FAILED || !gen)
		return 1;
	if (argc > 2 && !strcmp(argv[2], "thp") && madvise(mem, pages * PAGE, MADV_HUGEPAGE))
		return 1;
	for (size_t i = 0; i < pages; i++)
		stamp(mem + i * WORDS, i, 0);
	signal(SIGUSR1, on1);
	signal(SIGUSR2, on2);
	printf("ready pid=%d pages=%zu\n", (int)getpid(), pages);
	fflush(stdout);
	int done1 = 0, done2 = 0;
	for (;;) {
		while (done1 < usr1) {
			done1++;
			for (size_t i = (size_t)done1 % 8; i < pages; i += 8)
				stamp(mem + i * WORDS, i, ++gen[i]);
			printf("dirtied=%d\n", done1);
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
