/*
 * nsinit: the init of a container made by `unshare --pid --fork ...`. It sets its host and
 * domain name, forks a child, then prints every interval what it sees from inside:
 *
 *   i=N pid=P ppid=Q child=C childpid=D host=H domain=M
 *
 * pid/ppid are getpid()/getppid() (1 and 0 for a PID namespace's init), childpid what the
 * child reports through a pipe (its own getpid()).
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

static void nap(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) != 0)
		;
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
		printf("i=%ld pid=%d ppid=%d child=%d childpid=%d host=%s domain=%s\n", i, (int)getpid(), (int)getppid(), (int)c,
		       childpid, host, dom);
		fflush(stdout);
	}
}
