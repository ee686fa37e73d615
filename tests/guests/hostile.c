/*
 * hostile: one misbehaving guest, one case per run (docs/security.md lists every case).
 * argv[1] names the case, argv[2] is the absolute host path of a canary file outside the
 * file map (for the "absolute host path" cases). The tests map a host directory at
 * /root/data holding hello.txt = "hello\n", escape -> the canary, outdir -> a directory
 * outside the map, dangling -> a missing file outside the map.
 *
 * Guest mistakes (tests/kvm/hostile_test.ts) print "case <name>: ret=<r>[ <key>=<value>...]"
 * and then check that the host still serves the guest (" after=ok": hello.txt opens and
 * reads back), and exit 0. File results are >= 0 or -errno; a v1 FileWrite has no result
 * field, so it prints "ret=none"; a new fd prints as "fd", since numbers vary. The test
 * compares the printed values with what it expects; the guest judges nothing itself.
 *
 * Protocol violations expect the VM to stop at the hypercall; should the guest ever get
 * past it, it prints "case <name>: continued" and exits 1. Faults (tests/kvm/faults_test.ts)
 * triple-fault, make KVM's emulator give up, run code or FPU state outside RAM, spin, halt,
 * flood the output, block on stdin, or write a file first and then spin or crash.
 *
 * Built without the GNU version note so that the host maps the whole 1 GiB region (the
 * legacy map) and the guest can touch the last bytes of its RAM; run it with --no-aslr so
 * that RAM does not cross a 1 GiB boundary. Kept short: instructions may be emulated one by
 * one. The one SSE/FPU line per fault case is inline assembly (gcc never emits SSE here).
 */
#include "rt.h"

#if RT_IFACE == 1
#define PORT_OPEN 0x440
#define PORT_CLOSE 0x480
#define PORT_READ 0x500
#define PORT_SERIAL_BUFFER 0x880
#else
#define PORT_OPEN 0x1110
#define PORT_CLOSE 0x1120
#define PORT_READ 0x1130
#define PORT_SERIAL_BUFFER 0x1030
#endif
#define PORT_CMDSIZE 0x740 /* v1 only */
#define PORT_CMDVAL 0x780  /* v1 only */

static const char *name;
static char path_buf[5200];
static char chunk[4096];

static uint64_t ram_end(void) { return rt_boot_info->phys_addr_end; }
static uint64_t addr(const volatile void *p) { return (uint64_t)(uintptr_t)p; }
static void *ptr(uint64_t a) { return (void *)(uintptr_t)a; }

/* A raw hypercall in the convention of the port: v1 ports take EAX, v2 ports take RDI. */
static void raw(uint16_t port, uint64_t arg) {
  if (port < 0x1000) {
    __asm__ volatile("outl %%eax, %%dx" : : "a"((uint32_t)arg), "d"(port) : "memory");
  } else {
    __asm__ volatile("outl %%eax, %%dx" : : "a"(0x1234u), "d"(port), "D"(arg) : "memory");
  }
}

static void report(int64_t r) {
  if (r >= 3 && r < 4096) rt_printf("case %s: ret=fd", name);
  else rt_printf("case %s: ret=%ld", name, (long)r);
}

/* Ends the line: checks that the host still serves the guest. */
static int after(void) {
  char b[8];
  int fd = rt_open("/root/data/hello.txt", RT_O_RDONLY, 0);
  int64_t n = fd >= 3 ? rt_read(fd, b, sizeof b) : -1;
  int ok = n == 6 && memcmp(b, "hello\n", 6) == 0 && rt_close(fd) == 0;
  rt_printf(" after=%s\n", ok ? "ok" : "broken");
  return ok ? 0 : 1;
}

static int one(int64_t r) {
  report(r);
  return after();
}

/* A protocol violation must stop the VM at the call before this. */
static int continued(void) {
  rt_printf("case %s: continued\n", name);
  return 1;
}

static int hello_fd(void) { return rt_open("/root/data/hello.txt", RT_O_RDONLY, 0); }

/* A write, then the file's size: v1 FileWrite has no result field. */
static int write_case(uint64_t buf, uint64_t len) {
  int fd = rt_open("/root/data/w.txt", RT_O_RDWR | RT_O_CREAT | RT_O_TRUNC, 0644);
  int64_t r = rt_write_fd(fd, ptr(buf), len);
#if RT_IFACE == 1
  rt_printf("case %s: ret=none", name);
  (void)r;
#else
  report(r);
#endif
  rt_printf(" size=%ld", (long)rt_lseek(fd, 0, RT_SEEK_END));
  rt_close(fd);
  return after();
}

/* Fills the last n bytes of RAM with 'a' (no NUL) and returns their address. */
static uint64_t unterminated_at_end(uint64_t n) {
  char *p = ptr(ram_end() - n);
  memset(p, 'a', n);
  return addr(p);
}

/* "/nomap/" followed by 'a's up to n bytes, then a NUL: a path the file map never holds,
 * so a path the host accepts gives ENOENT without touching the host. */
static const char *long_path(size_t n) {
  memcpy(path_buf, "/nomap/", 7);
  memset(path_buf + 7, 'a', n - 7);
  path_buf[n] = 0;
  return path_buf;
}

/* Bytes the guest could write into temp files: new files of up to 64 KiB, 4 KiB at a
 * time, until a write makes no progress. With unlink_each, every file is unlinked
 * (its fd stays open) before the next one. Progress is read from the file offset, which
 * works for v1 too (no result field). Prints the last write's result (v2) and the total. */
static int flood(int unlink_each, int max_files) {
  static char fname[] = "/tmp/flood-000";
  int64_t total = 0, last = 0;
  int files = 0;
  memset(chunk, 'f', sizeof chunk);
  for (; files < max_files; files++) {
    fname[11] = (char)('0' + files / 100 % 10);
    fname[12] = (char)('0' + files / 10 % 10);
    fname[13] = (char)('0' + files % 10);
    int fd = rt_open(fname, RT_O_WRONLY | RT_O_CREAT | RT_O_TRUNC, 0600);
    if (fd < 0) {
      last = fd;
      break;
    }
    int64_t pos = 0, grew = 0;
    for (int i = 0; i < 16; i++) {
      last = rt_write_fd(fd, chunk, sizeof chunk);
      int64_t now = rt_lseek(fd, 0, RT_SEEK_CUR);
      grew = now - pos;
      total += grew;
      pos = now;
      if (grew != (int64_t)sizeof chunk) break;
    }
    if (unlink_each) rt_unlink(fname); /* the fd stays open: the data stays on disk */
    else rt_close(fd);
    if (grew != (int64_t)sizeof chunk) break;
  }
#if RT_IFACE == 1
  rt_printf("case %s: ret=none", name);
  (void)last;
#else
  rt_printf("case %s: ret=%ld", name, (long)last);
#endif
  rt_printf(" total=%ld files=%d", (long)total, files);
  return after();
}

/* A guest that wrote a file and then stops badly: its data must be on disk. */
static void write_then(void) {
  static const char text[] = "data written before the end\n";
  int fd = rt_open("/root/data/out.txt", RT_O_WRONLY | RT_O_CREAT | RT_O_TRUNC, 0644);
  rt_write_fd(fd, text, sizeof text - 1);
  rt_printf("written fd=%d\n", fd);
}

static struct __attribute__((packed)) {
  uint16_t limit;
  uint64_t base;
} empty_idt = {0, 0};

static void triple_fault(void) { __asm__ volatile("lidt %0\n\tud2" : : "m"(empty_idt) : "memory"); }

#define IS(s) (strcmp(name, s) == 0)

static int run(void) {
  const char *canary = rt_argv(2) ? rt_argv(2) : "/nonexistent";
  char b[16];

  /* ---- protocol violations: the VM must stop here ---- */
  if (IS("param-outside")) { /* FileOpen's block past the end of RAM */
    raw(PORT_OPEN, ram_end() + 0x100);
    return continued();
  }
  if (IS("param-straddle")) { /* FileRead's block across the end of RAM */
    raw(PORT_READ, ram_end() - 4);
    return continued();
  }
  if (IS("param-wrap")) { /* FileClose's block where addr + size wraps */
    raw(PORT_CLOSE, RT_IFACE == 1 ? 0xfffffffcu : 0xfffffffffffffffcull);
    return continued();
  }
  if (IS("exit-param-outside")) { /* v1 Exit through a pointer outside RAM */
    raw(0x540, 0xfffffff0u);
    return continued();
  }
  if (IS("serial-outside")) {
    static volatile uint64_t p[2];
    p[RT_IFACE == 1 ? 0 : 1] = ram_end() + 0x1000; /* buf */
    p[RT_IFACE == 1 ? 1 : 0] = 16;                 /* len */
    raw(PORT_SERIAL_BUFFER, addr(p));
    return continued();
  }
  if (IS("serial-wrap")) {
    static volatile uint64_t p[2];
    p[RT_IFACE == 1 ? 0 : 1] = addr(chunk);
    p[RT_IFACE == 1 ? 1 : 0] = 0xfffffffffffffff0ull;
    raw(PORT_SERIAL_BUFFER, addr(p));
    return continued();
  }
  if (IS("unknown-port")) {
    rt_outl(0x5c0, 0);
    return continued();
  }
  if (IS("serial-read-outside")) { /* v2 SerialReadByte storing its byte outside RAM */
    raw(0x1040, ram_end());
    return continued();
  }
  if (IS("net-port")) { /* v1 NetWrite: deprecated */
    rt_outl(0x640, (uint32_t)addr(chunk));
    return continued();
  }
  if (IS("cmdsize-straddle")) {
    raw(PORT_CMDSIZE, ram_end() - 100);
    return continued();
  }
  if (IS("cmdval-bogus-array")) {
    static volatile uint64_t cv[2];
    cv[0] = 0xdeadbeef000ull;
    cv[1] = 0xdeadbeef000ull;
    raw(PORT_CMDVAL, addr(cv));
    return continued();
  }
  if (IS("cmdval-bogus-entry")) {
    static volatile uint64_t cv[2], argv[128], envp[128];
    for (int i = 0; i < 128; i++) argv[i] = envp[i] = ram_end() - 2;
    cv[0] = addr(argv);
    cv[1] = addr(envp);
    raw(PORT_CMDVAL, addr(cv));
    return continued();
  }

  /* ---- guest mistakes: -errno, and the guest goes on ---- */
  if (IS("read-buf-outside")) return one(rt_read(hello_fd(), ptr(ram_end() + 0x1000), 16));
  if (IS("read-buf-straddle")) return one(rt_read(hello_fd(), ptr(ram_end() - 8), 16));
  if (IS("read-addr-wrap")) return one(rt_read(hello_fd(), ptr(0xfffffffffffffff0ull), 0x20));
  if (IS("read-len-wrap")) return one(rt_read(hello_fd(), b, 0xfffffffffffffff0ull));
  if (IS("read-huge")) return one(rt_read(hello_fd(), b, 1ull << 40));
  if (IS("write-buf-outside")) return write_case(ram_end() + 0x1000, 16);
  if (IS("write-addr-wrap")) return write_case(0xfffffffffffffff0ull, 0x20);
  if (IS("write-len-wrap")) return write_case(addr(b), 0xfffffffffffffff0ull);
  if (IS("write-huge")) return write_case(addr(b), 1ull << 40);
  if (IS("write-fd0")) {
#if RT_IFACE == 1
    rt_write_fd(0, "x", 1);
    rt_printf("case %s: ret=none", name);
    return after();
#else
    return one(rt_write_fd(0, "x", 1));
#endif
  }
  if (IS("read-fd1")) return one(rt_read(1, b, 1));
  if (IS("bad-fd")) return one(rt_read(1000, b, 1));
  if (IS("negative-fd")) {
    rt_printf("case %s: ret=%ld,%d,%ld", name, (long)rt_read(-1, b, 1), rt_close(-5),
              (long)rt_lseek(-1, 0, RT_SEEK_SET));
    return after();
  }
  if (IS("fd-int-min")) return one(rt_read((int)0x80000000u, b, 1));
  if (IS("bad-whence")) {
    int fd = hello_fd();
    rt_printf("case %s: ret=%ld,%ld", name, (long)rt_lseek(fd, 0, 3),
              (long)rt_lseek(fd, 0, -1));
    return after();
  }
  if (IS("lseek-huge")) {
    int fd = hello_fd();
    rt_printf("case %s: ret=%ld,%ld,%ld", name, (long)rt_lseek(fd, INT64_MAX, RT_SEEK_SET),
              (long)rt_lseek(fd, INT64_MIN, RT_SEEK_END), (long)rt_lseek(fd, -1, RT_SEEK_SET));
    return after();
  }
  if (IS("path-outside")) return one(rt_open(ptr(ram_end() + 16), RT_O_RDONLY, 0));
  if (IS("path-wrap")) return one(rt_open(ptr(0xffffffffffffffffull), RT_O_RDONLY, 0));
  if (IS("path-unterminated")) {
    uint64_t p = unterminated_at_end(64);
    rt_printf("case %s: ret=%d,%d", name, rt_open(ptr(p), RT_O_RDONLY, 0), rt_unlink(ptr(p)));
    return after();
  }
  if (IS("path-too-long")) return one(rt_open(long_path(5000), RT_O_RDONLY, 0));
  if (IS("path-4095")) return one(rt_open(long_path(4095), RT_O_RDONLY, 0)); /* fits */
  if (IS("path-4096")) return one(rt_unlink(long_path(4096)));                /* does not */
  if (IS("path-not-utf8")) return one(rt_open("/root/data/\xff\xfe", RT_O_RDONLY, 0));
  if (IS("dotdot")) {
    rt_printf("case %s: ret=%d,%d", name,
              rt_open("/root/data/../../../../../etc/passwd", RT_O_RDONLY, 0),
              rt_open("/root/data/../canary.txt", RT_O_RDONLY, 0));
    return after();
  }
  if (IS("dotdot-creat")) { /* lands in the guest's own temp dir, never next to the map */
    int fd = rt_open("/root/data/../canary.txt", RT_O_WRONLY | RT_O_CREAT | RT_O_TRUNC, 0644);
    rt_write_fd(fd, "pwned\n", 6);
    return one(fd);
  }
  if (IS("abs-host-path")) {
    rt_printf("case %s: ret=%d,%d", name, rt_open(canary, RT_O_RDONLY, 0), rt_unlink(canary));
    return after();
  }
  if (IS("abs-host-creat")) { /* a temp file at that guest path, not the host file */
    int fd = rt_open(canary, RT_O_RDWR | RT_O_CREAT | RT_O_TRUNC, 0644);
    rt_write_fd(fd, "pwned\n", 6);
    return one(fd);
  }
  if (IS("symlink-escape")) {
    rt_printf("case %s: ret=%d,%d", name, rt_open("/root/data/escape", RT_O_RDONLY, 0),
              rt_open("/root/data/escape", RT_O_WRONLY | RT_O_TRUNC, 0));
    return after();
  }
  if (IS("symlink-dir-escape")) {
    rt_printf("case %s: ret=%d,%d,%d", name,
              rt_open("/root/data/outdir/secret.txt", RT_O_RDWR, 0),
              rt_open("/root/data/outdir/new.txt", RT_O_WRONLY | RT_O_CREAT, 0644),
              rt_unlink("/root/data/outdir/secret.txt"));
    return after();
  }
  if (IS("symlink-dangling")) {
    return one(rt_open("/root/data/dangling", RT_O_WRONLY | RT_O_CREAT, 0644));
  }
  if (IS("open-bad-flags")) {
    rt_printf("case %s: ret=%d,%d", name, rt_open("/root/data/hello.txt", -1, 0),
              rt_open("/root/data/d", RT_O_DIRECTORY | RT_O_CREAT, 0755));
    return after();
  }
  if (IS("read-dir")) return one(rt_read(rt_open("/root/data", RT_O_RDONLY, 0), b, sizeof b));
  if (IS("unlink-dirs")) {
    rt_printf("case %s: ret=%d,%d", name, rt_unlink("/"), rt_unlink("/root/data"));
    return after();
  }
  if (IS("close-stdio")) {
    rt_printf("case %s: ret=%d,%d,%d", name, rt_close(0), rt_close(1), rt_close(2));
    return after();
  }
  if (IS("emfile")) {
    int n = 0, r;
    while ((r = hello_fd()) >= 0 && n < 5000) n++;
    rt_close(3);
    report(r);
    rt_printf(" opened=%d reopen=%s", n, hello_fd() == 3 ? "fd" : "failed");
    for (int fd = 3; fd < 3 + n; fd++) rt_close(fd);
    return after();
  }
  if (IS("temp-flood")) return flood(0, 1000);
  if (IS("temp-unlink-flood")) return flood(1, 8);
  if (IS("temp-files-flood")) { /* empty files: inodes and map entries, not bytes */
    static char fname[] = "/tmp/e-0000";
    int n = 0, r = 0;
    for (; n < 2000; n++) {
      for (int i = 0, v = n; i < 4; i++, v /= 10) fname[10 - i] = (char)('0' + v % 10);
      if ((r = rt_open(fname, RT_O_WRONLY | RT_O_CREAT, 0600)) < 0) break;
      rt_close(r);
    }
    rt_printf("case %s: ret=%d created=%d", name, r < 0 ? r : 0, n);
    return after();
  }
  if (IS("serial-huge")) { /* 4 MiB in one SerialWriteBuffer */
    rt_write(ptr(ram_end() - (4u << 20)), 4u << 20);
    rt_puts("\n");
    return one(0);
  }

  if (IS("serial-flood")) { /* endless output: a reader that stops reading must not hang dhyve */
    memset(chunk, 's', sizeof chunk);
    chunk[sizeof chunk - 1] = '\n';
    rt_puts("serial-flood: flooding\n");
    for (;;) rt_write(chunk, sizeof chunk);
  }

  if (IS("serial-flood-big")) { /* the same, 4 MiB per call: the host spends its time in the handler */
    rt_puts("serial-flood: flooding\n");
    for (;;) rt_write(ptr(ram_end() - (4u << 20)), 4u << 20);
  }

  /* ---- faults (tests/kvm/faults_test.ts) ---- */
  if (IS("triple")) {
    rt_puts("triple: faulting\n");
    triple_fault();
    return continued();
  }
  if (IS("sse")) { /* enable SSE (CR4.OSFXSR) and run one SSE instruction */
    rt_puts("sse: running movaps\n");
    __asm__ volatile("movq %%cr4, %%rax\n\t"
                     "orq $0x600, %%rax\n\t"
                     "movq %%rax, %%cr4\n\t"
                     "movaps %%xmm0, %%xmm1" : : : "rax", "memory");
    rt_puts("sse: ran\n");
    return 0;
  }
  if (IS("sse-mmio")) { /* an SSE instruction on MMIO: KVM's instruction emulator gives up */
    rt_puts("sse: running aesenc on MMIO\n");
    __asm__ volatile("movq %%cr4, %%rax\n\t"
                     "orq $0x600, %%rax\n\t"
                     "movq %%rax, %%cr4\n\t"
                     "aesenc (%0), %%xmm0" : : "r"(ram_end() + 0x1000) : "rax", "memory");
    rt_puts("sse: ran\n");
    return 0;
  }
  if (IS("spin")) {
    rt_puts("spin: spinning\n");
    for (;;) rt_pause();
  }
  if (IS("read-stdin")) { /* fd 0 is the host's stdin: may block until input comes */
    rt_puts("read-stdin: reading\n");
    return one(rt_read(0, b, 1));
  }
  if (IS("exec-outside")) { /* run code at guest-physical addresses that are not RAM */
    uint64_t target;
#if RT_IFACE == 1
    target = ram_end() + 0x1000; /* the legacy map covers it; no RAM behind it */
#else
    /* RAM starts at 4 GiB: map virtual 0..2 MiB to guest-physical 0..2 MiB, below RAM */
    static uint64_t pd[512] __attribute__((aligned(4096)));
    uint64_t cr3;
    __asm__ volatile("movq %%cr3, %0" : "=r"(cr3));
    volatile uint64_t *pml4 = ptr(cr3 & ~0xfffull);
    volatile uint64_t *pdpt = ptr(pml4[0] & 0x000ffffffffff000ull);
    pd[0] = 0x83; /* present, writable, 2 MiB page at 0 */
    pdpt[0] = addr(pd) | 3;
    __asm__ volatile("movq %0, %%cr3" : : "r"(cr3) : "memory");
    target = 0x1000;
#endif
    rt_puts("exec-outside: jumping\n");
    ((void (*)(void))(uintptr_t)target)();
    return continued();
  }
  if (IS("fxsave-outside") || IS("fxrstor-outside") || IS("xsave-outside") ||
      IS("movaps-mmio") || IS("fxsave-straddle")) {
    /* FPU/SSE state instructions with operands that are not RAM: whatever emulates them
     * must check the operand's range */
    uint64_t at = IS("fxsave-straddle") ? ram_end() - 256 : ram_end() + 0x1000;
    __asm__ volatile("movq %%cr4, %%rax\n\t"
                     "orq $0x40600, %%rax\n\t" /* OSFXSR, OSXMMEXCPT, OSXSAVE */
                     "movq %%rax, %%cr4" : : : "rax", "memory");
    rt_printf("%s: running\n", name);
    if (IS("fxsave-outside") || IS("fxsave-straddle")) __asm__ volatile("fxsave (%0)" : : "r"(at) : "memory");
    if (IS("fxrstor-outside")) __asm__ volatile("fxrstor (%0)" : : "r"(at) : "memory");
    if (IS("xsave-outside")) {
      __asm__ volatile("xsetbv" : : "a"(3), "d"(0), "c"(0));
      __asm__ volatile("xsave (%0)" : : "r"(at), "a"(3), "d"(0) : "memory");
    }
    if (IS("movaps-mmio")) __asm__ volatile("movaps %%xmm0, (%0)" : : "r"(at) : "memory");
    return continued();
  }
  if (IS("halt")) { /* cli; hlt: a dead guest, which the host must notice (exit 86) */
    rt_puts("halt: halting\n");
    rt_halt();
  }
  if (IS("halt-idle")) { /* sti; hlt with no interrupt source: KVM_RUN blocks in the kernel */
    rt_puts("halt-idle: halting\n");
    for (;;) __asm__ volatile("sti; hlt");
  }
  if (IS("write-spin")) {
    write_then();
    for (;;) rt_pause();
  }
  if (IS("write-triple")) {
    write_then();
    triple_fault();
    return continued();
  }
  rt_printf("hostile: unknown case \"%s\"\n", name);
  return 2;
}

int main(void) {
  name = rt_argv(1);
  if (!name) {
    rt_puts("hostile: usage: hostile CASE [CANARY]\n");
    return 2;
  }
  return run();
}
