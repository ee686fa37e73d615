/*
 * fuzz: fires COUNT random hypercalls (argv[2], default 300) with random parameters, from a
 * xorshift generator seeded by argv[1]. Ports: mostly the hypercalls of the guest's own
 * interface (never Exit, so the run goes on), sometimes the other interface's, and rarely
 * any port of the hypercall ranges (v1 0x400-0x880 step 0x40, v2 0x1010-0x1210 step 0x10),
 * where an unknown one stops the VM (exit 82: a clean stop the test accepts).
 * argv[3] picks the port set: "base" (default: the v1/v2 calls of uhyve 0.8) or "v3", which
 * adds uhyve 0.9's Getdents 0x1160, FileStat 0x1170, FileFstat 0x1180 and Mkdir 0x1190 to the
 * v2 ports and opens directories (O_DIRECTORY) more often, so their fds reach Getdents and
 * FileFstat. A host without those calls stops at the first one (exit 82).
 *
 * Parameter blocks mostly lie in the guest's own scratch area, rarely across the end of RAM
 * or outside it. Pointers the host may write through (read buffers, Cmdval targets) point
 * into the scratch area or outside RAM, never at the guest's code or stack, so the guest
 * survives whatever the host does; pointers the host only reads may point anywhere. fds,
 * flags, whence, offsets and lengths are random with a bias to plausible values; paths come
 * from a list (mapped, unmapped, `..`, symlink escapes, /tmp) or are random bytes, possibly
 * unterminated at the end of RAM.
 *
 * Prints "@fuzz:<i>:<port in hex>@" before call i and "fuzz: done <n> calls" at the end, then
 * exits 0. The host must survive every run (tests/kvm/fuzz_test.ts). Built with the legacy
 * mapping (no GNU note) so that the end of RAM is mapped.
 */
#include "rt.h"

#define SCRATCH (64 * 1024)

static uint8_t scratch[SCRATCH] __attribute__((aligned(64)));
static uint64_t state;
static int fds[16];
static int nfds;
static int v3; /* argv[3] == "v3": the uhyve 0.9 calls too */

static uint64_t rnd(void) {
  state ^= state << 13;
  state ^= state >> 7;
  state ^= state << 17;
  return state;
}
static uint64_t below(uint64_t n) { return rnd() % n; }
static int chance(unsigned per_mille) { return below(1000) < per_mille; }
static uint64_t addr(const volatile void *p) { return (uint64_t)(uintptr_t)p; }
static uint64_t ram_end(void) { return rt_boot_info->phys_addr_end; }

static void out(uint16_t port, uint64_t arg) {
  if (port < 0x1000) {
    __asm__ volatile("outl %%eax, %%dx" : : "a"((uint32_t)arg), "d"(port) : "memory");
  } else {
    __asm__ volatile("outl %%eax, %%dx" : : "a"(0x1234u), "d"(port), "D"(arg) : "memory");
  }
}

/* A length: mostly small, sometimes up to the scratch size, rarely huge or wrapping. */
static uint64_t length(void) {
  uint64_t r = below(100);
  if (r < 70) return below(256);
  if (r < 95) return below(SCRATCH);
  if (r < 98) return 1ull << (32 + below(31));
  return ~0ull - below(0x1000);
}

/* A buffer the host may write: inside scratch (with room for len when possible) or outside RAM. */
static uint64_t writable(uint64_t len) {
  if (chance(900)) return addr(scratch) + (len < SCRATCH ? below(SCRATCH - len + 1) : below(64));
  if (chance(500)) return ram_end() + below(1u << 20);
  return chance(500) ? ~0ull - below(64) : 0;
}

/* A buffer the host only reads: scratch, anywhere in the image, the end of RAM, or outside. */
static uint64_t readable(void) {
  uint64_t r = below(100);
  if (r < 60) return addr(scratch) + below(SCRATCH);
  if (r < 80) return rt_boot_info->kernel_image_addr_start +
                     below(rt_boot_info->kernel_image_addr_end - rt_boot_info->kernel_image_addr_start);
  if (r < 90) return ram_end() - below(64);
  return chance(500) ? ram_end() + below(1u << 30) : rnd();
}

static const char *const paths[] = {
    "/root/data/hello.txt", "/root/data/new.txt", "/root/data/../../etc/passwd",
    "/root/data/escape", "/root/data/outdir/secret.txt", "/tmp/fuzz", "/tmp/fuzz2",
    "/", "/root/data", "", "/root/data/sub/../hello.txt", "/root", "/etc/passwd",
    "/root/data/newdir", "/root/data/newdir/deeper", "/root/data/outdir/made", "/tmp/fuzzdir",
    "/root/data/newdir/..", "/tmp", "/root/data/escape/x",
};

/* A pointer to a C string the host reads as a path. */
static uint64_t path(void) {
  uint64_t r = below(100);
  char *p = (char *)scratch + SCRATCH - 512 - below(1024);
  if (r < 60) {
    const char *s = paths[below(sizeof paths / sizeof paths[0])];
    size_t n = strlen(s);
    memcpy(p, s, n + 1);
    return addr(p);
  }
  if (r < 80) { /* random bytes, NUL-terminated */
    size_t n = below(64);
    for (size_t i = 0; i < n; i++) p[i] = (char)(1 + below(255));
    p[n] = 0;
    return addr(p);
  }
  if (r < 90) { /* no NUL before the end of RAM */
    char *end = (char *)(uintptr_t)ram_end();
    size_t n = 1 + below(64);
    for (size_t i = 1; i <= n; i++) end[-(long)i] = 'x';
    return addr(end - n);
  }
  return readable();
}

static int32_t fd(void) {
  uint64_t r = below(100);
  if (r < 50 && nfds > 0) return fds[below(nfds)];
  if (r < 80) return (int32_t)below(12) - 1;
  return (int32_t)rnd();
}

static int32_t flags(void) {
  if (v3 && chance(300)) return RT_O_DIRECTORY | (chance(900) ? RT_O_RDONLY : (int32_t)below(4));
  static const int32_t common[] = {
      RT_O_RDONLY, RT_O_WRONLY | RT_O_CREAT | RT_O_TRUNC, RT_O_RDWR | RT_O_CREAT,
      RT_O_RDWR | RT_O_CREAT | RT_O_EXCL, RT_O_WRONLY | RT_O_APPEND, RT_O_DIRECTORY,
      RT_O_RDWR,
  };
  return chance(800) ? common[below(sizeof common / sizeof common[0])] : (int32_t)rnd();
}

static int64_t offset(void) {
  uint64_t r = below(100);
  if (r < 70) return (int64_t)below(8192) - 1024;
  return (int64_t)rnd();
}

/* The parameter block: scratch (mostly its start), rarely across the end of RAM or outside. */
static volatile uint8_t *block(uint16_t port, uint64_t *gpa) {
  volatile uint8_t *b = scratch + (chance(700) ? 0 : below(SCRATCH - 2048) & ~7ull);
  *gpa = addr(b);
  if (chance(1)) { /* across the end of RAM, or outside it: a stop */
    *gpa = chance(500) ? ram_end() - below(16) : port < 0x1000 ? 0xfffffff0u : ~0ull;
  }
  return b;
}

#define U64(b, off) (*(volatile uint64_t *)((b) + (off)))
#define I32(b, off) (*(volatile int32_t *)((b) + (off)))

static const uint16_t v1_ports[] = {0x400, 0x440, 0x480, 0x500, 0x580, 0x740,
                                    0x780, 0x800, 0x840, 0x880};
static const uint16_t v2_ports[] = {0x1020, 0x1030, 0x1040, 0x1050, 0x1100, 0x1110, 0x1120,
                                    0x1130, 0x1140, 0x1150, 0x1160, 0x1170, 0x1180, 0x1190};
#define BASE_PORTS 10 /* v2_ports[10..] are uhyve 0.9's (the "v3" port set) */

/* A uhyve 0.9 FileAttr is 120 bytes; the host writes it. */
#define FILE_ATTR_SIZE 120

static uint16_t pick_port(void) {
  uint16_t port;
  unsigned nv2 = v3 ? sizeof v2_ports / sizeof v2_ports[0] : BASE_PORTS;
  const uint16_t *own = RT_IFACE == 1 ? v1_ports : v2_ports;
  const uint16_t *other = RT_IFACE == 1 ? v2_ports : v1_ports;
  unsigned nown = RT_IFACE == 1 ? 10 : nv2, nother = RT_IFACE == 1 ? nv2 : 10;
  if (chance(1)) { /* any port of the ranges except Exit: may be unknown (a stop) */
    do {
      int v1 = chance(RT_IFACE == 1 ? 500 : 30);
      port = v1 ? (uint16_t)(0x400 + 0x40 * below(19)) : (uint16_t)(0x1010 + 0x10 * below(33));
    } while (port == 0x540 || port == 0x1010);
  } else if (chance(RT_IFACE == 1 ? 150 : 1)) {
    /* the other interface: v2 ports work from a v1 guest; v1 ports from a v2 guest (RAM above
     * 4 GiB) get a 32-bit address outside RAM, a stop, so they are rare there */
    port = other[below(nother)];
  } else {
    port = own[below(nown)];
  }
  return port;
}

static void one_call(uint16_t port) {
  uint64_t gpa;
  volatile uint8_t *b = block(port, &gpa);
  uint64_t len = length();
  int junk = chance(30); /* a block of random bytes */
  switch (port) {
    case 0x400: /* v1 FileWrite {fd, buf, len} */
    case 0x500: /* v1 FileRead {fd, buf, len, ret} */
      I32(b, 0) = fd();
      U64(b, 4) = port == 0x500 ? writable(len) : readable();
      U64(b, 12) = len;
      U64(b, 20) = 0;
      break;
    case 0x1100: /* v2 FileWrite / FileRead {len, ret, buf, fd} */
    case 0x1130:
      U64(b, 0) = len;
      U64(b, 8) = 0;
      U64(b, 16) = port == 0x1130 ? writable(len) : readable();
      I32(b, 24) = fd();
      break;
    case 0x440: /* FileOpen {name, flags, mode, ret} */
    case 0x1110:
      U64(b, 0) = path();
      I32(b, 8) = flags();
      I32(b, 12) = chance(900) ? 0644 : (int32_t)rnd();
      I32(b, 16) = 0;
      break;
    case 0x480: /* FileClose {fd, ret} */
    case 0x1120:
      I32(b, 0) = fd();
      I32(b, 4) = 0;
      break;
    case 0x580: /* v1 FileLseek {fd, offset, whence} */
      I32(b, 0) = fd();
      U64(b, 4) = (uint64_t)offset();
      I32(b, 12) = chance(900) ? (int32_t)below(3) : (int32_t)rnd();
      break;
    case 0x1140: /* v2 FileLseek {offset, whence, fd} */
      U64(b, 0) = (uint64_t)offset();
      I32(b, 8) = chance(900) ? (int32_t)below(3) : (int32_t)rnd();
      I32(b, 12) = fd();
      break;
    case 0x840: /* FileUnlink {name, ret} */
    case 0x1150:
      U64(b, 0) = path();
      I32(b, 8) = 0;
      break;
    case 0x740: /* Cmdsize: the host fills 1032 bytes */
      break;
    case 0x780: { /* Cmdval {argv, envp}: arrays of pointers with room for each string */
      volatile uint64_t *arr = (volatile uint64_t *)(scratch + 4096);
      for (int i = 0; i < 8; i++) arr[i] = addr(scratch) + 8192 + 512 * i + below(64);
      U64(b, 0) = chance(995) ? addr(arr) : writable(64);
      U64(b, 8) = chance(995) ? addr(arr + 4) : writable(64);
      junk = 0;
      break;
    }
    case 0x800: /* Uart / SerialWriteByte: the byte itself */
    case 0x1020:
      gpa = rnd();
      junk = 0;
      break;
    case 0x880: /* SerialWriteBuffer v1 {buf, len}, v2 {len, buf}: a bad range stops the VM */
    case 0x1030: {
      uint64_t n = below(128);
      uint64_t buf = chance(998) ? addr(scratch) + below(SCRATCH - 128) : readable();
      if (chance(2)) n = length();
      U64(b, port == 0x880 ? 0 : 8) = buf;
      U64(b, port == 0x880 ? 8 : 0) = n;
      junk = 0;
      break;
    }
    case 0x1160: /* Getdents {fd i32, buf, len, tag u32 @24, payload @32} */
      I32(b, 0) = fd();
      U64(b, 8) = writable(len);
      U64(b, 16) = len;
      U64(b, 24) = 0;
      U64(b, 32) = 0;
      break;
    case 0x1170: /* FileStat {name, kind u32, attr, tag u32 @24, errno @28} */
      U64(b, 0) = path();
      U64(b, 8) = chance(900) ? below(2) : rnd(); /* kind: stat, lstat, or junk */
      U64(b, 16) = writable(FILE_ATTR_SIZE);
      U64(b, 24) = 0;
      break;
    case 0x1180: /* FileFstat {fd i32, attr, tag u32 @16, errno @20} */
      I32(b, 0) = fd();
      U64(b, 8) = writable(FILE_ATTR_SIZE);
      U64(b, 16) = 0;
      break;
    case 0x1190: /* Mkdir {path, len (ignored), tag u32 @16, errno @20} */
      U64(b, 0) = path();
      U64(b, 8) = length();
      U64(b, 16) = 0;
      break;
    case 0x1040: /* SerialReadByte: RDI -> i32 (stdin is empty: -1) */
      junk = 0;
      break;
    case 0x1050: /* SerialReadBuffer {maxlen, len, buf} */
      U64(b, 0) = chance(998) ? below(256) : length();
      U64(b, 8) = 0;
      U64(b, 16) = chance(998) ? addr(scratch) + below(SCRATCH - 256) : writable(256);
      junk = 0;
      break;
    default: /* unknown or unsupported: the VM stops, whatever the block holds */
      break;
  }
  if (junk) {
    for (int i = 0; i < 32; i += 8) U64(b, i) = rnd();
  }
  out(port, gpa);

  /* Remember fds the host handed out, to use them again. */
  if ((port == 0x440 || port == 0x1110) && I32(b, 16) >= 3) {
    if (nfds < 16) fds[nfds++] = I32(b, 16);
    else fds[below(16)] = I32(b, 16);
  }
}

int main(void) {
  int64_t seed = 1, count = 300;
  if (rt_argv(1) && rt_parse_i64(rt_argv(1), &seed) != 0) return 2;
  if (rt_argv(2) && rt_parse_i64(rt_argv(2), &count) != 0) return 2;
  if (rt_argv(3)) {
    if (strcmp(rt_argv(3), "v3") == 0) v3 = 1;
    else if (strcmp(rt_argv(3), "base") != 0) return 2;
  }
  state = 0x9e3779b97f4a7c15ull ^ (uint64_t)seed;
  for (int i = 0; i < 4; i++) rnd();
  for (int64_t i = 0; i < count; i++) {
    uint16_t port = pick_port();
    rt_printf("\n@fuzz:%ld:%x@\n", (long)i, port);
    one_call(port);
  }
  rt_printf("\nfuzz: done %ld calls\n", (long)count);
  return 0;
}
