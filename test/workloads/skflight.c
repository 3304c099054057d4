/*
 * skflight: unix sockets in flight in their own queues. A datagram socketpair, each end
 * bound to an abstract name ("\0skflight-0", "\0skflight-1"); each end is sent over both
 * ends (SCM_RIGHTS), so that each queue holds both sockets. With "orphan", a third socket
 * no fd holds is sent too. Prints READY, waits for SIGUSR1, then receives through the
 * chain (end 0's queue gives end 0, whose queue gives end 1, ...) and checks each socket by
 * its name: "OK sockets in flight" or "FAIL ...", then DONE, exit 0 on success.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static volatile sig_atomic_t go;
static void on_usr1(int s) { (void)s; go = 1; }

#include "scmfd.h"

static socklen_t named(struct sockaddr_un *a, int i) {
	memset(a, 0, sizeof(*a));
	a->sun_family = AF_UNIX;
	int n = snprintf(a->sun_path + 1, sizeof(a->sun_path) - 1, "skflight-%d", i);
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
}

int main(int argc, char **argv) {
	int sk[2];
	struct sockaddr_un a;
	signal(SIGUSR1, on_usr1);
	if (socketpair(AF_UNIX, SOCK_DGRAM, 0, sk)) return 2;
	for (int i = 0; i < 2; i++)
		if (bind(sk[i], (struct sockaddr *)&a, named(&a, i))) return 2;
	for (int i = 0; i < 2; i++)
		for (int j = 0; j < 2; j++)
			if (send_fd(sk[i], sk[j])) return 2;
	if (argc > 1 && !strcmp(argv[1], "orphan")) {
		int o = socket(AF_UNIX, SOCK_DGRAM, 0);
		if (o < 0 || send_fd(sk[0], o)) return 2;
		close(o);
	}
	printf("READY\n");
	fflush(stdout);
	while (!go) usleep(10000);
	/* end 1 receives what end 0 sent: end 0, then end 1; end 0 receives end 0, then end 1. */
	int cur = sk[0];
	for (int i = 0; i < 3; i++) {
		int got = recv_fd(cur);
		struct sockaddr_un me;
		socklen_t len = sizeof(me);
		if (got < 0 || getsockname(got, (struct sockaddr *)&me, &len)) {
			printf("FAIL sockets in flight: message %d\n", i);
			printf("DONE\n");
			return 1;
		}
		if (len != named(&a, i % 2) || memcmp(&me, &a, len)) {
			printf("FAIL sockets in flight: message %d is not socket %d\n", i, i % 2);
			printf("DONE\n");
			return 1;
		}
		cur = got;
	}
	printf("OK sockets in flight\nDONE\n");
	return 0;
}
