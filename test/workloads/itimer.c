/*
 * A periodic ITIMER_REAL (every 5 ms) counting its SIGALRMs. A dump freezes the task for
 * longer than a period, so the timer fires meanwhile and shows no time left. The check wants
 * it still ticking: more SIGALRMs within 300 ms.
 */
#include <signal.h>
#include <stdio.h>
#include <sys/time.h>
#include <time.h>
#include "checkloop.h"

static volatile sig_atomic_t ticks;
static void on_alrm(int s) { (void)s; ticks++; }

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static const char *verify(void *arg)
{
	(void)arg;
	int before = ticks;
	for (double end = now() + 0.3; now() < end;) {
		struct timespec ts = { 0, 10000000L };
		nanosleep(&ts, NULL);
	}
	return ticks > before + 5 ? NULL : "ITIMER_REAL stopped ticking";
}

int main(void)
{
	struct sigaction sa = { 0 };
	sa.sa_handler = on_alrm;
	sa.sa_flags = SA_RESTART;
	sigaction(SIGALRM, &sa, NULL);
	struct itimerval tv = { { 0, 5000 }, { 0, 5000 } };
	if (setitimer(ITIMER_REAL, &tv, NULL)) { perror("setitimer"); return 1; }
	check_loop(verify, NULL);
}
