/* ioapic: programs the IOAPIC as a Hermit kernel does at boot (it reads the version and the
 * ID, then writes the redirection table), pokes at what it must not change (read-only bits and
 * registers, registers that do not exist), and reads the PIC's mask back after writing it. It
 * prints one line for each: run with KVM's own IOAPIC (--pit) and with dhyve's (the split
 * interrupt controller of every other run), the "ioapic:" line must be the same. Exits 0, or 1
 * when it cannot map the IOAPIC. Needs RAM above 4 GiB (interface 2 or 3). */
#include "rt.h"

static volatile uint32_t *const ioapic = (volatile uint32_t *)0xfec00000u;

static uint32_t rd(uint32_t reg) {
  ioapic[0] = reg;
  return ioapic[4];
}

static void wr(uint32_t reg, uint32_t value) {
  ioapic[0] = reg;
  ioapic[4] = value;
}

static inline void outb(uint16_t port, uint8_t value) {
  __asm__ volatile("outb %0, %1" : : "a"(value), "Nd"(port) : "memory");
}

static inline uint8_t inb(uint16_t port) {
  uint8_t value;
  __asm__ volatile("inb %1, %0" : "=a"(value) : "Nd"(port) : "memory");
  return value;
}

int main(void) {
  if (rt_map_device(0xfec00000u) != 0) {
    rt_puts("ioapic: cannot map it\n");
    return 1;
  }
  uint32_t version = rd(0x01), id = rd(0x00), arbitration = rd(0x02);
  uint32_t pin0 = rd(0x10), pin0_high = rd(0x11), pin23 = rd(0x10 + 2 * 23);
  /* Pin 5: vector 0x25, level-triggered, with the read-only delivery-status and remote-IRR bits
   * set in what is written; destination APIC 1. Then pin 6 as Hermit writes every pin. */
  wr(0x10 + 2 * 5, 0xd025);
  wr(0x11 + 2 * 5, 0x01000000);
  wr(0x10 + 2 * 6, 0x26);
  wr(0x11 + 2 * 6, 0);
  uint32_t pin5 = rd(0x10 + 2 * 5), pin5_high = rd(0x11 + 2 * 5), pin6 = rd(0x10 + 2 * 6);
  wr(0x00, 0x05000000); /* a new ID */
  uint32_t id_after = rd(0x00), arbitration_after = rd(0x02);
  wr(0x01, 0); /* read-only */
  uint32_t version_after = rd(0x01);
  uint32_t missing = rd(0x03), past_table = rd(0x10 + 2 * 24);
  ioapic[0] = 0x1234; /* the select register keeps 8 bits */
  uint32_t select = ioapic[0];
  uint32_t elsewhere = ioapic[2]; /* offset 8: neither register */
  rt_printf("ioapic: version %x/%x id %x/%x arbitration %x/%x pin0 %x:%x pin23 %x pin5 %x:%x "
            "pin6 %x missing %x past %x select %x elsewhere %x\n",
            version, version_after, id, id_after, arbitration, arbitration_after, pin0, pin0_high,
            pin23, pin5, pin5_high, pin6, missing, past_table, select, elsewhere);
  outb(0x21, 0xfb); /* the master PIC's mask (OCW1) */
  rt_printf("pic: mask %x\n", inb(0x21));
  return 0;
}
