/*
 * pidfd: pidfds of itself and of another process, checked from inside after restore.
 *
 *   pidfd -p PID
 *
 * Holds a pidfd of itself (PIDFD_NONBLOCK) and one of PID. Prints "tick n=N" every 50 ms;
 * on SIGUSR1 it checks that each pidfd names its process (fdinfo Pid), signals through
 * them, keeps the non-blocking flag, and prints "CHECK ok" or "CHECK fail: WHY"; on SIGUSR2
 * it polls the pidfd of PID and prints "EXITED yes" or "EXITED no".
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t check, exited;
static void on_usr1(int s) { (void)s; check = 1; }
static void on_usr2(int s) { (void)s; exited = 1; }

static int pid_of(int fd)
{
	char p[64], line[256];
	snprintf(p, sizeof p, "/proc/self/fdinfo/%d", fd);
	FILE *f = fopen(p, "r");
	int pid = -2;
	while (f && fgets(line, sizeof line, f))
		if (!strncmp(line, "Pid:", 4)) pid = atoi(line + 4);
	if (f) fclose(f);
	return pid;
}

int main(int argc, char **argv)
{
	int other = 0, opt;
	while ((opt = getopt(argc, argv, "p:")) != -1) {
		if (opt == 'p') other = atoi(optarg);
		else return 2;
	}
	if (!other) return 2;
	int self = syscall(SYS_pidfd_open, getpid(), O_NONBLOCK);
	int ofd = syscall(SYS_pidfd_open, other, 0);
	if (self < 0 || ofd < 0) return 3;
	signal(SIGUSR1, on_usr1);
	signal(SIGUSR2, on_usr2);
	for (long n = 1;; n++) {
		if (check) {
			check = 0;
			const char *why = NULL;
			if (pid_of(self) != getpid()) why = "self pidfd names another process";
			else if (pid_of(ofd) != other) why = "pidfd of the other process names another one";
			else if (!(fcntl(self, F_GETFL) & O_NONBLOCK)) why = "PIDFD_NONBLOCK lost";
			else if (fcntl(ofd, F_GETFL) & O_NONBLOCK) why = "a blocking pidfd became non-blocking";
			else if (syscall(SYS_pidfd_send_signal, self, 0, NULL, 0) || syscall(SYS_pidfd_send_signal, ofd, 0, NULL, 0)) why = "cannot signal through the pidfds";
			printf(why ? "CHECK fail: %s\n" : "CHECK ok\n", why);
			fflush(stdout);
		}
		if (exited) {
			exited = 0;
			struct pollfd p = { ofd, POLLIN, 0 };
			printf("EXITED %s\n", poll(&p, 1, 1000) == 1 ? "yes" : "no");
			fflush(stdout);
		}
		printf("tick n=%ld\n", n);
		fflush(stdout);
		struct timespec ts = { 0, 50000000L };
		nanosleep(&ts, NULL);
	}
}
