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

static char *area;
static long psz;
static char why[200];
static int future;

/* VmFlags of the VMA at addr has "lo": 1, no: 0, not found: -1. */
static int locked_at(void *addr)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	char line[512];
	int in = 0, r = -1;
	while (f && fgets(line, sizeof line, f)) {
		unsigned long s, e;
		/* A VMA's first line starts with its address in lower-case hex; field names are capitalised. */
		if (((line[0] >= '0' && line[0] <= '9') || (line[0] >= 'a' && line[0] <= 'f')) && sscanf(line, "%lx-%lx ", &s, &e) == 2) {
			in = (unsigned long)addr >= s && (unsigned long)addr < e;
			continue;
		}
		if (in && !strncmp(line, "VmFlags:", 8)) {
			r = strstr(line, " lo") != NULL;
			break;
		}
	}
	if (f) fclose(f);
	return r;
}

static const char *verify(void *arg)
{
	(void)arg;
	for (int i = 0; i < 16; i++)
		if (area[i * psz] != (char)('A' + i)) {
			snprintf(why, sizeof why, "page %d holds %d", i, area[i * psz]);
			return why;
		}
	if (future) return NULL;
	if (locked_at(area) != 1) return "the locked pages are not locked";
	if (locked_at(area + 8 * psz) != 0) return "the unlocked pages are locked";
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
