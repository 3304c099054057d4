/*
 * sharer: a parent and a child that share things.
 *
 *   sharer -f FILE [-m] [-M] [-i MS]
 *
 * Always: FILE is opened once (O_WRONLY|O_CREAT|O_TRUNC, no O_APPEND) before
 * the fork, so both write through one open file description and one offset.
 * Each process writes one line per interval to it with write(2):
 *
 *   P n=N\n   (parent)      C n=N\n   (child)
 *
 * With a shared offset the file is a clean interleaving of both sequences;
 * with two offsets the writers overwrite each other.
 *
 * -m  a MAP_SHARED|MAP_ANONYMOUS page: each process stores its n in its own
 *     slot and reads the other's;
 * -M  the same through a memfd (MAP_SHARED of a memfd, the fd kept open).
 *
 * Each process also prints to stdout, per interval:
 *
 *   P n=N peer=M [mpeer=K]      C n=N peer=M [mpeer=K]
 *
 * where peer is the other's n as seen in the -m page and mpeer in the -M
 * memfd page (-1 when the option is off).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) != 0)
		;
}

int main(int argc, char **argv)
{
	const char *file = NULL;
	int anon = 0, memfd = 0, opt;
	long interval = 50;
	while ((opt = getopt(argc, argv, "f:mMi:")) != -1) {
		switch (opt) {
		case 'f': file = optarg; break;
		case 'm': anon = 1; break;
		case 'M': memfd = 1; break;
		case 'i': interval = atol(optarg); break;
		default: return 2;
		}
	}
	if (!file)
		return 2;
	int fd = open(file, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		return 3;
	volatile long *shm = NULL, *mfd = NULL;
	if (anon) {
		shm = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
		if (shm == MAP_FAILED)
			return 4;
		shm[0] = shm[1] = 0;
	}
	if (memfd) {
		int m = memfd_create("sharer", 0);
		if (m < 0 || ftruncate(m, 4096) != 0)
			return 4;
		mfd = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, m, 0);
		if (mfd == MAP_FAILED)
			return 4;
		mfd[0] = mfd[1] = 0;
	}
	printf("start pid=%d\n", getpid());
	fflush(stdout);
	pid_t child = fork();
	if (child < 0)
		return 5;
	int me = child == 0; /* slot: 0 parent, 1 child */
	char tag = me ? 'C' : 'P';
	for (long n = 1;; n++) {
		char line[64];
		int len = snprintf(line, sizeof(line), "%c n=%ld\n", tag, n);
		if (write(fd, line, len) != len)
			return 6;
		long peer = -1, mpeer = -1;
		if (shm) {
			shm[me] = n;
			peer = shm[!me];
		}
		if (mfd) {
			mfd[me] = n;
			mpeer = mfd[!me];
		}
		printf("%c n=%ld peer=%ld mpeer=%ld\n", tag, n, peer, mpeer);
		fflush(stdout);
		sleep_ms(interval);
	}
}
