/*
 * cgns: a counter in a cgroup namespace of its own, rooted at the cgroups given.
 *
 *   cgns CGROUP_DIR...
 *
 * Joins each cgroup (writes 0 to its cgroup.procs), unshares its cgroup namespace there,
 * then prints "i=N" every 50 ms. The test moves it further down from outside.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	char path[4096];

	for (int i = 1; i < argc; i++) {
		snprintf(path, sizeof(path), "%s/cgroup.procs", argv[i]);
		int fd = open(path, O_WRONLY);
		if (fd < 0 || write(fd, "0", 1) != 1) {
			perror(path);
			return 1;
		}
		close(fd);
	}
	if (unshare(CLONE_NEWCGROUP)) {
		perror("unshare");
		return 1;
	}
	printf("start pid=%d\n", (int)getpid());
	fflush(stdout);
	for (long i = 1;; i++) {
		printf("i=%ld\n", i);
		fflush(stdout);
		struct timespec ts = { 0, 50 * 1000000L };
		while (nanosleep(&ts, &ts) != 0)
			;
	}
}
