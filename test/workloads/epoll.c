/*
 * epoll [closed]: an epoll watching a pipe (data 111) and an eventfd (data 222). On SIGUSR1 it
 * makes both ready and checks that epoll_wait reports exactly those two:
 *   ready pid=N
 *   check=ok | check=BAD got=...
 * With "closed", a third target (data 333) is added through an fd that is then closed while a
 * dup keeps the file open, and /dev/null takes that fd number: the epoll still watches the
 * file under the old number. The check then also wants 333, the old number still /dev/null,
 * and the registration still keyed by it (adding the file again under it gives EEXIST).
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
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
	int p[2], q[2], keep = -1, key = -1;
	if (pipe(p) || pipe(q)) { perror("pipe"); return 1; }
	int e = eventfd(0, 0), ep = epoll_create1(0);
	add(ep, p[0], 111);
	add(ep, e, 222);
	if (argc > 1 && !strcmp(argv[1], "closed")) {
		keep = dup(q[0]);
		key = q[0];
		add(ep, key, 333);
		close(key);
		if (open("/dev/null", O_RDONLY) != key) { perror("open /dev/null"); return 1; }
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
		if (key >= 0 && write(q[1], "y", 1) != 1) { perror("write"); return 1; }
		struct epoll_event evs[8];
		int n = epoll_wait(ep, evs, 8, 1000), got111 = 0, got222 = 0, got333 = 0, other = 0;
		for (int i = 0; i < n; i++) {
			if (evs[i].data.u64 == 111) got111++;
			else if (evs[i].data.u64 == 222) got222++;
			else if (evs[i].data.u64 == 333) got333++;
			else other++;
		}
		char c;
		if (read(p[0], &c, 1) != 1 || read(e, &one, 8) != 8) { perror("read"); return 1; }
		int keyed = 1, devnull = 1;
		if (key >= 0) {
			if (read(keep, &c, 1) != 1) { perror("read"); return 1; }
			struct stat st;
			devnull = !fstat(key, &st) && S_ISCHR(st.st_mode);
			/* Under the old number again, the same file is already registered. */
			int saved = dup(key);
			dup2(keep, key);
			struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 444};
			keyed = epoll_ctl(ep, EPOLL_CTL_ADD, key, &ev) == -1 && errno == EEXIST;
			dup2(saved, key);
			close(saved);
		}
		int want333 = key >= 0;
		printf(got111 == 1 && got222 == 1 && got333 == want333 && !other && keyed && devnull ? "check=ok\n"
		       : "check=BAD got=%d/%d/%d/%d keyed=%d devnull=%d\n", got111, got222, got333, other, keyed, devnull);
		fflush(stdout);
	}
}
