/*
 * pipefill: three processes and two pipes that hold data.
 *
 *   root (consumer) <- pipe A <- child "full":    writes 64-byte numbered records
 *                                                  without end; blocks in write()
 *                                                  once the pipe is full
 *                   <- pipe B <- child "partial": writes PARTIAL records of 37
 *                                                  bytes (-k, default 1000), then
 *                                                  waits for signals
 *
 * The root reads nothing until it gets SIGUSR1. Then it reads 2000 records
 * from A (more than the pipe holds, so the writer must go on) and everything
 * B holds (B's read end is O_NONBLOCK: it reads until EAGAIN), checks the
 * numbering and the payload of every record, and prints
 *
 *   drain=D a=ok last=L b=ok n=N
 *
 * (a=BAD / b=BAD with a reason on a mismatch). At start it prints
 * "ready pid=P full=PID partial=PID a=FD b=FD" once B holds all its records
 * and A is full, i.e. the full writer has blocked in write().
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define REC_A 64
#define REC_B 37
#define DRAIN_A 2000

static volatile sig_atomic_t usr1;
static void on_usr1(int s) { (void)s; usr1++; }

static void fill_record(char *buf, int size, char tag, long n)
{
	/* "A0000000123:" then a payload derived from n, then '\n' */
	int h = snprintf(buf, size, "%c%010ld:", tag, n);
	for (int k = h; k < size - 1; k++)
		buf[k] = 'a' + (char)((n * 7 + k) % 26);
	buf[size - 1] = '\n';
}

static int check_record(const char *buf, int size, char tag, long n)
{
	char want[REC_A];
	fill_record(want, size, tag, n);
	return memcmp(buf, want, size) == 0;
}

static void write_all(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t w = write(fd, buf, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			_exit(3);
		buf += w;
		len -= w;
	}
}

static int read_full(int fd, char *buf, int len)
{
	int got = 0;
	while (got < len) {
		ssize_t r = read(fd, buf + got, len - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno == EAGAIN)
			return got;
		if (r <= 0)
			return -1;
		got += r;
	}
	return got;
}

static int pending(int fd)
{
	int n = -1;
	ioctl(fd, FIONREAD, &n);
	return n;
}

int main(int argc, char **argv)
{
	long partial = 1000;
	int opt;
	while ((opt = getopt(argc, argv, "k:")) != -1) {
		if (opt == 'k')
			partial = atol(optarg);
		else
			return 2;
	}
	int a[2], b[2];
	if (pipe(a) || pipe(b))
		return 5;
	pid_t full = fork();
	if (full == 0) {
		close(a[0]); close(b[0]); close(b[1]);
		char rec[REC_A];
		for (long n = 0;; n++) {
			fill_record(rec, REC_A, 'A', n);
			write_all(a[1], rec, REC_A);
		}
	}
	pid_t part = fork();
	if (part == 0) {
		close(a[0]); close(a[1]); close(b[0]);
		char rec[REC_B];
		for (long n = 0; n < partial; n++) {
			fill_record(rec, REC_B, 'B', n);
			write_all(b[1], rec, REC_B);
		}
		for (;;)
			pause();
	}
	close(a[1]);
	close(b[1]);
	fcntl(b[0], F_SETFL, O_NONBLOCK);
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr1;
	sigaction(SIGUSR1, &sa, NULL);

	/* Ready when B holds everything and A is full. */
	long capacity = fcntl(a[0], F_GETPIPE_SZ);
	for (int tries = 0; pending(b[0]) != partial * REC_B || pending(a[0]) < capacity - REC_A + 1; tries++) {
		if (tries > 5000) {
			printf("not ready: a=%d b=%d\n", pending(a[0]), pending(b[0]));
			return 6;
		}
		usleep(1000);
	}
	printf("ready pid=%d full=%d partial=%d a=%d b=%d\n", getpid(), full, part, a[0], b[0]);
	fflush(stdout);

	long next_a = 0;
	int handled = 0;
	for (;;) {
		while (handled == usr1)
			pause();
		handled++;
		char rec[REC_A];
		const char *abad = NULL;
		for (int k = 0; k < DRAIN_A && !abad; k++) {
			if (read_full(a[0], rec, REC_A) != REC_A)
				abad = "short";
			else if (!check_record(rec, REC_A, 'A', next_a))
				abad = "mismatch";
			else
				next_a++;
		}
		const char *bbad = NULL;
		long nb = 0;
		for (;;) {
			int r = read_full(b[0], rec, REC_B);
			if (r == 0)
				break;
			if (r != REC_B) {
				bbad = "short";
				break;
			}
			if (!check_record(rec, REC_B, 'B', nb)) {
				bbad = "mismatch";
				break;
			}
			nb++;
		}
		printf("drain=%d a=%s last=%ld b=%s n=%ld\n", handled, abad ? abad : "ok", next_a - 1, bbad ? bbad : "ok", nb);
		fflush(stdout);
	}
}
