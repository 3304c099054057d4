/*
 * nsinit: the init of a container made by `unshare --pid --fork ...`. It sets its host and
 * domain name, forks a child, then prints every interval what it sees from inside:
 *
 *   i=N pid=P ppid=Q child=C childpid=D host=H domain=M mono=S tcp=ok|ERR
 *
 * pid/ppid are getpid()/getppid() (1 and 0 for a PID namespace's init), childpid what the
 * child reports through a pipe (its own getpid()), mono CLOCK_MONOTONIC's seconds, tcp
 * whether a connection to its listener on 127.0.0.1:7777 (its loopback, which it brings up)
 * went through.
 *
 *   nsinit HOSTNAME DOMAINNAME [interval_ms]
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <signal.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

static void nap(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) != 0)
		;
}

static int listener(void)
{
	int s = socket(AF_INET, SOCK_DGRAM, 0);
	struct ifreq ifr = { 0 };
	strcpy(ifr.ifr_name, "lo");
	if (s < 0 || ioctl(s, SIOCGIFFLAGS, &ifr))
		return -1;
	ifr.ifr_flags |= IFF_UP;
	if (ioctl(s, SIOCSIFFLAGS, &ifr))
		return -1;
	close(s);
	int l = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(7777), .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(l, (struct sockaddr *)&a, sizeof(a)) || listen(l, 4))
		return -1;
	return l;
}

/* A connection to our own listener, one byte through it. */
static const char *tcp(int l)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(7777), .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int c = socket(AF_INET, SOCK_STREAM, 0), ok = 0;
	if (c >= 0 && !connect(c, (struct sockaddr *)&a, sizeof(a))) {
		int s = accept(l, NULL, NULL);
		char x = 'x';
		ok = s >= 0 && write(c, &x, 1) == 1 && read(s, &x, 1) == 1;
		if (s >= 0)
			close(s);
	}
	if (c >= 0)
		close(c);
	return ok ? "ok" : "ERR";
}

int main(int argc, char **argv)
{
	if (argc < 3)
		return 2;
	long interval_ms = argc > 3 ? atol(argv[3]) : 100;
	if (sethostname(argv[1], strlen(argv[1])) || setdomainname(argv[2], strlen(argv[2]))) {
		perror("sethostname");
		return 1;
	}
	int l = listener();
	if (l < 0) {
		perror("listener");
		return 1;
	}
	int p[2];
	if (pipe(p))
		return 1;
	pid_t c = fork();
	if (c == 0) {
		for (;;) {
			int me = getpid();
			if (write(p[1], &me, sizeof(me)) != sizeof(me))
				return 1;
			nap(interval_ms);
		}
	}
	printf("start pid=%d\n", (int)getpid());
	fflush(stdout);
	for (long i = 1;; i++) {
		int childpid = 0;
		if (read(p[0], &childpid, sizeof(childpid)) != sizeof(childpid))
			return 1;
		char host[65] = "", dom[65] = "";
		gethostname(host, sizeof(host));
		getdomainname(dom, sizeof(dom));
		struct timespec mono;
		clock_gettime(CLOCK_MONOTONIC, &mono);
		printf("i=%ld pid=%d ppid=%d child=%d childpid=%d host=%s domain=%s mono=%ld tcp=%s\n", i, (int)getpid(),
		       (int)getppid(), (int)c, childpid, host, dom, (long)mono.tv_sec, tcp(l));
		fflush(stdout);
	}
}
