/*
 * inotify: watches with gaps in their numbers, checked from inside after restore.
 *
 *   inotify -d DIR [-u]
 *
 * Watches DIR/a (IN_MODIFY), DIR/b (given back, so its number is a gap), DIR/c
 * (IN_CLOSE_WRITE|IN_ONESHOT) and DIR itself (IN_CREATE), in a non-blocking instance. Prints
 * "ready wds=A,C,D" and "tick n=N" every 50 ms; on SIGUSR1 it writes DIR/a, DIR/c, creates
 * DIR/new, reads the events, and prints "CHECK ok" or "CHECK fail: WHY". With -u, DIR/c is
 * held open and deleted once watched: the check writes it through /proc/self/fd.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>
#include "checkloop.h"

struct watches { const char *dir; int in, wa, wc, wd, held; };

static void touch(const char *dir, const char *name)
{
	char p[4096];
	snprintf(p, sizeof p, "%s/%s", dir, name);
	int fd = open(p, O_WRONLY | O_CREAT | O_APPEND, 0644);
	if (fd < 0 || write(fd, "x", 1) != 1) exit(3);
	close(fd);
}

static int watch(int in, const char *dir, const char *name, unsigned mask)
{
	char p[4096];
	snprintf(p, sizeof p, "%s/%s", dir, name);
	int wd = inotify_add_watch(in, p, mask);
	if (wd < 0) exit(4);
	return wd;
}

static const char *verify(void *arg)
{
	struct watches *w = arg;
	int in = w->in, wa = w->wa, wc = w->wc, wd = w->wd;
	const char *dir = w->dir;
	if (!(fcntl(in, F_GETFL) & O_NONBLOCK)) return "O_NONBLOCK lost";
	char buf[8192];
	if (read(in, buf, sizeof buf) >= 0) return "events queued before any change";
	touch(dir, "a");
	if (w->held >= 0) {
		char p[64];
		snprintf(p, sizeof p, "/proc/self/fd/%d", w->held);
		int fd = open(p, O_WRONLY | O_APPEND);
		if (fd < 0 || write(fd, "x", 1) != 1) return "cannot write the deleted c";
		close(fd);
	} else
		touch(dir, "c");
	touch(dir, "new");
	usleep(100000);
	int seen_a = 0, seen_c = 0, seen_new = 0;
	ssize_t n = read(in, buf, sizeof buf);
	for (char *p = buf; n > 0 && p < buf + n;) {
		struct inotify_event *e = (struct inotify_event *)p;
		if (e->wd == wa && (e->mask & IN_MODIFY)) seen_a = 1;
		else if (e->wd == wc && (e->mask & IN_CLOSE_WRITE)) seen_c = 1;
		else if (e->wd == wd && (e->mask & IN_CREATE) && !strcmp(e->name, "new")) seen_new = 1;
		p += sizeof *e + e->len;
	}
	if (!seen_a) return "no IN_MODIFY on a";
	if (!seen_c) return "no IN_CLOSE_WRITE on c";
	if (!seen_new) return "no IN_CREATE of new in the directory";
	return NULL;
}

int main(int argc, char **argv)
{
	const char *dir = NULL;
	int opt, unlinked = 0;
	while ((opt = getopt(argc, argv, "d:u")) != -1) {
		if (opt == 'd') dir = optarg;
		else if (opt == 'u') unlinked = 1;
		else return 2;
	}
	if (!dir) return 2;
	touch(dir, "a"); touch(dir, "b"); touch(dir, "c");
	int in = inotify_init1(IN_NONBLOCK);
	if (in < 0) return 3;
	int wa = watch(in, dir, "a", IN_MODIFY);
	int wb = watch(in, dir, "b", IN_MODIFY);
	int wc = watch(in, dir, "c", IN_CLOSE_WRITE | IN_ONESHOT);
	int wd = inotify_add_watch(in, dir, IN_CREATE);
	inotify_rm_watch(in, wb);
	int held = -1;
	if (unlinked) {
		char p[4096];
		snprintf(p, sizeof p, "%s/c", dir);
		if ((held = open(p, O_RDWR)) < 0 || unlink(p)) return 5;
	}
	char buf[4096];
	while (read(in, buf, sizeof buf) > 0)
		;
	printf("ready wds=%d,%d,%d\n", wa, wc, wd);
	fflush(stdout);
	struct watches w = { dir, in, wa, wc, wd, held };
	check_loop(verify, &w);
}
