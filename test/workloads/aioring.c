/*
 * An AIO ring (io_setup) with events completed but not yet reaped: 3 reads of a file are
 * submitted and completed, one is reaped. The check reaps the other 2 (their data and
 * results must be those of before), then submits one more read and reaps it: the ring
 * still works where it was, at the same context address.
 */
#include <fcntl.h>
#include <linux/aio_abi.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include "checkloop.h"

static aio_context_t ctx;
static int fd;
static char bufs[4][16];
static struct iocb cbs[4];
static char why[160];

static long submit(int i, long off)
{
	struct iocb *p = &cbs[i];
	memset(p, 0, sizeof *p);
	p->aio_lio_opcode = IOCB_CMD_PREAD;
	p->aio_fildes = fd;
	p->aio_buf = (unsigned long)bufs[i];
	p->aio_nbytes = 8;
	p->aio_offset = off;
	p->aio_data = 100 + i;
	return syscall(SYS_io_submit, ctx, 1, &p);
}

static long reap(struct io_event *ev, long n)
{
	struct timespec ts = { 5, 0 };
	return syscall(SYS_io_getevents, ctx, n, n, ev, &ts);
}

static const char *verify(void *arg)
{
	(void)arg;
	static int checked;
	struct io_event ev[2];
	if (!checked) {
		checked = 1;
		if (reap(ev, 2) != 2) return "the 2 completed events are gone";
		for (int k = 0; k < 2; k++) {
			int i = (int)ev[k].data - 100;
			if (i != 1 + k || ev[k].res != 8 || memcmp(bufs[i], i == 1 ? "ABCDEFGH" : "IJKLMNOP", 8)) {
				snprintf(why, sizeof why, "event %d: data %lld res %lld", k, (long long)ev[k].data, (long long)ev[k].res);
				return why;
			}
		}
	}
	if (submit(3, 24) != 1) return "io_submit after restore failed";
	if (reap(ev, 1) != 1 || ev[0].data != 103 || ev[0].res != 8 || memcmp(bufs[3], "QRSTUVWX", 8)) return "a new read did not complete";
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc < 2) return 2;
	fd = open(argv[1], O_RDONLY);
	if (fd < 0) { perror("open"); return 1; }
	if (syscall(SYS_io_setup, 16, &ctx)) { perror("io_setup"); return 1; }
	struct io_event ev[1];
	for (int i = 0; i < 3; i++)
		if (submit(i, i * 8) != 1) { perror("io_submit"); return 1; }
	if (reap(ev, 1) != 1) { perror("io_getevents"); return 1; }
	/* The other two are complete: buffered reads finish within io_submit. */
	printf("ctx %lx\n", (unsigned long)ctx);
	fflush(stdout);
	check_loop(verify, NULL);
}
