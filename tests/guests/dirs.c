/*
 * dirs: uhyve 0.9.1's interface-v3 file calls (Getdents 0x1160, FileStat 0x1170,
 * FileFstat 0x1180, Mkdir 0x1190). They are v2 ports: the parameter's address goes in
 * RDI, whatever the image's UHYVEIF note says, so this guest makes them itself and also
 * works when built for interface 1 (v1 FileOpen/FileLseek, v3 calls by RDI), as uhyve's
 * own test kernels do. One line per check, "ok <name>" or "FAIL <name>: got X want Y",
 * listings as "ls <path> <bufsize>: <names>", then "dirs: N checks, M failed"; exit 0
 * only if all passed.
 *
 * The test (tests/kvm/v3_files_test.ts) maps:
 *   /data  -> a writable host directory: a.txt = "alpha\n", sub/b.txt, f00 … f39,
 *             link-in -> a.txt, link-out -> a directory outside the map
 *   /ro    -> a read-only host directory holding r.txt
 *   /files/x.txt -> a single host file (its host neighbours are not mapped)
 * and expects /data/newdir to exist on the host afterwards. With the arguments
 * "ls PATH…" it only lists those directories.
 */
#include "rt.h"

#define ENOENT 2
#define EBADF 9
#define EACCES 13
#define EEXIST 17
#define ENOTDIR 20
#define EISDIR 21
#define EINVAL 22
#define EROFS 30

#define S_IFMT 0170000
#define S_IFDIR 0040000
#define S_IFREG 0100000
#define S_IFLNK 0120000

#define PORT_GETDENTS 0x1160
#define PORT_FILE_STAT 0x1170
#define PORT_FILE_FSTAT 0x1180
#define PORT_MKDIR 0x1190

/* uhyve-interface v0.9.1 src/v2/parameters.rs, #[repr(C)]: natural alignment. */
struct getdents_params { /* 40 */
  int32_t fd;
  uint64_t buf;
  uint64_t len;
  uint32_t tag; /* 0 None, 1 Success(u64), 2 EndOfDirectory, 3 Error(i32) */
  uint64_t value;
};
struct stat_params { /* 32 */
  uint64_t name;
  uint32_t kind; /* 0 stat, 1 lstat */
  uint64_t attr;
  uint32_t tag; /* 0 None, 1 Success, 2 Error(i32) */
  int32_t err;
};
struct fstat_params { /* 24 */
  int32_t fd;
  uint64_t attr;
  uint32_t tag;
  int32_t err;
};
struct mkdir_params { /* 24 */
  uint64_t path;
  uint64_t len;
  uint32_t tag;
  int32_t err;
};
struct timespec64 {
  int64_t sec;
  int32_t nsec;
};
struct file_attr { /* 120 */
  uint64_t dev, ino, nlink;
  uint32_t mode, uid, gid;
  uint64_t rdev;
  int64_t size, blksize, blocks;
  struct timespec64 atime, mtime, ctime;
};
struct dirent64 {
  uint64_t ino;
  int64_t off;
  uint16_t reclen;
  uint8_t type;
  char name[];
};
_Static_assert(sizeof(struct getdents_params) == 40, "GetdentParams");
_Static_assert(__builtin_offsetof(struct getdents_params, value) == 32, "GetdentResult payload");
_Static_assert(sizeof(struct stat_params) == 32, "StatParams");
_Static_assert(__builtin_offsetof(struct stat_params, err) == 28, "StatResult errno");
_Static_assert(sizeof(struct fstat_params) == 24, "FstatParams");
_Static_assert(sizeof(struct mkdir_params) == 24, "MkdirParams");
_Static_assert(sizeof(struct file_attr) == 120, "FileAttr");
_Static_assert(__builtin_offsetof(struct file_attr, rdev) == 40, "FileAttr.rdev");
_Static_assert(__builtin_offsetof(struct file_attr, ctime) == 104, "FileAttr.ctime");
_Static_assert(__builtin_offsetof(struct dirent64, name) == 19, "linux_dirent64.d_name");

/* The v2 FileOpen (packed, as v1) and FileRead layouts, for a v1 image's v2 calls by RDI. */
struct __attribute__((packed)) v2_open_params {
  uint64_t name;
  int32_t flags;
  int32_t mode;
  int32_t ret;
};
struct v2_read_params {
  uint64_t len;
  int64_t ret;
  uint64_t buf;
  int32_t fd;
};

static volatile struct v2_open_params op;
static volatile struct v2_read_params rp;
static volatile struct getdents_params gp;
static volatile struct stat_params sp;
static volatile struct fstat_params fp;
static volatile struct mkdir_params mp;
static struct file_attr attr, attr2;
static char dbuf[4096] __attribute__((aligned(8)));
static char names[2][2048];

/* A v2-port hypercall: the parameter's (identity-mapped) address in RDI. */
static void v3call(uint16_t port, const volatile void *p) {
  __asm__ volatile("outl %%eax, %%dx"
                   :
                   : "a"(0x1234u), "d"(port), "D"((uint64_t)(uintptr_t)p)
                   : "memory");
}

/* Getdents: bytes (> 0), 0 for EndOfDirectory, -errno for Error, -1000 for a bad tag. */
static int64_t getdents(int fd, void *buf, uint64_t len) {
  gp.fd = fd;
  gp.buf = (uint64_t)(uintptr_t)buf;
  gp.len = len;
  gp.tag = 0;
  v3call(PORT_GETDENTS, &gp);
  switch (gp.tag) {
    case 1: return (int64_t)gp.value;
    case 2: return 0;
    case 3: return -(int64_t)(int32_t)gp.value;
    default: return -1000;
  }
}

/* FileStat: 0 or -errno (the result carries a positive errno). */
static int stat_kind(const char *path, uint32_t kind, struct file_attr *out) {
  sp.name = (uint64_t)(uintptr_t)path;
  sp.kind = kind;
  sp.attr = (uint64_t)(uintptr_t)out;
  sp.tag = 0;
  v3call(PORT_FILE_STAT, &sp);
  return sp.tag == 1 ? 0 : sp.tag == 2 ? -sp.err : -1000;
}

static int fstat_fd(int fd, struct file_attr *out) {
  fp.fd = fd;
  fp.attr = (uint64_t)(uintptr_t)out;
  fp.tag = 0;
  v3call(PORT_FILE_FSTAT, &fp);
  return fp.tag == 1 ? 0 : fp.tag == 2 ? -fp.err : -1000;
}

static int mkdir_path(const char *path) {
  mp.path = (uint64_t)(uintptr_t)path;
  mp.len = strlen(path);
  mp.tag = 0;
  v3call(PORT_MKDIR, &mp);
  return mp.tag == 1 ? 0 : mp.tag == 2 ? -mp.err : -1000;
}

/*
 * Lists `path` with Getdents buffers of `bufsize` bytes into out (names separated by
 * spaces), checking each record's framing; prints "ls <path> <bufsize>: <names>".
 * Returns the number of entries, or a negative value on a failure.
 */
static int list(const char *path, size_t bufsize, char *out, size_t cap) {
  int fd = rt_open(path, RT_O_RDONLY | RT_O_DIRECTORY, 0);
  if (fd < 3) return fd < 0 ? fd : -1000;
  size_t used = 0;
  int count = 0;
  int64_t cursor = 0;
  out[0] = 0;
  for (;;) {
    int64_t n = getdents(fd, dbuf, bufsize);
    if (n == 0) break;
    if (n < 0 || (uint64_t)n > bufsize) {
      rt_close(fd);
      return n < 0 ? (int)n : -1001;
    }
    for (int64_t at = 0; at < n;) {
      const struct dirent64 *d = (const struct dirent64 *)(dbuf + at);
      size_t len = strnlen(d->name, (size_t)(d->reclen - 19));
      if (d->reclen % 8 != 0 || at + d->reclen > n || len == 0 || len >= d->reclen - 19u ||
          d->off != cursor + d->reclen || used + len + 2 > cap) {
        rt_close(fd);
        return -1002;
      }
      cursor += d->reclen;
      if (used > 0) out[used++] = ' ';
      memcpy(out + used, d->name, len);
      used += len;
      out[used] = 0;
      count++;
      at += d->reclen;
    }
  }
  rt_check("getdents: the end stays the end", getdents(fd, dbuf, bufsize), 0);
  rt_close(fd);
  rt_printf("ls %s %u: %s\n", path, (unsigned)bufsize, out);
  return count;
}

int main(void) {
  /* "ls PATH…": only list the given directories (a Hermit image's tree, for one). */
  if (rt_argc() > 1 && strcmp(rt_argv(1), "ls") == 0) {
    for (int i = 2; i < rt_argc(); i++) {
      int n = list(rt_argv(i), sizeof dbuf, names[0], sizeof names[0]);
      if (n < 0) rt_printf("FAIL ls %s: %d\n", rt_argv(i), n);
    }
    return rt_failed == 0 ? 0 : 1;
  }
  rt_printf("dirs: interface %d\n", RT_IFACE);

  /* ---- v2 ports by RDI, whatever the note says (dispatch by port, as uhyve 0.9.1) ---- */
  op.name = (uint64_t)(uintptr_t)"/data/a.txt";
  op.flags = RT_O_RDONLY;
  op.mode = 0;
  op.ret = -1000;
  v3call(0x1110, &op);
  rt_check("v2 FileOpen by RDI", op.ret >= 3, 1);
  rp.len = 16;
  rp.ret = -1000;
  rp.buf = (uint64_t)(uintptr_t)dbuf;
  rp.fd = op.ret;
  v3call(0x1130, &rp);
  rt_check("v2 FileRead by RDI", rp.ret == 6 && memcmp(dbuf, "alpha\n", 6) == 0, 1);
  rt_check("v1/v2 close of that fd", rt_close(op.ret), 0);

  /* ---- listings ---- */
  rt_check("ls / entries", list("/", 4096, names[0], sizeof names[0]), 3);
  int big = list("/data", 4096, names[0], sizeof names[0]);
  rt_check("ls /data entries", big, 44);
  rt_check("ls /data with 64-byte buffers", list("/data", 64, names[1], sizeof names[1]), big);
  rt_check("same listing, any buffer size", strcmp(names[0], names[1]), 0);
  rt_check("ls /files entries", list("/files", 4096, names[1], sizeof names[1]), 1);
  rt_check("ls /data/sub entries", list("/data/sub/", 32, names[1], sizeof names[1]), 1);

  int dir = rt_open("/data", RT_O_RDONLY | RT_O_DIRECTORY, 0);
  rt_check("getdents: too small a buffer", getdents(dir, dbuf, 16), -EINVAL);
  int64_t first = getdents(dir, dbuf, 64);
  rt_check("getdents: first page", first > 0 && first <= 64, 1);
  rt_check("lseek SEEK_SET 0 on a directory", rt_lseek(dir, 0, RT_SEEK_SET), 0);
  rt_check("getdents: the same first page again", getdents(dir, dbuf, 64), first);
  rt_check("lseek SEEK_END on a directory", rt_lseek(dir, 0, RT_SEEK_END) < 0, 1);
  rt_check("read on a directory fd", rt_read(dir, dbuf, 8), -EISDIR);
  rt_check("getdents on fd 1", getdents(1, dbuf, 64), -ENOTDIR);
  int file = rt_open("/data/a.txt", RT_O_RDONLY, 0);
  rt_check("getdents on a file", getdents(file, dbuf, 64), -ENOTDIR);
  rt_check("getdents on a bad fd", getdents(1000, dbuf, 64), -EBADF);
  rt_check("open a directory for writing", rt_open("/data/sub", RT_O_RDWR, 0), -EISDIR);
  rt_check("open a file with O_DIRECTORY", rt_open("/data/a.txt", RT_O_DIRECTORY, 0), -ENOTDIR);

  /* ---- stat, lstat, fstat ---- */
  rt_check("stat /data/a.txt", stat_kind("/data/a.txt", 0, &attr), 0);
  rt_check("stat: size", attr.size, 6);
  rt_check("stat: regular file", attr.mode & S_IFMT, S_IFREG);
  rt_check("stat: no host uid", attr.uid, 0);
  rt_check("fstat of the open file", fstat_fd(file, &attr2), 0);
  rt_check("fstat: same inode as stat", attr2.ino == attr.ino && attr.ino != 0, 1);
  rt_check("fstat: same size", attr2.size, 6);
  rt_check("fstat of a directory fd", fstat_fd(dir, &attr2), 0);
  rt_check("fstat: directory", attr2.mode & S_IFMT, S_IFDIR);
  rt_check("stat /data/link-in follows", stat_kind("/data/link-in", 0, &attr2), 0);
  rt_check("stat /data/link-in: the target", attr2.ino == attr.ino && attr2.size == 6, 1);
  rt_check("lstat /data/link-in", stat_kind("/data/link-in", 1, &attr2), 0);
  rt_check("lstat: a link", attr2.mode & S_IFMT, S_IFLNK);
  rt_check("stat /data/link-out (leaves the map)", stat_kind("/data/link-out", 0, &attr2), -EACCES);
  rt_check("lstat /data/link-out (the link itself)", stat_kind("/data/link-out", 1, &attr2), 0);
  rt_check("stat outside the map", stat_kind("/etc/passwd", 0, &attr2), -ENOENT);
  rt_check("stat .. out of a mapping", stat_kind("/data/../../etc", 0, &attr2), -ENOENT);
  rt_check("stat an unknown StatKind", stat_kind("/data/a.txt", 7, &attr2), -EINVAL);
  rt_check("stat /", stat_kind("/", 0, &attr2), 0);
  rt_check("stat /: a directory", attr2.mode & S_IFMT, S_IFDIR);
  rt_check("fstat of fd 1", fstat_fd(1, &attr2), -EBADF);
  rt_check("fstat of a closed fd", fstat_fd(999, &attr2), -EBADF);
  rt_close(file);
  rt_close(dir);

  /* ---- mkdir ---- */
  rt_check("mkdir /data/newdir", mkdir_path("/data/newdir"), 0);
  rt_check("stat /data/newdir", stat_kind("/data/newdir", 0, &attr2) == 0 &&
                                 (attr2.mode & S_IFMT) == S_IFDIR, 1);
  rt_check("mkdir /data/newdir again", mkdir_path("/data/newdir"), -EEXIST);
  rt_check("mkdir in a :ro mapping", mkdir_path("/ro/x"), -EROFS);
  rt_check("mkdir through a link out of the map", mkdir_path("/data/link-out/x"), -EACCES);
  rt_check("mkdir without a parent", mkdir_path("/nowhere/x"), -ENOENT);
  rt_check("mkdir /scratch (unmapped: temp dir)", mkdir_path("/scratch"), 0);
  int created = rt_open("/scratch/note.txt", RT_O_CREAT | RT_O_WRONLY, 0644);
  rt_check("create a file in /scratch", created >= 3, 1);
  rt_close(created);
  rt_check("ls / now", list("/", 4096, names[1], sizeof names[1]), 4);
  rt_check("ls /scratch", list("/scratch", 4096, names[1], sizeof names[1]), 1);

  rt_printf("dirs: %d checks, %d failed\n", rt_checks, rt_failed);
  return rt_failed == 0 ? 0 : 1;
}
