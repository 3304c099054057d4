/*
 * cowfile: a private writable mapping of FILE (PAGES pages, FILE created with each page's
 * own words), every page then written over (CoW'd), so that the mapping holds anonymous
 * pages only. SIGUSR1 drops the even pages (MADV_DONTNEED: they read FILE's words again)
 * and writes the pages 4k+1 once more, then prints "dropped=N"; SIGUSR2 checks every word
 * of every page and prints "verify=N ok" or "verify=N BAD page=P".
 *
 *   cowfile FILE PAGES
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096
#define WORDS (PAGE / 8)

static volatile sig_atomic_t usr1, usr2;
static void on1(int s) { (void)s; usr1++; }
static void on2(int s) { (void)s; usr2++; }

/* gen 0 is the file's word, every later one a write of the process's. */
static uint64_t word(size_t page, unsigned gen, size_t w)
{
	return ((uint64_t)page << 32) ^ ((uint64_t)gen << 20) ^ (w * 0x9e3779b97f4a7c15ull) ^ 0x5a5a;
}

static void stamp(uint64_t *p, size_t page, unsigned gen)
{
	for (size_t w = 0; w < WORDS; w++)
		p[w] = word(page, gen, w);
}

int main(int argc, char **argv)
{
	if (argc < 3)
		return 2;
	size_t pages = (size_t)atol(argv[2]);
	int fd = open(argv[1], O_RDWR | O_CREAT | O_TRUNC, 0600);
	uint64_t buf[WORDS];
	unsigned *gen = calloc(pages, sizeof(*gen));
	if (fd < 0 || !gen)
		return 1;
	for (size_t i = 0; i < pages; i++) {
		stamp(buf, i, 0);
		if (write(fd, buf, PAGE) != PAGE)
			return 1;
	}
	uint64_t *mem = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	if (mem == MAP_FAILED)
		return 1;
	close(fd);
	for (size_t i = 0; i < pages; i++)
		stamp(mem + i * WORDS, i, ++gen[i]);
	signal(SIGUSR1, on1);
	signal(SIGUSR2, on2);
	printf("ready pid=%d pages=%zu\n", (int)getpid(), pages);
	fflush(stdout);
	int done1 = 0, done2 = 0;
	for (;;) {
		while (done1 < usr1) {
			done1++;
			for (size_t i = 0; i < pages; i += 2) {
				if (madvise(mem + i * WORDS, PAGE, MADV_DONTNEED))
					return 1;
				gen[i] = 0;
			}
			for (size_t i = 1; i < pages; i += 4)
				stamp(mem + i * WORDS, i, ++gen[i]);
			printf("dropped=%d\n", done1);
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
