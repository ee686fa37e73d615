/*
 * hello: one line through each output path.
 *   SerialWriteBuffer: "Hello from dhyve guest (v1|v2|v3, pie|fixed)!"
 *   FileWrite fd 1:    "hello via fd 1"
 *   FileWrite fd 2:    "hello via fd 2"
 *   SerialWriteByte:   "hello via serial byte" (one OUT per byte)
 * Exit 0; exit 1 if a v2 FileWrite does not report the full length.
 */
#include "rt.h"

#if RT_IFACE == 1
#define IFACE "v1"
#elif RT_HAS_UHYVEIF && RT_UHYVEIF == 3
#define IFACE "v3"
#else
#define IFACE "v2"
#endif
#if RT_PIE
#define LINK "pie"
#else
#define LINK "fixed"
#endif

static int write_line(int fd, const char *s) {
  size_t len = strlen(s);
  int64_t ret = rt_write_fd(fd, s, len);
  if (ret != (int64_t)len) {
    rt_printf("hello: FileWrite to fd %d returned %ld, expected %lu\n", fd, (long)ret,
              (unsigned long)len);
    return 1;
  }
  return 0;
}

int main(void) {
  rt_puts("Hello from dhyve guest (" IFACE ", " LINK ")!\n");
  int bad = write_line(1, "hello via fd 1\n");
  bad |= write_line(2, "hello via fd 2\n");
  for (const char *p = "hello via serial byte\n"; *p; p++) rt_putc(*p);
  return bad;
}
