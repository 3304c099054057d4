/*
 * fanotify: a group with an inode mark and a mount mark, checked from inside after restore.
 *
 *   fanotify -d DIR
 *
 * Marks DIR/a for FAN_MODIFY and the mount of DIR for FAN_CLOSE_WRITE (non-blocking group, whose
 * init flags must come back as they were).
 * Prints "tick n=N" every 50 ms; on SIGUSR1 it writes DIR/a, reads the events and prints
 * "CHECK ok" or "CHECK fail: WHY".
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/fanotify.h>
#include <unistd.h>
#include "checkloop.h"

struct group { int fan; const char *a; };

static const char *verify(void *arg)
{
	struct group *g = arg;
	int fan = g->fan;
	const char *a = g->a;
	char buf[8192];
	if (!(fcntl(fan, F_GETFL) & O_NONBLOCK)) return "FAN_NONBLOCK lost";
	/* The group's init flags, as fdinfo shows them: exactly those it was made with. */
	char path[64], line[256];
	snprintf(path, sizeof path, "/proc/self/fdinfo/%d", fan);
	FILE *f = fopen(path, "r");
	unsigned flags = ~0u;
	while (f && fgets(line, sizeof line, f))
		if (sscanf(line, "fanotify flags:%x", &flags) == 1) break;
	if (f) fclose(f);
	if (flags != (FAN_CLASS_NOTIF | FAN_NONBLOCK)) return "the group's init flags changed (fdinfo \"fanotify flags\")";
	ssize_t got;
	while ((got = read(fan, buf, sizeof buf)) > 0) /* anything closed on the mount meanwhile */
		for (struct fanotify_event_metadata *e = (void *)buf; FAN_EVENT_OK(e, got); e = FAN_EVENT_NEXT(e, got))
			if (e->fd >= 0) close(e->fd);
	int fd = open(a, O_WRONLY | O_APPEND);
	if (fd < 0 || write(fd, "x", 1) != 1) return "write";
	close(fd);
	usleep(100000);
	int modify = 0, close_write = 0;
	ssize_t n = read(fan, buf, sizeof buf);
	struct fanotify_event_metadata *m = (void *)buf;
	for (; n > 0 && FAN_EVENT_OK(m, n); m = FAN_EVENT_NEXT(m, n)) {
		if (m->mask & FAN_MODIFY) modify = 1;
		if (m->mask & FAN_CLOSE_WRITE) close_write = 1;
		if (m->fd >= 0) close(m->fd);
	}
	if (!modify) return "no FAN_MODIFY from the inode mark";
	if (!close_write) return "no FAN_CLOSE_WRITE from the mount mark";
	return NULL;
}

int main(int argc, char **argv)
{
	const char *dir = NULL;
	int opt;
	while ((opt = getopt(argc, argv, "d:")) != -1) {
		if (opt == 'd') dir = optarg;
		else return 2;
	}
	if (!dir) return 2;
	char a[4096];
	snprintf(a, sizeof a, "%s/a", dir);
	int fd = open(a, O_WRONLY | O_CREAT, 0644);
	if (fd < 0) return 3;
	close(fd);
	int fan = fanotify_init(FAN_CLASS_NOTIF | FAN_NONBLOCK, O_RDONLY);
	if (fan < 0) return 4;
	if (fanotify_mark(fan, FAN_MARK_ADD, FAN_MODIFY, AT_FDCWD, a)) return 5;
	if (fanotify_mark(fan, FAN_MARK_ADD | FAN_MARK_MOUNT, FAN_CLOSE_WRITE, AT_FDCWD, dir)) return 6;
	struct group g = { fan, a };
	check_loop(verify, &g);
}
