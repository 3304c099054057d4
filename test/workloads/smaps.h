/* VmFlags of the VMA holding an address, from /proc/self/smaps: for workloads that check them. */
#include <stdio.h>
#include <string.h>

/* 1 when the VmFlags of the VMA at addr has the two-letter flag, 0 when not, -1 without that VMA. */
static inline int vmflag_at(void *addr, const char *flag)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	char line[512], tok[8];
	int in = 0, r = -1;
	snprintf(tok, sizeof tok, " %s", flag);
	while (f && fgets(line, sizeof line, f)) {
		unsigned long s, e;
		/* A VMA's first line starts with its address in lower-case hex; field names are capitalised. */
		if (((line[0] >= '0' && line[0] <= '9') || (line[0] >= 'a' && line[0] <= 'f')) && sscanf(line, "%lx-%lx ", &s, &e) == 2) {
			in = (unsigned long)addr >= s && (unsigned long)addr < e;
			continue;
		}
		if (in && !strncmp(line, "VmFlags:", 8)) {
			r = strstr(line, tok) != NULL;
			break;
		}
	}
	if (f) fclose(f);
	return r;
}

/* KernelPageSize (kB) of the VMA at addr, or -1 without that VMA. */
static inline int page_kb_at(void *addr)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	char line[512];
	int in = 0, r = -1;
	while (f && fgets(line, sizeof line, f)) {
		unsigned long s, e;
		if (((line[0] >= '0' && line[0] <= '9') || (line[0] >= 'a' && line[0] <= 'f')) && sscanf(line, "%lx-%lx ", &s, &e) == 2) {
			in = (unsigned long)addr >= s && (unsigned long)addr < e;
			continue;
		}
		if (in && sscanf(line, "KernelPageSize: %d kB", &r) == 1) break;
	}
	if (f) fclose(f);
	return r;
}
