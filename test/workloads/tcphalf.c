/*
 * tcphalf wr HOST PORT | tcphalf rd HOST PORT: one end of a half-closed TCP connection.
 * wr: shuts its side down for writing at once (FIN_WAIT2 once the peer acknowledges), then
 *     reads the peer's stream, byte k = (7k + 3) mod 251; at the end of it prints
 *     "eof rx=N" and exits 0.
 * rd: reads until the peer's end of stream (CLOSE_WAIT), prints "closed", then sends that
 *     same stream, 100 bytes every 10 ms; each time, a read must still say end of stream.
 * Every 100 ms it prints "rx=N" or "tx=N"; a wrong byte or state prints "BAD ..." and exits 3,
 * a failed call "ERR ..." and exits 4.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static unsigned char at(long long k) { return (unsigned char)((7 * k + 3) % 251); }

static void fail(const char *what) { printf("ERR %s: %s\n", what, strerror(errno)); exit(4); }

int main(int argc, char **argv) {
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc < 4) return 1;
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai;
	if (getaddrinfo(argv[2], argv[3], &hints, &ai)) fail("getaddrinfo");
	int fd = socket(ai->ai_family, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen)) fail("connect");
	int wr = strcmp(argv[1], "wr") == 0;
	if (wr && shutdown(fd, SHUT_WR)) fail("shutdown");
	fcntl(fd, F_SETFL, O_NONBLOCK);
	long long rx = 0, tx = 0;
	unsigned char buf[1000];
	int eof = 0;
	for (int tick = 0;; tick++) {
		ssize_t n = recv(fd, buf, sizeof(buf), 0);
		if (n < 0 && errno != EAGAIN) fail("recv");
		if (n < 0 && eof) { printf("BAD the end of stream is gone\n"); return 3; }
		if (n == 0 && !eof) {
			eof = 1;
			if (wr) { printf("eof rx=%lld\n", rx); return 0; }
			printf("closed\n");
		}
		for (ssize_t i = 0; i < n; i++, rx++) {
			if (buf[i] != at(rx)) { printf("BAD at %lld\n", rx); return 3; }
		}
		if (eof) {
			for (int i = 0; i < 100; i++) buf[i] = at(tx + i);
			n = send(fd, buf, 100, MSG_NOSIGNAL);
			if (n > 0) tx += n;
			else if (n < 0 && errno != EAGAIN) fail("send");
		}
		if (tick % 10 == 0) printf(wr ? "rx=%lld\n" : "tx=%lld\n", wr ? rx : tx);
		usleep(10000);
	}
}
