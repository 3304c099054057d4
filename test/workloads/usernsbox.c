/*
 * usernsbox: a tree in a user namespace of its own with a map that is not the identity
 * (inside 0..65535 is outside 100000..165535, inside 100000..100999 is outside 300000..300999),
 * together with PID, UTS and IPC namespaces it owns (and a mount namespace with `mnt` or
 * `ghost`). The launcher writes the maps, then its child, pid 1 inside, mounts a tmpfs on DIR
 * (with `mnt` or `ghost`), makes DIR/owned owned by 1000:1001 (with `ghost`: opens DIR/gone,
 * then removes it, and opens DIR/a, linked to DIR/b, then removes DIR/a), chroots into DIR
 * (with `chroot`: DIR is / then), or, with `ping`, in a network namespace of its own too, sets
 * its net.ipv4.ping_group_range to 1000..1003, forks a worker that becomes uid 1000 (real),
 * 1002 (effective), 100005 (saved), gids 1001/1003/100006 and groups 7, 100008, and prints
 * every interval what it sees from inside:
 *
 *   i=N pid=P uid=R,E,S gid=R,E,S groups=G,... owner=U:G mnt=tmpfs|none [ping=LOW,HIGH,OK] [ghost=S linked=S]
 *
 * where, with `ping`, the worker holds an ICMP echo socket it made (OK: 1 while it is one).
 *
 *   usernsbox DIR [interval_ms [mnt|chroot|ping|ghost]]    (the launcher's stdout is the log)
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <grp.h>
#include <time.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>

static long interval = 200;
static const char *dir;
static int own_mnt, in_chroot, own_net;
static int ghost_fd = -1, linked_fd = -1;
static int sync_pipe[2];

static void nap(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) != 0)
		;
}

static void die(const char *what)
{
	perror(what);
	exit(1);
}

static int worker(void)
{
	gid_t gs[] = { 7, 100008 };
	if (setgroups(2, gs) || setresgid(1001, 1003, 100006) || setresuid(1000, 1002, 100005))
		die("worker ids");
	/* Changing ids cleared it: CRIU's helper in the namespace must read /proc/PID/ns. */
	prctl(PR_SET_DUMPABLE, 1);
	int ping = own_net ? socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP) : -1;
	if (own_net && ping < 0)
		die("ping socket");
	char path[4096];
	snprintf(path, sizeof(path), "%s/owned", dir);
	for (long i = 1;; i++) {
		uid_t r, e, s;
		gid_t rg, eg, sg, g[16];
		struct stat st;
		struct statfs fs;
		getresuid(&r, &e, &s);
		getresgid(&rg, &eg, &sg);
		int n = getgroups(16, g);
		int ok = stat(path, &st) == 0;
		int tmp = statfs(dir, &fs) == 0 && fs.f_type == 0x01021994;
		printf("i=%ld pid=%d uid=%u,%u,%u gid=%u,%u,%u groups=", i, getpid(), r, e, s, rg, eg, sg);
		for (int k = 0; k < n; k++)
			printf("%s%u", k ? "," : "", g[k]);
		printf(" owner=%d:%d mnt=%s", ok ? (int)st.st_uid : -1, ok ? (int)st.st_gid : -1, tmp ? "tmpfs" : "none");
		if (own_net) {
			unsigned lo = 0, hi = 0;
			int proto = 0;
			socklen_t l = sizeof(proto);
			FILE *f = fopen("/proc/sys/net/ipv4/ping_group_range", "r");
			if (!f || fscanf(f, "%u %u", &lo, &hi) != 2)
				lo = hi = 0;
			if (f)
				fclose(f);
			getsockopt(ping, SOL_SOCKET, SO_PROTOCOL, &proto, &l);
			printf(" ping=%u,%u,%d", lo, hi, proto == IPPROTO_ICMP);
		}
		if (ghost_fd >= 0) {
			char a[32] = "", b[32] = "";
			if (pread(ghost_fd, a, sizeof(a) - 1, 0) < 0 || pread(linked_fd, b, sizeof(b) - 1, 0) < 0)
				die("pread");
			printf(" ghost=%s linked=%s", a, b);
		}
		printf("\n");
		fflush(stdout);
		nap(interval);
	}
}

static int init(void *arg)
{
	(void)arg;
	char c;
	if (read(sync_pipe[0], &c, 1) != 1)
		die("sync");
	setsid();
	if (setresgid(0, 0, 0) || setgroups(0, NULL) || setresuid(0, 0, 0))
		die("root ids");
	prctl(PR_SET_DUMPABLE, 1);
	if (own_mnt && (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) || mount("box", dir, "tmpfs", 0, "mode=755")))
		die("mount");
	if (own_net) {
		FILE *f = fopen("/proc/sys/net/ipv4/ping_group_range", "w");
		if (!f || fprintf(f, "1000 1003") < 0 || fclose(f))
			die("ping_group_range");
	}
	/* Its stdio opened again in its own mount namespace: a file on a mount of another cannot be dumped. */
	for (int i = 0; own_mnt && i < 3; i++) {
		char l[64], p[4096];
		snprintf(l, sizeof(l), "/proc/self/fd/%d", i);
		ssize_t n = readlink(l, p, sizeof(p) - 1);
		int fl = fcntl(i, F_GETFL);
		if (n <= 0 || p[0] != '/' || fl < 0)
			continue;
		p[n] = 0;
		int fd = open(p, (fl & O_ACCMODE) | (fl & O_ACCMODE ? O_APPEND : 0));
		if (fd < 0 || dup2(fd, i) < 0)
			die("stdio");
		close(fd);
	}
	char path[4096];
	snprintf(path, sizeof(path), "%s/owned", dir);
	int fd = open(path, O_CREAT | O_WRONLY, 0644);
	if (fd < 0 || fchown(fd, 1000, 1001))
		die("owned");
	close(fd);
	if (in_chroot) {
		if (chroot(dir) || chdir("/"))
			die("chroot");
		dir = "";
	}
	if (ghost_fd == -2) {
		char a[4096], b[4096];
		snprintf(path, sizeof(path), "%s/gone", dir);
		ghost_fd = open(path, O_CREAT | O_RDWR, 0640);
		if (ghost_fd < 0 || write(ghost_fd, "ghostdata", 9) != 9 || unlink(path))
			die("gone");
		snprintf(a, sizeof(a), "%s/a", dir);
		snprintf(b, sizeof(b), "%s/b", dir);
		fd = open(a, O_CREAT | O_WRONLY, 0644);
		if (fd < 0 || write(fd, "linkdata", 8) != 8 || close(fd) || link(a, b))
			die("a");
		linked_fd = open(a, O_RDONLY);
		if (linked_fd < 0 || unlink(a))
			die("linked");
	}
	pid_t w = fork();
	if (w == 0)
		return worker();
	for (;;)
		pause();
}

static void write_map(pid_t pid, const char *file, const char *map)
{
	char p[64];
	snprintf(p, sizeof(p), "/proc/%d/%s", pid, file);
	int fd = open(p, O_WRONLY);
	if (fd < 0 || write(fd, map, strlen(map)) != (ssize_t)strlen(map))
		die(p);
	close(fd);
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return 2;
	dir = argv[1];
	if (argc > 2)
		interval = atol(argv[2]);
	own_mnt = argc > 3 && (!strcmp(argv[3], "mnt") || !strcmp(argv[3], "ghost"));
	in_chroot = argc > 3 && !strcmp(argv[3], "chroot");
	own_net = argc > 3 && !strcmp(argv[3], "ping");
	if (argc > 3 && !strcmp(argv[3], "ghost"))
		ghost_fd = -2;
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (pipe(sync_pipe))
		die("pipe");
	static char stack[1 << 16];
	pid_t pid = clone(init, stack + sizeof(stack),
			  CLONE_NEWUSER | CLONE_NEWPID | (own_mnt ? CLONE_NEWNS : 0) | (own_net ? CLONE_NEWNET : 0) | CLONE_NEWUTS | CLONE_NEWIPC | SIGCHLD, NULL);
	if (pid < 0)
		die("clone");
	const char *map = "0 100000 65536\n100000 300000 1000\n";
	write_map(pid, "uid_map", map);
	write_map(pid, "gid_map", map);
	if (write(sync_pipe[1], "x", 1) != 1)
		die("sync");
	int st;
	waitpid(pid, &st, 0);
	return 0;
}
