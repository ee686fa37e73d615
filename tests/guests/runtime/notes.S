/*
 * notes.S: the ELF notes a Hermit loader looks for (hermit-abi.md §1.3). The linker
 * scripts put every .note.hermit.* section into one PT_NOTE segment (alignment 4).
 * Name and descriptor are padded to 4 bytes, counted from the start of each note.
 */
#include "rt.h"

	/* HERMIT / 0x5a00: hermit entry version, 1 byte = 4 (mandatory). */
	.section .note.hermit.entry-version, "a", @note
	.balign 4
	.long 7                          /* namesz: "HERMIT\0" */
	.long 1                          /* descsz */
	.long 0x5a00                     /* type */
	.asciz "HERMIT"
	.balign 4
	.byte 4
	.balign 4

#if RT_HAS_UHYVEIF
	/* UHYVEIF / 0x5b00: uhyve interface version RT_UHYVEIF, a BIG-endian u32. Absent = v1. */
	.section .note.hermit.uhyve-interface-version, "a", @note
	.balign 4
	.long 8                          /* namesz: "UHYVEIF\0" */
	.long 4                          /* descsz */
	.long 0x5b00                     /* type */
	.asciz "UHYVEIF"
	.balign 4
	.byte ((RT_UHYVEIF) >> 24) & 0xff, ((RT_UHYVEIF) >> 16) & 0xff
	.byte ((RT_UHYVEIF) >> 8) & 0xff, (RT_UHYVEIF) & 0xff
	.balign 4
#endif

#if RT_GNU_NOTE
	/* GNU / NT_GNU_ABI_TAG: [6 = Hermit, 0, 12, 0] little-endian -> Hermit 0.12.0,
	 * so the host uses the non-legacy mapping (only the image is identity-mapped). */
	.section .note.hermit.abi-tag, "a", @note
	.balign 4
	.long 4                          /* namesz: "GNU\0" */
	.long 16                         /* descsz */
	.long 1                          /* type: NT_GNU_ABI_TAG */
	.asciz "GNU"
	.long 6, 0, 12, 0
#endif

	.section .note.GNU-stack, "", @progbits
