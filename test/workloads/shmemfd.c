/*
 * shmemfd: an fd of MAP_SHARED anonymous memory, opened through /proc/self/map_files and
 * kept once the mapping is gone ("/dev/zero (deleted)", a file of the kernel's internal
 * shmem mount), with "hello" written, O_APPEND and offset 3. stdout is reopened at argv[1],
 * stdin and stderr at /dev/null, so that every fd is of the namespaces it runs in. Prints
 * READY, waits for SIGUSR1, then checks the fd (flags, offset, content, file system):
 * "OK shmemfd" or "FAIL ...", then DONE, exit 0 on success.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/vfs.h>
#include <unistd.h>

static volatile sig_atomic_t go;
static void on_usr1(int s) { (void)s; go = 1; }

int main(int argc, char **argv) {
	if (argc < 2 || !freopen(argv[1], "a", stdout)) return 2;
	int null = open("/dev/null", O_RDWR);
	if (null < 0 || dup2(null, 0) < 0 || dup2(null, 2) < 0) return 2;
	close(null);
	signal(SIGUSR1, on_usr1);
	long page = sysconf(_SC_PAGESIZE);
	char *a = mmap(NULL, page, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (a == MAP_FAILED) return 2;
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/map_files/%lx-%lx", (unsigned long)a, (unsigned long)a + page);
	int fd = open(path, O_RDWR);
	if (fd < 0) return 2;
	munmap(a, page);
	if (ftruncate(fd, 0) || fcntl(fd, F_SETFL, O_APPEND) || write(fd, "hello", 5) != 5 || lseek(fd, 3, SEEK_SET) != 3) return 2;
	struct statfs before, after;
	if (fstatfs(fd, &before)) return 2;
	printf("READY fd=%d\n", fd);
	fflush(stdout);
	while (!go) usleep(10000);
	char buf[8] = { 0 };
	int flags = fcntl(fd, F_GETFL);
	off_t pos = lseek(fd, 0, SEEK_CUR);
	if (fstatfs(fd, &after)) printf("FAIL shmemfd: fstatfs\n");
	else if (after.f_type != before.f_type) printf("FAIL shmemfd: file system %lx, was %lx\n", (long)after.f_type, (long)before.f_type);
	else if (!(flags & O_APPEND) || (flags & O_ACCMODE) != O_RDWR) printf("FAIL shmemfd: flags %o\n", flags);
	else if (pos != 3) printf("FAIL shmemfd: offset %ld\n", (long)pos);
	else if (pread(fd, buf, sizeof(buf) - 1, 0) != 5 || strcmp(buf, "hello")) printf("FAIL shmemfd: content '%s' of %ld bytes\n", buf, (long)lseek(fd, 0, SEEK_END));
	else { printf("OK shmemfd\nDONE\n"); return 0; }
	printf("DONE\n");
	return 1;
}
