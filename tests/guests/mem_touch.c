/*
 * mem_touch: writes one byte into every 4 KiB page of guest RAM above its own image, so that
 * the host has to back all of it, then prints "touched N MiB of M MiB" and exits 0. Build it
 * without the GNU version note (versionNote: false): only the legacy boot map covers all of RAM
 * (the whole 1 GiB region), and run it with --no-aslr so RAM lies in that region. For
 * tests/kvm/oci_podman_test.ts: a guest that uses all its RAM must not push its container over
 * the memory limit.
 */
#include "rt.h"

int main(void) {
  uint64_t start = (rt_boot_info->kernel_image_addr_end + 0xfff) & ~(uint64_t)0xfff;
  uint64_t end = rt_boot_info->phys_addr_end;
  uint64_t region_end = (rt_boot_info->phys_addr_start & ~(uint64_t)0x3fffffff) + 0x40000000;
  if (end > region_end) {
    rt_printf("mem_touch: RAM ends past the mapped 1 GiB region\n");
    return 1;
  }
  for (uint64_t page = start; page < end; page += 0x1000) {
    *(volatile uint8_t *)(uintptr_t)page = 0x5a;
  }
  rt_printf("touched %lu MiB of %lu MiB\n", (unsigned long)((end - start) >> 20),
            (unsigned long)((end - rt_boot_info->phys_addr_start) >> 20));
  return 0;
}
