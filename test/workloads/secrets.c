/*
 * secrets MARKER DIR: holds MARKER (a string of at least 16 characters) everywhere a dump
 * could leak it, for the test that scans encrypted images for it:
 *   heap      a malloc'd copy
 *   stack     a copy in main's frame
 *   registers the first 16 bytes in a vector register (xmm15 / v15) and 8 in a general one
 *   pipe      a copy queued in a pipe nobody reads
 *   paths     an open file DIR/MARKER.data and the working directory DIR/MARKER.d
 *   name      comm is "s-" and the next 13 characters
 * (the environment holds it too when the test passes SECRET=MARKER)
 *
 *   ready pid=N
 * then it waits in pause() made by a raw syscall, so no library code touches the registers.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc < 3 || strlen(argv[1]) < 16) { fprintf(stderr, "usage: secrets MARKER(16+) DIR\n"); return 2; }
	const char *m = argv[1];
	size_t n = strlen(m);
	char stack[256];
	snprintf(stack, sizeof stack, "%s", m);
	char *heap = strdup(m);
	int p[2];
	if (pipe(p) || write(p[1], m, n) != (ssize_t)n) { perror("pipe"); return 1; }
	char path[4096];
	snprintf(path, sizeof path, "%s/%s.data", argv[2], m);
	int fd = open(path, O_RDWR | O_CREAT, 0600);
	snprintf(path, sizeof path, "%s/%s.d", argv[2], m);
	if (fd < 0 || mkdir(path, 0700) || chdir(path)) { perror(path); return 1; }
	char comm[16] = "s-";
	memcpy(comm + 2, m, 13);
	prctl(PR_SET_NAME, comm);
	printf("ready pid=%d\n", getpid());
	fflush(stdout);
	unsigned long word;
	memcpy(&word, m, sizeof word);
#if defined(__x86_64__)
	asm volatile("movdqu (%0), %%xmm15\n\tmov %1, %%r15" : : "r"(stack), "r"(word) : "xmm15", "r15");
	for (;;) asm volatile("mov %0, %%eax\n\tsyscall" : : "i"(SYS_pause) : "rax", "rcx", "r11", "memory");
#elif defined(__aarch64__)
	asm volatile("ldr q15, [%0]\n\tmov x27, %1" : : "r"(stack), "r"(word) : "v15", "x27");
	/* ppoll(NULL, 0, NULL, NULL): arm64 has no pause. */
	for (;;) asm volatile("mov x0, #0\n\tmov x1, #0\n\tmov x2, #0\n\tmov x3, #0\n\tmov x8, %0\n\tsvc #0"
			      : : "i"(SYS_ppoll) : "x0", "x1", "x2", "x3", "x8", "memory");
#endif
	(void)heap; (void)fd;
	return 0;
}
