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
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "checkloop.h"

static const char *verify(void *arg)
{
	char cwd[256];
	struct stat st;
	(void)arg;
	if (!getcwd(cwd, sizeof cwd) || strcmp(cwd, "/sub")) return "cwd is not /sub";
	if (stat("/marker", &st)) return "/marker is not in the root";
	if (stat("../sub", &st)) return "cwd is not inside the root";
	return NULL;
}

int main(int argc, char **argv)
{
	const char *dir = NULL;
	int opt;
	while ((opt = getopt(argc, argv, "d:")) != -1) {
		if (opt == 'd') dir = optarg;
		else return 2;
	}
	if (!dir || chroot(dir) || chdir("/sub")) return 3;
	check_loop(verify, NULL);
}
