/*
 * Hugetlb memory: 4 MiB MAP_SHARED|MAP_HUGETLB, 4 MiB MAP_PRIVATE|MAP_HUGETLB and a 4 MiB
 * MFD_HUGETLB memfd, each with a byte pattern at its first and last 4 KiB. A forked child
 * maps the same shared memory and memfd: a write by one is seen by the other. The check
 * wants the data and the mappings' devices (the kernel's hugetlbfs); the parent's check
 * counts into the shared memory and the memfd, the child's says what it sees there
 * ("CHECK ok seen N N").
 * Prints "child PID" and "skip" when the kernel has no free huge pages.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>
#include "checkloop.h"

#define LEN (4UL << 20)
static char *shared, *priv, *memfd;
static dev_t devs[3];
static int child;
static char why[200];

static dev_t dev_of(void *addr)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	unsigned long s, e;
	unsigned maj, min;
	dev_t d = (dev_t)-1;
	while (f && fgets(line, sizeof line, f))
		if (sscanf(line, "%lx-%lx %*s %*s %x:%x", &s, &e, &maj, &min) == 4 && (unsigned long)addr >= s && (unsigned long)addr < e) {
			d = makedev(maj, min);
			break;
		}
	if (f) fclose(f);
	return d;
}

static const char *verify(void *arg)
{
	(void)arg;
	char *m[3] = { shared, priv, memfd };
	for (int i = 0; i < 3; i++) {
		char want = (char)('a' + i + (i == 1 && child ? 10 : 0));
		if (m[i][0] != want || m[i][LEN - 1] != want) {
			snprintf(why, sizeof why, "mapping %d holds %d/%d, want %d", i, m[i][0], m[i][LEN - 1], want);
			return why;
		}
		if (dev_of(m[i]) != devs[i]) {
			snprintf(why, sizeof why, "mapping %d: device changed", i);
			return why;
		}
	}
	if (!child) {
		shared[4096] = (char)(shared[4096] + 1);
		memfd[4096] = (char)(memfd[4096] + 1);
	} else
		snprintf(checkloop_note, sizeof checkloop_note, "seen %d %d", shared[4096], memfd[4096]);
	return NULL;
}

int main(void)
{
	shared = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
	priv = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
	int fd = memfd_create("huge", MFD_HUGETLB);
	if (shared == MAP_FAILED || priv == MAP_FAILED || fd < 0 || ftruncate(fd, LEN)) {
		printf("skip\n");
		fflush(stdout);
		check_loop(verify, NULL);
	}
	memfd = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (memfd == MAP_FAILED) { perror("mmap memfd"); return 1; }
	close(fd);
	char *m[3] = { shared, priv, memfd };
	for (int i = 0; i < 3; i++) {
		memset(m[i], 'a' + i, 4096);
		memset(m[i] + LEN - 4096, 'a' + i, 4096);
		devs[i] = dev_of(m[i]);
	}
	pid_t p = fork();
	if (p < 0) { perror("fork"); return 1; }
	if (p == 0) {
		child = 1;
		/* The child's private copy differs from its parent's. */
		priv[0] = priv[LEN - 1] = (char)('b' + 10);
	} else {
		printf("child %d\n", p);
		fflush(stdout);
	}
	check_loop(verify, NULL);
}
