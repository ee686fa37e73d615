/*
 * spin_work: CPU-bound work split across every CPU. Argument T (default 1000000): the
 * total number of LCG steps (x = x * a + c, register only). With N CPUs each does T / N
 * steps (the boot CPU also does the remainder); the boot CPU waits for all, prints
 * "spin_work: N cpus, T steps, checksum X" and exits 0. Bad argument or more CPUs than
 * the runtime supports: message and exit 1.
 */
#include "rt.h"

static volatile int go;
static volatile uint64_t share;
static volatile uint64_t results[RT_MAX_CPUS];
static volatile uint64_t done;

static uint64_t work(uint64_t steps, uint64_t x) {
  for (uint64_t i = 0; i < steps; i++) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    __asm__ volatile("" : "+r"(x)); /* keep it a plain loop */
  }
  return x;
}

int ap_main(unsigned cpu) {
  while (!__atomic_load_n(&go, __ATOMIC_ACQUIRE)) rt_pause();
  results[cpu] = work(share, cpu);
  __atomic_fetch_add(&done, 1, __ATOMIC_SEQ_CST);
  return 0;
}

int main(void) {
  uint64_t n = rt_num_cpus();
  const char *arg = rt_argv(1);
  int64_t t = 1000000;
  if (n > RT_MAX_CPUS || (arg && (rt_parse_i64(arg, &t) != 0 || t < 0))) {
    rt_puts("spin_work: usage: spin_work [T >= 0], at most 8 cpus\n");
    return 1;
  }
  share = (uint64_t)t / n;
  __atomic_store_n(&go, 1, __ATOMIC_RELEASE);
  results[0] = work(share + (uint64_t)t % n, 0);
  while (__atomic_load_n(&done, __ATOMIC_SEQ_CST) != n - 1) rt_pause();
  uint64_t sum = 0;
  for (uint64_t i = 0; i < n; i++) sum ^= results[i];
  rt_printf("spin_work: %lu cpus, %ld steps, checksum %lx\n", (unsigned long)n, (long)t,
            (unsigned long)sum);
  return 0;
}
