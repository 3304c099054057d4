/*
 * tcpinner PORT [v6]: both ends of a loopback TCP connection, the server's in this process and
 * the client's in its child, half-closed:
 * the client shuts its side down (FIN_WAIT2), the server (CLOSE_WAIT) has sent it N bytes that
 * it has not read yet, and the client has sent M bytes the server has not read. It prints
 * "ready" and waits for SIGUSR1 (sent after a restore); then the server sends N more bytes and
 * closes its side, and each end reads everything the other sent, byte k = (5k + 1) mod 253,
 * then the end of stream: "ok rx=... tx=..." and exit 0. A reset or a wrong byte prints
 * "BAD ..." (exit 3), a failed call "ERR ..." (exit 4); nothing for 10 s is a failure too.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "loopback.h"

enum { N = 3000, M = 2000 };

static unsigned char at(long k) { return (unsigned char)((5 * k + 1) % 253); }
static void fail(const char *what) { printf("ERR %s: %s\n", what, strerror(errno)); exit(4); }
static volatile sig_atomic_t go;
static void on_usr1(int s) { (void)s; go = 1; }

static void send_pattern(int fd, long from, long n) {
	unsigned char b[N];
	for (long i = 0; i < n; i++) b[i] = at(from + i);
	if (send(fd, b, n, MSG_NOSIGNAL) != n) fail("send");
}

/* Read the stream to its end: exactly `want` bytes of the pattern, then 0. */
static void drain(int fd, long want, const char *who) {
	unsigned char b[4096];
	long got = 0;
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, 10000) != 1) { printf("BAD %s: nothing for 10 s after %ld bytes\n", who, got); exit(3); }
		ssize_t n = recv(fd, b, sizeof(b), 0);
		if (n < 0) { printf("BAD %s: recv after %ld bytes: %s\n", who, got, strerror(errno)); exit(3); }
		if (n == 0) break;
		for (ssize_t i = 0; i < n; i++, got++)
			if (got >= want || b[i] != at(got)) { printf("BAD %s: byte %ld\n", who, got); exit(3); }
	}
	if (got != want) { printf("BAD %s: %ld bytes of %ld before the end\n", who, got, want); exit(3); }
}

int main(int argc, char **argv) {
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc < 2) return 1;
	int v6 = argc > 2 && strcmp(argv[2], "v6") == 0;
	signal(SIGUSR1, on_usr1);
	int s, c;
	loopback_pair(v6, atoi(argv[1]), &s, &c);
	send_pattern(s, 0, N);
	send_pattern(c, 0, M);
	if (shutdown(c, SHUT_WR)) fail("shutdown");
	usleep(100000);
	/* The client's end in a child: restored after the parent's, it is missing for a while. */
	pid_t kid = fork();
	if (kid < 0) fail("fork");
	if (kid == 0) {
		close(s);
		while (!go) pause();
		drain(c, 2 * N, "client");
		return 0;
	}
	close(c);
	printf("ready\n");
	while (!go) pause();
	kill(kid, SIGUSR1);
	send_pattern(s, N, N);
	if (shutdown(s, SHUT_WR)) fail("shutdown");
	drain(s, M, "server");
	int st;
	if (waitpid(kid, &st, 0) != kid) fail("waitpid");
	if (!WIFEXITED(st) || WEXITSTATUS(st)) { printf("BAD client: status 0x%x\n", st); return 3; }
	printf("ok rx=%d tx=%d\n", 2 * N, M);
	return 0;
}
