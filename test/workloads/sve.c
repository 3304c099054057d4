/*
 * sve: keeps a pattern in the SVE register z0, wider than the 128 bits that FP/SIMD state
 * holds, and checks it in a tight loop without syscalls, so that a dump almost always stops
 * the thread with its SVE state live. A syscall discards that state (the kernel keeps only
 * the FP/SIMD part), so the pattern is set again after each report, never across one.
 *
 *   i=N vl=BYTES sve=ok|BAD
 *
 *  sve  BAD once any check saw z0 differ from the pattern (it latches).
 *
 * Options: -n ITERATIONS per check round (default 2000000).
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <unistd.h>

#ifndef PR_SVE_GET_VL
#define PR_SVE_GET_VL 51
#endif

/* Sets z0 = {1, 2, 3, ...} (bytes) and checks it `iters` times; 1 if it changed. */
static int spin(long iters)
{
	int bad;
	__asm__ volatile(
		"index z0.b, #1, #1\n"
		"ptrue p1.b\n"
		"mov x9, %1\n"
		"1:\n"
		"index z1.b, #1, #1\n"
		"cmpne p2.b, p1/z, z0.b, z1.b\n"
		"b.any 2f\n"
		"subs x9, x9, #1\n"
		"b.ne 1b\n"
		"mov %w0, #0\n"
		"b 3f\n"
		"2:\n"
		"mov %w0, #1\n"
		"3:\n"
		: "=r"(bad)
		: "r"(iters)
		: "x9", "z0", "z1", "p1", "p2", "cc", "memory");
	return bad;
}

int main(int argc, char **argv)
{
	long iters = 2000000;
	int c, bad = 0;
	while ((c = getopt(argc, argv, "n:")) != -1) {
		if (c == 'n')
			iters = atol(optarg);
		else
			return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	int vl = prctl(PR_SVE_GET_VL) & 0xffff;
	printf("ready vl=%d pid=%d\n", vl, getpid());
	for (unsigned long i = 1;; i++) {
		bad |= spin(iters);
		printf("i=%lu vl=%d sve=%s\n", i, vl, bad ? "BAD" : "ok");
	}
}
