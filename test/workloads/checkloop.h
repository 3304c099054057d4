/*
 * The loop of workloads that check their own state after restore: "tick n=N" every 50 ms,
 * and on SIGUSR1 verify(arg) then "CHECK ok" or "CHECK fail: WHY".
 */
#include <signal.h>
#include <stdio.h>
#include <time.h>

static volatile sig_atomic_t checkloop_asked;
/* What a workload adds to "CHECK ok" (what it saw), empty by default. */
static char checkloop_note[128];
static void checkloop_on_usr1(int s) { (void)s; checkloop_asked = 1; }

static void check_loop(const char *(*verify)(void *), void *arg)
{
	signal(SIGUSR1, checkloop_on_usr1);
	for (long n = 1;; n++) {
		if (checkloop_asked) {
			checkloop_asked = 0;
			const char *why = verify(arg);
			if (why) printf("CHECK fail: %s\n", why);
			else if (checkloop_note[0]) printf("CHECK ok %s\n", checkloop_note);
			else printf("CHECK ok\n");
			fflush(stdout);
		}
		printf("tick n=%ld\n", n);
		fflush(stdout);
		struct timespec ts = { 0, 50000000L };
		nanosleep(&ts, NULL);
	}
}
