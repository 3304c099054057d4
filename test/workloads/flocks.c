/*
 * flocks: file locks of each kind, which must still exclude others after restore.
 *
 *   flocks DIR
 *
 * Opens DIR/flock, DIR/posix, DIR/ofd and DIR/lease (fds 3, 4, 5, 6) and takes
 *   flock(LOCK_EX) on fd 3;
 *   a POSIX write lock on bytes 0-9 and a read lock on 100 to EOF of fd 4;
 *   an OFD read lock on bytes 10-29 of fd 5;
 *   a read lease (F_SETLEASE) on fd 6, opened read-only.
 * Then forks a child that shares fd 3 (and its flock) and sleeps; prints
 * "ready pid=P child=C" and "i=N" every 50 ms.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

static int open_in(const char *dir, const char *name) {
  char p[4096];
  snprintf(p, sizeof p, "%s/%s", dir, name);
  int fd = open(p, O_RDWR | O_CREAT, 0600);
  if (fd < 0) { perror(p); exit(1); }
  return fd;
}

static void lock(int fd, int cmd, short type, off_t start, off_t len) {
  struct flock fl = { .l_type = type, .l_whence = SEEK_SET, .l_start = start, .l_len = len };
  if (fcntl(fd, cmd, &fl)) { perror("fcntl"); exit(1); }
}

int main(int argc, char **argv) {
  if (argc < 2) { fprintf(stderr, "usage: flocks DIR\n"); return 2; }
  setvbuf(stdout, NULL, _IOLBF, 0);
  int a = open_in(argv[1], "flock"), b = open_in(argv[1], "posix"), c = open_in(argv[1], "ofd");
  if (flock(a, LOCK_EX | LOCK_NB)) { perror("flock"); return 1; }
  lock(b, F_SETLK, F_WRLCK, 0, 10);
  lock(b, F_SETLK, F_RDLCK, 100, 0);
  lock(c, F_OFD_SETLK, F_RDLCK, 10, 20);
  close(open_in(argv[1], "lease"));
  char p[4096];
  snprintf(p, sizeof p, "%s/lease", argv[1]);
  int d = open(p, O_RDONLY);
  if (d != 6 || fcntl(d, F_SETLEASE, F_RDLCK)) { perror("F_SETLEASE"); return 1; }
  pid_t child = fork();
  if (child == 0) { close(b); close(c); close(d); for (;;) pause(); }
  printf("ready pid=%d child=%d\n", getpid(), child);
  for (int i = 0;; i++) { printf("i=%d\n", i); usleep(50000); }
}
