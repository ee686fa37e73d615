/*
 * exit_loop: every CPU makes C exits to the host at the same time (argument C, default
 * 10000), to measure the cost of one exit with one vCPU and with several at once.
 * Each exit is a SerialWriteByte hypercall with byte 0: the cheapest handler (it only
 * appends the byte to the vCPU's line buffer, which reaches the output sink once per
 * 4 KiB), so run it with its output discarded. The CPUs meet at a spin barrier first;
 * the boot CPU waits for all, then exits 0. More CPUs than the runtime supports, or a
 * bad argument: message and exit 1.
 */
#include "rt.h"

static volatile int go;
static volatile int64_t count = 10000;
static volatile uint64_t arrived, finished;

static void exits(void) {
  uint64_t n = rt_num_cpus();
  __atomic_fetch_add(&arrived, 1, __ATOMIC_SEQ_CST);
  while (__atomic_load_n(&arrived, __ATOMIC_SEQ_CST) != n) rt_pause();
  for (int64_t i = count; i > 0; i--) rt_putc(0);
  __atomic_fetch_add(&finished, 1, __ATOMIC_SEQ_CST);
}

int ap_main(unsigned cpu) {
  (void)cpu;
  while (!__atomic_load_n(&go, __ATOMIC_ACQUIRE)) rt_pause();
  exits();
  return 0;
}

int main(void) {
  uint64_t n = rt_num_cpus();
  const char *arg = rt_argv(1);
  int64_t c = 10000;
  if (n > RT_MAX_CPUS || (arg && (rt_parse_i64(arg, &c) != 0 || c < 0))) {
    rt_puts("exit_loop: usage: exit_loop [C >= 0], at most 8 cpus\n");
    return 1;
  }
  count = c;
  __atomic_store_n(&go, 1, __ATOMIC_RELEASE);
  exits();
  while (__atomic_load_n(&finished, __ATOMIC_SEQ_CST) != n) rt_pause();
  return 0;
}
