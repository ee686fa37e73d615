/*
 * read_bench: reads /root/bench/file.bin to the end in chunks of argv[1] bytes
 * (at most 1 MiB) and exits 0 if it got argv[2] bytes in total. No per-byte
 * work and no output on success: bench/file_read.ts times the whole process.
 */
#include "rt.h"

#define MAX_CHUNK (1024 * 1024)

static char buf[MAX_CHUNK];

int main(void) {
  int64_t chunk, size;
  if (rt_argc() < 3 || rt_parse_i64(rt_argv(1), &chunk) != 0 ||
      rt_parse_i64(rt_argv(2), &size) != 0 || chunk <= 0 || chunk > MAX_CHUNK) {
    rt_printf("read_bench: usage: read_bench CHUNK SIZE (CHUNK <= %d)\n", MAX_CHUNK);
    return 1;
  }
  int fd = rt_open("/root/bench/file.bin", RT_O_RDONLY, 0);
  if (fd < 0) {
    rt_printf("read_bench: open failed: %d\n", fd);
    return 1;
  }
  int64_t total = 0, n;
  while ((n = rt_read(fd, buf, (size_t)chunk)) > 0) total += n;
  rt_close(fd);
  if (n < 0 || total != size) {
    rt_printf("read_bench: read %ld bytes (last result %ld), expected %ld\n", (long)total,
              (long)n, (long)size);
    return 1;
  }
  return 0;
}
