/*
 * start.S: entry point of a dhyve test guest, entered like a Hermit kernel
 * (hermit-abi.md §3.3): RDI = boot info (guest-physical), RSI = cpu id,
 * RSP = the BOTTOM of the host's 32 KiB boot stack region. Every vCPU enters here at
 * the same time with the same RSP, so nothing touches that stack: each CPU switches at
 * once to its own stack in .bss. CPUs beyond RT_MAX_CPUS halt for good.
 *
 * Code is RIP-relative only, so it runs at any load address (PIE) and above 4 GiB
 * (fixed v2 images). The runtime never relocates itself; the host applies relocations.
 */
#include "rt.h"

	.section .text._start, "ax", @progbits
	.globl _start
	.type _start, @function
_start:
	cli
	cld
	movq %rsp, %rdx                  /* 3rd arg: the entry RSP (checked by the runtime) */
	movl %esi, %eax                  /* cpu id is a u32 */
	cmpl $RT_MAX_CPUS, %eax
	jae 1f
	leaq 1(%rax), %rcx
	shlq $RT_STACK_SHIFT, %rcx       /* (cpu + 1) * RT_STACK_SIZE */
	leaq rt_stacks(%rip), %rsp
	addq %rcx, %rsp                  /* top of this CPU's stack, 16-byte aligned */
	xorl %ebp, %ebp
	movl %eax, %esi
	call rt_entry                    /* rt_entry(boot_info, cpu, entry_rsp): never returns */
1:	cli
	hlt
	jmp 1b
	.size _start, . - _start

	.section .note.GNU-stack, "", @progbits
