/*
 * shmcount: counts in a SysV shared memory segment it keeps attached (key 0x4321, made if
 * absent), and prints every interval what it sees:
 *
 *   i=N shm=M addr=A      (M: the count kept in the segment, A: where it is attached)
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <time.h>
#include <sys/ipc.h>
#include <sys/shm.h>

int main(void)
{
	int id = shmget(0x4321, 4096, IPC_CREAT | 0600);
	long *p = id < 0 ? (void *)-1 : shmat(id, NULL, 0);
	if (p == (void *)-1) {
		perror("shm");
		return 1;
	}
	for (long i = 1;; i++) {
		p[0]++;
		printf("i=%ld shm=%ld addr=%p\n", i, p[0], (void *)p);
		fflush(stdout);
		struct timespec ts = { 0, 100000000L };
		nanosleep(&ts, NULL);
	}
}
