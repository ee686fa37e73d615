/*
 * read_virtual PATH [CHUNK]: opens PATH read-write (a Hermit image's files are read-only
 * virtual files), reads it to the end in CHUNK-byte reads (default 100, at most 4096),
 * then once more (must give 0 again), and tries a write. Prints one line:
 *   bytes=N reads=R fnv=H write=W
 * H is the FNV-1a 32-bit hash of the content (decimal), W the write's result (v2: -30,
 * EROFS, expected; v1 has no write result, so "n/a"). Exit 0; 1 when PATH cannot be
 * opened or a read fails (the line says so), 2 when more than 100000 reads never reach
 * the end.
 */
#include "rt.h"

static char buf[4096];

int main(void) {
  const char *path = rt_argv(1);
  if (path == NULL) {
    rt_puts("read_virtual: no path given\n");
    return 1;
  }
  int64_t chunk = 100;
  const char *chunk_arg = rt_argv(2);
  if (chunk_arg != NULL && (rt_parse_i64(chunk_arg, &chunk) != 0 || chunk < 1 ||
                            chunk > (int64_t)sizeof buf)) {
    rt_printf("read_virtual: bad chunk size \"%s\"\n", chunk_arg);
    return 1;
  }
  int fd = rt_open(path, RT_O_RDWR, 0);
  if (fd < 0) {
    rt_printf("read_virtual: open %s: %d\n", path, fd);
    return 1;
  }
  uint32_t hash = 2166136261u;
  uint64_t total = 0;
  int reads = 0;
  for (;;) {
    if (reads >= 100000) {
      rt_printf("read_virtual: no end after %d reads (%lu bytes)\n", reads, (unsigned long)total);
      return 2;
    }
    int64_t n = rt_read(fd, buf, (size_t)chunk);
    reads++;
    if (n < 0 || n > chunk) {
      rt_printf("read_virtual: read returned %ld\n", (long)n);
      return 1;
    }
    if (n == 0) break;
    for (int64_t i = 0; i < n; i++) {
      hash ^= (uint8_t)buf[i];
      hash *= 16777619u;
    }
    total += (uint64_t)n;
  }
  int64_t again = rt_read(fd, buf, (size_t)chunk);
  if (again != 0) {
    rt_printf("read_virtual: a read after the end returned %ld\n", (long)again);
    return 1;
  }
#if RT_IFACE == 2
  int64_t w = rt_write_fd(fd, "x", 1);
  rt_printf("bytes=%lu reads=%d fnv=%u write=%ld\n", (unsigned long)total, reads, hash, (long)w);
#else
  rt_write_fd(fd, "x", 1);
  rt_printf("bytes=%lu reads=%d fnv=%u write=n/a\n", (unsigned long)total, reads, hash);
#endif
  rt_close(fd);
  return 0;
}
