/*
 * tcpconn peer PORT | tcpconn client HOST PORT [ready-file]: two ends of one TCP connection
 * (IPv4 or IPv6 by HOST) that both send a known byte stream, byte k = (7k + 3) mod 251, and
 * check that what they receive is that stream, byte after byte. Each writes 1000 bytes and
 * reads at most 600 every 10 ms, so the queues on both sides fill up. Every 100 ms it
 * prints "rx=N tx=N"; a wrong byte prints "BAD at N" and exits 3, a closed or reset
 * connection "ERR ..." and exits 4. With TCPCONN_TOLERATE set, a send that fails with EINVAL or a
 * recv with EPERM (a socket in TCP repair mode) prints "TRANSIENT ..." and the loop goes on.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static unsigned char at(long long k) { return (unsigned char)((7 * k + 3) % 251); }

static void fail(const char *what) { printf("ERR %s: %s\n", what, strerror(errno)); exit(4); }

static int connectTo(const char *host, const char *port) {
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai;
	if (getaddrinfo(host, port, &hints, &ai)) fail("getaddrinfo");
	int fd = socket(ai->ai_family, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen)) fail("connect");
	freeaddrinfo(ai);
	return fd;
}

static int acceptOn(int port) {
	int l = socket(AF_INET6, SOCK_STREAM, 0), one = 1, zero = 0;
	struct sockaddr_in6 a = { .sin6_family = AF_INET6, .sin6_port = htons(port), .sin6_addr = IN6ADDR_ANY_INIT };
	setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	setsockopt(l, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
	if (bind(l, (struct sockaddr *)&a, sizeof(a)) || listen(l, 1)) fail("listen");
	printf("listening\n");
	int c = accept(l, NULL, NULL);
	if (c < 0) fail("accept");
	close(l);
	return c;
}

int main(int argc, char **argv) {
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc < 3) return 1;
	int fd = strcmp(argv[1], "peer") == 0 ? acceptOn(atoi(argv[2])) : connectTo(argv[2], argv[3]);
	if (argc > 4) { FILE *f = fopen(argv[4], "w"); if (f) fclose(f); }
	fcntl(fd, F_SETFL, O_NONBLOCK);
	int tolerate = getenv("TCPCONN_TOLERATE") != NULL;
	long long rx = 0, tx = 0;
	unsigned char buf[1000];
	for (int tick = 0;; tick++) {
		for (int i = 0; i < 1000; i++) buf[i] = at(tx + i);
		ssize_t n = send(fd, buf, sizeof(buf), MSG_NOSIGNAL);
		if (n > 0) tx += n;
		else if (n < 0 && tolerate && errno == EINVAL) printf("TRANSIENT send: %s\n", strerror(errno));
		else if (n < 0 && errno != EAGAIN) fail("send");
		n = recv(fd, buf, 600, 0);
		if (n == 0) { errno = 0; fail("recv: end of stream"); }
		if (n < 0 && tolerate && errno == EPERM) { printf("TRANSIENT recv: %s\n", strerror(errno)); n = 0; }
		if (n < 0 && errno != EAGAIN) fail("recv");
		for (ssize_t i = 0; i < n; i++, rx++) {
			if (buf[i] != at(rx)) { printf("BAD at %lld\n", rx); return 3; }
		}
		if (tick % 10 == 0) printf("rx=%lld tx=%lld\n", rx, tx);
		usleep(10000);
	}
}
