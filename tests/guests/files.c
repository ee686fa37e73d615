/*
 * files: every file hypercall against a host directory mapped at /root/data.
 * One line per check, "ok <name>" or "FAIL <name>: got X want Y", then
 * "files: N checks, M failed"; exit 0 only if all passed, 1 otherwise.
 *
 * The test (tests/kvm/files_test.ts) prepares the mapped directory:
 *   hello.txt  = "hello from the host\n"
 *   link_in    -> hello.txt (a symlink that stays inside)
 *   escape     -> a file outside the map holding a secret
 *   outdir     -> the directory outside the map that holds it
 *   big.bin    = BIG_SIZE bytes whose checksum (below) is argv[1], in decimal
 * The guest leaves new.txt ("written by the guest\n") behind, creates and
 * unlinks gone.txt, and creates /tmp/new.txt (unmapped: a host temp file).
 *
 * Checksum of big.bin: h = h * 31 + w over its little-endian u64 words (mod
 * 2^64), folded to 32 bits as (u32)(h ^ (h >> 32)). One multiply-add per 8
 * bytes keeps the loop short.
 */
#include "rt.h"

#define ENOENT 2
#define EBADF 9
#define EACCES 13
#define EINVAL 22

#define BIG_SIZE (1024 * 1024)
#define CHUNK (64 * 1024)

static uint64_t chunk[CHUNK / 8];
static char buf[256];

/* A check that `got` is a valid fd (>= 3); returns it. */
static int check_fd(const char *name, int got) {
  rt_checks++;
  if (got >= 3) {
    rt_printf("ok %s\n", name);
  } else {
    rt_failed++;
    rt_printf("FAIL %s: got %d want an fd >= 3\n", name, got);
  }
  return got;
}

/* Reads `len` bytes at the current offset of fd and compares them with `want`. */
static void check_read(const char *name, int fd, const char *want) {
  size_t len = strlen(want);
  int64_t n = rt_read(fd, buf, sizeof buf);
  if (n == (int64_t)len && memcmp(buf, want, len) == 0) {
    rt_check(name, 0, 0);
  } else if (n != (int64_t)len) {
    rt_check(name, n, (int64_t)len);
  } else {
    buf[len] = 0;
    rt_checks++;
    rt_failed++;
    rt_printf("FAIL %s: got \"%s\" want \"%s\"\n", name, buf, want);
  }
}

static void test_read_and_seek(void) {
  int fd = check_fd("open hello.txt", rt_open("/root/data/hello.txt", RT_O_RDONLY, 0));
  check_read("read hello.txt", fd, "hello from the host\n");
  rt_check("read at eof", rt_read(fd, buf, sizeof buf), 0);
  rt_check("lseek set", rt_lseek(fd, 6, RT_SEEK_SET), 6);
  rt_check("read after lseek set", rt_read(fd, buf, 4), 4);
  rt_check("lseek cur", rt_lseek(fd, 1, RT_SEEK_CUR), 11);
  check_read("read after lseek cur", fd, "the host\n");
  rt_check("lseek end", rt_lseek(fd, -5, RT_SEEK_END), 15);
  check_read("read after lseek end", fd, "host\n");
  rt_check("lseek bad whence", rt_lseek(fd, 0, 7), -EINVAL);
  rt_check("lseek before start", rt_lseek(fd, -1, RT_SEEK_SET), -EINVAL);
#if RT_IFACE == 2 /* v1 FileWrite has no result field */
  rt_check("write to read-only fd", rt_write_fd(fd, "x", 1), -EBADF);
#endif
  rt_check("close hello.txt", rt_close(fd), 0);
  rt_check("close closed fd", rt_close(fd), -EBADF);
  rt_check("read closed fd", rt_read(fd, buf, 1), -EBADF);
  rt_check("read bad fd", rt_read(1234, buf, 1), -EBADF);
  rt_check("close bad fd", rt_close(1234), -EBADF);
  rt_check("lseek bad fd", rt_lseek(1234, 0, RT_SEEK_SET), -EBADF);
  rt_check("close stdout", rt_close(1), 0);
}

static void test_create_write_unlink(void) {
  static const char text[] = "written by the guest\n";
  int fd = check_fd("create new.txt",
                    rt_open("/root/data/new.txt", RT_O_RDWR | RT_O_CREAT | RT_O_TRUNC, 0644));
  rt_check("write new.txt", rt_write_fd(fd, text, sizeof text - 1), sizeof text - 1);
  rt_check("rewind new.txt", rt_lseek(fd, 0, RT_SEEK_SET), 0);
  check_read("read back new.txt", fd, text);
  rt_check("close new.txt", rt_close(fd), 0);

  fd = check_fd("create gone.txt", rt_open("/root/data/gone.txt", RT_O_WRONLY | RT_O_CREAT, 0600));
  rt_check("write gone.txt", rt_write_fd(fd, "bye\n", 4), 4);
  rt_check("close gone.txt", rt_close(fd), 0);
  rt_check("unlink gone.txt", rt_unlink("/root/data/gone.txt"), 0);
  rt_check("open unlinked", rt_open("/root/data/gone.txt", RT_O_RDONLY, 0), -ENOENT);
  rt_check("unlink again", rt_unlink("/root/data/gone.txt"), -ENOENT);
  rt_check("open missing", rt_open("/root/data/missing.txt", RT_O_RDONLY, 0), -ENOENT);
  rt_check("O_DIRECTORY|O_CREAT", rt_open("/root/data/d", RT_O_DIRECTORY | RT_O_CREAT, 0755), -EINVAL);
}

static void test_escapes(void) {
  rt_check("dotdot escape", rt_open("/root/data/../../etc/passwd", RT_O_RDONLY, 0), -ENOENT);
  rt_check("absolute escape", rt_open("/etc/passwd", RT_O_RDONLY, 0), -ENOENT);
  rt_check("symlink out", rt_open("/root/data/escape", RT_O_RDONLY, 0), -EACCES);
  rt_check("symlink dir out", rt_open("/root/data/outdir/secret.txt", RT_O_RDONLY, 0), -EACCES);
  rt_check("create via symlink dir",
        rt_open("/root/data/outdir/created.txt", RT_O_WRONLY | RT_O_CREAT, 0644), -EACCES);
  rt_check("unlink via symlink dir", rt_unlink("/root/data/outdir/secret.txt"), -EACCES);
  int fd = check_fd("symlink in", rt_open("/root/data/link_in", RT_O_RDONLY, 0));
  check_read("read symlink in", fd, "hello from the host\n");
  rt_check("close symlink in", rt_close(fd), 0);
}

static void test_temp_file(void) {
  static const char text[] = "temp data\n";
  int fd = check_fd("create /tmp/new.txt",
                    rt_open("/tmp/new.txt", RT_O_RDWR | RT_O_CREAT, 0600));
  rt_check("write /tmp/new.txt", rt_write_fd(fd, text, sizeof text - 1), sizeof text - 1);
  rt_check("rewind /tmp/new.txt", rt_lseek(fd, 0, RT_SEEK_SET), 0);
  check_read("read back /tmp/new.txt", fd, text);
  rt_check("close /tmp/new.txt", rt_close(fd), 0);
  fd = check_fd("reopen /tmp/new.txt", rt_open("/tmp/new.txt", RT_O_RDONLY, 0));
  check_read("read reopened /tmp/new.txt", fd, text);
  rt_check("close reopened /tmp/new.txt", rt_close(fd), 0);
}

static void test_big_read(int64_t want_sum) {
  int fd = check_fd("open big.bin", rt_open("/root/data/big.bin", RT_O_RDONLY, 0));
  uint64_t h = 0;
  int64_t total = 0, n;
  while ((n = rt_read(fd, chunk, CHUNK)) > 0) {
    total += n;
    const uint64_t *w = chunk, *end = chunk + n / 8;
    while (w < end) h = h * 31 + *w++;
  }
  rt_check("big read end", n, 0);
  rt_check("big read size", total, BIG_SIZE);
  rt_check("big read checksum", (uint32_t)(h ^ (h >> 32)), want_sum);
  rt_check("close big.bin", rt_close(fd), 0);
}

int main(void) {
  int64_t want_sum;
  if (rt_argc() < 2 || rt_parse_i64(rt_argv(1), &want_sum) != 0) {
    rt_printf("files: usage: files <checksum of big.bin>\n");
    return 1;
  }
  test_read_and_seek();
  test_create_write_unlink();
  test_escapes();
  test_temp_file();
  test_big_read(want_sum);
  rt_printf("files: %d checks, %d failed\n", rt_checks, rt_failed);
  return rt_failed == 0 ? 0 : 1;
}
