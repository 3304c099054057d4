/*
 * shmcount [huge]: counts in a SysV shared memory segment it keeps attached (key 0x4321, made
 * if absent; with "huge", 2 MiB of SHM_HUGETLB), and prints every interval what it sees:
 *
 *   i=N shm=M addr=A page=K   (M: the count kept in the segment, A: where it is attached,
 *                              K: the attach's page size in kB)
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <time.h>
#include <sys/ipc.h>
#include <sys/shm.h>
#include <string.h>
#include "smaps.h"

int main(int argc, char **argv)
{
	int huge = argc > 1 && !strcmp(argv[1], "huge");
	int id = shmget(0x4321, huge ? 2 << 20 : 4096, IPC_CREAT | 0600 | (huge ? SHM_HUGETLB : 0));
	long *p = id < 0 ? (void *)-1 : shmat(id, NULL, 0);
	if (p == (void *)-1) {
		perror("shm");
		return 1;
	}
	for (long i = 1;; i++) {
		p[0]++;
		printf("i=%ld shm=%ld addr=%p page=%d\n", i, p[0], (void *)p, page_kb_at(p));
		fflush(stdout);
		struct timespec ts = { 0, 100000000L };
		nanosleep(&ts, NULL);
	}
}
