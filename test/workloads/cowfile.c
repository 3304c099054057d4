/*
 * cowfile: a private writable mapping of FILE (PAGES pages, FILE created with each page's
 * generation 0 words), every page then written over (CoW'd), so that the mapping holds
 * anonymous pages only. SIGUSR1 drops the even pages (MADV_DONTNEED: they read FILE's words
 * again) and writes the pages 4k+1 once more, then prints "dropped=N"; SIGUSR2 checks every
 * word of every page and prints "verify=N ok" or "verify=N BAD page=P".
 *
 *   cowfile FILE PAGES
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>
#include "stamped.h"

static uint64_t *mem;
static unsigned *gen;
static size_t pages;

static void drop(int n)
{
	(void)n;
	for (size_t i = 0; i < pages; i += 2) {
		if (madvise(mem + i * WORDS, PAGE, MADV_DONTNEED))
			exit(1);
		gen[i] = 0;
	}
	for (size_t i = 1; i < pages; i += 4)
		stamp(mem + i * WORDS, i, ++gen[i]);
}

int main(int argc, char **argv)
{
	if (argc < 3)
		return 2;
	pages = (size_t)atol(argv[2]);
	int fd = open(argv[1], O_RDWR | O_CREAT | O_TRUNC, 0600);
	static uint64_t buf[WORDS];
	gen = calloc(pages, sizeof(*gen));
	if (fd < 0 || !gen)
		return 1;
	for (size_t i = 0; i < pages; i++) {
		stamp(buf, i, 0);
		if (write(fd, buf, PAGE) != PAGE)
			return 1;
	}
	mem = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	if (mem == MAP_FAILED)
		return 1;
	close(fd);
	for (size_t i = 0; i < pages; i++)
		stamp(mem + i * WORDS, i, ++gen[i]);
	serve(mem, gen, pages, "dropped", drop);
}
