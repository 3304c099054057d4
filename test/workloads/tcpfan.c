/*
 * tcpfan server PORT N | tcpfan peer PORT N: a server holding N established TCP connections
 * (IPv4, loopback) to a peer process, for bench/tcp-conns.ts.
 * The server accepts N connections, prints "ready n=N" and then echoes every byte it reads
 * back on the same connection. A connection that ends prints "BAD closed" (or the error).
 * The peer opens the N connections, prints "connected n=N", then sits idle (so that nothing
 * is sent while the server is dumped) until SIGUSR1: then it sends one byte on every
 * connection, reads its echo (5 s at most) and prints "verify ok=K n=N", K being the
 * connections that echoed the right byte.
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
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

static void die(const char *what) {
	printf("ERR %s: %s\n", what, strerror(errno));
	exit(4);
}

static struct sockaddr_in addr(int port) {
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	return a;
}

static void enoughFds(int n) {
	struct rlimit r = { (rlim_t)n + 64, (rlim_t)n + 64 };
	if (setrlimit(RLIMIT_NOFILE, &r)) die("setrlimit");
}

static _Noreturn void server(int port, int n) {
	struct sockaddr_in a = addr(port);
	int l = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(l, (struct sockaddr *)&a, sizeof(a)) || listen(l, 4096)) die("listen");
	struct pollfd *p = calloc(n, sizeof(*p));
	for (int k = 0; k < n; k++) {
		p[k].fd = accept(l, NULL, NULL);
		if (p[k].fd < 0) die("accept");
		p[k].events = POLLIN;
	}
	printf("ready n=%d\n", n);
	fflush(stdout);
	for (;;) {
		if (poll(p, n, -1) < 0) {
			if (errno == EINTR) continue;
			die("poll");
		}
		for (int k = 0; k < n; k++) {
			if (!p[k].revents) continue;
			char b[64];
			ssize_t r = read(p[k].fd, b, sizeof(b));
			if (r <= 0) {
				printf("BAD closed %d: %s\n", k, r ? strerror(errno) : "EOF");
				fflush(stdout);
				p[k].fd = -1;
				continue;
			}
			if (write(p[k].fd, b, r) != r) die("write");
		}
	}
}

static volatile sig_atomic_t asked;
static void onUsr1(int s) {
	(void)s;
	asked = 1;
}

static _Noreturn void peer(int port, int n) {
	struct sockaddr_in a = addr(port);
	int *fd = calloc(n, sizeof(int));
	for (int k = 0; k < n; k++) {
		fd[k] = socket(AF_INET, SOCK_STREAM, 0);
		if (fd[k] < 0 || connect(fd[k], (struct sockaddr *)&a, sizeof(a))) die("connect");
	}
	printf("connected n=%d\n", n);
	fflush(stdout);
	sigset_t usr1, old;
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	sigprocmask(SIG_BLOCK, &usr1, &old);
	signal(SIGUSR1, onUsr1);
	for (unsigned char round = 1;; round++) {
		while (!asked) sigsuspend(&old);
		asked = 0;
		int ok = 0;
		for (int k = 0; k < n; k++)
			if (send(fd[k], &round, 1, 0) != 1) die("send");
		struct timeval tv = { 5, 0 };
		for (int k = 0; k < n; k++) {
			unsigned char b = 0;
			setsockopt(fd[k], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
			if (recv(fd[k], &b, 1, 0) == 1 && b == round) ok++;
		}
		printf("verify ok=%d n=%d\n", ok, n);
		fflush(stdout);
	}
}

int main(int argc, char **argv) {
	if (argc != 4) {
		fprintf(stderr, "usage: tcpfan server|peer PORT N\n");
		return 2;
	}
	int port = atoi(argv[2]), n = atoi(argv[3]);
	enoughFds(n);
	if (strcmp(argv[1], "server")) peer(port, n);
	server(port, n);
}
