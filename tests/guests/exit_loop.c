/*
 * exit_loop: every CPU makes C exits to the host at the same time (arguments: C, default
 * 10000, then "all" (default) or "boot": only the boot CPU exits while the others wait),
 * to measure the cost of one exit with one vCPU and with several at once.
 * Each exit is a SerialWriteByte hypercall with byte 0: the cheapest handler (it only
 * appends the byte to the vCPU's line buffer, which reaches the output sink once per
 * 4 KiB), so run it with its output discarded. The CPUs meet at a spin barrier first;
 * the boot CPU waits for all, then exits 0. More CPUs than the runtime supports, or a
 * bad argument: message and exit 1.
 */
#include "rt.h"

static volatile int go, boot_only;
static volatile int64_t count = 10000;
static volatile uint64_t arrived, finished;

static void exits(unsigned cpu) {
  uint64_t n = rt_num_cpus();
  __atomic_fetch_add(&arrived, 1, __ATOMIC_SEQ_CST);
  while (__atomic_load_n(&arrived, __ATOMIC_SEQ_CST) != n) rt_pause();
  if (cpu == 0 || !boot_only) {
    for (int64_t i = count; i > 0; i--) rt_putc(0);
  }
  __atomic_fetch_add(&finished, 1, __ATOMIC_SEQ_CST);
}

int ap_main(unsigned cpu) {
  while (!__atomic_load_n(&go, __ATOMIC_ACQUIRE)) rt_pause();
  exits(cpu);
  return 0;
}

int main(void) {
  uint64_t n = rt_num_cpus();
  const char *arg = rt_argv(1), *who = rt_argv(2);
  int64_t c = 10000;
  if (n > RT_MAX_CPUS || (arg && (rt_parse_i64(arg, &c) != 0 || c < 0)) ||
      (who && strcmp(who, "all") != 0 && strcmp(who, "boot") != 0)) {
    rt_puts("exit_loop: usage: exit_loop [C >= 0] [all|boot], at most 8 cpus\n");
    return 1;
  }
  count = c;
  boot_only = who && strcmp(who, "boot") == 0;
  __atomic_store_n(&go, 1, __ATOMIC_RELEASE);
  exits(0);
  while (__atomic_load_n(&finished, __ATOMIC_SEQ_CST) != n) rt_pause();
  return 0;
}
