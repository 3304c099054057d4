/*
 * ghost: a task that keeps deleted things (CRIU's ghost files).
 *
 *   ghost -d DIR [-l | -s]
 *
 * In DIR it makes, then unlinks: "open" (an fd, RDWR at offset 1234, also mapped
 * MAP_SHARED), "mapped" (only mapped, MAP_PRIVATE, one page changed copy-on-write),
 * "sparse" (an fd of a file with a hole), a FIFO with queued bytes held open O_RDWR, and
 * the directory "cwd", its working directory. It prints "tick n=N" every 50 ms; on
 * SIGUSR1 it checks each from inside and prints "CHECK ok" or "CHECK fail: WHY".
 * With -l, only an fd of "linked", which keeps another name, "other", and loses its own: it
 * must still be the inode "other" names.
 * With -s, only an O_PATH|O_NOFOLLOW fd of the symlink "link" (to "a/target"), deleted: it must
 * still be a symlink with that target, and have no name.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include "checkloop.h"

#define SIZE 20000
#define SPARSE_AT (256 * 1024)
struct kept { int fd, sparse, fifo; unsigned char *shared, *priv; int linked; const char *other; };

static unsigned char pat(int which, long i) { return (unsigned char)(i * (which ? 13 : 7) + which); }

static int make(const char *dir, const char *name, int which, char *path)
{
	snprintf(path, 4096, "%s/%s", dir, name);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0640);
	if (fd < 0) exit(3);
	unsigned char buf[SIZE];
	for (long i = 0; i < SIZE; i++) buf[i] = pat(which, i);
	if (write(fd, buf, SIZE) != SIZE) exit(3);
	return fd;
}

static const char *verify_linked(struct kept *k)
{
	struct stat a, b;
	if (fstat(k->fd, &a) || stat(k->other, &b)) return "stat";
	if (a.st_ino != b.st_ino || a.st_nlink != 1) return "not the inode of other";
	if (write(k->fd, "w", 1) != 1) return "write";
	return NULL;
}

static const char *verify(void *arg)
{
	struct kept *k = arg;
	if (k->linked) return verify_linked(k);
	int fd = k->fd, sparse = k->sparse, fifo = k->fifo;
	unsigned char *shared = k->shared, *priv = k->priv;
	struct stat st;
	static unsigned char buf[SIZE];
	if (fstat(fd, &st) || st.st_nlink != 0) return "open file has a name again";
	if (st.st_size != SIZE || (st.st_mode & 07777) != 0640) return "open file size or mode";
	if (lseek(fd, 0, SEEK_CUR) != 1234) return "open file offset";
	if (pread(fd, buf, SIZE, 0) != SIZE) return "open file read";
	for (long i = 0; i < SIZE; i++) if (buf[i] != pat(0, i) && i != 100) return "open file content";
	if (shared[100] != buf[100]) return "shared mapping and file differ";
	shared[101] = 0x5a;
	if (pread(fd, buf, 1, 101) != 1 || buf[0] != 0x5a) return "shared mapping not of the open file";
	shared[101] = pat(0, 101);
	if (priv[0] != 0xee) return "private copy-on-write page lost";
	for (long i = 4096; i < SIZE; i++) if (priv[i] != pat(1, i)) return "private mapping content";
	if (fstat(sparse, &st) || st.st_size != SPARSE_AT + 5 || pread(sparse, buf, 5, SPARSE_AT) != 5 || memcmp(buf, "tail!", 5)) return "sparse file";
	if (pread(sparse, buf, 1, 1000) != 1 || buf[0] != 0) return "sparse file hole";
	if (lseek(sparse, 0, SEEK_DATA) != SPARSE_AT) return "sparse file's hole was filled";
	char q[16] = {0};
	if (read(fifo, q, sizeof q) != 6 || strcmp(q, "queued")) return "fifo data";
	if (fstat(fifo, &st) || !S_ISFIFO(st.st_mode) || st.st_nlink != 0) return "fifo kind or name";
	if (stat(".", &st) || !S_ISDIR(st.st_mode) || st.st_nlink != 0) return "working directory has a name again";
	char link[4096];
	ssize_t n = readlink("/proc/self/cwd", link, sizeof link - 1);
	if (n < 10 || memcmp(link + n - 10, " (deleted)", 10)) return "working directory is not a deleted one";
	return NULL;
}

#define TARGET "a/target"
static const char *verify_symlink(void *arg)
{
	int fd = *(int *)arg;
	struct stat st;
	char buf[64];
	if (fstatat(fd, "", &st, AT_EMPTY_PATH) || !S_ISLNK(st.st_mode)) return "not a symlink";
	if (st.st_nlink != 0) return "the symlink has a name again";
	ssize_t n = readlinkat(fd, "", buf, sizeof buf);
	if (n != (ssize_t)strlen(TARGET) || memcmp(buf, TARGET, n)) return "symlink target";
	return NULL;
}

static void symlink_only(const char *dir)
{
	char path[4096];
	static int fd;
	snprintf(path, sizeof path, "%s/link", dir);
	if (symlink(TARGET, path)) exit(3);
	fd = open(path, O_PATH | O_NOFOLLOW);
	if (fd < 0 || unlink(path)) exit(3);
	check_loop(verify_symlink, &fd);
}

static void linked_only(const char *dir)
{
	char path[4096];
	static char other[4096];
	int fd = make(dir, "linked", 0, path);
	snprintf(other, sizeof other, "%s/other", dir);
	if (link(path, other) || unlink(path)) exit(3);
	struct kept k = { .fd = fd, .linked = 1, .other = other };
	check_loop(verify, &k);
}

int main(int argc, char **argv)
{
	const char *dir = NULL;
	int opt, linked = 0, sym = 0;
	while ((opt = getopt(argc, argv, "d:ls")) != -1) {
		if (opt == 'd') dir = optarg;
		else if (opt == 'l') linked = 1;
		else if (opt == 's') sym = 1;
		else return 2;
	}
	if (!dir) return 2;
	if (linked) linked_only(dir);
	if (sym) symlink_only(dir);
	char path[4096];
	int fd = make(dir, "open", 0, path);
	unsigned char *shared = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	unlink(path);
	lseek(fd, 1234, SEEK_SET);
	shared[100] = 0xa5;
	int mfd = make(dir, "mapped", 1, path);
	unsigned char *priv = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE, mfd, 0);
	close(mfd);
	unlink(path);
	priv[0] = 0xee;
	snprintf(path, sizeof path, "%s/sparse", dir);
	int sparse = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (sparse < 0 || pwrite(sparse, "tail!", 5, SPARSE_AT) != 5) return 3;
	unlink(path);
	snprintf(path, sizeof path, "%s/fifo", dir);
	if (mkfifo(path, 0600)) return 3;
	int fifo = open(path, O_RDWR | O_NONBLOCK);
	if (fifo < 0 || write(fifo, "queued", 6) != 6) return 3;
	unlink(path);
	snprintf(path, sizeof path, "%s/cwd", dir);
	if (mkdir(path, 0700) || chdir(path) || rmdir(path)) return 3;
	if (shared == MAP_FAILED || priv == MAP_FAILED) return 3;
	struct kept k = { fd, sparse, fifo, shared, priv, 0, NULL };
	check_loop(verify, &k);
}
