/*
 * counter: the smallest useful workload. Prints "i=N" every interval and flushes.
 *
 *   counter [interval_ms [exit_at [exit_code]]]
 *
 * interval_ms defaults to 100. With exit_at > 0 it exits with exit_code
 * (default 7) after printing i=exit_at.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	long interval_ms = argc > 1 ? atol(argv[1]) : 100;
	long exit_at = argc > 2 ? atol(argv[2]) : 0;
	long exit_code = argc > 3 ? atol(argv[3]) : 7;

	printf("start pid=%d\n", (int)getpid());
	fflush(stdout);
	for (long i = 1;; i++) {
		printf("i=%ld\n", i);
		fflush(stdout);
		if (exit_at > 0 && i >= exit_at)
			return (int)exit_code;
		struct timespec ts = { interval_ms / 1000, (interval_ms % 1000) * 1000000L };
		while (nanosleep(&ts, &ts) != 0)
			;
	}
}
