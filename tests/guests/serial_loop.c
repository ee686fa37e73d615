/*
 * serial_loop: N single-byte serial hypercalls (argument N, default 100000), then exit 0.
 * The per-exit cost benchmark (bench/kvm_floor.ts): v1 is a 1-byte `out dx, al` to Uart
 * 0x800, v2 a SerialWriteByte to 0x1020 with the byte in RDI. The bytes are 63 'x' and a
 * newline, repeated, so a line-buffering host writes once per 64 exits; run it with the
 * output discarded. A bad argument: message and exit 1.
 */
#include "rt.h"

int main(void) {
  const char *arg = rt_argv(1);
  int64_t n = 100000;
  if (arg && (rt_parse_i64(arg, &n) != 0 || n < 0)) {
    rt_puts("serial_loop: usage: serial_loop [N >= 0]\n");
    return 1;
  }
  for (int64_t i = 1; i <= n; i++) rt_putc((i & 63) == 0 ? '\n' : 'x');
  return 0;
}
