/* pci_latch: latches a PCI configuration address at port 0xCF8 and reads it back, many times.
 * The host keeps the latch in its PCI device for the whole run, so every read must return the
 * value written, however often the host's run loop pauses in between (it did not: a pause lost
 * it). Exits with the number of mismatches (0 expected). */
#include "rt.h"

static inline uint32_t inl(uint16_t port) {
  uint32_t value;
  __asm__ volatile("inl %1, %0" : "=a"(value) : "Nd"(port) : "memory");
  return value;
}

#define PAIRS 30000

int main(void) {
  int bad = 0;
  for (int i = 0; i < PAIRS; i++) {
    uint32_t address = 0x80000000u | (uint32_t)((i & 0x3f) << 2);
    rt_outl(0xcf8, address);
    if (inl(0xcf8) != address && bad < 100) bad++;
  }
  rt_printf("pci_latch: %d pairs, %d mismatches\n", PAIRS, bad);
  rt_exit(bad);
}
