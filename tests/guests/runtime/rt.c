/*
 * rt.c: the dhyve test-guest runtime (see rt.h and ../README.md).
 *
 * Everything lives in this image (.data/.bss) or in the boot info and FDT the host wrote,
 * because the host identity-maps only the RAM start up to the end of the image.
 * Parameter blocks are per CPU (indexed by the current stack) and accessed through
 * volatile pointers; every OUT carries a "memory" clobber, so all stores reach memory
 * before the host reads them and results are re-read afterwards.
 */
#include "rt.h"

#define PACKED __attribute__((packed))
#define NOINLINE __attribute__((noinline))
/* Keep gcc from turning the loops below into calls to themselves. */
#define PLAIN_LOOPS __attribute__((optimize("no-tree-loop-distribute-patterns")))

#define RT_ENOSYS 38 /* preset in every ret field: a host that ignores a call yields -ENOSYS */

/* ---- hypercall ports (hermit-abi.md §5.2, §5.3) ---- */
#if RT_IFACE == 1
#define PORT_FILE_WRITE 0x400
#define PORT_FILE_OPEN 0x440
#define PORT_FILE_CLOSE 0x480
#define PORT_FILE_READ 0x500
#define PORT_EXIT 0x540
#define PORT_FILE_LSEEK 0x580
#define PORT_CMDSIZE 0x740
#define PORT_CMDVAL 0x780
#define PORT_SERIAL_BYTE 0x800
#define PORT_FILE_UNLINK 0x840
#define PORT_SERIAL_BUFFER 0x880
#else
#define PORT_EXIT 0x1010
#define PORT_SERIAL_BYTE 0x1020
#define PORT_SERIAL_BUFFER 0x1030
#define PORT_FILE_WRITE 0x1100
#define PORT_FILE_OPEN 0x1110
#define PORT_FILE_CLOSE 0x1120
#define PORT_FILE_READ 0x1130
#define PORT_FILE_LSEEK 0x1140
#define PORT_FILE_UNLINK 0x1150
#endif
/* The boot info's serial port follows the UHYVEIF note, not the ports the guest calls. */
#if RT_BOOT_IFACE == 1
#define SERIAL_PORT_BASE 0x800
#else
#define SERIAL_PORT_BASE 0x1030
#endif

/* ---- parameter layouts (hermit-abi.md §5.4) ---- */
struct PACKED open_params { /* v1 & v2, packed, 20 bytes */
  uint64_t name;
  int32_t flags;
  int32_t mode;
  int32_t ret;
};
struct PACKED close_params { /* v1 & v2, packed, 8 bytes */
  int32_t fd;
  int32_t ret;
};
struct PACKED unlink_params { /* v1 & v2, packed, 12 bytes */
  uint64_t name;
  int32_t ret;
};
_Static_assert(sizeof(struct open_params) == 20, "OpenParams");
_Static_assert(sizeof(struct close_params) == 8, "CloseParams");
_Static_assert(sizeof(struct unlink_params) == 12, "UnlinkParams");

#if RT_IFACE == 1
struct PACKED exit_params { /* 4 */
  int32_t arg;
};
struct PACKED serial_params { /* 16: {buf, len} */
  uint64_t buf;
  uint64_t len;
};
struct PACKED write_params { /* 20, buf is guest-virtual (identity here), no result */
  int32_t fd;
  uint64_t buf;
  uint64_t len;
};
struct PACKED read_params { /* 28 */
  int32_t fd;
  uint64_t buf;
  uint64_t len;
  int64_t ret;
};
struct PACKED lseek_params { /* 16: offset is in/out */
  int32_t fd;
  int64_t offset;
  int32_t whence;
};
/* Packed in uhyve; every field is naturally aligned, so the plain layout is the same
 * (asserted below) and the size arrays can be read through ordinary pointers. */
struct cmdsize_params { /* 1032 */
  int32_t argc;
  int32_t argsz[128];
  int32_t envc;
  int32_t envsz[128];
};
struct PACKED cmdval_params { /* 16: phys addresses of u64 arrays of phys addresses */
  uint64_t argv;
  uint64_t envp;
};
_Static_assert(sizeof(struct exit_params) == 4, "ExitParams");
_Static_assert(sizeof(struct serial_params) == 16, "SerialWriteBufferParams v1");
_Static_assert(sizeof(struct write_params) == 20, "WriteParams v1");
_Static_assert(sizeof(struct read_params) == 28, "ReadParams v1");
_Static_assert(sizeof(struct lseek_params) == 16, "LseekParams v1");
_Static_assert(sizeof(struct cmdsize_params) == 1032, "CmdsizeParams");
_Static_assert(__builtin_offsetof(struct cmdsize_params, envc) == 516, "CmdsizeParams.envc");
_Static_assert(sizeof(struct cmdval_params) == 16, "CmdvalParams");
#else
struct serial_params { /* 16: {len, buf}, swapped vs v1 */
  uint64_t len;
  uint64_t buf;
};
struct rw_params { /* 32: WriteParams v2 and ReadParams v2 */
  uint64_t len;
  int64_t ret;
  uint64_t buf;
  int32_t fd;
};
struct lseek_params { /* 16 */
  int64_t offset;
  uint32_t whence;
  int32_t fd;
};
_Static_assert(sizeof(struct serial_params) == 16, "SerialWriteBufferParams v2");
_Static_assert(sizeof(struct rw_params) == 32, "Write/ReadParams v2");
_Static_assert(__builtin_offsetof(struct rw_params, fd) == 24, "Write/ReadParams v2 fd");
_Static_assert(sizeof(struct lseek_params) == 16, "LseekParams v2");
#endif

/* One parameter block per CPU, so CPUs never share a struct the host is reading. */
union param_block {
  struct open_params open;
  struct close_params close;
  struct unlink_params unlink;
  struct serial_params serial;
  struct lseek_params lseek;
#if RT_IFACE == 1
  struct exit_params exit;
  struct write_params write;
  struct read_params read;
  struct cmdval_params cmdval;
#else
  struct rw_params rw;
#endif
} __attribute__((aligned(64)));

static union param_block rt_params[RT_MAX_CPUS];

/* Stacks (used by start.S) and the boot state. */
char rt_stacks[RT_MAX_CPUS][RT_STACK_SIZE] __attribute__((aligned(64)));
const struct rt_boot_info *volatile rt_boot_info;

/* Image bounds from the linker: __ehdr_start is the ELF header at the start of the first
 * PT_LOAD, __image_end the end of .bss (the end of the last PT_LOAD). */
extern const char __ehdr_start[];
extern const char __image_end[];

/* A data pointer that needs an R_X86_64_RELATIVE relocation in PIE images. */
static char rt_reloc_anchor;
static char *volatile rt_reloc_probe = &rt_reloc_anchor;

__attribute__((noreturn, used)) void rt_entry(const struct rt_boot_info *bi, unsigned cpu,
                                              uint64_t entry_rsp);

/* ------------------------------------------------------------------------------------ */
/* Port I/O                                                                              */

static inline void hc(uint16_t port, uint64_t arg) {
#if RT_IFACE == 1
  __asm__ volatile("outl %%eax, %%dx" : : "a"((uint32_t)arg), "d"(port) : "memory");
#else
  __asm__ volatile("outl %%eax, %%dx" : : "a"(0x1234u), "d"(port), "D"(arg) : "memory");
#endif
}

static inline uint64_t gpa(const volatile void *p) { return (uint64_t)(uintptr_t)p; }

void rt_hypercall(uint16_t port, uint64_t arg) { hc(port, arg); }

unsigned rt_cpu_id(void) {
  uintptr_t sp;
  __asm__ volatile("movq %%rsp, %0" : "=r"(sp));
  uintptr_t id = (sp - (uintptr_t)rt_stacks) >> RT_STACK_SHIFT;
  return id < RT_MAX_CPUS ? (unsigned)id : 0;
}

static inline union param_block *params(void) { return &rt_params[rt_cpu_id()]; }

uint64_t rt_num_cpus(void) { return rt_boot_info->num_cpus; }

void rt_halt(void) {
  for (;;) __asm__ volatile("cli; hlt" ::: "memory");
}

void rt_exit(int code) {
#if RT_IFACE == 1
  volatile struct exit_params *p = &params()->exit;
  p->arg = code;
  hc(PORT_EXIT, gpa(p));
#else
  hc(PORT_EXIT, (uint64_t)(int64_t)code);
#endif
  rt_halt();
}

__attribute__((weak)) int ap_main(unsigned cpu) {
  (void)cpu;
  rt_halt();
}

/* ------------------------------------------------------------------------------------ */
/* Serial                                                                                */

void rt_putc(char c) {
#if RT_IFACE == 1
  /* Like Hermit 0.6.x: a 1-byte OUT of the character itself. */
  __asm__ volatile("outb %%al, %%dx" : : "a"((uint8_t)c), "d"((uint16_t)PORT_SERIAL_BYTE)
                   : "memory");
#else
  hc(PORT_SERIAL_BYTE, (uint8_t)c);
#endif
}

void rt_write(const void *buf, size_t len) {
  if (len == 0) return;
  volatile struct serial_params *p = &params()->serial;
  p->buf = gpa(buf);
  p->len = len;
  hc(PORT_SERIAL_BUFFER, gpa(p));
}

void rt_puts(const char *s) { rt_write(s, strlen(s)); }

/* Formats v into the bytes that end at end; returns the first digit. */
static char *fmt_u64(char *end, uint64_t v, unsigned base) {
  char *p = end;
  do {
    unsigned d = (unsigned)(v % base);
    *--p = (char)(d < 10 ? '0' + d : 'a' + d - 10);
    v /= base;
  } while (v != 0);
  return p;
}

void rt_print_u64(uint64_t v) {
  char b[24];
  char *s = fmt_u64(b + sizeof b, v, 10);
  rt_write(s, (size_t)(b + sizeof b - s));
}

void rt_print_i64(int64_t v) {
  char b[24];
  uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
  char *s = fmt_u64(b + sizeof b, u, 10);
  if (v < 0) *--s = '-';
  rt_write(s, (size_t)(b + sizeof b - s));
}

void rt_print_hex(uint64_t v) {
  char b[24];
  char *s = fmt_u64(b + sizeof b, v, 16);
  *--s = 'x';
  *--s = '0';
  rt_write(s, (size_t)(b + sizeof b - s));
}

struct pbuf {
  size_t n;
  int total;
  char b[256];
};

static void pb_put(struct pbuf *p, char c) {
  if (p->n == sizeof p->b) {
    rt_write(p->b, p->n);
    p->n = 0;
  }
  p->b[p->n++] = c;
  p->total++;
}

static void pb_pad(struct pbuf *p, const char *s, size_t len, int width, char pad) {
  for (int i = (int)len; i < width; i++) pb_put(p, pad);
  for (size_t i = 0; i < len; i++) pb_put(p, s[i]);
}

int rt_vprintf(const char *fmt, va_list ap) {
  struct pbuf p;
  p.n = 0;
  p.total = 0;
  for (const char *f = fmt; *f; f++) {
    if (*f != '%') {
      pb_put(&p, *f);
      continue;
    }
    f++;
    char pad = ' ';
    int width = 0;
    if (*f == '0') {
      pad = '0';
      f++;
    }
    while (*f >= '0' && *f <= '9') width = width * 10 + (*f++ - '0');
    int lng = 0;
    while (*f == 'l' || *f == 'z') {
      lng = 1;
      f++;
    }
    char b[24];
    char *end = b + sizeof b;
    char *s;
    switch (*f) {
      case 'd':
      case 'i': {
        int64_t v = lng ? va_arg(ap, int64_t) : va_arg(ap, int);
        s = fmt_u64(end, v < 0 ? 0 - (uint64_t)v : (uint64_t)v, 10);
        if (v < 0) *--s = '-';
        pb_pad(&p, s, (size_t)(end - s), width, pad);
        break;
      }
      case 'u':
      case 'x': {
        uint64_t v = lng ? va_arg(ap, uint64_t) : va_arg(ap, unsigned);
        s = fmt_u64(end, v, *f == 'x' ? 16 : 10);
        pb_pad(&p, s, (size_t)(end - s), width, pad);
        break;
      }
      case 'p': {
        s = fmt_u64(end, (uint64_t)(uintptr_t)va_arg(ap, void *), 16);
        *--s = 'x';
        *--s = '0';
        pb_pad(&p, s, (size_t)(end - s), width, pad);
        break;
      }
      case 'c':
        b[0] = (char)va_arg(ap, int);
        pb_pad(&p, b, 1, width, pad);
        break;
      case 's': {
        const char *str = va_arg(ap, const char *);
        if (!str) str = "(null)";
        pb_pad(&p, str, strlen(str), width, ' ');
        break;
      }
      case '%':
        pb_put(&p, '%');
        break;
      case '\0':
        f--; /* a lone '%' at the end */
        break;
      default:
        pb_put(&p, '%');
        pb_put(&p, *f);
        break;
    }
  }
  rt_write(p.b, p.n);
  return p.total;
}

int rt_printf(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = rt_vprintf(fmt, ap);
  va_end(ap);
  return n;
}

int rt_checks, rt_failed;

void rt_check(const char *name, int64_t got, int64_t want) {
  rt_checks++;
  if (got == want) {
    rt_printf("ok %s\n", name);
  } else {
    rt_failed++;
    rt_printf("FAIL %s: got %ld want %ld\n", name, (long)got, (long)want);
  }
}

__attribute__((noreturn)) static void rt_fail(const char *what) {
  rt_printf("dhyve-rt: %s\n", what);
  rt_exit(RT_EXIT_RUNTIME);
}

/* ------------------------------------------------------------------------------------ */
/* Device tree                                                                           */

#define FDT_MAX_SIZE 0x4000
#define FDT_BEGIN_NODE 1
#define FDT_END_NODE 2
#define FDT_PROP 3
#define FDT_NOP 4
#define FDT_END 9

static uint32_t be32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

uint64_t rt_be64(const void *p) {
  const uint8_t *b = p;
  return (uint64_t)be32(b) << 32 | be32(b + 4);
}

/* The FDT the boot info points to, its header checked; stops the guest on a bad one. */
static const uint8_t *fdt_blob(void) {
  uint64_t addr = rt_boot_info->device_tree;
  if (addr == 0) return 0;
  const uint8_t *fdt = (const uint8_t *)(uintptr_t)addr;
  if (be32(fdt) != 0xd00dfeed) rt_fail("FDT: bad magic");
  uint32_t total = be32(fdt + 4);
  if (total < 40 || total > FDT_MAX_SIZE) rt_fail("FDT: bad totalsize");
  if (be32(fdt + 16) > total - 16) rt_fail("FDT: bad reservation block");
  return fdt;
}

/* Length of the next '/'-separated component of path. */
static size_t component_len(const char *path) {
  size_t n = 0;
  while (path[n] && path[n] != '/') n++;
  return n;
}

const void *rt_fdt_prop(const char *path, const char *name, uint32_t *len) {
  *len = 0;
  const uint8_t *fdt = fdt_blob();
  if (!fdt) return 0;
  uint32_t total = be32(fdt + 4);
  uint32_t off_struct = be32(fdt + 8), off_strings = be32(fdt + 12);
  uint32_t size_strings = be32(fdt + 32);
  uint32_t size_struct = be32(fdt + 20) >= 17 ? be32(fdt + 36) : total - off_struct;
  if (off_struct > total || size_struct > total - off_struct) rt_fail("FDT: bad struct block");
  if (off_strings > total || size_strings > total - off_strings) rt_fail("FDT: bad strings block");
  const uint8_t *st = fdt + off_struct;
  const char *strs = (const char *)fdt + off_strings;
  size_t name_len = strlen(name) + 1;

  /* want: components in path; matched: how many of them the open nodes match;
   * next: where the first unmatched component starts. The root is depth 1. */
  int want = 0;
  for (const char *p = path; *p;) {
    while (*p == '/') p++;
    if (*p) want++;
    p += component_len(p);
  }
  const char *next = path;
  while (*next == '/') next++;
  const char *starts[8];
  if (want > 8) rt_fail("FDT: path too deep");
  uint32_t pos = 0;
  int depth = 0, matched = 0;
  for (;;) {
    if (size_struct - pos < 4) rt_fail("FDT: truncated struct block");
    uint32_t tok = be32(st + pos);
    pos += 4;
    switch (tok) {
      case FDT_BEGIN_NODE: {
        const char *node = (const char *)st + pos;
        size_t n = strnlen(node, size_struct - pos);
        if (n == size_struct - pos) rt_fail("FDT: unterminated node name");
        depth++;
        size_t c = component_len(next);
        if (depth >= 2 && matched == depth - 2 && matched < want && n == c &&
            strncmp(node, next, c) == 0) {
          starts[matched++] = next;
          next += c;
          while (*next == '/') next++;
        }
        pos += (uint32_t)((n + 1 + 3) & ~(size_t)3);
        if (pos > size_struct) rt_fail("FDT: node name past the struct block");
        break;
      }
      case FDT_END_NODE:
        if (depth == 0) rt_fail("FDT: unbalanced END_NODE");
        if (depth >= 2 && matched == depth - 1) next = starts[--matched];
        depth--;
        break;
      case FDT_PROP: {
        if (size_struct - pos < 8) rt_fail("FDT: truncated property");
        uint32_t plen = be32(st + pos), nameoff = be32(st + pos + 4);
        pos += 8;
        if (plen > size_struct - pos) rt_fail("FDT: property past the struct block");
        if (matched == want && depth == want + 1 && nameoff < size_strings &&
            size_strings - nameoff >= name_len && memcmp(strs + nameoff, name, name_len) == 0) {
          *len = plen;
          return st + pos;
        }
        pos += (plen + 3) & ~3u;
        if (pos > size_struct) rt_fail("FDT: property past the struct block");
        break;
      }
      case FDT_NOP:
        break;
      case FDT_END:
        return 0;
      default:
        rt_fail("FDT: bad token");
    }
  }
}

int rt_fdt_reservation(int i, uint64_t *addr, uint64_t *size) {
  const uint8_t *fdt = fdt_blob();
  if (!fdt || i < 0) return 0;
  uint32_t total = be32(fdt + 4), off = be32(fdt + 16);
  for (int k = 0;; k++, off += 16) {
    if (off > total - 16) rt_fail("FDT: unterminated reservation block");
    uint64_t a = rt_be64(fdt + off), n = rt_be64(fdt + off + 8);
    if (a == 0 && n == 0) return 0;
    if (k == i) {
      *addr = a;
      *size = n;
      return 1;
    }
  }
}

/* ------------------------------------------------------------------------------------ */
/* Files                                                                                 */

int rt_open(const char *path, int flags, int mode) {
  volatile struct open_params *p = &params()->open;
  p->name = gpa(path);
  p->flags = flags;
  p->mode = mode;
  p->ret = -RT_ENOSYS;
  hc(PORT_FILE_OPEN, gpa(p));
  return p->ret;
}

int rt_close(int fd) {
  volatile struct close_params *p = &params()->close;
  p->fd = fd;
  p->ret = -RT_ENOSYS;
  hc(PORT_FILE_CLOSE, gpa(p));
  return p->ret;
}

int rt_unlink(const char *path) {
  volatile struct unlink_params *p = &params()->unlink;
  p->name = gpa(path);
  p->ret = -RT_ENOSYS;
  hc(PORT_FILE_UNLINK, gpa(p));
  return p->ret;
}

int64_t rt_read(int fd, void *buf, size_t len) {
#if RT_IFACE == 1
  volatile struct read_params *p = &params()->read;
#else
  volatile struct rw_params *p = &params()->rw;
#endif
  p->fd = fd;
  p->buf = gpa(buf);
  p->len = len;
  p->ret = -RT_ENOSYS;
  hc(PORT_FILE_READ, gpa(p));
  return p->ret;
}

int64_t rt_write_fd(int fd, const void *buf, size_t len) {
#if RT_IFACE == 1
  volatile struct write_params *p = &params()->write;
  p->fd = fd;
  p->buf = gpa(buf);
  p->len = len;
  hc(PORT_FILE_WRITE, gpa(p));
  return (int64_t)len;
#else
  volatile struct rw_params *p = &params()->rw;
  p->fd = fd;
  p->buf = gpa(buf);
  p->len = len;
  p->ret = -RT_ENOSYS;
  hc(PORT_FILE_WRITE, gpa(p));
  return p->ret;
#endif
}

int64_t rt_lseek(int fd, int64_t offset, int whence) {
  volatile struct lseek_params *p = &params()->lseek;
  p->fd = fd;
  p->offset = offset;
  p->whence = whence;
  hc(PORT_FILE_LSEEK, gpa(p));
  return p->offset;
}

/* ------------------------------------------------------------------------------------ */
/* Arguments and environment                                                             */

#define RT_MAX_ARGS 128       /* uhyve's MAX_ARGC_ENVC */
#define RT_ARENA_SIZE 65536   /* strings: v1 Cmdval targets, v2 bootargs words */

static char rt_arena[RT_ARENA_SIZE];
static const char *rt_args[RT_MAX_ARGS];
static const char *rt_envs[RT_MAX_ARGS];
static const char *rt_kargs[RT_MAX_ARGS];
static int rt_nargs, rt_nenvs, rt_nkargs, rt_args_loaded;

#if RT_IFACE == 1

static struct cmdsize_params rt_cmdsize;
static uint64_t rt_argv_gpa[RT_MAX_ARGS];
static uint64_t rt_envp_gpa[RT_MAX_ARGS];

/* Carves count buffers of the host-given sizes out of the arena. */
static size_t carve(const volatile int32_t *sizes, int count, uint64_t *gpas, const char **ptrs,
                    size_t used) {
  for (int i = 0; i < count; i++) {
    int32_t sz = sizes[i];
    if (sz <= 0 || (size_t)sz > RT_ARENA_SIZE - used) rt_fail("Cmdsize: bad or too large size");
    gpas[i] = gpa(rt_arena + used);
    ptrs[i] = rt_arena + used;
    used += (size_t)sz;
  }
  return used;
}

static void load_args(void) {
  volatile struct cmdsize_params *cs = &rt_cmdsize;
  cs->argc = 0;
  cs->envc = 0;
  hc(PORT_CMDSIZE, gpa(cs));
  int argc = cs->argc, envc = cs->envc;
  if (argc < 0 || argc > RT_MAX_ARGS || envc < 0 || envc > RT_MAX_ARGS) {
    rt_fail("Cmdsize: argc or envc out of range");
  }
  size_t used = carve(cs->argsz, argc, rt_argv_gpa, rt_args, 0);
  carve(cs->envsz, envc, rt_envp_gpa, rt_envs, used);

  volatile struct cmdval_params *cv = &params()->cmdval;
  cv->argv = gpa(rt_argv_gpa);
  cv->envp = gpa(rt_envp_gpa);
  hc(PORT_CMDVAL, gpa(cv));

  /* Never trust the host to terminate the strings. */
  for (int i = 0; i < argc; i++) rt_arena[(const char *)rt_args[i] - rt_arena + cs->argsz[i] - 1] = 0;
  for (int i = 0; i < envc; i++) rt_arena[(const char *)rt_envs[i] - rt_arena + cs->envsz[i] - 1] = 0;
  rt_nargs = argc;
  rt_nenvs = envc;
}

#else /* RT_IFACE == 2 */

/* Finds /chosen/bootargs; NULL (and *len = 0) without one. */
static const char *fdt_bootargs(size_t *len) {
  uint32_t plen = 0;
  const char *v = (const char *)rt_fdt_prop("/chosen", "bootargs", &plen);
  *len = v ? strnlen(v, plen) : 0;
  return v;
}

#define RT_MAX_WORDS (3 * RT_MAX_ARGS)

/* Splits s[0..len) into words like the shell-words crate that Hermit uses (quotes,
 * backslashes, '#' comments at the start of a word). Words go NUL-terminated into
 * out[0..cap); returns the word count. */
static int split_words(const char *s, size_t len, char *out, size_t cap, char **words) {
  enum { DELIM, BACKSLASH, UNQUOTED, UNQUOTED_BS, SINGLE, DOUBLE, DOUBLE_BS, COMMENT };
  int state = DELIM, n = 0;
  size_t o = 0;
#define PUT(ch)                                               \
  do {                                                        \
    if (o >= cap) rt_fail("bootargs: too long");              \
    out[o++] = (ch);                                          \
  } while (0)
#define START()                                               \
  do {                                                        \
    if (n >= RT_MAX_WORDS) rt_fail("bootargs: too many words"); \
    words[n++] = out + o;                                     \
  } while (0)
#define FINISH() PUT('\0')
  for (size_t i = 0;; i++) {
    int end = i >= len;
    char c = end ? 0 : s[i];
    switch (state) {
      case DELIM:
        if (end) return n;
        if (c == ' ' || c == '\t' || c == '\n') break;
        if (c == '#') {
          state = COMMENT;
          break;
        }
        START();
        if (c == '\'') state = SINGLE;
        else if (c == '"') state = DOUBLE;
        else if (c == '\\') state = BACKSLASH;
        else {
          PUT(c);
          state = UNQUOTED;
        }
        break;
      case BACKSLASH:
        if (end) {
          PUT('\\');
          FINISH();
          return n;
        }
        if (c == '\n') {
          n--; /* a line continuation between words starts no word */
          state = DELIM;
        } else {
          PUT(c);
          state = UNQUOTED;
        }
        break;
      case UNQUOTED:
        if (end) {
          FINISH();
          return n;
        }
        if (c == '\'') state = SINGLE;
        else if (c == '"') state = DOUBLE;
        else if (c == '\\') state = UNQUOTED_BS;
        else if (c == ' ' || c == '\t' || c == '\n') {
          FINISH();
          state = DELIM;
        } else PUT(c);
        break;
      case UNQUOTED_BS:
        if (end) {
          PUT('\\');
          FINISH();
          return n;
        }
        if (c != '\n') PUT(c);
        state = UNQUOTED;
        break;
      case SINGLE:
        if (end) rt_fail("bootargs: unterminated single quote");
        if (c == '\'') state = UNQUOTED;
        else PUT(c);
        break;
      case DOUBLE:
        if (end) rt_fail("bootargs: unterminated double quote");
        if (c == '"') state = UNQUOTED;
        else if (c == '\\') state = DOUBLE_BS;
        else PUT(c);
        break;
      case DOUBLE_BS:
        if (end) rt_fail("bootargs: unterminated double quote");
        if (c == '$' || c == '`' || c == '"' || c == '\\') PUT(c);
        else if (c != '\n') {
          PUT('\\');
          PUT(c);
        }
        state = DOUBLE;
        break;
      case COMMENT:
        if (end) return n;
        if (c == '\n') state = DELIM;
        break;
    }
  }
#undef PUT
#undef START
#undef FINISH
}

static void load_args(void) {
  size_t len;
  const char *bootargs = fdt_bootargs(&len);
  static char *words[RT_MAX_WORDS];
  int n = bootargs ? split_words(bootargs, len, rt_arena, RT_ARENA_SIZE, words) : 0;

  /* env=KEY=VALUE words before "--" are env; other words before "--" are kernel args and
   * words after it application args. Without "--" every non-env word is an app arg. */
  static const char *pre[RT_MAX_WORDS];
  int npre = 0, dashdash = -1;
  for (int i = 0; i < n; i++) {
    const char *w = words[i];
    if (strcmp(w, "--") == 0) {
      dashdash = i;
      break;
    }
    if (strncmp(w, "env=", 4) == 0) {
      const char *kv = w + 4;
      int has_eq = 0;
      for (const char *q = kv; *q; q++) has_eq |= *q == '=';
      if (!has_eq) continue; /* Hermit drops "env=" words without a second '=' */
      if (rt_nenvs >= RT_MAX_ARGS) rt_fail("bootargs: too many env vars");
      rt_envs[rt_nenvs++] = kv;
      continue;
    }
    pre[npre++] = w;
  }
  rt_args[rt_nargs++] = "guest";
  if (dashdash < 0) {
    for (int i = 0; i < npre; i++) {
      if (rt_nargs >= RT_MAX_ARGS) rt_fail("bootargs: too many args");
      rt_args[rt_nargs++] = pre[i];
    }
  } else {
    if (npre > RT_MAX_ARGS) rt_fail("bootargs: too many kernel args");
    for (int i = 0; i < npre; i++) rt_kargs[rt_nkargs++] = pre[i];
    for (int i = dashdash + 1; i < n; i++) {
      if (rt_nargs >= RT_MAX_ARGS) rt_fail("bootargs: too many args");
      rt_args[rt_nargs++] = words[i];
    }
  }
}

#endif /* RT_IFACE */

static void ensure_args(void) {
  if (!rt_args_loaded) {
    rt_args_loaded = 1;
    load_args();
  }
}

int rt_argc(void) {
  ensure_args();
  return rt_nargs;
}
const char *rt_argv(int i) {
  ensure_args();
  return i >= 0 && i < rt_nargs ? rt_args[i] : 0;
}
int rt_envc(void) {
  ensure_args();
  return rt_nenvs;
}
const char *rt_env(int i) {
  ensure_args();
  return i >= 0 && i < rt_nenvs ? rt_envs[i] : 0;
}
int rt_kargc(void) {
  ensure_args();
  return rt_nkargs;
}
const char *rt_kargv(int i) {
  ensure_args();
  return i >= 0 && i < rt_nkargs ? rt_kargs[i] : 0;
}
const char *rt_getenv(const char *key) {
  ensure_args();
  size_t n = strlen(key);
  for (int i = 0; i < rt_nenvs; i++) {
    if (strncmp(rt_envs[i], key, n) == 0 && rt_envs[i][n] == '=') return rt_envs[i] + n + 1;
  }
  return 0;
}

/* ------------------------------------------------------------------------------------ */
/* Entry                                                                                 */

static void check(int ok, const char *what, uint64_t want, uint64_t got) {
  if (ok) return;
  rt_printf("dhyve-rt: boot check failed: %s: expected %lx, got %lx\n", what, want, got);
  rt_exit(RT_EXIT_RUNTIME);
}

/* Checks what the host promised (hermit-abi.md §1.6, §3.3, §4) before main runs. */
static void check_boot(const struct rt_boot_info *bi, uint64_t entry_rsp) {
  uint64_t start = (uint64_t)(uintptr_t)__ehdr_start;
  uint64_t end = (uint64_t)(uintptr_t)__image_end;
  check(rt_reloc_probe == &rt_reloc_anchor, "relocated data pointer",
        (uint64_t)(uintptr_t)&rt_reloc_anchor, (uint64_t)(uintptr_t)rt_reloc_probe);
  check(bi->kernel_image_addr_start == start, "kernel_image_addr_start", start,
        bi->kernel_image_addr_start);
  check(bi->kernel_image_addr_end == end, "kernel_image_addr_end", end, bi->kernel_image_addr_end);
  check(entry_rsp == start - 0x8000, "entry RSP (kernel_address - 0x8000)", start - 0x8000,
        entry_rsp);
  check(bi->serial_port_base == SERIAL_PORT_BASE, "serial_port_base", SERIAL_PORT_BASE,
        bi->serial_port_base);
  check(bi->platform_tag == 1, "platform tag (1 = Uhyve)", 1, bi->platform_tag);
  check(bi->num_cpus != 0, "num_cpus != 0", 1, bi->num_cpus);
  check(bi->phys_addr_start <= start, "phys_addr_start <= image start", start,
        bi->phys_addr_start);
  check(end <= bi->phys_addr_end, "image end <= phys_addr_end", end, bi->phys_addr_end);
#if RT_BOOT_IFACE == 1
  check(end <= 0xffffffffu, "v1 image below 4 GiB", 0xffffffffu, end);
#else
  check(bi->phys_addr_start >= 0x100000000ull, "v2/v3 RAM from 4 GiB", 0x100000000ull,
        bi->phys_addr_start);
#endif
}

void rt_entry(const struct rt_boot_info *bi, unsigned cpu, uint64_t entry_rsp) {
  rt_boot_info = bi;
  if (cpu != 0) {
    ap_main(cpu);
    rt_halt();
  }
  check_boot(bi, entry_rsp);
  rt_exit(main());
}

/* ------------------------------------------------------------------------------------ */
/* Minimal libc                                                                          */

PLAIN_LOOPS size_t strlen(const char *s) {
  size_t n = 0;
  while (s[n]) n++;
  return n;
}

PLAIN_LOOPS size_t strnlen(const char *s, size_t max) {
  size_t n = 0;
  while (n < max && s[n]) n++;
  return n;
}

PLAIN_LOOPS int strcmp(const char *a, const char *b) {
  while (*a && *a == *b) a++, b++;
  return (unsigned char)*a - (unsigned char)*b;
}

PLAIN_LOOPS int strncmp(const char *a, const char *b, size_t n) {
  for (; n; n--, a++, b++) {
    if (*a != *b) return (unsigned char)*a - (unsigned char)*b;
    if (!*a) return 0;
  }
  return 0;
}

PLAIN_LOOPS int memcmp(const void *a, const void *b, size_t n) {
  const unsigned char *x = a, *y = b;
  for (size_t i = 0; i < n; i++) {
    if (x[i] != y[i]) return x[i] - y[i];
  }
  return 0;
}

PLAIN_LOOPS void *memcpy(void *dst, const void *src, size_t n) {
  unsigned char *d = dst;
  const unsigned char *s = src;
  for (size_t i = 0; i < n; i++) d[i] = s[i];
  return dst;
}

PLAIN_LOOPS void *memmove(void *dst, const void *src, size_t n) {
  unsigned char *d = dst;
  const unsigned char *s = src;
  if (d < s) {
    for (size_t i = 0; i < n; i++) d[i] = s[i];
  } else {
    for (size_t i = n; i > 0; i--) d[i - 1] = s[i - 1];
  }
  return dst;
}

PLAIN_LOOPS void *memset(void *dst, int c, size_t n) {
  unsigned char *d = dst;
  for (size_t i = 0; i < n; i++) d[i] = (unsigned char)c;
  return dst;
}

int rt_parse_i64(const char *s, int64_t *out) {
  int neg = 0;
  if (*s == '-' || *s == '+') neg = *s++ == '-';
  if (!*s) return -1;
  uint64_t v = 0, limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
  for (; *s; s++) {
    if (*s < '0' || *s > '9') return -1;
    unsigned d = (unsigned)(*s - '0');
    if (v > (limit - d) / 10) return -1;
    v = v * 10 + d;
  }
  *out = neg ? (int64_t)(0 - v) : (int64_t)v;
  return 0;
}

/* ---- device windows ---- */

static uint64_t rt_device_pd[512] __attribute__((aligned(4096)));

int rt_map_device(uint64_t phys) {
  if (phys < 0xc0000000ull || phys >= 0x100000000ull) return -1;
  uint64_t cr3;
  __asm__ volatile("mov %%cr3, %0" : "=r"(cr3));
  uint64_t *pml4 = (uint64_t *)(cr3 & ~0xfffull);
  if (!(pml4[0] & 1)) return -1;
  uint64_t *pdpt = (uint64_t *)(pml4[0] & 0x000ffffffffff000ull);
  uint64_t slot = (uint64_t)rt_device_pd | 3;
  if ((pdpt[3] & 1) && pdpt[3] != slot) return -1; /* RAM never lies in the 3-4 GiB gap */
  uint64_t page = phys & ~0x1fffffull;
  rt_device_pd[page >> 21 & 511] = page | 0x93; /* present, writable, 2 MiB, uncached (PCD) */
  pdpt[3] = slot;
  __asm__ volatile("mov %0, %%cr3" ::"r"(cr3) : "memory");
  return 0;
}
