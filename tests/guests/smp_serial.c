/*
 * smp_serial: every CPU prints K lines "cpu N line I: <40-char payload>\n" at the same
 * time, to show that serial lines from different vCPUs never interleave mid-line.
 * Arguments: MODE K (defaults: buffer 20).
 *   buffer  one SerialWriteBuffer call per line (rt_write)
 *   byte    one SerialWriteByte call per byte (rt_putc): where interleaving would show
 * The boot CPU parses the arguments and releases the APs; all CPUs meet at a spin
 * barrier, print, and count out; the boot CPU waits for all, then exits 0. More CPUs
 * than the runtime supports, or bad arguments: message and exit 1.
 */
#include "rt.h"

#define PAYLOAD "abcdefghijklmnopqrstuvwxyz0123456789ABCD" /* 40 chars */

static volatile int go, bytewise;
static volatile int64_t lines = 20;
static volatile uint64_t arrived, finished;

static char *put_u(char *p, unsigned v) {
  char b[12];
  int n = 0;
  do b[n++] = (char)('0' + v % 10); while ((v /= 10) != 0);
  while (n) *p++ = b[--n];
  return p;
}

static void print_lines(unsigned cpu) {
  uint64_t n = rt_num_cpus();
  __atomic_fetch_add(&arrived, 1, __ATOMIC_SEQ_CST);
  while (__atomic_load_n(&arrived, __ATOMIC_SEQ_CST) != n) rt_pause();
  for (int64_t i = 0; i < lines; i++) {
    char line[96], *p = line;
    memcpy(p, "cpu ", 4), p += 4;
    p = put_u(p, cpu);
    memcpy(p, " line ", 6), p += 6;
    p = put_u(p, (unsigned)i);
    memcpy(p, ": " PAYLOAD "\n", 43), p += 43;
    if (bytewise) {
      for (char *q = line; q < p; q++) rt_putc(*q);
    } else {
      rt_write(line, (size_t)(p - line));
    }
  }
  __atomic_fetch_add(&finished, 1, __ATOMIC_SEQ_CST);
}

int ap_main(unsigned cpu) {
  while (!__atomic_load_n(&go, __ATOMIC_ACQUIRE)) rt_pause();
  print_lines(cpu);
  return 0;
}

int main(void) {
  uint64_t n = rt_num_cpus();
  const char *mode = rt_argv(1), *count = rt_argv(2);
  int64_t k = 20;
  if (n > RT_MAX_CPUS || (mode && strcmp(mode, "byte") != 0 && strcmp(mode, "buffer") != 0) ||
      (count && (rt_parse_i64(count, &k) != 0 || k < 0))) {
    rt_puts("smp_serial: usage: smp_serial [buffer|byte] [K], at most 8 cpus\n");
    return 1;
  }
  bytewise = mode && strcmp(mode, "byte") == 0;
  lines = k;
  __atomic_store_n(&go, 1, __ATOMIC_RELEASE);
  print_lines(0);
  while (__atomic_load_n(&finished, __ATOMIC_SEQ_CST) != n) rt_pause();
  return 0;
}
