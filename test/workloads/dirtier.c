/*
 * dirtier: MIB MiB of anonymous memory, each page stamped with its index and a generation.
 * SIGUSR1 rewrites one page in eight (a different eighth each time) with the next generation
 * and prints "dirtied=N"; SIGUSR2 checks every word of every page and prints "verify=N ok" or
 * "verify=N BAD page=P". The generations live in the process's memory too. With "thp", the
 * memory is given to transparent huge pages (MADV_HUGEPAGE); with "pipe", the kernel writes
 * the dirtied pages (read() from a pipe).
 *
 *   dirtier MIB [thp|pipe]
 */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include "stamped.h"

static uint64_t *mem;
static unsigned *gen;
static size_t pages;
static int through[2] = { -1, -1 };

static void dirty(int n)
{
	static uint64_t page[WORDS];
	for (size_t i = (size_t)n % 8; i < pages; i += 8) {
		if (through[0] < 0) {
			stamp(mem + i * WORDS, i, ++gen[i]);
			continue;
		}
		/* The kernel writes the page: read() from a pipe. */
		stamp(page, i, ++gen[i]);
		if (write(through[1], page, PAGE) != PAGE || read(through[0], mem + i * WORDS, PAGE) != PAGE)
			exit(1);
	}
}

int main(int argc, char **argv)
{
	pages = (size_t)atol(argc > 1 ? argv[1] : "16") * 256;
	mem = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	gen = calloc(pages, sizeof(*gen));
	if (mem == MAP_FAILED || !gen)
		return 1;
	if (argc > 2 && !strcmp(argv[2], "thp") && madvise(mem, pages * PAGE, MADV_HUGEPAGE))
		return 1;
	if (argc > 2 && !strcmp(argv[2], "pipe") && pipe(through))
		return 1;
	for (size_t i = 0; i < pages; i++)
		stamp(mem + i * WORDS, i, 0);
	serve(mem, gen, pages, "dirtied", dirty);
}
