/*
 * threads: a multi-threaded workload. N threads (main included) each count
 * with their own __thread counter, each with its own signal mask and its own
 * sigaltstack; main prints one line per interval and flushes:
 *
 *   i=N tls=ok mask=ok alt=ok c=C0,C1,...,Cn-1
 *
 *  i     main's counter (consecutive from 1);
 *  tls   every thread's __thread counter equals its base (1000 * k) plus the
 *        count it keeps on its own stack;
 *  mask  every thread's blocked set (pthread_sigmask) is still the one it set:
 *        {SIGUSR2, SIGRTMIN+k} for thread k, plus SIGUSR1 for k > 0;
 *  alt   every thread's sigaltstack is still its own;
 *  c     each thread's count so far (from its __thread counter).
 *
 * At start each thread prints "thread k tid=T". Every third worker (k % 3 == 2)
 * names itself "worker-k"; the others keep the program's name.
 *
 * -b adds two threads that block: "cond" waits in pthread_cond_wait and
 * "reader" in read() on a pipe. A SIGUSR1 (handled by main, the only thread
 * that does not block it) makes main bump a generation, broadcast the condvar
 * and write "gen=G\n" to the pipe; the two report:
 *
 *   cond woke gen=G
 *   read got=gen=G
 *
 * Options: -n N threads (default 8), -i MS interval (default 100), -b.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define MAXT 64
#define ALT_SIZE (64 * 1024)

static int nthreads = 8;
static long interval_ms = 100;

static __thread unsigned long tls_counter;

static volatile unsigned long counts[MAXT];
static volatile int tls_bad[MAXT], mask_bad[MAXT], alt_bad[MAXT];
static pthread_barrier_t started;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int gen;
static int wake_pipe[2];
static volatile sig_atomic_t usr1;

static void on_usr1(int sig)
{
	(void)sig;
	usr1++;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) != 0)
		;
}

static void thread_mask(int k, sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGUSR2);
	sigaddset(set, SIGRTMIN + k);
	if (k > 0)
		sigaddset(set, SIGUSR1);
}

/* One counting step of thread k; `own` is the count kept on the thread's stack. */
static void step(int k, unsigned long *own, const sigset_t *want, void *alt)
{
	tls_counter++;
	(*own)++;
	if (tls_counter != 1000UL * k + *own)
		tls_bad[k] = 1;
	sigset_t cur;
	pthread_sigmask(SIG_BLOCK, NULL, &cur);
	for (int s = 1; s < 64; s++)
		if (s != SIGKILL && s != SIGSTOP && sigismember(&cur, s) != sigismember(want, s))
			mask_bad[k] = 1;
	stack_t ss;
	if (sigaltstack(NULL, &ss) != 0 || ss.ss_sp != alt || ss.ss_size != ALT_SIZE)
		alt_bad[k] = 1;
	counts[k] = tls_counter - 1000UL * k;
}

static void *setup_thread(int k, sigset_t *want)
{
	tls_counter = 1000UL * k;
	thread_mask(k, want);
	pthread_sigmask(SIG_SETMASK, want, NULL);
	void *alt = malloc(ALT_SIZE);
	stack_t ss = { .ss_sp = alt, .ss_size = ALT_SIZE, .ss_flags = 0 };
	sigaltstack(&ss, NULL);
	if (k % 3 == 2) {
		char name[16];
		snprintf(name, sizeof name, "worker-%d", k);
		pthread_setname_np(pthread_self(), name);
	}
	printf("thread %d tid=%d\n", k, (int)gettid());
	fflush(stdout);
	return alt;
}

static void *worker(void *arg)
{
	int k = (int)(long)arg;
	sigset_t want;
	void *alt = setup_thread(k, &want);
	unsigned long own = 0;
	pthread_barrier_wait(&started);
	for (;;) {
		step(k, &own, &want, alt);
		sleep_ms(interval_ms);
	}
	return NULL;
}

static void block_all_but_fatal(void)
{
	sigset_t set;
	sigfillset(&set);
	pthread_sigmask(SIG_SETMASK, &set, NULL);
}

static void *cond_thread(void *arg)
{
	(void)arg;
	block_all_but_fatal();
	printf("cond tid=%d\n", (int)gettid());
	fflush(stdout);
	pthread_mutex_lock(&mu);
	int seen = gen;
	pthread_mutex_unlock(&mu);
	pthread_barrier_wait(&started);
	for (;;) {
		pthread_mutex_lock(&mu);
		while (gen == seen)
			pthread_cond_wait(&cv, &mu);
		seen = gen;
		pthread_mutex_unlock(&mu);
		printf("cond woke gen=%d\n", seen);
		fflush(stdout);
	}
	return NULL;
}

static void *reader_thread(void *arg)
{
	(void)arg;
	block_all_but_fatal();
	printf("reader tid=%d\n", (int)gettid());
	fflush(stdout);
	pthread_barrier_wait(&started);
	for (;;) {
		char buf[128];
		ssize_t n = read(wake_pipe[0], buf, sizeof(buf) - 1);
		if (n < 0 && errno == EINTR) {
			printf("read EINTR\n");
			fflush(stdout);
			continue;
		}
		if (n <= 0) {
			printf("read failed n=%zd errno=%d\n", n, errno);
			fflush(stdout);
			exit(4);
		}
		buf[n] = 0;
		if (buf[n - 1] == '\n')
			buf[n - 1] = 0;
		printf("read got=%s\n", buf);
		fflush(stdout);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	int blockers = 0, opt;
	while ((opt = getopt(argc, argv, "n:i:b")) != -1) {
		switch (opt) {
		case 'n': nthreads = atoi(optarg); break;
		case 'i': interval_ms = atol(optarg); break;
		case 'b': blockers = 1; break;
		default: fprintf(stderr, "usage: threads [-n N] [-i MS] [-b]\n"); return 2;
		}
	}
	if (nthreads < 1 || nthreads > MAXT) {
		fprintf(stderr, "bad -n\n");
		return 2;
	}
	printf("start pid=%d\n", (int)getpid());
	fflush(stdout);

	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr1;
	sa.sa_flags = SA_RESTART;
	sigaction(SIGUSR1, &sa, NULL);
	if (pipe(wake_pipe) != 0)
		return 5;

	pthread_barrier_init(&started, NULL, nthreads + (blockers ? 2 : 0));
	/* Threads inherit the creator's mask: create them with everything blocked. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (int k = 1; k < nthreads; k++) {
		pthread_t t;
		if (pthread_create(&t, NULL, worker, (void *)(long)k) != 0)
			return 6;
	}
	if (blockers) {
		pthread_t t;
		if (pthread_create(&t, NULL, cond_thread, NULL) != 0 || pthread_create(&t, NULL, reader_thread, NULL) != 0)
			return 6;
	}
	sigset_t want;
	void *alt = setup_thread(0, &want);
	unsigned long own = 0;
	pthread_barrier_wait(&started);
	printf("ready threads=%d\n", nthreads + (blockers ? 2 : 0));
	fflush(stdout);

	int handled = 0;
	for (long i = 1;; i++) {
		step(0, &own, &want, alt);
		while (handled < usr1) {
			handled++;
			pthread_mutex_lock(&mu);
			int g = ++gen;
			pthread_cond_broadcast(&cv);
			pthread_mutex_unlock(&mu);
			char msg[32];
			int len = snprintf(msg, sizeof(msg), "gen=%d\n", g);
			if (write(wake_pipe[1], msg, len) != len)
				return 7;
		}
		int tb = 0, mb = 0, ab = 0;
		char cs[MAXT * 12] = "";
		size_t at = 0;
		for (int k = 0; k < nthreads; k++) {
			tb |= tls_bad[k];
			mb |= mask_bad[k];
			ab |= alt_bad[k];
			at += snprintf(cs + at, sizeof(cs) - at, "%s%lu", k ? "," : "", counts[k]);
		}
		printf("i=%ld tls=%s mask=%s alt=%s c=%s\n", i, tb ? "BAD" : "ok", mb ? "BAD" : "ok", ab ? "BAD" : "ok", cs);
		fflush(stdout);
		sleep_ms(interval_ms);
	}
}
