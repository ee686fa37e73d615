/*
 * floor.c: the C floor of dhyve's benchmarks (bench/kvm_floor.ts).
 *
 * A minimal VMM that makes the same KVM calls as dhyve for one vCPU, so that
 * "dhyve time / floor time" shows what TypeScript costs. It runs dhyve's own
 * test guests (tests/guests/, built by tests/_helpers/guests.ts) and, with
 * the few extras it needs (xgetbv/xsetbv/xsave/xrstor emulated for kvm_pvm,
 * v1 FileWrite to fds 1 and 2, FileOpen answered ENOENT), uhyve's hello_c.
 * It trusts the guest, has no file system, no ASLR (a relocatable kernel goes
 * to the lowest address) and no FDT (a v2 guest sees no arguments, so
 * serial_loop uses its default count).
 *
 * What it does, in dhyve's order: load the ELF (PT_LOADs, R_X86_64_RELATIVE
 * relocations, the first PT_NOTE for the interface version), create the VM,
 * map guest RAM lazily (MAP_NORESERVE, nothing touched), in-kernel irqchip,
 * X2APIC_API, one vCPU with KVM's supported CPUID, IA32_MISC_ENABLE and the
 * Hermit boot state (GDT at +0x1000, boot info at +0x9000, identity-mapped
 * 2 MiB pages under the PML4 at +0x10000, long mode, RIP = entry, RDI = boot
 * info, RSP = kernel_address - 0x8000). RDI comes from kvm_run's sync regs
 * when KVM offers them, as in dhyve. Serial bytes are line-buffered and
 * written to stdout at each newline, as dhyve does.
 *
 * Build: gcc -O2 -o floor floor.c
 * Usage: floor [-m MIB] [-s] [-T] [-t SECONDS] KERNEL [ARG...]
 *   -m MIB      guest RAM in MiB (default 64)
 *   -s          print statistics to stderr at exit: set-up time (start of
 *               main to the first KVM_RUN), exits, emulated instructions,
 *               guest memory resident, peak RSS
 *   -t SECONDS  give up after this long (SIGALRM ends the process)
 *   -T          print start-up phase marks to stderr at exit, as dhyve does
 *               with DHYVE_TRACE_STARTUP=1 (bench/startup.ts): "floor-trace:
 *               origin=<ms since the epoch at main> NAME=<ms since origin>..."
 * Exit status: the guest's exit code; 70 when the floor itself fails.
 */
#define _GNU_SOURCE
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define FLOOR_FAILED 70

/* Guest-physical layout, as offsets from the first byte of guest RAM. */
#define GDT_OFFSET 0x1000
#define BOOT_INFO_OFFSET 0x9000
#define PML4_OFFSET 0x10000
#define PAGE_TABLES_OFFSET 0x11000
#define PAGE_TABLES_END 0x30000
#define KERNEL_OFFSET 0x40000
#define BOOT_STACK_SIZE 0x8000
#define PAGE_2M 0x200000ULL
#define ONE_GIB 0x40000000ULL

/* The hypercall ports the test guests use. */
enum {
  V1_FILE_WRITE = 0x400,
  V1_FILE_OPEN = 0x440,
  V1_FILE_CLOSE = 0x480,
  V1_EXIT = 0x540,
  V1_CMDSIZE = 0x740,
  V1_CMDVAL = 0x780,
  V1_UART = 0x800,
  V1_SERIAL_BUFFER = 0x880,
  V2_EXIT = 0x1010,
  V2_SERIAL_BYTE = 0x1020,
  V2_SERIAL_BUFFER = 0x1030,
  PCI_CONFIG_ADDRESS = 0xcf8,
};

static void die(const char *what) {
  fprintf(stderr, "floor: cannot %s: %s\n", what, strerror(errno));
  exit(FLOOR_FAILED);
}

static void fail(const char *message) {
  fprintf(stderr, "floor: %s\n", message);
  exit(FLOOR_FAILED);
}

/* ---- guest memory ------------------------------------------------------------------ */

static uint8_t *ram;         /* host address of guest RAM */
static uint64_t ram_base;    /* its guest-physical address */
static uint64_t ram_size;

/* Host pointer to [gpa, gpa + len) of guest RAM; a range outside RAM stops the floor. */
static void *guest(uint64_t gpa, uint64_t len) {
  if (gpa < ram_base || len > ram_size || gpa - ram_base > ram_size - len) {
    fprintf(stderr, "floor: guest range 0x%lx+%lu is outside RAM\n", gpa, len);
    exit(FLOOR_FAILED);
  }
  return ram + (gpa - ram_base);
}

/* ---- the kernel image ---------------------------------------------------------------- */

struct kernel {
  uint8_t *file;
  size_t file_size;
  const Elf64_Ehdr *eh;
  const Elf64_Phdr *ph;
  int pie;                   /* ET_DYN: load at ram_base + KERNEL_OFFSET, relocate */
  int iface;                 /* uhyve interface: 1, or the UHYVEIF note's value */
  int legacy;                /* no GNU version note: map the whole first 1 GiB region */
  uint64_t first_vaddr, span;
  const Elf64_Phdr *tls, *dynamic;
};

static void read_kernel(const char *path, struct kernel *k) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) < 0) die("open the kernel");
  k->file_size = (size_t)st.st_size;
  k->file = malloc(k->file_size);
  if (!k->file || read(fd, k->file, k->file_size) != (ssize_t)k->file_size) die("read the kernel");
  close(fd);

  k->eh = (const Elf64_Ehdr *)k->file;
  if (k->file_size < sizeof *k->eh || memcmp(k->eh->e_ident, ELFMAG, SELFMAG) != 0 ||
      k->eh->e_ident[EI_CLASS] != ELFCLASS64 || k->eh->e_machine != EM_X86_64 ||
      k->eh->e_phoff + (uint64_t)k->eh->e_phnum * sizeof(Elf64_Phdr) > k->file_size) {
    fail("the kernel is not an x86_64 ELF64 file");
  }
  k->ph = (const Elf64_Phdr *)(k->file + k->eh->e_phoff);
  k->pie = k->eh->e_type == ET_DYN;
  k->iface = 1;
  k->legacy = 1;

  const Elf64_Phdr *first = NULL, *last = NULL, *note = NULL;
  for (int i = 0; i < k->eh->e_phnum; i++) {
    const Elf64_Phdr *p = &k->ph[i];
    if (p->p_type == PT_LOAD) {
      if (!first) first = p;
      last = p;
    } else if (p->p_type == PT_NOTE && !note) {
      note = p;
    } else if (p->p_type == PT_TLS) {
      k->tls = p;
    } else if (p->p_type == PT_DYNAMIC) {
      k->dynamic = p;
    }
  }
  if (!first) fail("the kernel has no PT_LOAD segment");
  k->first_vaddr = first->p_vaddr;
  k->span = last->p_vaddr + last->p_memsz - first->p_vaddr;

  /* Notes (4-byte aligned in our guests): UHYVEIF/0x5b00 = interface, GNU/1 = version. */
  for (uint64_t at = note ? note->p_offset : 0, end = note ? at + note->p_filesz : 0;
       at + 12 <= end;) {
    const uint32_t *h = (const uint32_t *)(k->file + at);
    const char *name = (const char *)(h + 3);
    const uint8_t *desc = (const uint8_t *)name + ((h[0] + 3) & ~3u);
    if (h[2] == 0x5b00 && h[1] == 4 && strcmp(name, "UHYVEIF") == 0) {
      k->iface = desc[0] << 24 | desc[1] << 16 | desc[2] << 8 | desc[3];
    }
    if (h[2] == NT_GNU_ABI_TAG && h[1] == 16 && strcmp(name, "GNU") == 0) {
      const uint32_t *v = (const uint32_t *)desc; /* [6 = Hermit, major, minor, patch] */
      k->legacy = !(v[0] == 6 && (v[1] > 0 || v[2] >= 10));
    }
    at = (uint64_t)(desc - k->file) + ((h[1] + 3) & ~3u);
  }
}

/* File offset of the virtual address vaddr (inside some PT_LOAD's file bytes). */
static uint64_t file_offset(const struct kernel *k, uint64_t vaddr) {
  for (int i = 0; i < k->eh->e_phnum; i++) {
    const Elf64_Phdr *p = &k->ph[i];
    if (p->p_type == PT_LOAD && vaddr >= p->p_vaddr && vaddr < p->p_vaddr + p->p_filesz) {
      return vaddr - p->p_vaddr + p->p_offset;
    }
  }
  fail("a relocation table lies outside the kernel's file bytes");
  return 0;
}

/* Copies the PT_LOADs to kernel_address, zero-fills .bss, applies RELATIVE relocations. */
static void load_kernel(const struct kernel *k, uint64_t kernel_address) {
  for (int i = 0; i < k->eh->e_phnum; i++) {
    const Elf64_Phdr *p = &k->ph[i];
    if (p->p_type != PT_LOAD) continue;
    if (p->p_offset + p->p_filesz > k->file_size) fail("a PT_LOAD lies outside the file");
    uint8_t *dst = guest(kernel_address + (p->p_vaddr - k->first_vaddr), p->p_memsz);
    memcpy(dst, k->file + p->p_offset, p->p_filesz);
    memset(dst + p->p_filesz, 0, p->p_memsz - p->p_filesz);
  }
  if (!k->pie || !k->dynamic) return;
  uint64_t rela = 0, relasz = 0;
  for (const Elf64_Dyn *d = (const Elf64_Dyn *)(k->file + k->dynamic->p_offset);
       d->d_tag != DT_NULL; d++) {
    if (d->d_tag == DT_RELA) rela = d->d_un.d_ptr;
    if (d->d_tag == DT_RELASZ) relasz = d->d_un.d_val;
  }
  if (relasz == 0) return;
  const Elf64_Rela *r = (const Elf64_Rela *)(k->file + file_offset(k, rela));
  for (uint64_t i = 0; i < relasz / sizeof *r; i++) {
    if (ELF64_R_TYPE(r[i].r_info) != R_X86_64_RELATIVE) fail("a relocation is not RELATIVE");
    uint64_t value = kernel_address + (uint64_t)r[i].r_addend;
    memcpy(guest(kernel_address + r[i].r_offset, 8), &value, 8);
  }
}

/* ---- boot state ---------------------------------------------------------------------- */

/* Identity-maps 2 MiB pages from ram_base up to and including the page holding end. */
static void build_page_tables(uint64_t end) {
  uint64_t *pml4 = guest(ram_base + PML4_OFFSET, 0x1000);
  uint64_t next = ram_base + PAGE_TABLES_OFFSET;
  memset(pml4, 0, 0x1000);
  pml4[511] = (ram_base + PML4_OFFSET) | 3; /* recursive entry */
  for (uint64_t a = ram_base; a <= end; a += PAGE_2M) {
    uint64_t *table = pml4;
    for (int shift = 39; shift > 21; shift -= 9) { /* PML4 → PDPT → PD */
      uint64_t *e = &table[(a >> shift) & 511];
      if (!(*e & 1)) {
        if (next >= ram_base + PAGE_TABLES_END) fail("the page tables do not fit");
        memset(guest(next, 0x1000), 0, 0x1000);
        *e = next | 3;
        next += 0x1000;
      }
      table = guest(*e & ~0xfffULL, 0x1000);
    }
    table[(a >> 21) & 511] = a | 0x83; /* present, writable, 2 MiB */
  }
}

static void write_boot_info(const struct kernel *k, uint64_t kernel_address, uint32_t tsc_khz) {
  uint8_t *bi = guest(ram_base + BOOT_INFO_OFFSET, 0x80);
  uint64_t start = ram_base, end = ram_base + ram_size, image_end = kernel_address + k->span;
  uint16_t serial = k->iface == 1 ? V1_UART : V2_SERIAL_BUFFER;
  uint32_t platform = 1; /* Uhyve */
  uint64_t cpus = 1;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  __int128 ns = (__int128)ts.tv_sec * 1000000000 + ts.tv_nsec;

  memset(bi, 0, 0x80);
  memcpy(bi + 0x00, &start, 8);
  memcpy(bi + 0x08, &end, 8);
  memcpy(bi + 0x10, &serial, 2);
  /* 0x18 device_tree = 0: no FDT, so a v2 guest has no arguments. */
  memcpy(bi + 0x20, &kernel_address, 8);
  memcpy(bi + 0x28, &image_end, 8);
  if (k->tls) {
    uint64_t tls_start = k->tls->p_vaddr - k->first_vaddr + kernel_address;
    memcpy(bi + 0x30, &tls_start, 8);
    memcpy(bi + 0x38, &k->tls->p_filesz, 8);
    memcpy(bi + 0x40, &k->tls->p_memsz, 8);
    memcpy(bi + 0x48, &k->tls->p_align, 8);
  }
  memcpy(bi + 0x50, &platform, 4);
  bi[0x58] = 1; /* has_pci: the kernel probes ports 0xcf8/0xcfc and finds nothing */
  memcpy(bi + 0x60, &cpus, 8);
  memcpy(bi + 0x68, &tsc_khz, 4);
  memcpy(bi + 0x70, &ns, 16);
}

static struct kvm_cpuid2 *cpuid; /* kept for the XSAVE area layout (leaf 0xD) */

static void set_cpuid(int kvm, int vcpu) {
  int max = 256;
  struct kvm_cpuid2 *c = calloc(1, sizeof *c + max * sizeof(struct kvm_cpuid_entry2));
  if (!c) die("allocate the CPUID table");
  c->nent = max;
  if (ioctl(kvm, KVM_GET_SUPPORTED_CPUID, c) < 0) die("get the supported CPUID leaves");
  for (uint32_t i = 0; i < c->nent; i++) {
    if (c->entries[i].function == 1) c->entries[i].ecx |= 1u << 31; /* hypervisor */
  }
  if (ioctl(vcpu, KVM_SET_CPUID2, c) < 0) die("set the vCPU CPUID");
  cpuid = c;
}

static void set_registers(int vcpu, uint64_t entry, uint64_t stack) {
  struct kvm_sregs s;
  if (ioctl(vcpu, KVM_GET_SREGS, &s) < 0) die("read the special registers");
  struct kvm_segment code = {.base = 0, .limit = 0xffffffff, .selector = 0x08, .type = 11,
                             .present = 1, .s = 1, .l = 1, .g = 1};
  struct kvm_segment data = code;
  data.selector = 0x10;
  data.type = 3;
  data.l = 0;
  s.cs = code;
  s.ds = s.es = s.ss = data;
  s.gdt.base = ram_base + GDT_OFFSET;
  s.gdt.limit = 23;
  s.cr0 = 0x80000031; /* PE | ET | NE | PG */
  s.cr3 = ram_base + PML4_OFFSET;
  s.cr4 = 0x20;   /* PAE */
  s.efer = 0xd00; /* LME | LMA | NXE */
  if (ioctl(vcpu, KVM_SET_SREGS, &s) < 0) die("set the special registers");

  struct kvm_regs r = {.rip = entry, .rsp = stack, .rdi = ram_base + BOOT_INFO_OFFSET,
                       .rsi = 0, .rflags = 2};
  if (ioctl(vcpu, KVM_SET_REGS, &r) < 0) die("set the registers");
}

/* ---- guest output ---------------------------------------------------------------------- */

/* Serial bytes and fd 1, line-buffered like dhyve's GuestOutput: written at a newline. */
static struct {
  uint8_t buf[4096];
  size_t len;
} out;

static void flush_output(void) {
  for (size_t at = 0; at < out.len;) {
    ssize_t n = write(1, out.buf + at, out.len - at);
    if (n <= 0) break; /* like dhyve: a broken sink drops output, the guest goes on */
    at += (size_t)n;
  }
  out.len = 0;
}

static void put_byte(uint8_t b) {
  out.buf[out.len++] = b;
  if (b == '\n' || out.len == sizeof out.buf) flush_output();
}

static void put_bytes(const uint8_t *p, uint64_t len) {
  for (uint64_t i = 0; i < len; i++) put_byte(p[i]);
}

/* ---- guest-virtual memory and emulation (only uhyve's hello_c needs them) ------------- */

/* Guest-virtual → guest-physical through the guest's own 4-level page tables; 0 if unmapped. */
static uint64_t virt_to_phys(int vcpu, uint64_t va) {
  struct kvm_sregs s;
  if (ioctl(vcpu, KVM_GET_SREGS, &s) < 0) die("read the special registers");
  uint64_t table = s.cr3 & 0xffffffffff000ULL;
  for (int shift = 39; shift >= 12; shift -= 9) {
    uint64_t e;
    memcpy(&e, guest(table + 8 * ((va >> shift) & 511), 8), 8);
    if (!(e & 1)) return 0;
    uint64_t frame = e & 0xffffffffff000ULL;
    if (shift == 12 || (shift <= 30 && (e & 0x80))) {
      return (frame & ~((1ULL << shift) - 1)) | (va & ((1ULL << shift) - 1));
    }
    table = frame;
  }
  return 0;
}

static uint64_t xcr0(int vcpu) {
  struct kvm_xcrs x;
  memset(&x, 0, sizeof x);
  return ioctl(vcpu, KVM_GET_XCRS, &x) == 0 && x.nr_xcrs > 0 ? x.xcrs[0].value : 3;
}

/* Bytes of the standard-format XSAVE area for the components enabled in XCR0. */
static uint64_t xsave_size(uint64_t enabled) {
  uint64_t size = 576; /* legacy region + header */
  for (uint32_t i = 0; i < cpuid->nent; i++) {
    const struct kvm_cpuid_entry2 *e = &cpuid->entries[i];
    if (e->function == 0xd && e->index >= 2 && e->index < 64 && (enabled >> e->index & 1) &&
        e->ebx + e->eax > size) {
      size = e->ebx + e->eax; /* offset + size of component index */
    }
  }
  return size > 4096 ? 4096 : size;
}

/* Address of a memory operand: [reg], [reg + disp8] or [reg + disp32] (no SIB, no RIP). */
static int operand_address(const struct kvm_regs *r, const uint8_t *modrm, int rex, uint64_t *at,
                           int *len) {
  const uint64_t regs[16] = {r->rax, r->rcx, r->rdx, r->rbx, r->rsp, r->rbp, r->rsi, r->rdi,
                             r->r8,  r->r9,  r->r10, r->r11, r->r12, r->r13, r->r14, r->r15};
  int mod = modrm[0] >> 6, rm = modrm[0] & 7;
  if (mod == 3 || rm == 4 || (mod == 0 && rm == 5)) return 0;
  *at = regs[rm | (rex & 1) << 3];
  *len = 1;
  if (mod == 1) {
    *at += (uint64_t)(int64_t)(int8_t)modrm[1];
    *len = 2;
  } else if (mod == 2) {
    int32_t disp;
    memcpy(&disp, modrm + 1, 4);
    *at += (uint64_t)(int64_t)disp;
    *len = 5;
  }
  return 1;
}

/* Copies between guest-virtual [va, va + len) and host bytes, page by page. */
static void copy_virtual(int vcpu, uint64_t va, uint8_t *host, uint64_t len, int to_guest) {
  while (len > 0) {
    uint64_t chunk = 0x1000 - (va & 0xfff), pa = virt_to_phys(vcpu, va);
    if (chunk > len) chunk = len;
    if (!pa) fail("an emulated instruction touched unmapped memory");
    if (to_guest) memcpy(guest(pa, chunk), host, chunk);
    else memcpy(host, guest(pa, chunk), chunk);
    va += chunk;
    host += chunk;
    len -= chunk;
  }
}

/* kvm_pvm cannot run xgetbv/xsetbv (0f 01 d0/d1) nor xsave/xrstor (0f ae /4, /5), which
 * Hermit kernels use; emulate them with KVM_GET/SET_XCRS and KVM_GET/SET_XSAVE, as dhyve
 * does. Returns 0 if the faulting instruction is something else. */
static int emulate(int vcpu) {
  struct kvm_regs r;
  if (ioctl(vcpu, KVM_GET_REGS, &r) < 0) die("read the registers");
  uint64_t pa = virt_to_phys(vcpu, r.rip);
  if (!pa) return 0;
  const uint8_t *insn = guest(pa, 8);
  int rex = (insn[0] & 0xf0) == 0x40 ? insn[0] : 0, at = rex ? 1 : 0, len;
  const uint8_t *op = insn + at;
  if (op[0] == 0x0f && op[1] == 0x01 && (op[2] == 0xd0 || op[2] == 0xd1) && !rex) {
    if (op[2] == 0xd0) { /* xgetbv: EDX:EAX = XCR0 */
      uint64_t v = xcr0(vcpu);
      r.rax = (uint32_t)v;
      r.rdx = v >> 32;
    } else { /* xsetbv: XCR0 = EDX:EAX */
      struct kvm_xcrs x;
      memset(&x, 0, sizeof x);
      x.nr_xcrs = 1;
      x.xcrs[0].value = (uint32_t)r.rax | r.rdx << 32;
      if (ioctl(vcpu, KVM_SET_XCRS, &x) < 0) die("set XCR0");
    }
    r.rip += 3;
  } else if (op[0] == 0x0f && op[1] == 0xae && ((op[2] >> 3 & 7) == 4 || (op[2] >> 3 & 7) == 5)) {
    uint64_t va;
    if (!operand_address(&r, op + 2, rex, &va, &len)) return 0;
    struct kvm_xsave area;
    if (ioctl(vcpu, KVM_GET_XSAVE, &area) < 0) die("read the FPU state");
    uint64_t size = xsave_size(xcr0(vcpu));
    if ((op[2] >> 3 & 7) == 4) { /* xsave: the whole enabled state, standard format */
      copy_virtual(vcpu, va, (uint8_t *)area.region, size, 1);
    } else { /* xrstor */
      copy_virtual(vcpu, va, (uint8_t *)area.region, size, 0);
      if (ioctl(vcpu, KVM_SET_XSAVE, &area) < 0) die("set the FPU state");
    }
    r.rip += (uint64_t)(at + 2 + len);
  } else {
    return 0;
  }
  if (ioctl(vcpu, KVM_SET_REGS, &r) < 0) die("set the registers");
  return 1;
}

/* ---- hypercalls ------------------------------------------------------------------------ */

struct vm {
  int kvm, fd, vcpu, iface, sync_regs;
  struct kvm_run *run;
  int argc;    /* the guest's arguments (v1 only): argv[0] = the kernel path, as in dhyve */
  char **argv;
  int envc;    /* the guest's environment (v1 only): -e NAME=VALUE, in order */
  char **envp;
  uint32_t pci_address;
  int exit_code; /* -1 while the guest runs */
  uint64_t exits, emulated;
  double setup_ms; /* start of main to the first KVM_RUN */
};

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* -T: phase marks, kept in memory and printed at exit (same names as dhyve's trace). */
static struct {
  int on, count;
  double origin_epoch_ms, origin_ms;
  const char *name[16];
  double at[16];
} trace;

static void trace_mark(const char *name) {
  if (!trace.on || trace.count == 16) return;
  trace.name[trace.count] = name;
  trace.at[trace.count++] = now_ms() - trace.origin_ms;
}

static void print_trace(void) {
  if (!trace.on) return;
  fprintf(stderr, "floor-trace: origin=%.3f", trace.origin_epoch_ms);
  for (int i = 0; i < trace.count; i++) fprintf(stderr, " %s=%.3f", trace.name[i], trace.at[i]);
  fputc('\n', stderr);
}

/* v1 Cmdsize: argc and each argument's size (with its NUL), envc and each entry's size. */
static void cmdsize(const struct vm *vm, uint64_t gpa) {
  uint8_t *p = guest(gpa, 1032);
  int32_t n = vm->argc > 128 ? 128 : vm->argc, e = vm->envc > 128 ? 128 : vm->envc;
  memcpy(p, &n, 4);
  for (int32_t i = 0; i < n; i++) {
    int32_t size = (int32_t)strlen(vm->argv[i]) + 1;
    memcpy(p + 4 + 4 * i, &size, 4);
  }
  memcpy(p + 516, &e, 4);
  for (int32_t i = 0; i < e; i++) {
    int32_t size = (int32_t)strlen(vm->envp[i]) + 1;
    memcpy(p + 520 + 4 * i, &size, 4);
  }
}

/* v1 Cmdval: copies each argument (environment entry) to the buffer whose address the guest
 * put in argv[i] (envp[i]). */
static void cmdval(const struct vm *vm, uint64_t gpa) {
  uint64_t argv_gpa, envp_gpa;
  memcpy(&argv_gpa, guest(gpa, 16), 8);
  memcpy(&envp_gpa, guest(gpa + 8, 8), 8);
  for (int i = 0; i < vm->argc && i < 128; i++) {
    uint64_t dst, size = strlen(vm->argv[i]) + 1;
    memcpy(&dst, guest(argv_gpa + 8 * (uint64_t)i, 8), 8);
    memcpy(guest(dst, size), vm->argv[i], size);
  }
  for (int i = 0; i < vm->envc && i < 128; i++) {
    uint64_t dst, size = strlen(vm->envp[i]) + 1;
    memcpy(&dst, guest(envp_gpa + 8 * (uint64_t)i, 8), 8);
    memcpy(guest(dst, size), vm->envp[i], size);
  }
}

/* v1 FileWrite {i32 fd, u64 buf (guest-virtual), u64 len}, packed: fd 1 goes to the output
 * buffer, fd 2 to stderr, page by page; other fds are ignored (v1 has no result field). */
static void file_write_v1(const struct vm *vm, uint64_t gpa) {
  const uint8_t *p = guest(gpa, 20);
  int32_t fd;
  uint64_t va, len;
  memcpy(&fd, p, 4);
  memcpy(&va, p + 4, 8);
  memcpy(&len, p + 12, 8);
  if (fd != 1 && fd != 2) return;
  while (len > 0) {
    uint64_t chunk = 0x1000 - (va & 0xfff), pa = virt_to_phys(vm->vcpu, va);
    if (chunk > len) chunk = len;
    if (!pa) fail("FileWrite: the buffer is not mapped");
    if (fd == 1) put_bytes(guest(pa, chunk), chunk);
    else if (write(2, guest(pa, chunk), chunk) < 0) break;
    va += chunk;
    len -= chunk;
  }
}

/* An OUT exit: a hypercall (v1: the OUT value; v2: RDI), the PCI address, or nothing. */
static void handle_out(struct vm *vm, uint16_t port, uint32_t value) {
  uint64_t rdi = 0;
  if (vm->iface == 2) {
    if (vm->sync_regs) {
      rdi = vm->run->s.regs.regs.rdi;
    } else {
      struct kvm_regs r;
      if (ioctl(vm->vcpu, KVM_GET_REGS, &r) < 0) die("read the registers");
      rdi = r.rdi;
    }
  }
  switch (port) {
    case V1_UART: put_byte((uint8_t)value); break;
    case V2_SERIAL_BYTE: put_byte((uint8_t)rdi); break;
    case V1_SERIAL_BUFFER: { /* {buf, len} */
      const uint64_t *p = guest(value, 16);
      put_bytes(guest(p[0], p[1]), p[1]);
      break;
    }
    case V2_SERIAL_BUFFER: { /* {len, buf} */
      const uint64_t *p = guest(rdi, 16);
      put_bytes(guest(p[1], p[0]), p[0]);
      break;
    }
    case V1_EXIT: {
      int32_t code;
      memcpy(&code, guest(value, 4), 4);
      vm->exit_code = code & 0xff;
      break;
    }
    case V2_EXIT: vm->exit_code = (int32_t)rdi & 0xff; break;
    case V1_CMDSIZE: cmdsize(vm, value); break;
    case V1_CMDVAL: cmdval(vm, value); break;
    case V1_FILE_WRITE: file_write_v1(vm, value); break;
    case V1_FILE_OPEN: { /* {u64 name, i32 flags, i32 mode, i32 ret}: there are no files */
      int32_t enoent = -2;
      memcpy((uint8_t *)guest(value, 20) + 16, &enoent, 4);
      break;
    }
    case V1_FILE_CLOSE: { /* {i32 fd, i32 ret} */
      int32_t ebadf = -9;
      memcpy((uint8_t *)guest(value, 8) + 4, &ebadf, 4);
      break;
    }
    case PCI_CONFIG_ADDRESS: vm->pci_address = value; break;
    default:
      if (port >= 0x400 && port < 0x2000) {
        fprintf(stderr, "floor: the guest used port 0x%x, which the floor does not serve\n", port);
        exit(FLOOR_FAILED);
      }
  }
}

/* ---- set-up and the loop ---------------------------------------------------------------- */

static void set_up(struct vm *vm, const struct kernel *k) {
  uint64_t kernel_address = k->pie ? ram_base + KERNEL_OFFSET : k->first_vaddr;
  uint64_t kernel_end = kernel_address + k->span;
  if (kernel_address < ram_base + KERNEL_OFFSET || kernel_end > ram_base + ram_size) {
    fail("the kernel does not fit in guest RAM");
  }

  vm->kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
  if (vm->kvm < 0) die("open /dev/kvm");
  vm->fd = ioctl(vm->kvm, KVM_CREATE_VM, 0);
  if (vm->fd < 0) die("create a VM");
  ram = mmap(NULL, ram_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
             -1, 0);
  if (ram == MAP_FAILED) die("map guest RAM");
  struct kvm_userspace_memory_region region = {
      .slot = 0, .guest_phys_addr = ram_base, .memory_size = ram_size,
      .userspace_addr = (uint64_t)(uintptr_t)ram};
  if (ioctl(vm->fd, KVM_SET_USER_MEMORY_REGION, &region) < 0) die("map guest memory");
  if (ioctl(vm->fd, KVM_CREATE_IRQCHIP, 0) < 0) die("create the interrupt controller");
  struct kvm_enable_cap x2apic = {.cap = KVM_CAP_X2APIC_API};
  x2apic.args[0] = KVM_X2APIC_API_USE_32BIT_IDS | KVM_X2APIC_API_DISABLE_BROADCAST_QUIRK;
  ioctl(vm->fd, KVM_ENABLE_CAP, &x2apic); /* optional, as in dhyve */

  load_kernel(k, kernel_address);
  uint64_t gdt[3] = {0, 0x00af9b000000ffffULL, 0x00cf93000000ffffULL}; /* null, code, data */
  memcpy(guest(ram_base + GDT_OFFSET, sizeof gdt), gdt, sizeof gdt);

  vm->vcpu = ioctl(vm->fd, KVM_CREATE_VCPU, 0);
  if (vm->vcpu < 0) die("create vCPU 0");
  int run_size = ioctl(vm->kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
  if (run_size < (int)sizeof(struct kvm_run)) die("get the vCPU mmap size");
  vm->run = mmap(NULL, (size_t)run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vm->vcpu, 0);
  if (vm->run == MAP_FAILED) die("map kvm_run");
  set_registers(vm->vcpu, k->eh->e_entry - k->first_vaddr + kernel_address,
                kernel_address - BOOT_STACK_SIZE);
  set_cpuid(vm->kvm, vm->vcpu);
  trace_mark("kvm");
  struct kvm_mp_state runnable = {.mp_state = KVM_MP_STATE_RUNNABLE};
  if (ioctl(vm->vcpu, KVM_SET_MP_STATE, &runnable) < 0) die("make the vCPU runnable");
  struct {
    struct kvm_msrs header;
    struct kvm_msr_entry entry;
  } msrs = {.header = {.nmsrs = 1}, .entry = {.index = 0x1a0, .data = 1}}; /* MISC_ENABLE */
  if (ioctl(vm->vcpu, KVM_SET_MSRS, &msrs) < 0) die("set the vCPU MSRs");
  int tsc_khz = ioctl(vm->vcpu, KVM_GET_TSC_KHZ, 0);

  write_boot_info(k, kernel_address, tsc_khz > 0 ? (uint32_t)tsc_khz : 0);
  uint64_t map_end = kernel_end;
  if (k->legacy) { /* the rest of the 1 GiB region that holds the kernel */
    uint64_t last = ((ram_base + KERNEL_OFFSET) & ~(ONE_GIB - 1)) + ONE_GIB - PAGE_2M;
    if (last > map_end) map_end = last;
  }
  build_page_tables(map_end);

  vm->iface = k->iface;
  vm->sync_regs = ioctl(vm->kvm, KVM_CHECK_EXTENSION, KVM_CAP_SYNC_REGS) > 0;
  if (vm->sync_regs) vm->run->kvm_valid_regs = KVM_SYNC_X86_REGS;
}

static int is_mp_table_scan(uint64_t gpa) {
  return (gpa >= 0x9f000 && gpa < 0xa0000) || (gpa >= 0xf0000 && gpa < 0x100000);
}

/* KVM_RUN, decode, act, resume: until the guest's Exit hypercall. */
static void run_loop(struct vm *vm) {
  struct kvm_run *run = vm->run;
  while (vm->exit_code < 0) {
    if (ioctl(vm->vcpu, KVM_RUN, 0) < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      die("run the vCPU");
    }
    vm->exits++;
    switch (run->exit_reason) {
      case KVM_EXIT_IO: {
        uint8_t *data = (uint8_t *)run + run->io.data_offset;
        if (run->io.direction == KVM_EXIT_IO_OUT) {
          uint32_t value = 0;
          memcpy(&value, data, run->io.size < 4 ? run->io.size : 4);
          handle_out(vm, run->io.port, value);
        } else if (run->io.port == PCI_CONFIG_ADDRESS && run->io.size == 4) {
          memcpy(data, &vm->pci_address, 4);
        } else { /* no device: all ones, as on real hardware */
          memset(data, 0xff, (size_t)run->io.size * run->io.count);
        }
        break;
      }
      case KVM_EXIT_HLT:
        break;
      case KVM_EXIT_MMIO:
        if (!is_mp_table_scan(run->mmio.phys_addr)) fail("the guest touched memory-mapped I/O");
        if (!run->mmio.is_write) memset(run->mmio.data, 0, sizeof run->mmio.data);
        break;
      case KVM_EXIT_INTERNAL_ERROR: /* the test guests never get here; Hermit kernels do */
        if (run->internal.suberror == KVM_INTERNAL_ERROR_EMULATION && emulate(vm->vcpu)) {
          vm->emulated++;
          break;
        }
        fprintf(stderr, "floor: KVM internal error (suberror %u) the floor cannot emulate\n",
                run->internal.suberror);
        exit(FLOOR_FAILED);
      default:
        fprintf(stderr, "floor: unexpected exit reason %u\n", run->exit_reason);
        exit(FLOOR_FAILED);
    }
  }
  flush_output();
}

/* -s: exits, guest memory resident (touched by the loader or the guest), peak RSS. */
static void print_stats(const struct vm *vm) {
  long hwm = -1; /* read first: the mincore vector below would add to it */
  char line[256];
  FILE *f = fopen("/proc/self/status", "r");
  while (f && fgets(line, sizeof line, f)) sscanf(line, "VmHWM: %ld kB", &hwm);
  if (f) fclose(f);
  size_t pages = ram_size / 4096, resident = 0;
  unsigned char *vec = malloc(pages);
  if (vec && mincore(ram, ram_size, vec) == 0) {
    for (size_t p = 0; p < pages; p++) resident += vec[p] & 1;
  }
  free(vec);
  fprintf(stderr,
          "floor: setup_ms=%.3f exits=%lu emulated=%lu guest_resident_kib=%zu peak_rss_kib=%ld "
          "sync_regs=%d\n",
          vm->setup_ms, vm->exits, vm->emulated, resident * 4, hwm, vm->sync_regs);
}

int main(int argc, char **argv) {
  double t0 = now_ms();
  struct timespec wall;
  clock_gettime(CLOCK_REALTIME, &wall);
  trace.origin_epoch_ms = wall.tv_sec * 1e3 + wall.tv_nsec / 1e6;
  trace.origin_ms = t0;
  uint64_t mib = 64;
  int stats = 0, i = 1, envc = 0;
  char *envp[128];
  for (; i < argc && argv[i][0] == '-'; i++) {
    if (strcmp(argv[i], "-m") == 0 && i + 1 < argc) mib = strtoull(argv[++i], NULL, 0);
    else if (strcmp(argv[i], "-e") == 0 && i + 1 < argc && envc < 128) envp[envc++] = argv[++i];
    else if (strcmp(argv[i], "-s") == 0) stats = 1;
    else if (strcmp(argv[i], "-T") == 0) trace.on = 1;
    else if (strcmp(argv[i], "-t") == 0 && i + 1 < argc) alarm((unsigned)atoi(argv[++i]));
    else break;
  }
  if (i >= argc || mib < 16) fail("usage: floor [-m MIB >= 16] [-s] [-T] [-t SECONDS] [-e NAME=VALUE]... KERNEL [ARG...]");

  struct kernel k = {0};
  read_kernel(argv[i], &k);
  trace_mark("kernel");
  ram_size = mib << 20;
  ram_base = k.iface == 1 ? 0 : 0x100000000ULL; /* v2 RAM starts at 4 GiB */
  if (k.iface == 1 && ram_size > 0xc0000000ULL) fail("a v1 guest's RAM must end below 3 GiB");

  struct vm vm = {.argc = argc - i, .argv = argv + i, .envc = envc, .envp = envp, .exit_code = -1};
  set_up(&vm, &k);
  vm.setup_ms = now_ms() - t0;
  trace_mark("boot");
  run_loop(&vm);
  trace_mark("guest");
  if (stats) print_stats(&vm);
  trace_mark("exit");
  print_trace();
  return vm.exit_code;
}
