/*
 * epflight: an epoll in flight. A datagram socketpair; an epoll watching one end
 * (EPOLLIN, data 0xabcdef) is sent twice over the pair (SCM_RIGHTS) and closed, so
 * that only the queue holds it. Prints READY, waits for SIGUSR1, then takes the
 * epoll back from the queue and checks that it still watches the socket (the
 * second message makes it readable) with its data: "OK epoll in flight" or
 * "FAIL ...", then DONE, exit 0 on success.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

static volatile sig_atomic_t go;
static void on_usr1(int s) { (void)s; go = 1; }

#include "scmfd.h"

int main(void) {
	int sk[2];
	signal(SIGUSR1, on_usr1);
	if (socketpair(AF_UNIX, SOCK_DGRAM, 0, sk)) return 2;
	int ep = epoll_create1(0);
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 0xabcdef };
	if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, sk[1], &ev)) return 2;
	if (send_fd(sk[0], ep) || send_fd(sk[0], ep)) return 2;
	close(ep);
	printf("READY\n");
	fflush(stdout);
	while (!go) usleep(10000);
	int got = recv_fd(sk[1]);
	memset(&ev, 0, sizeof(ev));
	if (got < 0) printf("FAIL epoll in flight: not received\n");
	else if (epoll_wait(got, &ev, 1, 0) != 1) printf("FAIL epoll in flight: no event\n");
	else if (ev.data.u64 != 0xabcdef || !(ev.events & EPOLLIN)) printf("FAIL epoll in flight: event %x data %llx\n", ev.events, (unsigned long long)ev.data.u64);
	else { printf("OK epoll in flight\nDONE\n"); return 0; }
	printf("DONE\n");
	return 1;
}
