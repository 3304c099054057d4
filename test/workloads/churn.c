/*
 * churn: a tree whose tasks come and go all the time, to dump while it changes.
 *
 * The root starts two long-lived children (they wait in pause()) and a thread
 * that creates short-lived threads without end. Its main loop forks
 * short-lived children, each of which forks a short-lived grandchild, exits
 * after a moment and is reaped by the root. Every 100 ms the root prints
 *
 *   i=N forks=F threads=T
 *
 * (counts of short-lived children and threads so far), and "stable a=PID b=PID"
 * once at start.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile long nthreads;

static void sleep_us(long us)
{
	struct timespec ts = { us / 1000000, (us % 1000000) * 1000L };
	while (nanosleep(&ts, &ts) != 0)
		;
}

static void *short_thread(void *arg)
{
	(void)arg;
	sleep_us(500);
	return NULL;
}

static void *thread_maker(void *arg)
{
	(void)arg;
	for (;;) {
		pthread_t t;
		if (pthread_create(&t, NULL, short_thread, NULL) == 0) {
			pthread_join(t, NULL);
			nthreads++;
		}
		sleep_us(200);
	}
	return NULL;
}

static long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

int main(void)
{
	pid_t a = fork();
	if (a == 0)
		for (;;)
			pause();
	pid_t b = fork();
	if (b == 0)
		for (;;)
			pause();
	printf("stable a=%d b=%d\n", a, b);
	fflush(stdout);
	pthread_t t;
	if (pthread_create(&t, NULL, thread_maker, NULL) != 0)
		return 6;
	long forks = 0, next = now_ms() + 100;
	for (long i = 1;;) {
		pid_t c = fork();
		if (c == 0) {
			pid_t g = fork();
			if (g == 0) {
				sleep_us(300);
				_exit(0);
			}
			sleep_us(700);
			waitpid(g, NULL, 0);
			_exit(0);
		}
		if (c > 0)
			forks++;
		/* reap whatever has ended, without blocking */
		while (waitpid(-1, NULL, WNOHANG) > 0)
			;
		sleep_us(300);
		if (now_ms() >= next) {
			printf("i=%ld forks=%ld threads=%ld\n", i++, forks, nthreads);
			fflush(stdout);
			next += 100;
		}
	}
}
