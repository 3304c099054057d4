/*
 * tcplastack PORT [v6]: both ends of a loopback TCP connection in this process, as in ZDTM's
 * socket-tcp-closed-last-ack: the client shuts its side down, a netfilter rule of the
 * process's own (table inet tree) drops what comes to the server's port, then the server shuts
 * its side down: the server is in LAST_ACK (its FIN's ACK dropped), the client closed. It
 * prints "ready" and waits for SIGUSR1 (sent after a restore); then it removes the rule, waits
 * until the server's next FIN gets its answer (a reset from the client's port, where nothing is
 * bound to the connection any more), and checks what the test checks: both reads see the end
 * of stream, both writes fail. "ok" and exit 0; "BAD ..." (exit 3) or "ERR ..." (exit 4).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "loopback.h"

static void fail(const char *what) { printf("ERR %s: %s\n", what, strerror(errno)); exit(4); }
static volatile sig_atomic_t go;
static void on_usr1(int s) { (void)s; go = 1; }

static int state(int fd) {
	struct tcp_info ti;
	socklen_t len = sizeof(ti);
	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len)) fail("TCP_INFO");
	return ti.tcpi_state;
}

static void sh(const char *cmd) {
	if (system(cmd) != 0) { printf("ERR %s: failed\n", cmd); exit(4); }
}

int main(int argc, char **argv) {
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc < 2) return 1;
	int port = atoi(argv[1]), v6 = argc > 2 && strcmp(argv[2], "v6") == 0;
	signal(SIGUSR1, on_usr1);
	signal(SIGPIPE, SIG_IGN);
	int s, c;
	loopback_pair(v6, port, &s, &c);
	if (shutdown(c, SHUT_WR)) fail("shutdown client");
	char cmd[256];
	snprintf(cmd, sizeof(cmd),
		 "nft 'add table inet tree; add chain inet tree in { type filter hook input priority 0; }; "
		 "add rule inet tree in tcp dport %d drop'",
		 port);
	sh(cmd);
	if (shutdown(s, SHUT_WR)) fail("shutdown server");
	printf("ready\n");
	while (!go) pause();
	sh("nft delete table inet tree");
	/* The server's FIN goes out again every RTO (200 ms, doubling): wait for its answer. */
	for (int i = 0; i < 200 && state(s) != TCP_CLOSE; i++) usleep(50000);
	if (state(s) != TCP_CLOSE) { printf("BAD server: state %d 10 s after the rule went\n", state(s)); return 3; }
	char b;
	if (read(s, &b, 1) != 0) { printf("BAD server: read: %s\n", strerror(errno)); return 3; }
	if (read(c, &b, 1) != 0) { printf("BAD client: read: %s\n", strerror(errno)); return 3; }
	if (write(c, &b, 1) != -1) { printf("BAD client: write succeeded\n"); return 3; }
	if (write(s, &b, 1) != -1) { printf("BAD server: write succeeded\n"); return 3; }
	printf("ok\n");
	return 0;
}
