/*
 * sme: an arm64 thread with SME (or FP8, or tagged address ABI) state that no image keeps, for
 * the dump to refuse:
 *
 *   sme za       ZA storage on (SMSTART ZA), then a spin loop;
 *   sme sm       streaming mode on (SMSTART SM), then a spin loop (a syscall would leave it);
 *   sme tpidr2   TPIDR2_EL0 set, then a spin loop;
 *   sme fpmr     FPMR (FP8's mode register) set, then a spin loop;
 *   sme tagged   the tagged address ABI on (PR_SET_TAGGED_ADDR_CTRL), then a spin loop.
 *
 * Prints "ready" first. Built without SME support in the assembler: the instructions are
 * given by their encodings.
 */
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>

int main(int argc, char **argv)
{
#if defined(__aarch64__)
	const char *mode = argc > 1 ? argv[1] : "za";
	setvbuf(stdout, NULL, _IONBF, 0);
	if (!strcmp(mode, "tagged") && prctl(55 /* PR_SET_TAGGED_ADDR_CTRL */, 1 /* PR_TAGGED_ADDR_ENABLE */, 0, 0, 0))
		perror("PR_SET_TAGGED_ADDR_CTRL");
	printf("ready\n");
	if (!strcmp(mode, "za"))
		__asm__ volatile(".inst 0xd503457f\n1: b 1b\n"); /* smstart za */
	else if (!strcmp(mode, "sm"))
		__asm__ volatile(".inst 0xd503437f\n1: b 1b\n"); /* smstart sm */
	else if (!strcmp(mode, "tpidr2"))
		__asm__ volatile("mov x0, #0x1230\n.inst 0xd51bd0a0\n1: b 1b\n" ::: "x0"); /* msr tpidr2_el0, x0 */
	else if (!strcmp(mode, "fpmr"))
		__asm__ volatile("mov x0, #0x3f\n.inst 0xd51b4440\n1: b 1b\n" ::: "x0"); /* msr fpmr, x0 */
	else
		__asm__ volatile("1: b 1b\n");
#else
	(void)argc;
	(void)argv;
	fprintf(stderr, "arm64 only\n");
#endif
	return 1;
}
