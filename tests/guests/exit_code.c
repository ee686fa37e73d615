/*
 * exit_code: exits with the first application argument (decimal, may be negative),
 * or 42 without one. v1: argv[1] from Cmdval; v2: the first app word of the bootargs
 * (see README.md). A non-number prints a message and exits 1.
 */
#include "rt.h"

int main(void) {
  const char *arg = rt_argv(1);
  if (!arg) return 42;
  int64_t v;
  if (rt_parse_i64(arg, &v) != 0) {
    rt_printf("exit_code: not a number: \"%s\"\n", arg);
    return 1;
  }
  return (int)v;
}
