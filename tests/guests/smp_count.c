/*
 * smp_count: every CPU increments a counter (lock xadd). The boot CPU waits until it
 * equals num_cpus from the boot info, prints "all N cpus online" and exits 0. APs halt
 * after their increment. More CPUs than the runtime supports (RT_MAX_CPUS): exit 1.
 */
#include "rt.h"

static volatile uint64_t online;

int ap_main(unsigned cpu) {
  (void)cpu;
  __atomic_fetch_add(&online, 1, __ATOMIC_SEQ_CST);
  return 0;
}

int main(void) {
  uint64_t n = rt_num_cpus();
  if (n > RT_MAX_CPUS) {
    rt_printf("smp_count: %lu cpus, but the runtime supports %d\n", (unsigned long)n,
              RT_MAX_CPUS);
    return 1;
  }
  __atomic_fetch_add(&online, 1, __ATOMIC_SEQ_CST);
  while (__atomic_load_n(&online, __ATOMIC_SEQ_CST) != n) rt_pause();
  rt_printf("all %lu cpus online\n", (unsigned long)n);
  return 0;
}
