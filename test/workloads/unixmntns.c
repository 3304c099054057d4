/*
 * unixmntns DIR [interval_ms]: run in a mount namespace of its own. It forks a child that
 * unshares another mount namespace and mounts a tmpfs on DIR; then each of the two binds a
 * datagram socket to the same name, DIR/sock (the parent's on DIR itself, the child's on its
 * tmpfs), and connects a client to it. Every interval each sends a line through its client,
 * reads it back on its bound socket, and connects a new client by the name (which finds the
 * socket of its own mount namespace), printing
 *
 *   i=N pid=P ok=1|0 mnt=tmpfs|none
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/statfs.h>
#include <sys/un.h>

static void die(const char *what)
{
	perror(what);
	exit(1);
}

static void nap(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) != 0)
		;
}

static int client(const struct sockaddr_un *a)
{
	int c = socket(AF_UNIX, SOCK_DGRAM, 0);
	if (c < 0 || connect(c, (const struct sockaddr *)a, sizeof(*a)))
		die("connect");
	return c;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return 2;
	const char *dir = argv[1];
	long interval = argc > 2 ? atol(argv[2]) : 200;
	setvbuf(stdout, NULL, _IOLBF, 0);
	pid_t child = fork();
	if (child < 0)
		die("fork");
	if (child == 0) {
		if (unshare(CLONE_NEWNS) || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) ||
		    mount("nested", dir, "tmpfs", 0, "mode=755"))
			die("nested mount namespace");
	} else {
		/* The child binds in its namespace first: the parent's bind would hide nothing. */
		nap(100);
	}
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	snprintf(a.sun_path, sizeof(a.sun_path), "%s/sock", dir);
	unlink(a.sun_path);
	int s = socket(AF_UNIX, SOCK_DGRAM, 0);
	if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof(a)))
		die("bind");
	int c = client(&a);
	for (long i = 1;; i++) {
		char out[64], in[64] = { 0 };
		struct statfs fs;
		int n = snprintf(out, sizeof(out), "%d-%ld", getpid(), i);
		int ok = write(c, out, n) == n && recv(s, in, sizeof(in), MSG_DONTWAIT) == n && !memcmp(in, out, n);
		close(c);
		c = client(&a);
		int tmp = statfs(dir, &fs) == 0 && fs.f_type == 0x01021994;
		printf("i=%ld pid=%d ok=%d mnt=%s\n", i, getpid(), ok, tmp ? "tmpfs" : "none");
		nap(interval);
	}
}
