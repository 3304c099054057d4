/*
 * unixsk: unix sockets of every shape, with data queued, checked after SIGUSR1.
 *
 *   unixsk DIR [solo]
 *
 * Sets up, prints READY, and waits for SIGUSR1 (sent after a restore, or
 * straight away as a control). Then it checks that every socket still holds
 * exactly what was queued (message boundaries for datagram and seqpacket) and
 * still talks, printing "OK what" or "FAIL what: why" per check, then DONE.
 *
 *  - stream, seqpacket and datagram socketpairs with data queued both ways;
 *  - a stream pair shared with a child process (the child echoes after SIGUSR1),
 *    unless "solo" (one process: CRIU restores criu-ts's single processes);
 *  - a stream listener bound to DIR/lsn: one accepted connection with data
 *    queued both ways, two connections still in its backlog;
 *  - a datagram server bound to an abstract name, one client connected to it
 *    and one unbound sender, datagrams queued from both;
 *  - a seqpacket listener bound to a relative name (cwd DIR) with one
 *    accepted connection;
 *  - an unbound, unconnected stream socket;
 *  - a pair where one end sent "bye" and shut down writing;
 *  - SO_SNDBUF, SO_RCVBUF and SO_PASSCRED set on sockets, checked after;
 *  - pipes in flight (SCM_RIGHTS) on a stream and a datagram pair, with data in
 *    them, closed by the sender;
 *  - a datagram server bound to DIR/gone/dsk, with a connected client and a
 *    message queued, whose file and directory were removed; a listener bound
 *    to DIR/repl whose file was replaced by a regular file;
 *  - unless solo (CRIU cannot dump it): a message with its credentials
 *    (SCM_CREDENTIALS) queued at a SO_PASSCRED socket, and SO_PEEK_OFF 3.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

static int fails;

static void check(int ok, const char *what, const char *why)
{
	if (ok)
		printf("OK %s\n", what);
	else {
		printf("FAIL %s: %s (errno %d)\n", what, why, errno);
		fails++;
	}
	fflush(stdout);
}

static void die(const char *what)
{
	perror(what);
	exit(2);
}

static void put(int fd, const char *s)
{
	if (send(fd, s, strlen(s), MSG_DONTWAIT) != (ssize_t)strlen(s))
		die(s);
}

/* One recv must return exactly `want` (a record, or the whole stream chunk). */
static int got(int fd, const char *want)
{
	char buf[256];
	ssize_t n = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);
	if (n < 0)
		return 0;
	buf[n] = 0;
	if (strcmp(buf, want)) {
		printf("  got \"%s\" for \"%s\"\n", buf, want);
		return 0;
	}
	return 1;
}

static int empty(int fd)
{
	char c;
	return recv(fd, &c, 1, MSG_DONTWAIT) < 0 && errno == EAGAIN;
}

/* Both ends still talk: a new message each way arrives whole. */
static int talks(int a, int b)
{
	put(a, "ping");
	put(b, "pong");
	return got(b, "ping") && got(a, "pong");
}

static struct sockaddr_un unaddr(const char *path, int abstract, socklen_t *len)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	if (abstract) {
		memcpy(a.sun_path + 1, path, strlen(path));
		*len = offsetof(struct sockaddr_un, sun_path) + 1 + strlen(path);
	} else {
		strcpy(a.sun_path, path);
		*len = offsetof(struct sockaddr_un, sun_path) + strlen(path) + 1;
	}
	return a;
}

static int bound(int type, const char *path, int abstract)
{
	socklen_t len;
	struct sockaddr_un a = unaddr(path, abstract, &len);
	int fd = socket(AF_UNIX, type, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, len))
		die("bind");
	return fd;
}

static int connected(int type, const char *path, int abstract)
{
	socklen_t len;
	struct sockaddr_un a = unaddr(path, abstract, &len);
	int fd = socket(AF_UNIX, type, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, len))
		die("connect");
	return fd;
}

/* Send a pipe's read end with `data` in the pipe, and close it here. */
static void send_pipe(int sk, const char *msg, const char *data)
{
	int p[2];
	if (pipe(p) || write(p[1], data, strlen(data)) != (ssize_t)strlen(data))
		die("pipe");
	close(p[1]);
	char cbuf[CMSG_SPACE(sizeof(int))] = { 0 };
	struct iovec iov = { (void *)msg, strlen(msg) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &p[0], sizeof(int));
	if (sendmsg(sk, &mh, 0) < 0)
		die("sendmsg");
	close(p[0]);
}

/* The next message is `msg` with a pipe holding `data`; with want_pid, also credentials of that pid. */
static int got_pipe(int sk, const char *msg, const char *data)
{
	char buf[64] = { 0 }, cbuf[CMSG_SPACE(sizeof(int))];
	struct iovec iov = { buf, sizeof(buf) - 1 };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
	ssize_t n = recvmsg(sk, &mh, MSG_DONTWAIT);
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
	if (n < 0 || strcmp(buf, msg) || !c || c->cmsg_type != SCM_RIGHTS) {
		printf("  got \"%s\" for \"%s\"\n", buf, msg);
		return 0;
	}
	int fd;
	memcpy(&fd, CMSG_DATA(c), sizeof(int));
	char pbuf[64] = { 0 };
	n = read(fd, pbuf, sizeof(pbuf) - 1);
	close(fd);
	return n == (ssize_t)strlen(data) && !strcmp(pbuf, data);
}

static int got_creds(int sk, const char *msg, pid_t pid)
{
	char buf[64] = { 0 }, cbuf[CMSG_SPACE(sizeof(struct ucred))];
	struct iovec iov = { buf, sizeof(buf) - 1 };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
	ssize_t n = recvmsg(sk, &mh, MSG_DONTWAIT);
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
	if (n < 0 || strcmp(buf, msg) || !c || c->cmsg_type != SCM_CREDENTIALS)
		return 0;
	struct ucred u;
	memcpy(&u, CMSG_DATA(c), sizeof(u));
	if (u.pid != pid || u.uid != getuid() || u.gid != getgid()) {
		printf("  creds pid %d uid %d gid %d\n", u.pid, u.uid, u.gid);
		return 0;
	}
	return 1;
}

static volatile sig_atomic_t go;
static void on_usr1(int s) { (void)s; go = 1; }

static void wait_go(void)
{
	sigset_t none;
	sigemptyset(&none);
	while (!go)
		sigsuspend(&none);
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return 2;
	int solo = argc > 2 && !strcmp(argv[2], "solo");
	if (chdir(argv[1]))
		die("chdir");
	sigset_t usr1;
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	sigprocmask(SIG_BLOCK, &usr1, NULL);
	signal(SIGUSR1, on_usr1);
	char lsn[200], abs_name[64];
	snprintf(lsn, sizeof(lsn), "%s/lsn", argv[1]);
	snprintf(abs_name, sizeof(abs_name), "unixsk-%d", getpid());

	int st[2], sq[2], dg[2], ch[2], sh[2];
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, st) || socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sq) ||
	    socketpair(AF_UNIX, SOCK_DGRAM, 0, dg) || socketpair(AF_UNIX, SOCK_STREAM, 0, ch) ||
	    socketpair(AF_UNIX, SOCK_STREAM, 0, sh))
		die("socketpair");

	pid_t child = solo ? 0 : fork();
	if (!solo && child == 0) {
		close(ch[0]);
		wait_go();
		char buf[64];
		ssize_t n;
		/* Echo what the parent sent, before and after the dump, with a prefix. */
		while ((n = read(ch[1], buf, sizeof(buf))) > 0) {
			char out[80];
			int m = snprintf(out, sizeof(out), "echo:%.*s", (int)n, buf);
			if (write(ch[1], out, m) != m)
				return 3;
		}
		return 0;
	}
	if (!solo)
		close(ch[1]);

	put(st[0], "st-a1"); put(st[0], "st-a2"); put(st[1], "st-b1");
	put(sq[0], "q1"); put(sq[0], "q22"); put(sq[0], "q333"); put(sq[1], "r1");
	put(dg[0], "d1"); put(dg[0], "d22"); put(dg[1], "e1");
	put(ch[0], "to-child");
	put(sh[0], "bye");
	shutdown(sh[0], SHUT_WR);

	int l = bound(SOCK_STREAM, lsn, 0);
	if (listen(l, 5))
		die("listen");
	int c1 = connected(SOCK_STREAM, lsn, 0);
	int a1 = accept(l, NULL, NULL);
	int c2 = connected(SOCK_STREAM, lsn, 0);
	int c3 = connected(SOCK_STREAM, lsn, 0);
	put(c1, "from-client"); put(a1, "from-server");

	int ds = bound(SOCK_DGRAM, abs_name, 1);
	int dc = connected(SOCK_DGRAM, abs_name, 1);
	int du = socket(AF_UNIX, SOCK_DGRAM, 0);
	put(dc, "dc-1"); put(dc, "dc-2");
	{
		socklen_t len;
		struct sockaddr_un a = unaddr(abs_name, 1, &len);
		if (sendto(du, "du-1", 4, 0, (struct sockaddr *)&a, len) != 4)
			die("sendto");
	}
	put(dc, "dc-3");

	int sl = bound(SOCK_SEQPACKET, "rel-seq", 0);
	if (listen(sl, 3))
		die("listen");
	int sc = connected(SOCK_SEQPACKET, "rel-seq", 0);
	int sa = accept(sl, NULL, NULL);
	put(sc, "rel-1");

	int lone = socket(AF_UNIX, SOCK_STREAM, 0);
	int sndbuf = 65536, rcvbuf = 98304, one = 1;
	setsockopt(st[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
	setsockopt(st[1], SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	setsockopt(sc, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one));
	int want_snd, want_rcv;
	socklen_t ol = sizeof(int);
	getsockopt(st[0], SOL_SOCKET, SO_SNDBUF, &want_snd, &ol);
	getsockopt(st[1], SOL_SOCKET, SO_RCVBUF, &want_rcv, &ol);

	int rs[2], rd[2], cr[2];
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, rs) || socketpair(AF_UNIX, SOCK_DGRAM, 0, rd) ||
	    socketpair(AF_UNIX, SOCK_DGRAM, 0, cr))
		die("socketpair");
	put(rs[0], "plain-");
	send_pipe(rs[0], "with-fd", "pipe-data-1");
	send_pipe(rd[0], "dg-fd-1", "pipe-data-2");
	send_pipe(rd[0], "dg-fd-2", "pipe-data-3");
	if (!solo) {
		setsockopt(cr[1], SOL_SOCKET, SO_PASSCRED, &one, sizeof(one));
		put(cr[0], "cred-1");
		put(cr[0], "cred-2");
		int off = 3;
		setsockopt(cr[1], SOL_SOCKET, SO_PEEK_OFF, &off, sizeof(off));
	}

	char gone_dir[220], gone[240], repl[220];
	snprintf(gone_dir, sizeof(gone_dir), "%s/gone", argv[1]);
	snprintf(gone, sizeof(gone), "%s/dsk", gone_dir);
	snprintf(repl, sizeof(repl), "%s/repl", argv[1]);
	if (mkdir(gone_dir, 0755))
		die("mkdir");
	int gs = bound(SOCK_DGRAM, gone, 0);
	int gc = connected(SOCK_DGRAM, gone, 0);
	put(gc, "ghost-1");
	if (unlink(gone) || rmdir(gone_dir))
		die("unlink");
	int rl = bound(SOCK_STREAM, repl, 0);
	if (listen(rl, 1) || unlink(repl))
		die("listen");
	FILE *rf = fopen(repl, "w");
	if (!rf || fputs("new", rf) < 0 || fclose(rf))
		die("replace");

	printf("READY child=%d\n", child);
	fflush(stdout);
	wait_go();
	if (!solo)
		kill(child, SIGUSR1);

	check(got(st[1], "st-a1st-a2") && got(st[0], "st-b1") && empty(st[0]) && empty(st[1]), "stream pair queues", "wrong data");
	check(talks(st[0], st[1]), "stream pair talks", "no");
	check(got(sq[1], "q1") && got(sq[1], "q22") && got(sq[1], "q333") && got(sq[0], "r1") && empty(sq[1]), "seqpacket pair records", "wrong records");
	check(talks(sq[0], sq[1]), "seqpacket pair talks", "no");
	check(got(dg[1], "d1") && got(dg[1], "d22") && got(dg[0], "e1") && empty(dg[1]), "dgram pair datagrams", "wrong datagrams");
	check(talks(dg[0], dg[1]), "dgram pair talks", "no");
	if (!solo) {
		char buf[64];
		ssize_t n = read(ch[0], buf, sizeof(buf) - 1);
		buf[n > 0 ? n : 0] = 0;
		check(n > 0 && !strcmp(buf, "echo:to-child"), "pair with the child: queued", buf);
		put(ch[0], "again");
		n = read(ch[0], buf, sizeof(buf) - 1);
		buf[n > 0 ? n : 0] = 0;
		check(n > 0 && !strcmp(buf, "echo:again"), "pair with the child: talks", buf);
	}
	{
		char c;
		int ok = got(sh[1], "bye") && recv(sh[1], &c, 1, MSG_DONTWAIT) == 0;
		check(ok, "shut down pair: data then EOF", "no EOF");
		signal(SIGPIPE, SIG_IGN);
		check(send(sh[0], "x", 1, MSG_DONTWAIT) < 0 && errno == EPIPE, "shut down pair: writer gets EPIPE", "could write");
	}
	check(got(a1, "from-client") && got(c1, "from-server"), "accepted connection queues", "wrong data");
	check(talks(c1, a1), "accepted connection talks", "no");
	{
		int ok = 1;
		fcntl(l, F_SETFL, O_NONBLOCK);
		int a2 = accept4(l, NULL, NULL, SOCK_NONBLOCK), a3 = accept4(l, NULL, NULL, SOCK_NONBLOCK);
		ok = a2 >= 0 && a3 >= 0;
		check(ok, "backlog: two pending connections", "accept failed");
		if (ok) {
			/* Which accepted socket is whose is not kept; each must be one of the two. */
			put(c2, "c2");
			char buf[8] = { 0 };
			int from2 = recv(a2, buf, 7, MSG_DONTWAIT) == 2 ? a2 : recv(a3, buf, 7, MSG_DONTWAIT) == 2 ? a3 : -1;
			check(from2 >= 0 && !strcmp(buf, "c2") && talks(c3, from2 == a2 ? a3 : a2), "backlog connections talk", buf);
		}
		check(accept4(l, NULL, NULL, SOCK_NONBLOCK) < 0 && errno == EAGAIN, "backlog: no more", "an extra connection");
		fcntl(l, F_SETFL, 0);
		int c4 = connected(SOCK_STREAM, lsn, 0);
		int a4 = accept(l, NULL, NULL);
		check(talks(c4, a4), "listener takes new connections", "no");
	}
	check(got(ds, "dc-1") && got(ds, "dc-2") && got(ds, "du-1") && got(ds, "dc-3") && empty(ds), "abstract dgram server queue", "wrong datagrams");
	put(dc, "dc-new");
	check(got(ds, "dc-new"), "connected dgram client sends", "no");
	{
		socklen_t len;
		struct sockaddr_un a = unaddr(abs_name, 1, &len);
		check(sendto(du, "du-new", 6, 0, (struct sockaddr *)&a, len) == 6 && got(ds, "du-new"), "dgram sendto the abstract name", "no");
	}
	{
		int ok = got(sa, "rel-1") && talks(sc, sa);
		check(ok, "seqpacket relative-name connection", "no");
		int sc2 = connected(SOCK_SEQPACKET, "rel-seq", 0);
		int sa2 = accept(sl, NULL, NULL);
		check(talks(sc2, sa2), "seqpacket listener by relative name", "no");
		int v = 0;
		socklen_t vl = sizeof(v);
		getsockopt(sc, SOL_SOCKET, SO_PASSCRED, &v, &vl);
		check(v == 1, "SO_PASSCRED kept", "off");
	}
	{
		int v = 0, w = 0;
		socklen_t vl = sizeof(v);
		getsockopt(st[0], SOL_SOCKET, SO_SNDBUF, &v, &vl);
		getsockopt(st[1], SOL_SOCKET, SO_RCVBUF, &w, &vl);
		check(v == want_snd && w == want_rcv, "buffer sizes kept", "changed");
		int type = 0;
		getsockopt(lone, SOL_SOCKET, SO_TYPE, &type, &vl);
		socklen_t len;
		struct sockaddr_un a = unaddr(lsn, 0, &len);
		check(type == SOCK_STREAM && connect(lone, (struct sockaddr *)&a, len) == 0, "unbound socket connects", "no");
	}
	/* The stream peek glues "plain-" and "with-fd": the fd may come with either read. */
	{
		char buf[64] = { 0 }, pbuf[64] = { 0 };
		int fds = 0, len = 0;
		for (int i = 0; i < 2; i++) {
			char cbuf[CMSG_SPACE(sizeof(int))];
			struct iovec iov = { buf + len, i ? sizeof(buf) - 1 - len : 6 };
			struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
			ssize_t n = recvmsg(rs[1], &mh, MSG_DONTWAIT);
			if (n <= 0)
				break;
			len += n;
			struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
			if (c && c->cmsg_type == SCM_RIGHTS) {
				int fd;
				memcpy(&fd, CMSG_DATA(c), sizeof(int));
				if (read(fd, pbuf, sizeof(pbuf) - 1) > 0)
					fds++;
				close(fd);
			}
		}
		check(!strcmp(buf, "plain-with-fd") && fds == 1 && !strcmp(pbuf, "pipe-data-1") && empty(rs[1]), "a pipe in flight on a stream pair", buf);
	}
	check(got_pipe(rd[1], "dg-fd-1", "pipe-data-2") && got_pipe(rd[1], "dg-fd-2", "pipe-data-3") && empty(rd[1]), "pipes in flight on a datagram pair", "lost");
	if (!solo) {
		char buf[8] = { 0 };
		check(recv(cr[1], buf, sizeof(buf) - 1, MSG_PEEK | MSG_DONTWAIT) == 3 && !strcmp(buf, "d-1"), "SO_PEEK_OFF kept", buf);
		int off = -1;
		setsockopt(cr[1], SOL_SOCKET, SO_PEEK_OFF, &off, sizeof(off));
		check(got_creds(cr[1], "cred-1", getpid()) && got_creds(cr[1], "cred-2", getpid()), "credentials of queued messages", "wrong");
	}
	put(gc, "ghost-2");
	check(got(gs, "ghost-1") && got(gs, "ghost-2") && access(gone_dir, F_OK) < 0, "socket bound to a deleted file", "no");
	{
		char buf[8] = { 0 };
		FILE *f = fopen(repl, "r");
		int ok = f && fread(buf, 1, sizeof(buf) - 1, f) == 3 && !strcmp(buf, "new");
		if (f)
			fclose(f);
		struct sockaddr_un a;
		socklen_t al = sizeof(a);
		ok = ok && !getsockname(rl, (struct sockaddr *)&a, &al) && !strcmp(a.sun_path, repl);
		check(ok, "socket whose file was replaced; the new file kept", buf);
		unlink(repl);
	}
	close(ch[0]);
	int status = 0;
	if (!solo)
		waitpid(child, &status, 0);
	check(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child ends cleanly", "bad status");
	unlink(lsn);
	unlink("rel-seq");
	printf("DONE fails=%d\n", fails);
	return fails ? 1 : 0;
}
