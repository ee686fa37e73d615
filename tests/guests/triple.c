/*
 * triple: forces a triple fault. It loads an IDT with limit 0, so the #UD from ud2 cannot
 * be delivered (#GP), nor can that (#DF), and the CPU shuts down (KVM_EXIT_SHUTDOWN).
 * Prints "triple: faulting" first; exits 1 if it ever gets past the fault.
 */
#include "rt.h"

static struct __attribute__((packed)) {
  uint16_t limit;
  uint64_t base;
} empty_idt = {0, 0};

int main(void) {
  rt_puts("triple: faulting\n");
  __asm__ volatile("lidt %0\n\tud2" : : "m"(empty_idt) : "memory");
  rt_puts("triple: still alive\n");
  return 1;
}
