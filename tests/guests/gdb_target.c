/*
 * gdb_target: a guest for the GDB stub tests. main() calls gdb_bump() three
 * times; each call adds its argument to the global gdb_counter (1 + 2 + 3 = 6),
 * then the guest prints "gdb_target: counter=N" and exits with N + 1 (7), so a
 * debugger that changed gdb_counter changes the exit code too. Tiny on purpose:
 * guest code may be emulated one instruction at a time.
 */
#include "rt.h"

/* Read and written by the debugger; volatile so every access really happens. */
volatile int64_t gdb_counter = 0;

/* A named function to break at; noinline keeps it a real call. */
__attribute__((noinline, used, visibility("default"))) int64_t gdb_bump(int64_t by) {
  gdb_counter += by;
  return gdb_counter;
}

int main(void) {
  for (int64_t i = 1; i <= 3; i++) gdb_bump(i);
  rt_printf("gdb_target: counter=%d\n", (int)gdb_counter);
  return (int)gdb_counter + 1;
}
