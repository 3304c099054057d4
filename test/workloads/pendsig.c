/*
 * pendsig: signals that are pending, per thread and process-wide, when the
 * process is dumped, and must each be delivered exactly once later.
 *
 *   pendsig [-u]
 *
 * Two threads, main and a worker. Both block SIGUSR1 and SIGRTMIN from the
 * start. Once the worker runs, main queues to the process:
 *
 *   pthread_kill(worker, SIGUSR1)          private to the worker (SI_TKILL)
 *   sigqueue(self, SIGRTMIN, 77) and 78    process-wide, two queued instances
 *
 * and prints "ready pid=P worker=TID". Whoever runs the test adds a
 * process-wide SIGUSR1 with kill(2). On SIGHUP both threads unblock SIGUSR1
 * and SIGRTMIN; the handlers (SA_SIGINFO) record what arrives, and main
 * prints, every 50 ms after SIGHUP:
 *
 *   got usr1=M/W rt=V1,V2,... from=PID:CODE
 *
 *  M/W   SIGUSR1 deliveries on main / on the worker;
 *  rt    the sival_int of each SIGRTMIN, in order of delivery;
 *  from  si_pid and si_code of the SIGUSR1 that was not SI_TKILL (the kill(2)).
 *
 * -u: nothing is blocked and nothing is queued by the process itself: SIGUSR1
 * is handled as it comes (for a stopped process: when it is continued), and
 * main prints "got ..." every 50 ms from the start.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t usr1_main, usr1_worker, go;
static volatile int rt_vals[16], rt_n;
static volatile int from_pid = -1, from_code = -99;
static pid_t main_tid;
static volatile pid_t worker_tid;

static void on_usr1(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	if (gettid() == main_tid)
		usr1_main++;
	else
		usr1_worker++;
	if (si->si_code != SI_TKILL) {
		from_pid = si->si_pid;
		from_code = si->si_code;
	}
}

static void on_rt(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	if (rt_n < 16)
		rt_vals[rt_n++] = si->si_value.sival_int;
}

static void on_hup(int sig) { (void)sig; go = 1; }

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) != 0)
		;
}

static sigset_t watched;

static void *worker(void *arg)
{
	(void)arg;
	worker_tid = gettid();
	int unblocked = 0;
	for (;;) {
		if (go && !unblocked) {
			unblocked = 1;
			pthread_sigmask(SIG_UNBLOCK, &watched, NULL);
		}
		sleep_ms(20);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	int unblocked_mode = argc > 1 && strcmp(argv[1], "-u") == 0;
	main_tid = gettid();
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_usr1;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	sigaction(SIGUSR1, &sa, NULL);
	sa.sa_sigaction = on_rt;
	sigaction(SIGRTMIN, &sa, NULL);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_hup;
	sa.sa_flags = SA_RESTART;
	sigaction(SIGHUP, &sa, NULL);

	sigemptyset(&watched);
	sigaddset(&watched, SIGUSR1);
	sigaddset(&watched, SIGRTMIN);
	if (unblocked_mode)
		go = 1;
	else
		pthread_sigmask(SIG_BLOCK, &watched, NULL);
	pthread_t t;
	if (pthread_create(&t, NULL, worker, NULL) != 0)
		return 6;
	while (!worker_tid)
		sleep_ms(1);
	if (!unblocked_mode) {
		pthread_kill(t, SIGUSR1);
		union sigval v;
		v.sival_int = 77;
		sigqueue(getpid(), SIGRTMIN, v);
		v.sival_int = 78;
		sigqueue(getpid(), SIGRTMIN, v);
	}
	printf("ready pid=%d worker=%d\n", getpid(), worker_tid);
	fflush(stdout);

	int unblocked = unblocked_mode;
	for (;;) {
		if (go && !unblocked) {
			unblocked = 1;
			pthread_sigmask(SIG_UNBLOCK, &watched, NULL);
		}
		if (go) {
			char rts[16 * 12] = "";
			size_t at = 0;
			for (int k = 0; k < rt_n; k++)
				at += snprintf(rts + at, sizeof(rts) - at, "%s%d", k ? "," : "", rt_vals[k]);
			printf("got usr1=%d/%d rt=%s from=%d:%d\n", (int)usr1_main, (int)usr1_worker, rts, from_pid, from_code);
			fflush(stdout);
		}
		sleep_ms(50);
	}
}
