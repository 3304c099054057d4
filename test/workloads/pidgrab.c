/*
 * pidgrab: occupy a given PID with a sleeping child.
 *
 *   pidgrab PID [AFTER]
 *
 * Makes a child at exactly PID with clone3(set_tid) and prints
 * "grabbed pid=PID", or "lost pid=PID errno=E" if that fails (then exits 1).
 * With AFTER, it first spins until a process AFTER exists (e.g. the root of
 * a tree that is being restored) and grabs PID the moment it does. The child
 * sleeps in pause(); the parent waits for it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc < 2)
		return 2;
	pid_t want = atoi(argv[1]);
	pid_t after = argc > 2 ? atoi(argv[2]) : 0;
	if (after) {
		struct timespec t0, now;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		while (kill(after, 0) != 0) {
			clock_gettime(CLOCK_MONOTONIC, &now);
			if (now.tv_sec - t0.tv_sec > 60) {
				printf("timeout waiting for %d\n", after);
				return 3;
			}
		}
	}
	pid_t tid = want;
	struct clone_args args;
	memset(&args, 0, sizeof(args));
	args.exit_signal = SIGCHLD;
	args.set_tid = (uint64_t)(uintptr_t)&tid;
	args.set_tid_size = 1;
	long r = syscall(SYS_clone3, &args, sizeof(args));
	if (r < 0) {
		printf("lost pid=%d errno=%d\n", want, errno);
		fflush(stdout);
		return 1;
	}
	if (r == 0) {
		for (;;)
			pause();
	}
	printf("grabbed pid=%ld\n", r);
	fflush(stdout);
	for (;;) {
		int st;
		if (waitpid(r, &st, 0) == r)
			return 0;
	}
}
