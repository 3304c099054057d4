/*
 * MAP_DROPPABLE memory (glibc keeps its vgetrandom state there): 4 pages, written, printed as
 * "droppable 0xADDR". The check wants the VMA still droppable ('dp' in smaps) and each page
 * holding its byte or dropped (zero), never anything else.
 */
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include "checkloop.h"
#include "smaps.h"

#ifndef MAP_DROPPABLE
#define MAP_DROPPABLE 0x08
#endif

static char *area;
static long psz;

static const char *verify(void *arg)
{
	(void)arg;
	for (int i = 0; i < 4; i++)
		if (area[i * psz] != (char)('a' + i) && area[i * psz] != 0) return "a page holds something else";
	if (vmflag_at(area, "dp") != 1) return "the memory is not droppable";
	return NULL;
}

int main(void)
{
	psz = sysconf(_SC_PAGESIZE);
	area = mmap(NULL, 4 * psz, PROT_READ | PROT_WRITE, MAP_DROPPABLE | MAP_ANONYMOUS, -1, 0);
	if (area == MAP_FAILED) { perror("mmap(MAP_DROPPABLE)"); return 1; }
	for (int i = 0; i < 4; i++) memset(area + i * psz, 'a' + i, psz);
	printf("droppable %p\n", (void *)area);
	fflush(stdout);
	check_loop(verify, NULL);
}
