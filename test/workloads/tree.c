/*
 * tree: builds a process tree from a spec and then sleeps in it.
 *
 *   tree SPEC
 *
 * SPEC describes the root and, recursively, the children of each process:
 *
 *   node  := flags [ '(' node* ')' ] [ '*' COUNT ]
 *   flags := any of  s  setsid()       (a new session)
 *                    g  setpgid(0, 0)  (a new process group)
 *                    z  exit at once with status 42 and stay a zombie
 *                    x  exit (status 0) once set up, children forked; the parent
 *                       reaps it, so its children are orphans and its group or
 *                       session lives on without its leader
 *                    r  be a child subreaper (orphans below come to us)
 *                    p  nothing (a plain process; use it when there is no other flag)
 *
 * e.g. "p(z p(p*3) s(g(p*2) p))": root, a zombie, a child with three children,
 * and a new session with a group of three and one more process.
 *
 * Every process, once it has set itself up and forked its children, reports
 * to the root through a pipe; the root then prints "ready n=N" (N counts every
 * process, the zombies, the exited and the root included). Then every live process waits
 * for signals: on SIGUSR2 it prints
 *
 *   alive pid=P ppid=PP pgid=G sid=S
 *
 * and on SIGTERM it exits 0. Nobody reaps the zombies. The live processes
 * write with write(2) only, so nothing is buffered when they fork.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *spec;
static size_t pos;
static int ready_pipe[2];

__attribute__((noreturn)) static void die(const char *what)
{
	dprintf(2, "tree: %s at %zu in \"%s\"\n", what, pos, spec);
	exit(2);
}

/* Skip one node (with its subtree and multiplier) without acting on it; returns its process count. */
static int skip_node(void);

static int count_list(void)
{
	int n = 0;
	while (spec[pos] == ' ')
		pos++;
	while (spec[pos] && spec[pos] != ')') {
		n += skip_node();
		while (spec[pos] == ' ')
			pos++;
	}
	return n;
}

static int parse_count(void)
{
	if (spec[pos] != '*')
		return 1;
	pos++;
	char *end;
	long c = strtol(spec + pos, &end, 10);
	if (end == spec + pos || c < 1)
		die("bad count");
	pos = end - spec;
	return (int)c;
}

static int skip_node(void)
{
	int n = 1;
	while (strchr("sgzpxr", spec[pos]) && spec[pos])
		pos++;
	if (spec[pos] == '(') {
		pos++;
		n += count_list();
		if (spec[pos] != ')')
			die("missing )");
		pos++;
	}
	return n * parse_count();
}

static volatile sig_atomic_t got_usr2, got_term;
static pid_t to_reap[256];
static int n_to_reap;
static void on_usr2(int s) { (void)s; got_usr2 = 1; }
static void on_chld(int s) { (void)s; }
static void on_term(int s) { (void)s; got_term = 1; }

__attribute__((noreturn)) static void live(void)
{
	sigset_t block, old;
	sigemptyset(&block);
	sigaddset(&block, SIGUSR2);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGCHLD);
	sigprocmask(SIG_BLOCK, &block, &old);
	for (;;) {
		for (int k = 0; k < n_to_reap; k++)
			if (to_reap[k] > 0 && waitpid(to_reap[k], NULL, WNOHANG) == to_reap[k])
				to_reap[k] = 0;
		sigsuspend(&old);
		if (got_usr2) {
			got_usr2 = 0;
			dprintf(1, "alive pid=%d ppid=%d pgid=%d sid=%d\n", getpid(), getppid(), getpgrp(), getsid(0));
		}
		if (got_term)
			exit(0);
	}
}

/* From `start`, skip one node's flags and subtree; set *count to its multiplier; return where it ends. */
static size_t node_extent(size_t start, int *count)
{
	size_t save = pos;
	pos = start;
	while (spec[pos] && strchr("sgzpxr", spec[pos]))
		pos++;
	if (spec[pos] == '(') {
		int depth = 0;
		do {
			depth += spec[pos] == '(' ? 1 : spec[pos] == ')' ? -1 : 0;
			pos++;
		} while (depth > 0 && spec[pos]);
		if (depth)
			die("missing )");
	}
	*count = parse_count();
	size_t end = pos;
	pos = save;
	return end;
}

/*
 * Act out the node at pos (we are that process): set ourselves up, fork the
 * children (each acts out its own node), report, and live. Never returns.
 */
__attribute__((noreturn)) static void run_node(int is_root, int total)
{
	int zombie = 0, leave = 0;
	n_to_reap = 0;
	if (!is_root)
		close(ready_pipe[0]);
	for (; spec[pos] && strchr("sgzpxr", spec[pos]); pos++) {
		if (spec[pos] == 's' && setsid() < 0)
			die("setsid failed");
		if (spec[pos] == 'g' && setpgid(0, 0) < 0)
			die("setpgid failed");
		if (spec[pos] == 'z')
			zombie = 1;
		if (spec[pos] == 'x')
			leave = 1;
		if (spec[pos] == 'r' && prctl(PR_SET_CHILD_SUBREAPER, 1) != 0)
			die("PR_SET_CHILD_SUBREAPER failed");
	}
	if (zombie) {
		if (write(ready_pipe[1], "z", 1) != 1)
			exit(3);
		_exit(42);
	}
	if (spec[pos] == '(') {
		pos++;
		for (;;) {
			while (spec[pos] == ' ')
				pos++;
			if (spec[pos] == ')' || !spec[pos])
				break;
			size_t start = pos;
			int count;
			size_t end = node_extent(start, &count);
			int child_leaves = 0;
			for (size_t k = start; k < end && strchr("sgzpxr", spec[k]); k++)
				child_leaves |= spec[k] == 'x';
			for (int c = 0; c < count; c++) {
				pid_t p = fork();
				if (p < 0)
					die("fork failed");
				if (p == 0) {
					pos = start;
					run_node(0, 0);
				}
				if (child_leaves && n_to_reap < 256)
					to_reap[n_to_reap++] = p;
			}
			pos = end;
		}
		if (spec[pos] != ')')
			die("missing )");
		pos++;
	}
	if (!is_root) {
		if (write(ready_pipe[1], "p", 1) != 1)
			exit(3);
		close(ready_pipe[1]);
		if (leave)
			_exit(0);
		live();
	}
	close(ready_pipe[1]);
	for (int got = 0; got < total - 1;) {
		char buf[64];
		ssize_t n = read(ready_pipe[0], buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			die("ready pipe closed early");
		got += (int)n;
	}
	close(ready_pipe[0]);
	dprintf(1, "ready n=%d\n", total);
	live();
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: tree SPEC\n");
		return 2;
	}
	spec = argv[1];
	pos = 0;
	int total = skip_node();
	if (spec[pos])
		die("trailing text");
	if (pipe(ready_pipe) != 0)
		return 5;
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr2;
	sigaction(SIGUSR2, &sa, NULL);
	sa.sa_handler = on_term;
	sigaction(SIGTERM, &sa, NULL);
	sa.sa_handler = on_chld;
	sigaction(SIGCHLD, &sa, NULL);
	dprintf(1, "start pid=%d n=%d\n", getpid(), total);
	pos = 0;
	run_node(1, total);
	return 0;
}
