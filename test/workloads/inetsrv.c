/*
 * inetsrv BASE: TCP listeners (IPv4, IPv6-only, dual-stack), UDP sockets bound and connected,
 * UDP-Lite, a UDP socket shut for writing and an unbound TCP socket, each with options set. Every 50 ms it prints i=N, checks
 * that every option is still what it set (prints "BAD ..." otherwise), greets each accepted
 * connection with "hello\n", echoes UDP and UDP-Lite datagrams, and sends "tick N" from
 * its connected UDP socket to [::1]:BASE+5.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef IPPROTO_UDPLITE
#define IPPROTO_UDPLITE 136
#endif

static int bad;

static void die(const char *what) { printf("BAD %s: %s\n", what, strerror(errno)); fflush(stdout); exit(2); }

static void setopt(int fd, int level, int opt, int v) { if (setsockopt(fd, level, opt, &v, sizeof(v))) die("setsockopt"); }

static void expect(int fd, int level, int opt, int want, const char *name) {
	int v = -1; socklen_t l = sizeof(v);
	if (getsockopt(fd, level, opt, &v, &l)) { printf("BAD getsockopt %s: %s\n", name, strerror(errno)); bad = 1; return; }
	if (v != want) { printf("BAD %s is %d, want %d\n", name, v, want); bad = 1; }
}

static int sock4(int type, int proto, int port) {
	int fd = socket(AF_INET, type | SOCK_NONBLOCK, proto);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
	inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
	if (fd < 0) die("socket");
	setopt(fd, SOL_SOCKET, SO_REUSEADDR, 1);
	if (bind(fd, (struct sockaddr *)&a, sizeof(a))) die("bind4");
	return fd;
}

static int sock6(int type, int proto, const char *addr, int port, int v6only) {
	int fd = socket(AF_INET6, type | SOCK_NONBLOCK, proto);
	struct sockaddr_in6 a = { .sin6_family = AF_INET6, .sin6_port = htons(port) };
	inet_pton(AF_INET6, addr, &a.sin6_addr);
	if (fd < 0) die("socket6");
	setopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, v6only);
	if (bind(fd, (struct sockaddr *)&a, sizeof(a))) die("bind6");
	return fd;
}

static void greet(int l) {
	int c = accept4(l, NULL, NULL, 0);
	if (c < 0) { if (errno != EAGAIN) die("accept"); return; }
	if (write(c, "hello\n", 6) != 6) die("write");
	close(c);
}

static void echo(int fd) {
	char buf[512], out[600];
	struct sockaddr_storage from; socklen_t fl = sizeof(from);
	ssize_t n = recvfrom(fd, buf, sizeof(buf) - 1, 0, (struct sockaddr *)&from, &fl);
	if (n < 0) { if (errno != EAGAIN) die("recvfrom"); return; }
	buf[n] = 0;
	int m = snprintf(out, sizeof(out), "echo:%s", buf);
	if (sendto(fd, out, m, 0, (struct sockaddr *)&from, fl) != m) die("sendto");
}

int main(int argc, char **argv) {
	int base = argc > 1 ? atoi(argv[1]) : 30000;
	setvbuf(stdout, NULL, _IOLBF, 0);

	int t4 = sock4(SOCK_STREAM, 0, base);
	setopt(t4, IPPROTO_TCP, TCP_NODELAY, 1);
	setopt(t4, SOL_SOCKET, SO_KEEPALIVE, 1);
	setopt(t4, IPPROTO_TCP, TCP_KEEPIDLE, 77);
	setopt(t4, IPPROTO_TCP, TCP_KEEPINTVL, 9);
	setopt(t4, IPPROTO_TCP, TCP_KEEPCNT, 4);
	setopt(t4, SOL_SOCKET, SO_RCVBUF, 65536);
	if (listen(t4, 7)) die("listen4");

	int t6 = sock6(SOCK_STREAM, 0, "::1", base + 1, 1);
	setopt(t6, SOL_SOCKET, SO_REUSEPORT, 1);
	if (listen(t6, 5)) die("listen6");

	int td = sock6(SOCK_STREAM, 0, "::", base + 2, 0);
	if (listen(td, 3)) die("listen dual");

	int u4 = sock4(SOCK_DGRAM, 0, base + 3);
	setopt(u4, IPPROTO_IP, IP_TOS, 0x10);
	setopt(u4, SOL_SOCKET, SO_BROADCAST, 1);

	int u6 = sock6(SOCK_DGRAM, 0, "::1", base + 4, 1);
	struct sockaddr_in6 to = { .sin6_family = AF_INET6, .sin6_port = htons(base + 5) };
	inet_pton(AF_INET6, "::1", &to.sin6_addr);
	if (connect(u6, (struct sockaddr *)&to, sizeof(to))) die("connect u6");

	int ul = sock4(SOCK_DGRAM, IPPROTO_UDPLITE, base + 6);

	/* A UDP socket shut for writing: only sock_diag shows it. */
	int us = sock4(SOCK_DGRAM, 0, base + 7);
	shutdown(us, SHUT_WR); /* ENOTCONN, but the shutdown holds */
	struct sockaddr_in self = { .sin_family = AF_INET, .sin_port = htons(base + 7) };
	inet_pton(AF_INET, "127.0.0.1", &self.sin_addr);

	int tu = socket(AF_INET, SOCK_STREAM, 0);
	setopt(tu, IPPROTO_TCP, TCP_NODELAY, 1);

	for (int i = 0;; i++) {
		bad = 0;
		expect(t4, IPPROTO_TCP, TCP_NODELAY, 1, "t4 TCP_NODELAY");
		expect(t4, SOL_SOCKET, SO_KEEPALIVE, 1, "t4 SO_KEEPALIVE");
		expect(t4, IPPROTO_TCP, TCP_KEEPIDLE, 77, "t4 TCP_KEEPIDLE");
		expect(t4, IPPROTO_TCP, TCP_KEEPINTVL, 9, "t4 TCP_KEEPINTVL");
		expect(t4, IPPROTO_TCP, TCP_KEEPCNT, 4, "t4 TCP_KEEPCNT");
		expect(t4, SOL_SOCKET, SO_REUSEADDR, 1, "t4 SO_REUSEADDR");
		expect(t4, SOL_SOCKET, SO_RCVBUF, 131072, "t4 SO_RCVBUF");
		expect(t4, SOL_SOCKET, SO_ACCEPTCONN, 1, "t4 listening");
		expect(t6, IPPROTO_IPV6, IPV6_V6ONLY, 1, "t6 IPV6_V6ONLY");
		expect(t6, SOL_SOCKET, SO_REUSEPORT, 1, "t6 SO_REUSEPORT");
		expect(td, IPPROTO_IPV6, IPV6_V6ONLY, 0, "td IPV6_V6ONLY");
		expect(u4, IPPROTO_IP, IP_TOS, 0x10, "u4 IP_TOS");
		expect(u4, SOL_SOCKET, SO_BROADCAST, 1, "u4 SO_BROADCAST");
		expect(ul, SOL_SOCKET, SO_PROTOCOL, IPPROTO_UDPLITE, "ul protocol");
		expect(tu, IPPROTO_TCP, TCP_NODELAY, 1, "tu TCP_NODELAY");
		expect(t4, SOL_SOCKET, SO_TYPE, SOCK_STREAM, "t4 type");
		if (sendto(us, "x", 1, MSG_DONTWAIT, (struct sockaddr *)&self, sizeof(self)) != -1 || errno != EPIPE) { printf("BAD us sends after SHUT_WR\n"); bad = 1; }
		if ((fcntl(t4, F_GETFL) & O_NONBLOCK) == 0 || (fcntl(tu, F_GETFL) & O_NONBLOCK)) { printf("BAD O_NONBLOCK\n"); bad = 1; }
		printf("i=%d%s\n", i, bad ? " bad" : " ok");
		greet(t4); greet(t6); greet(td);
		echo(u4); echo(ul);
		char tick[32];
		int m = snprintf(tick, sizeof(tick), "tick %d", i);
		send(u6, tick, m, 0); /* nobody may listen: ECONNREFUSED is fine */
		usleep(50000);
	}
}
