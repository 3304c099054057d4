/*
 * gpregs: holds a distinct pattern in every general register it can name and checks them
 * all in a tight loop without syscalls, so that a dump stops the thread with all of them
 * live. A register that a dump or a restore does not put back exactly (arm64's x7, which
 * syscall stops use for themselves, is the one at risk) shows up as BAD.
 *
 *   ready pid=N regs=COUNT
 *   i=N regs=ok|BAD [NAME=GOT want WANT]...
 *
 *  regs  BAD once any check saw a register differ from its pattern (it latches); the
 *        registers that differed the first time follow.
 *
 * Options: -n ITERATIONS per check round (default 2000000).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/*
 * Laid out for the asm: the patterns, the round's iteration count (counted down in memory,
 * because every register holds a pattern), and the registers as found at a mismatch.
 */
struct state {
	uint64_t want[32];
	uint64_t left;
	uint64_t got[32];
};
#define LEFT_OFF "256"
#define GOT_OFF "264"

#if defined(__aarch64__)
/* x18 is the platform register, x29 the frame pointer, x28 the base, x30 the scratch. */
#define REGS 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27
#define REGS_STR "0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,19,20,21,22,23,24,25,26,27"
static const int regno[] = {REGS};
static const char *name(int n) { static char b[8]; snprintf(b, sizeof b, "x%d", n); return b; }

static int spin(struct state *s)
{
	register struct state *base asm("x28") = s;
	int bad;
	__asm__ volatile(
		".irp n," REGS_STR "\n"
		"ldr x\\n, [x28, #(\\n * 8)]\n"
		".endr\n"
		"1:\n"
		".irp n," REGS_STR "\n"
		"ldr x30, [x28, #(\\n * 8)]\n"
		"cmp x\\n, x30\n"
		"b.ne 2f\n"
		".endr\n"
		"ldr x30, [x28, #" LEFT_OFF "]\n"
		"subs x30, x30, #1\n"
		"str x30, [x28, #" LEFT_OFF "]\n"
		"b.ne 1b\n"
		"mov x30, #0\n"
		"b 3f\n"
		"2:\n"
		".irp n," REGS_STR "\n"
		"str x\\n, [x28, #(" GOT_OFF " + \\n * 8)]\n"
		".endr\n"
		"mov x30, #1\n"
		"3:\n"
		"str x30, [x28, #" LEFT_OFF "]\n"
		: "+r"(base)
		:
		: "x0", "x1", "x2", "x3", "x4", "x5", "x6", "x7", "x8", "x9", "x10", "x11", "x12", "x13",
		  "x14", "x15", "x16", "x17", "x19", "x20", "x21", "x22", "x23", "x24", "x25", "x26",
		  "x27", "x30", "cc", "memory");
	bad = (int)s->left;
	return bad;
}
#elif defined(__x86_64__)
/* rbp may be the frame pointer and rsp is the stack; r15 is the base, r14 the scratch. */
#define REG_LIST(X) X(0, rax) X(1, rbx) X(2, rcx) X(3, rdx) X(4, rsi) X(5, rdi) X(6, r8) \
	X(7, r9) X(8, r10) X(9, r11) X(10, r12) X(11, r13)
#define NUM(i, r) i,
#define LOAD(i, r) "mov " #i "*8(%%r15), %%" #r "\n"
#define CHECK(i, r) "cmp " #i "*8(%%r15), %%" #r "\n" "jne 2f\n"
#define SAVE(i, r) "mov %%" #r ", " GOT_OFF "+" #i "*8(%%r15)\n"
#define NAME(i, r) #r,
static const int regno[] = {REG_LIST(NUM)};
static const char *names[] = {REG_LIST(NAME)};
static const char *name(int n) { return names[n]; }

static int spin(struct state *s)
{
	register struct state *base asm("r15") = s;
	__asm__ volatile(
		REG_LIST(LOAD)
		"1:\n"
		REG_LIST(CHECK)
		"decq " LEFT_OFF "(%%r15)\n"
		"jnz 1b\n"
		"movq $0, " LEFT_OFF "(%%r15)\n"
		"jmp 3f\n"
		"2:\n"
		REG_LIST(SAVE)
		"movq $1, " LEFT_OFF "(%%r15)\n"
		"3:\n"
		: "+r"(base)
		:
		: "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13",
		  "r14", "cc", "memory");
	return (int)s->left;
}
#else
#error "gpregs: no register list for this architecture"
#endif

#define NREGS (sizeof regno / sizeof regno[0])

int main(int argc, char **argv)
{
	long iters = 2000000;
	int c, bad = 0;
	static struct state s;
	char first[1024] = "";
	while ((c = getopt(argc, argv, "n:")) != -1) {
		if (c == 'n')
			iters = atol(optarg);
		else
			return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	for (unsigned i = 0; i < NREGS; i++)
		s.want[regno[i]] = 0x0123456789abcdefULL ^ (0x1111111111111111ULL * (regno[i] + 1));
	printf("ready pid=%d regs=%zu\n", getpid(), NREGS);
	for (unsigned long i = 1;; i++) {
		s.left = iters;
		if (spin(&s) && !bad) {
			bad = 1;
			size_t len = 0;
			for (unsigned k = 0; k < NREGS; k++) {
				int n = regno[k];
				if (s.got[n] != s.want[n] && len < sizeof first - 64)
					len += snprintf(first + len, sizeof first - len, " %s=%#" PRIx64 " want %#" PRIx64,
							name(n), s.got[n], s.want[n]);
			}
		}
		printf("i=%lu regs=%s%s\n", i, bad ? "BAD" : "ok", first);
	}
}
