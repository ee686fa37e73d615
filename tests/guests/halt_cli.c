/* halt_cli: prints a line, then halts with interrupts disabled (cli; hlt), as Hermit 0.6.9
 * does after its own #GP. No interrupt can wake it: the host must notice and end the run. */
#include "rt.h"

int main(void) {
  rt_puts("halt_cli: halting with interrupts off\n");
  for (;;) __asm__ volatile("cli; hlt");
}
