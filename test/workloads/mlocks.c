/*
 * Locked memory. "lock": 8 pages filled and mlock'ed, next to 8 unlocked ones; the check
 * wants the locked VMA locked again ('lo' in smaps, VmLck 32 kB) with its data, the other not.
 * "future": mlockall(MCL_CURRENT | MCL_FUTURE), which criu-ts refuses to dump.
 */
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include "checkloop.h"
#include "smaps.h"

static char *area;
static long psz;
static char why[200];
static int future;

/* VmFlags of the VMA at addr has "lo": 1, no: 0, not found: -1. */
static const char *verify(void *arg)
{
	(void)arg;
	for (int i = 0; i < 16; i++)
		if (area[i * psz] != (char)('A' + i)) {
			snprintf(why, sizeof why, "page %d holds %d", i, area[i * psz]);
			return why;
		}
	if (future) return NULL;
	if (vmflag_at(area, "lo") != 1) return "the locked pages are not locked";
	if (vmflag_at(area + 8 * psz, "lo") != 0) return "the unlocked pages are locked";
	return NULL;
}

int main(int argc, char **argv)
{
	psz = sysconf(_SC_PAGESIZE);
	area = mmap(NULL, 16 * psz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (area == MAP_FAILED) { perror("mmap"); return 1; }
	for (int i = 0; i < 16; i++) memset(area + i * psz, 'A' + i, psz);
	if (argc > 1 && !strcmp(argv[1], "future")) {
		if (mlockall(MCL_CURRENT | MCL_FUTURE)) { perror("mlockall"); return 1; }
		future = 1;
		check_loop(verify, NULL);
	}
	if (mlock(area, 8 * psz)) { perror("mlock"); return 1; }
	const char *w = verify(NULL);
	if (w) { fprintf(stderr, "before dump: %s\n", w); return 1; }
	check_loop(verify, NULL);
}
