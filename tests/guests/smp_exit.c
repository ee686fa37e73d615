/*
 * smp_exit: the application processor with the highest id ends the VM while the boot CPU
 * spins (pause loop) forever. The boot CPU reads the first argument and publishes it:
 *   a number (default 7)  the AP prints "smp_exit: cpu N exits with C" and calls Exit(C)
 *   "fault"               the AP prints "smp_exit: cpu N faults" and writes to port 0x1234
 *                         (no hypercall: the host must stop the VM with a clear error)
 * The other APs halt. With a single CPU: message and exit 1.
 */
#include "rt.h"

static volatile int go;
static volatile int fault;
static volatile int code = 7;

int ap_main(unsigned cpu) {
  if (cpu != rt_num_cpus() - 1) return 0; /* halts */
  while (!__atomic_load_n(&go, __ATOMIC_ACQUIRE)) rt_pause();
  if (fault) {
    rt_printf("smp_exit: cpu %u faults\n", cpu);
    rt_outl(0x1234, 0xdeadbeef);
    rt_printf("smp_exit: cpu %u continued after the fault\n", cpu);
    rt_halt();
  }
  rt_printf("smp_exit: cpu %u exits with %d\n", cpu, code);
  rt_exit(code);
}

int main(void) {
  if (rt_num_cpus() < 2) {
    rt_puts("smp_exit: needs at least 2 cpus\n");
    return 1;
  }
  const char *arg = rt_argv(1);
  int64_t v;
  if (arg && strcmp(arg, "fault") == 0) fault = 1;
  else if (arg && rt_parse_i64(arg, &v) == 0) code = (int)v;
  else if (arg) {
    rt_printf("smp_exit: bad argument \"%s\"\n", arg);
    return 1;
  }
  __atomic_store_n(&go, 1, __ATOMIC_RELEASE);
  for (;;) rt_pause();
}
