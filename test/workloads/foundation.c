/*
 * foundation: the workload for the foundation e2e test.
 *
 * Every iteration (default 100 ms) it prints one line to stdout and flushes:
 *
 *   i=N tls=ok errno=ok sum=ok usr1=N sa=ok mask=ok pend2=0 mono=ok vdso=ok
 *       cpu=ok rseq=ok fpos=ok pipe=full
 *
 *  i      a counter that goes up by one per iteration (the test checks that the
 *         sequence in the log has no gaps and never restarts);
 *  tls    a __thread counter, incremented in step with i;
 *  errno  errno is set to 4242 before each nanosleep and checked after it;
 *  sum    a heap buffer (-m MiB, default 64) of xorshift64 data, re-generated
 *         and compared word by word every iteration (BAD: exit 3);
 *  usr1   how many SIGUSR1 the handler has seen;
 *  sa     the SIGUSR1 sigaction still has our handler, SA_RESTART, SIGTERM in sa_mask;
 *  mask   the blocked set is exactly {SIGUSR2};
 *  pend2  1 when a SIGUSR2 is pending (it is blocked, so it must stay pending);
 *  mono   CLOCK_MONOTONIC (vDSO) never went backwards;
 *  vdso   the vDSO ELF header is still at getauxval(AT_SYSINFO_EHDR);
 *  cpu    sched_getcpu() (glibc reads rseq's cpu_id) == the getcpu syscall;
 *  rseq   the rseq area glibc registered is still registered by the kernel
 *         (re-registering the same area gives EBUSY);
 *  fpos   the data file's offset is where our own writes put it;
 *  pipe   a pipe to ourselves holds 60 KiB of a known pattern written at start:
 *         `full` until it is drained and checked (at iteration -p K, or on the
 *         first iteration after the second SIGUSR1), then `ok` or `BAD`.
 *
 * Options:
 *   -f PATH  data file: must exist and be non-empty; opened O_WRONLY at its end
 *            (a non-zero offset) and one line "line N\n" is written per iteration
 *   -i MS    interval (default 100)
 *   -m MIB   heap buffer size (default 64)
 *   -p K     drain and check the pipe at iteration K (default: only on SIGUSR1 #2)
 *   -x M     exit at iteration M with the code given by -c (default 7)
 *   -c CODE  exit code for -x
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/rseq.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define TLS_BASE 1000UL
#define PIPE_BYTES (60 * 1024)

static __thread unsigned long tls_counter = TLS_BASE;
static volatile sig_atomic_t usr1_count;

static uint64_t *heap;
static size_t heap_words;
static const uint64_t heap_seed = 0x9E3779B97F4A7C15ULL;

static void on_usr1(int sig)
{
	(void)sig;
	usr1_count++;
}

static inline uint64_t xorshift64(uint64_t x)
{
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return x;
}

static void heap_fill(void)
{
	uint64_t x = heap_seed;
	for (size_t k = 0; k < heap_words; k++) {
		x = xorshift64(x);
		heap[k] = x;
	}
}

/* Returns the number of words that differ from the generated sequence. */
static size_t heap_verify(void)
{
	uint64_t x = heap_seed;
	size_t bad = 0;
	for (size_t k = 0; k < heap_words; k++) {
		x = xorshift64(x);
		bad += heap[k] != x;
	}
	return bad;
}

static unsigned char pipe_pattern(size_t k)
{
	return (unsigned char)(k * 131 + (k >> 8) * 7 + 0x5a);
}

static int pipe_fds[2];

static const char *pipe_drain_check(void)
{
	static unsigned char buf[PIPE_BYTES];
	size_t got = 0;
	while (got < PIPE_BYTES) {
		struct pollfd p = { .fd = pipe_fds[0], .events = POLLIN };
		int r = poll(&p, 1, 1000);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			fprintf(stderr, "pipe: only %zu bytes\n", got);
			return "BAD";
		}
		ssize_t n = read(pipe_fds[0], buf + got, PIPE_BYTES - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			fprintf(stderr, "pipe: read %zd after %zu bytes\n", n, got);
			return "BAD";
		}
		got += (size_t)n;
	}
	for (size_t k = 0; k < PIPE_BYTES; k++) {
		if (buf[k] != pipe_pattern(k)) {
			fprintf(stderr, "pipe: byte %zu is %u, expected %u\n", k, buf[k], pipe_pattern(k));
			return "BAD";
		}
	}
	struct pollfd p = { .fd = pipe_fds[0], .events = POLLIN };
	if (poll(&p, 1, 0) != 0) {
		fprintf(stderr, "pipe: more data than written\n");
		return "BAD";
	}
	return "ok";
}

static const char *cpu_check(void)
{
	for (int t = 0; t < 20; t++) {
		int a = sched_getcpu();
		unsigned int c = ~0U;
		if (syscall(SYS_getcpu, &c, NULL, NULL) != 0)
			return "BAD";
		int b = sched_getcpu();
		if (a == (int)c && b == (int)c)
			return "ok";
		/* migrated between the calls: try again */
		sched_yield();
	}
	return "BAD";
}

static const char *rseq_check(void)
{
	if (__rseq_size == 0)
		return "off";
	void *area = (char *)__builtin_thread_pointer() + __rseq_offset;
	unsigned int lens[2] = { 32, __rseq_size };
	for (int k = 0; k < 2; k++) {
		long r = syscall(SYS_rseq, area, lens[k], 0, RSEQ_SIG);
		if (r == 0) {
			fprintf(stderr, "rseq: area was not registered\n");
			return "BAD";
		}
		if (errno == EBUSY)
			return "ok";
		if (errno != EINVAL)
			break;
	}
	fprintf(stderr, "rseq: re-registration gave errno %d\n", errno);
	return "BAD";
}

static const char *sa_check(void)
{
	struct sigaction old;
	if (sigaction(SIGUSR1, NULL, &old) != 0)
		return "BAD";
	if (old.sa_handler != on_usr1 || !(old.sa_flags & SA_RESTART) || (old.sa_flags & SA_SIGINFO) ||
	    !sigismember(&old.sa_mask, SIGTERM) || sigismember(&old.sa_mask, SIGINT))
		return "BAD";
	return "ok";
}

static const char *mask_check(void)
{
	sigset_t cur;
	if (sigprocmask(SIG_SETMASK, NULL, &cur) != 0)
		return "BAD";
	for (int s = 1; s < NSIG; s++) {
		int m = sigismember(&cur, s);
		if (m < 0)
			continue; /* glibc-internal signal */
		if (m != (s == SIGUSR2))
			return "BAD";
	}
	return "ok";
}

static void die(const char *what)
{
	perror(what);
	exit(2);
}

int main(int argc, char **argv)
{
	const char *data_path = NULL;
	long interval_ms = 100, heap_mib = 64, pipe_at = 0, exit_at = 0, exit_code = 7;
	int opt;

	while ((opt = getopt(argc, argv, "f:i:m:p:x:c:")) != -1) {
		switch (opt) {
		case 'f': data_path = optarg; break;
		case 'i': interval_ms = atol(optarg); break;
		case 'm': heap_mib = atol(optarg); break;
		case 'p': pipe_at = atol(optarg); break;
		case 'x': exit_at = atol(optarg); break;
		case 'c': exit_code = atol(optarg); break;
		default:
			fprintf(stderr, "usage: %s [-f file] [-i ms] [-m MiB] [-p K] [-x M] [-c code]\n", argv[0]);
			return 2;
		}
	}

	printf("start pid=%d\n", (int)getpid());
	fflush(stdout);

	/* heap */
	heap_words = (size_t)heap_mib * 1024 * 1024 / sizeof(uint64_t);
	heap = malloc(heap_words * sizeof(uint64_t));
	if (!heap)
		die("malloc");
	heap_fill();

	/* signals */
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr1;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	sigaddset(&sa.sa_mask, SIGTERM);
	if (sigaction(SIGUSR1, &sa, NULL) != 0)
		die("sigaction");
	sigset_t block;
	sigemptyset(&block);
	sigaddset(&block, SIGUSR2);
	if (sigprocmask(SIG_BLOCK, &block, NULL) != 0)
		die("sigprocmask");

	/* data file, at a non-zero offset */
	int data_fd = -1;
	off_t data_off = 0;
	if (data_path) {
		data_fd = open(data_path, O_WRONLY);
		if (data_fd < 0)
			die("open data file");
		data_off = lseek(data_fd, 0, SEEK_END);
		if (data_off <= 0) {
			fprintf(stderr, "data file must be non-empty\n");
			return 2;
		}
	}

	/* pipe to ourselves with 60 KiB of unread data */
	if (pipe(pipe_fds) != 0)
		die("pipe");
	{
		static unsigned char buf[PIPE_BYTES];
		for (size_t k = 0; k < PIPE_BYTES; k++)
			buf[k] = pipe_pattern(k);
		size_t put = 0;
		while (put < PIPE_BYTES) {
			ssize_t n = write(pipe_fds[1], buf + put, PIPE_BYTES - put);
			if (n <= 0)
				die("write pipe");
			put += (size_t)n;
		}
	}
	const char *pipe_state = "full";

	unsigned long vdso = getauxval(AT_SYSINFO_EHDR);
	struct timespec prev_mono;
	clock_gettime(CLOCK_MONOTONIC, &prev_mono);

	printf("ready heap=%ldMiB pipe=%d fileoff=%ld vdso=%#lx\n", heap_mib, PIPE_BYTES, (long)data_off, vdso);
	fflush(stdout);

	const char *errno_state = "ok";
	unsigned long i = 0;
	for (;;) {
		i++;
		tls_counter++;
		const char *tls_state = tls_counter == TLS_BASE + i ? "ok" : "BAD";

		size_t bad_words = heap_verify();
		const char *sum_state = bad_words == 0 ? "ok" : "BAD";

		struct timespec now;
		clock_gettime(CLOCK_MONOTONIC, &now);
		const char *mono_state =
			(now.tv_sec > prev_mono.tv_sec ||
			 (now.tv_sec == prev_mono.tv_sec && now.tv_nsec >= prev_mono.tv_nsec)) ? "ok" : "BAD";
		prev_mono = now;

		const char *vdso_state = vdso && memcmp((void *)vdso, "\177ELF", 4) == 0 ? "ok" : "BAD";

		sigset_t pend;
		sigpending(&pend);
		int pend2 = sigismember(&pend, SIGUSR2);

		int usr1 = usr1_count;
		if (pipe_state[0] == 'f' && ((pipe_at > 0 && (long)i >= pipe_at) || usr1 >= 2))
			pipe_state = pipe_drain_check();

		const char *fpos_state = "none";
		if (data_fd >= 0) {
			char line[64];
			int len = snprintf(line, sizeof(line), "line %lu\n", i);
			if (write(data_fd, line, (size_t)len) != len)
				die("write data file");
			data_off += len;
			fpos_state = lseek(data_fd, 0, SEEK_CUR) == data_off ? "ok" : "BAD";
		}

		printf("i=%lu tls=%s errno=%s sum=%s usr1=%d sa=%s mask=%s pend2=%d mono=%s vdso=%s cpu=%s rseq=%s fpos=%s pipe=%s\n",
		       i, tls_state, errno_state, sum_state, usr1, sa_check(), mask_check(), pend2, mono_state, vdso_state,
		       cpu_check(), rseq_check(), fpos_state, pipe_state);
		fflush(stdout);

		if (bad_words) {
			fprintf(stderr, "heap: %zu words differ\n", bad_words);
			return 3;
		}
		if (exit_at > 0 && (long)i >= exit_at) {
			printf("exit code=%ld\n", exit_code);
			fflush(stdout);
			return (int)exit_code;
		}

		struct timespec ts = { interval_ms / 1000, (interval_ms % 1000) * 1000000L };
		errno = 4242;
		int r = nanosleep(&ts, NULL);
		int e = errno;
		if (r == 0)
			errno_state = e == 4242 ? "ok" : "BAD";
		else
			errno_state = e == EINTR ? "ok" : "BAD";
	}
}
