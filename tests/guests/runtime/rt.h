/*
 * rt.h: the dhyve test-guest runtime.
 *
 * A freestanding guest is entered exactly like a Hermit kernel (hermit-abi.md §3.3):
 * RDI = boot info, RSI = cpu id, RSP = bottom of the host's boot stack (never used).
 * start.S switches every CPU to its own stack in .bss, the boot CPU runs main() and
 * exits with its return value, the other CPUs run ap_main().
 *
 * Compile-time switches (set by tests/_helpers/guests.ts):
 *   RT_IFACE     1 or 2: the uhyve hypercall interface (hermit-abi.md §5)
 *   RT_HAS_UHYVEIF, RT_UHYVEIF  whether the UHYVEIF note is emitted, and its value
 *                (default: v2 guests declare 2, v1 guests none; 3 = uhyve 0.9 kernels)
 *   RT_BOOT_IFACE  derived: the boot state the host gives (2 for a note of 2 or 3, else 1)
 *   RT_PIE       1 for ET_DYN at vaddr 0, 0 for ET_EXEC at a fixed address
 *   RT_GNU_NOTE  1 to emit the GNU ABI-tag version note (non-legacy mapping), 0 without
 *
 * The runtime is SSE-free and uses no page tables, GDT or IDT of its own.
 */
#ifndef DHYVE_RT_H
#define DHYVE_RT_H

#ifndef RT_IFACE
#define RT_IFACE 1
#endif
#ifndef RT_PIE
#define RT_PIE 1
#endif
#ifndef RT_GNU_NOTE
#define RT_GNU_NOTE 1
#endif
#if RT_IFACE != 1 && RT_IFACE != 2
#error "RT_IFACE must be 1 or 2"
#endif
#ifndef RT_HAS_UHYVEIF
#define RT_HAS_UHYVEIF (RT_IFACE == 2)
#endif
#ifndef RT_UHYVEIF
#define RT_UHYVEIF RT_IFACE
#endif
#if RT_HAS_UHYVEIF && (RT_UHYVEIF == 2 || RT_UHYVEIF == 3)
#define RT_BOOT_IFACE 2
#else
#define RT_BOOT_IFACE 1
#endif

/* Per-CPU stacks in .bss; keep in sync with start.S (it includes this header). */
#define RT_MAX_CPUS 8
#define RT_STACK_SHIFT 14 /* 16 KiB per CPU */
#define RT_STACK_SIZE (1 << RT_STACK_SHIFT)

/* Exit code used when the runtime itself detects a problem (bad boot state, bad args). */
#define RT_EXIT_RUNTIME 99

#ifndef __ASSEMBLER__

#include <stdarg.h> /* gcc's freestanding headers */
#include <stddef.h>
#include <stdint.h>

/* ---- boot info (hermit-abi.md §4, RawBootInfo, 128 bytes) ---- */
struct rt_boot_info {
  uint64_t phys_addr_start;         /* 0x00 */
  uint64_t phys_addr_end;           /* 0x08 */
  uint16_t serial_port_base;        /* 0x10 */
  uint8_t pad0[6];                  /* 0x12 */
  uint64_t device_tree;             /* 0x18 */
  uint64_t kernel_image_addr_start; /* 0x20 */
  uint64_t kernel_image_addr_end;   /* 0x28 */
  uint64_t tls_start;               /* 0x30 */
  uint64_t tls_filesz;              /* 0x38 */
  uint64_t tls_memsz;               /* 0x40 */
  uint64_t tls_align;               /* 0x48 */
  uint32_t platform_tag;            /* 0x50 (1 = Uhyve) */
  uint32_t pad1;                    /* 0x54 */
  uint8_t has_pci;                  /* 0x58 */
  uint8_t pad2[7];                  /* 0x59 */
  uint64_t num_cpus;                /* 0x60 */
  uint32_t cpu_freq_khz;            /* 0x68 */
  uint32_t pad3;                    /* 0x6c */
  uint64_t boot_time_ns_lo;         /* 0x70: i128 Unix time in ns, low half */
  uint64_t boot_time_ns_hi;         /* 0x78: high half */
};
_Static_assert(sizeof(struct rt_boot_info) == 0x80, "RawBootInfo is 128 bytes");
_Static_assert(__builtin_offsetof(struct rt_boot_info, num_cpus) == 0x60, "num_cpus @0x60");

/* The boot info the host passed in RDI (guest-physical == virtual: identity map). */
extern const struct rt_boot_info *volatile rt_boot_info;

/* ---- entry points provided by the guest ---- */
int main(void);             /* boot CPU (cpu id 0); its return value is the exit code */
int ap_main(unsigned cpu);  /* other CPUs; the weak default halts forever */

/* ---- control ---- */
__attribute__((noreturn)) void rt_exit(int code); /* Exit hypercall (v1 0x540, v2 0x1010) */
__attribute__((noreturn)) void rt_halt(void);     /* cli; hlt forever */
unsigned rt_cpu_id(void);                        /* derived from the current stack */
uint64_t rt_num_cpus(void);                      /* boot info num_cpus */

/* ---- serial ---- */
void rt_putc(char c);                      /* SerialWriteByte: v1 Uart 0x800 (outb), v2 0x1020 */
void rt_write(const void *buf, size_t len); /* SerialWriteBuffer: v1 0x880 {buf,len}, v2 0x1030 {len,buf} */
void rt_puts(const char *s);               /* rt_write(s, strlen(s)); adds NO newline */
void rt_print_u64(uint64_t v);
void rt_print_i64(int64_t v);
void rt_print_hex(uint64_t v); /* "0x" + lowercase hex digits */
/* Tiny printf: %s %c %d %i %u %x %p %% with optional l/ll/z; output in one buffer write
 * per 256 bytes. Returns the number of bytes written. */
int rt_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int rt_vprintf(const char *fmt, va_list ap);

/* ---- self-checking guests: one "ok NAME" or "FAIL NAME: …" line per check, counted ---- */
extern int rt_checks, rt_failed;
void rt_check(const char *name, int64_t got, int64_t want); /* passes when got == want */

/* ---- file hypercalls (hermit-abi.md §5.4); results are >= 0 or -errno ---- */
#define RT_O_RDONLY 0
#define RT_O_WRONLY 1
#define RT_O_RDWR 2
#define RT_O_CREAT 0100
#define RT_O_EXCL 0200
#define RT_O_TRUNC 01000
#define RT_O_APPEND 02000
#define RT_O_DIRECTORY 0200000
#define RT_SEEK_SET 0
#define RT_SEEK_CUR 1
#define RT_SEEK_END 2

int rt_open(const char *path, int flags, int mode);
int rt_close(int fd);
int64_t rt_read(int fd, void *buf, size_t len);
/* v2: the host's ret; v1 has no result field, so this returns len. */
int64_t rt_write_fd(int fd, const void *buf, size_t len);
int64_t rt_lseek(int fd, int64_t offset, int whence); /* -errno (uhyve 0.8: -1 on v1) */
int rt_unlink(const char *path);

/* ---- arguments and environment (loaded on first use; boot CPU only) ----
 * v1: Cmdsize/Cmdval; argv is what the host copied (argv[0] = kernel path).
 * v2: FDT /chosen/bootargs; argv[0] = "guest", then the application arguments.
 *     See README.md for the splitting rules. */
int rt_argc(void);
const char *rt_argv(int i); /* NULL when out of range */
int rt_envc(void);
const char *rt_env(int i); /* "KEY=VALUE" */
int rt_kargc(void);        /* v2 kernel args (words before "--"); always 0 on v1 */
const char *rt_kargv(int i);
const char *rt_getenv(const char *key);

/* ---- device tree (the FDT the boot info points to; a malformed one stops the guest) ---- */
/* Property `name` of the node at `path` ("/chosen", "/cpus/cpu@1", "/" for the root; names
 * match whole, unit address included): its value and *len, or NULL (*len = 0). */
const void *rt_fdt_prop(const char *path, const char *name, uint32_t *len);
/* Memory-reservation entry i: 1 and its range, or 0 past the last one. */
int rt_fdt_reservation(int i, uint64_t *addr, uint64_t *size);
uint64_t rt_be64(const void *p); /* a big-endian u64 cell */

/* ---- device windows ---- */
/* Maps the 2 MiB page holding guest-physical `phys` (in the 3-4 GiB gap, below RAM at 4 GiB:
 * interface 2 or 3) 1:1 and uncached, as a kernel maps the virtio BAR or the IOAPIC. 0, or -1
 * when the gap is taken (RAM there) or the boot page tables are not the host's. */
int rt_map_device(uint64_t phys);

/* ---- raw port I/O ---- */
/* v1: out dx, eax with EAX = (u32)arg.  v2: out dx, eax with RDI = arg, EAX = dummy. */
void rt_hypercall(uint16_t port, uint64_t arg);
static inline void rt_outl(uint16_t port, uint32_t value) {
  __asm__ volatile("outl %0, %1" : : "a"(value), "Nd"(port) : "memory");
}
static inline void rt_pause(void) { __asm__ volatile("pause" ::: "memory"); }

/* ---- minimal libc (plain loops; gcc may emit calls to these for struct copies) ---- */
size_t strlen(const char *s);
size_t strnlen(const char *s, size_t max);
int strcmp(const char *a, const char *b);
int strncmp(const char *a, const char *b, size_t n);
int memcmp(const void *a, const void *b, size_t n);
void *memcpy(void *dst, const void *src, size_t n);
void *memmove(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
/* Decimal with an optional sign; returns 0 on success, -1 if s is not a number. */
int rt_parse_i64(const char *s, int64_t *out);

#endif /* __ASSEMBLER__ */
#endif /* DHYVE_RT_H */
