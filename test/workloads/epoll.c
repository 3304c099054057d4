/*
 * epoll [closed]: an epoll watching a pipe (data 111) and an eventfd (data 222). On SIGUSR1 it
 * makes both ready and checks that epoll_wait reports exactly those two:
 *   ready pid=N
 *   check=ok | check=BAD got=...
 * With "closed", a third target is added through an fd that is then closed while a dup keeps
 * the file open: the epoll still watches it, under an fd number the task no longer has.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

static volatile sig_atomic_t usr1;
static void on_usr1(int s) { (void)s; usr1 = 1; }

static void add(int ep, int fd, unsigned long data)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.u64 = data};
	if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev)) { perror("epoll_ctl"); _exit(1); }
}

int main(int argc, char **argv)
{
	int p[2], q[2];
	if (pipe(p) || pipe(q)) { perror("pipe"); return 1; }
	int e = eventfd(0, 0), ep = epoll_create1(0);
	add(ep, p[0], 111);
	add(ep, e, 222);
	if (argc > 1 && !strcmp(argv[1], "closed")) {
		int keep = dup(q[0]);
		add(ep, q[0], 333);
		close(q[0]);
		(void)keep;
	}
	signal(SIGUSR1, on_usr1);
	printf("ready pid=%d\n", getpid());
	fflush(stdout);
	for (;;) {
		pause();
		if (!usr1) continue;
		usr1 = 0;
		unsigned long one = 1;
		if (write(p[1], "x", 1) != 1 || write(e, &one, 8) != 8) { perror("write"); return 1; }
		struct epoll_event evs[8];
		int n = epoll_wait(ep, evs, 8, 1000), got111 = 0, got222 = 0, other = 0;
		for (int i = 0; i < n; i++) {
			if (evs[i].data.u64 == 111) got111++;
			else if (evs[i].data.u64 == 222) got222++;
			else other++;
		}
		char c;
		if (read(p[0], &c, 1) != 1 || read(e, &one, 8) != 8) { perror("read"); return 1; }
		printf(got111 == 1 && got222 == 1 && !other ? "check=ok\n" : "check=BAD got=%d/%d/%d\n", got111, got222, other);
		fflush(stdout);
	}
}
