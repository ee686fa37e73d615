/*
 * stdin_echo: reads stdin to its end and prints "got: <line>" for each line (a last line
 * without "\n" counts too); exits with the number of lines. v1 reads with FileRead on
 * fd 0, v2 with SerialReadBuffer (0x1050, {maxlen, len, buf}; len 0 = end of input).
 * With the argument "prompt" it prints "> " (no newline) before each read, so a host that
 * does not flush before blocking on stdin shows the prompt late. A failed read prints
 * "stdin_echo: read error N" and exits 98.
 */
#include "rt.h"

#if RT_IFACE == 2
static volatile struct {
  uint64_t maxlen;
  uint64_t len;
  uint64_t buf;
} read_params;
#endif

static int64_t read_stdin(char *buf, size_t len) {
#if RT_IFACE == 1
  return rt_read(0, buf, len);
#else
  read_params.maxlen = len;
  read_params.len = (uint64_t)-1;
  read_params.buf = (uint64_t)(uintptr_t)buf;
  rt_hypercall(0x1050, (uint64_t)(uintptr_t)&read_params);
  return (int64_t)read_params.len;
#endif
}

static char chunk[64];
static char line[256];

int main(void) {
  const char *arg = rt_argv(1);
  int prompt = arg != NULL && strcmp(arg, "prompt") == 0;
  int lines = 0;
  size_t used = 0;
  for (;;) {
    if (prompt) rt_puts("> ");
    int64_t n = read_stdin(chunk, sizeof chunk);
    if (n < 0 || n > (int64_t)sizeof chunk) {
      rt_printf("stdin_echo: read error %ld\n", (long)n);
      return 98;
    }
    if (n == 0) break;
    for (int64_t i = 0; i < n; i++) {
      char c = chunk[i];
      if (c != '\n' && used < sizeof line) {
        line[used++] = c;
        continue;
      }
      rt_printf("got: ");
      rt_write(line, used);
      rt_putc('\n');
      lines++;
      used = 0;
      if (c != '\n') line[used++] = c;
    }
  }
  if (used > 0) {
    rt_printf("got: ");
    rt_write(line, used);
    rt_putc('\n');
    lines++;
  }
  return lines;
}
