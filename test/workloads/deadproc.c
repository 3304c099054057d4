/*
 * deadproc: a working directory that is /proc/PID of a child that has died and been reaped
 * since (an unhashed procfs directory). Prints "dead pid=D", then the checkloop ticks; the
 * check: getcwd fails with ENOENT (no name leads to it), and /proc/self/cwd still says /proc/D.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "checkloop.h"

static char want[64];

static const char *verify(void *arg)
{
	(void)arg;
	char buf[256];
	errno = 0;
	if (getcwd(buf, sizeof buf)) return "getcwd found a name";
	if (errno != ENOENT) return "getcwd failed, but not with ENOENT";
	ssize_t n = readlink("/proc/self/cwd", buf, sizeof buf - 1);
	if (n < 0) return "cannot read /proc/self/cwd";
	buf[n] = 0;
	if (strncmp(buf, want, strlen(want))) return "/proc/self/cwd names another directory";
	return NULL;
}

int main(void)
{
	pid_t c = fork();
	if (c < 0) return 2;
	if (c == 0) {
		pause();
		_exit(0);
	}
	snprintf(want, sizeof want, "/proc/%d", c);
	if (chdir(want)) return 3;
	kill(c, SIGKILL);
	waitpid(c, NULL, 0);
	printf("dead pid=%d\n", c);
	fflush(stdout);
	check_loop(verify, NULL);
}
