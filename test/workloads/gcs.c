/*
 * gcs: counts inside nested calls, so that the Guarded Control Stack (arm64 GCS) holds
 * several live return addresses whenever the process sleeps. Built with
 * -mbranch-protection=standard and run with GLIBC_TUNABLES=glibc.cpu.aarch64_gcs=1, glibc
 * enables and locks GCS; without the tunable it runs with GCS off (the control).
 *
 * Each of N threads (main included) prints one line per step, from the innermost call:
 *
 *   t=K i=I depth=D gcs=S gcspr=0xADDR
 *
 *  i      the thread's counter (consecutive from 1);
 *  gcs    PR_GET_SHADOW_STACK_STATUS of the thread;
 *  gcspr  GCSPR_EL0 at the innermost call (the same at every step of a thread).
 *
 * At start: "ready threads=N pid=P". SIGUSR1 makes main, at its next step, overwrite a
 * saved return address and return through it: with GCS the RET faults (SIGSEGV, si_code
 * SEGV_CPERR = 10; the handler prints "segv code=C" and exits 139); without GCS the return
 * lands in hijacked(), which prints "hijacked" and exits 42.
 *
 * Options: -n N threads (default 1), -d DEPTH (default 6), -i MS interval (default 100),
 * -m MIB of memory touched at start (default 0).
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#ifndef PR_GET_SHADOW_STACK_STATUS
#define PR_GET_SHADOW_STACK_STATUS 74
#endif

static int depth = 6, nthreads = 1;
static long interval_ms = 100;
static volatile sig_atomic_t smash_requested;
static pthread_mutex_t out_mu = PTHREAD_MUTEX_INITIALIZER;

static unsigned long gcspr(void)
{
	unsigned long v;
	__asm__ volatile("mrs %0, S3_3_C2_C5_1" : "=r"(v)); /* GCSPR_EL0 */
	return v;
}

static unsigned long gcs_status(void)
{
	unsigned long st = 0;
	if (prctl(PR_GET_SHADOW_STACK_STATUS, &st, 0, 0, 0) != 0)
		return ~0UL;
	return st;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) != 0)
		;
}

/*
 * victim(target): saves its return address on the stack like any non-leaf function,
 * overwrites the saved copy with `target`, reloads it and returns. Written in assembly so
 * that no return-address signing gets in the way: only GCS can stop the return.
 */
void victim(void (*target)(void));
__asm__(".text\n"
	".globl victim\n"
	".type victim, %function\n"
	"victim:\n"
	"	hint 34\n" /* bti c */
	"	stp x29, x30, [sp, #-16]!\n"
	"	mov x29, sp\n"
	"	str x0, [sp, #8]\n"
	"	ldp x29, x30, [sp], #16\n"
	"	ret\n"
	".size victim, .-victim\n");

static void hijacked(void)
{
	printf("hijacked\n");
	fflush(stdout);
	_exit(42);
}

static void on_segv(int sig, siginfo_t *si, void *uc)
{
	(void)sig; (void)uc;
	char buf[64];
	int n = snprintf(buf, sizeof(buf), "segv code=%d\n", si->si_code);
	if (write(1, buf, n) < 0)
		_exit(138);
	_exit(139);
}

static void on_usr1(int sig)
{
	(void)sig;
	smash_requested = 1;
}

struct thr { int k; unsigned long i; };

__attribute__((noinline, noipa)) static unsigned long nest(struct thr *t, int d)
{
	if (d > 0)
		return nest(t, d - 1) + 1;
	t->i++;
	pthread_mutex_lock(&out_mu);
	printf("t=%d i=%lu depth=%d gcs=%lu gcspr=0x%lx\n", t->k, t->i, depth, gcs_status(), gcspr());
	fflush(stdout);
	pthread_mutex_unlock(&out_mu);
	if (t->k == 0 && smash_requested)
		victim(hijacked);
	sleep_ms(interval_ms);
	return 0;
}

static void *run(void *arg)
{
	struct thr *t = arg;
	for (;;)
		nest(t, depth);
	return NULL;
}

int main(int argc, char **argv)
{
	int c;
	long mib = 0;
	while ((c = getopt(argc, argv, "n:d:i:m:")) != -1) {
		switch (c) {
		case 'n': nthreads = atoi(optarg); break;
		case 'd': depth = atoi(optarg); break;
		case 'i': interval_ms = atol(optarg); break;
		case 'm': mib = atol(optarg); break;
		default: return 2;
		}
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_segv;
	sa.sa_flags = SA_SIGINFO;
	sigaction(SIGSEGV, &sa, NULL);
	signal(SIGUSR1, on_usr1);
	if (mib > 0) {
		char *mem = malloc((size_t)mib << 20);
		for (long off = 0; off < mib << 20; off += 4096)
			mem[off] = (char)(off >> 12);
	}
	static struct thr ts[64];
	if (nthreads < 1 || nthreads > 64)
		return 2;
	for (int k = 1; k < nthreads; k++) {
		pthread_t th;
		ts[k].k = k;
		pthread_create(&th, NULL, run, &ts[k]);
	}
	printf("ready threads=%d pid=%d\n", nthreads, getpid());
	run(&ts[0]);
	return 0;
}
