/*
 * loopback.h: both ends of a TCP connection over the loopback (IPv4, or IPv6), for the TCP
 * workloads: the listener is closed once the server's end is accepted, so that only the two
 * ends are left to answer a segment. A failed call prints "ERR ..." and exits 4.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void loopback_pair(int v6, int port, int *server, int *client) {
	struct sockaddr_storage ss = { 0 };
	socklen_t len;
	if (v6) {
		struct sockaddr_in6 *a = (void *)&ss;
		a->sin6_family = AF_INET6, a->sin6_port = htons(port), a->sin6_addr = in6addr_loopback;
		len = sizeof(*a);
	} else {
		struct sockaddr_in *a = (void *)&ss;
		a->sin_family = AF_INET, a->sin_port = htons(port), a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		len = sizeof(*a);
	}
	int one = 1, fam = v6 ? AF_INET6 : AF_INET, l = socket(fam, SOCK_STREAM, 0);
	*client = socket(fam, SOCK_STREAM, 0);
	setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	const char *what = "listen";
	if (bind(l, (void *)&ss, len) || listen(l, 1)) goto err;
	what = "connect";
	if (connect(*client, (void *)&ss, len)) goto err;
	what = "accept";
	if ((*server = accept(l, NULL, NULL)) < 0) goto err;
	close(l);
	return;
err:
	printf("ERR %s: %s\n", what, strerror(errno));
	exit(4);
}
