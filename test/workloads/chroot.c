/*
 * chroot: a task in a chroot, with a working directory inside it.
 *
 *   chroot -d DIR        (DIR holds sub/ and marker)
 *
 * chroots into DIR and enters /sub; prints "tick n=N" every 50 ms; on SIGUSR1 it checks
 * that its cwd is /sub and that /marker (only in DIR) is its root's, and prints "CHECK ok"
 * or "CHECK fail: WHY".
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t check;
static void on_usr1(int s) { (void)s; check = 1; }

int main(int argc, char **argv)
{
	const char *dir = NULL;
	int opt;
	while ((opt = getopt(argc, argv, "d:")) != -1) {
		if (opt == 'd') dir = optarg;
		else return 2;
	}
	if (!dir || chroot(dir) || chdir("/sub")) return 3;
	signal(SIGUSR1, on_usr1);
	for (long n = 1;; n++) {
		if (check) {
			char cwd[256];
			struct stat st;
			check = 0;
			if (!getcwd(cwd, sizeof cwd) || strcmp(cwd, "/sub")) printf("CHECK fail: cwd %s\n", cwd);
			else if (stat("/marker", &st)) printf("CHECK fail: /marker is not in the root\n");
			else if (stat("../sub", &st)) printf("CHECK fail: cwd is not inside the root\n");
			else printf("CHECK ok\n");
			fflush(stdout);
		}
		printf("tick n=%ld\n", n);
		fflush(stdout);
		struct timespec ts = { 0, 50000000L };
		nanosleep(&ts, NULL);
	}
}
