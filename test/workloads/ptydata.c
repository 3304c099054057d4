/*
 * ptydata: a task holding a pseudo-terminal in one of three states.
 *
 *   ptydata        unread data both ways: "line1\nparti" written to the master (a whole line and
 *                  a partial one, for the slave to read; echo off), "out\n" written to the slave
 *                  (for the master to read, "out\r\n" after output processing)
 *   ptydata -t     the slave as its controlling terminal, and an fd of /dev/tty (and a dup); a child of
 *                  its session (forked after) holds it too and has the same terminal
 *   ptydata -t -n  the same, the child forked before the terminal was taken (it has none)
 *   ptydata -c     a slave whose master was closed (hung up), the master in no task
 *
 * It prints "tick n=N" every 50 ms; on SIGUSR1 it checks from inside and prints "CHECK ok" or
 * "CHECK fail: WHY" (the data check reads the data: it can be asked once).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <termios.h>
#include <unistd.h>
#include "checkloop.h"

struct pty { int master, slave, tty; pid_t child; };

static void child_stays(void)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	for (;;) pause();
}

/* tty_nr of /proc/PID/stat (field 7). */
static long tty_nr(pid_t pid)
{
	char path[64], buf[512];
	snprintf(path, sizeof path, "/proc/%d/stat", pid);
	FILE *f = fopen(path, "r");
	if (!f || !fgets(buf, sizeof buf, f)) return -1;
	fclose(f);
	char *p = strrchr(buf, ')');
	long v = -1;
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %ld", &v) != 1) return -1;
	return v;
}

static int readn(int fd, char *buf, size_t n)
{
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	int r = read(fd, buf, n);
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	return r;
}

static const char *verify_data(void *arg)
{
	struct pty *p = arg;
	char buf[64] = {0};
	if (readn(p->master, buf, sizeof buf) != 5 || memcmp(buf, "out\r\n", 5)) return "master side data";
	memset(buf, 0, sizeof buf);
	if (readn(p->slave, buf, sizeof buf) != 6 || strcmp(buf, "line1\n")) return "slave side line";
	if (readn(p->slave, buf, sizeof buf) != -1 || errno != EAGAIN) return "the partial line reads as a line";
	if (write(p->master, "al\n", 3) != 3) return "write";
	memset(buf, 0, sizeof buf);
	if (readn(p->slave, buf, sizeof buf) != 8 || strcmp(buf, "partial\n")) return "slave side partial line";
	if (readn(p->master, buf, sizeof buf) != -1 || errno != EAGAIN) return "echo came back";
	return NULL;
}

static const char *verify_ctty(void *arg)
{
	struct pty *p = arg;
	struct stat st;
	char buf[16] = {0};
	if (fstat(p->tty, &st) || major(st.st_rdev) != 5 || minor(st.st_rdev) != 0) return "not /dev/tty";
	if (tcgetsid(p->tty) != getpid()) return "/dev/tty is not its session's terminal";
	if (write(p->master, "x\n", 2) != 2) return "write";
	if (readn(p->tty, buf, sizeof buf) != 2 || strcmp(buf, "x\n")) return "/dev/tty is not the pty";
	if (write(p->tty, "y\n", 2) != 2) return "write to /dev/tty";
	usleep(10000);
	if (readn(p->master, buf, sizeof buf) <= 0) return "the master does not see what /dev/tty writes";
	if (tty_nr(p->child) != tty_nr(getpid()) || tty_nr(getpid()) <= 0) return "the child of its session has another terminal";
	if (syscall(SYS_kcmp, getpid(), p->child, 0 /* KCMP_FILE */, p->tty, p->tty) != 0) return "/dev/tty is no longer shared with the child";
	if (syscall(SYS_kcmp, getpid(), getpid(), 0, p->tty, p->tty + 1) != 0) return "/dev/tty and its dup are no longer one file";
	return NULL;
}

static const char *verify_hung(void *arg)
{
	struct pty *p = arg;
	char c;
	if (read(p->slave, &c, 1) != 0) return "a hung-up slave reads something";
	if (write(p->slave, "z", 1) != -1 || errno != EIO) return "a hung-up slave writes";
	return NULL;
}

int main(int argc, char **argv)
{
	int opt, ctty = 0, hung = 0, early = 0;
	while ((opt = getopt(argc, argv, "tcn")) != -1) {
		if (opt == 't') ctty = 1;
		else if (opt == 'n') early = 1;
		else if (opt == 'c') hung = 1;
		else return 2;
	}
	struct pty p = { .tty = -1 };
	if (ctty && early && (p.child = fork()) == 0) child_stays();
	p.master = posix_openpt(O_RDWR | O_NOCTTY);
	if (p.master < 0 || grantpt(p.master) || unlockpt(p.master)) return 3;
	p.slave = open(ptsname(p.master), O_RDWR | (ctty ? 0 : O_NOCTTY));
	if (p.slave < 0) return 3;
	if (ctty) {
		p.tty = open("/dev/tty", O_RDWR);
		if (p.tty < 0 || dup2(p.tty, p.tty + 1) != p.tty + 1) return 3;
		if (!early && (p.child = fork()) == 0) child_stays();
		check_loop(verify_ctty, &p);
	}
	if (hung) {
		signal(SIGHUP, SIG_IGN);
		close(p.master);
		check_loop(verify_hung, &p);
	}
	struct termios t;
	if (tcgetattr(p.slave, &t)) return 3;
	t.c_lflag &= ~ECHO;
	if (tcsetattr(p.slave, TCSANOW, &t)) return 3;
	if (write(p.master, "line1\nparti", 11) != 11 || write(p.slave, "out\n", 4) != 4) return 3;
	check_loop(verify_data, &p);
}
