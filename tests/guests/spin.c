/* spin: prints "spin: spinning" and then loops forever (with pause); for timeout tests. */
#include "rt.h"

int main(void) {
  rt_puts("spin: spinning\n");
  for (;;) rt_pause();
}
