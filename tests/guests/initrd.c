/*
 * initrd: reports what the device tree says about an initrd (a Hermit image handed to the
 * kernel with --hermit-image-mode internal) and checks it against the boot info:
 *   "initrd: none" when /chosen has no linux,initrd-start (exit 3), else
 *   "initrd: offset=0x... len=N fnv=XXXXXXXX ustar=yes|no reserve=ok|bad"
 * where offset is from the kernel's end (the next page), fnv is FNV-1a 32 over the bytes,
 * ustar says whether the first tar header is there, reserve whether the first FDT memory
 * reservation covers the initrd's whole pages. Then always:
 *   "cpus: N of M" (cpu@i nodes with device_type "cpu" in /cpus, boot info num_cpus)
 *   "hermit.toml: open=R" (R: "fd" or the negative errno of opening it read-only)
 * Exit 0 when all checks hold, 1 when one fails.
 */
#include "rt.h"

static int bad;

static void expect(int ok, const char *what) {
  if (!ok) {
    rt_printf("initrd: check failed: %s\n", what);
    bad = 1;
  }
}

static void report_initrd(void) {
  uint32_t len_start = 0, len_end = 0;
  const void *ps = rt_fdt_prop("/chosen", "linux,initrd-start", &len_start);
  const void *pe = rt_fdt_prop("/chosen", "linux,initrd-end", &len_end);
  if (!ps && !pe) {
    rt_puts("initrd: none\n");
    return;
  }
  expect(ps && pe && len_start == 8 && len_end == 8, "both properties, 8 bytes each");
  if (bad) return;
  uint64_t start = rt_be64(ps), end = rt_be64(pe);
  expect(start % 4096 == 0, "start page aligned");
  expect(start >= rt_boot_info->kernel_image_addr_end, "start after the kernel");
  expect(end > start && end <= rt_boot_info->phys_addr_end, "end inside RAM");
  if (bad) return;
  uint64_t n = end - start;
  const uint8_t *p = (const uint8_t *)(uintptr_t)start;
  uint32_t h = 0x811c9dc5u;
  for (uint64_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x01000193u;
  int ustar = n >= 262 && memcmp(p + 257, "ustar", 5) == 0;
  uint64_t raddr = 0, rsize = 0;
  int reserve = rt_fdt_reservation(0, &raddr, &rsize) && raddr == start &&
                rsize == ((n + 4095) & ~4095ull) && !rt_fdt_reservation(1, &raddr, &rsize);
  rt_printf("initrd: offset=%lx len=%lu fnv=%x ustar=%s reserve=%s\n",
            (unsigned long)(start - rt_boot_info->kernel_image_addr_end), (unsigned long)n,
            (unsigned)h, ustar ? "yes" : "no", reserve ? "ok" : "bad");
  expect(reserve, "reservation");
}

int main(void) {
  report_initrd();
  unsigned cpus = 0;
  char path[32];
  for (;; cpus++) {
    int k = 0;
    const char *prefix = "/cpus/cpu@";
    while (prefix[k]) path[k] = prefix[k], k++;
    char digits[12];
    int d = 0;
    unsigned v = cpus;
    do digits[d++] = (char)('0' + v % 10), v /= 10;
    while (v);
    while (d) path[k++] = digits[--d];
    path[k] = 0;
    uint32_t len = 0;
    const char *type = rt_fdt_prop(path, "device_type", &len);
    if (!type) break;
    expect(len == 4 && memcmp(type, "cpu", 4) == 0, "device_type = \"cpu\"");
  }
  rt_printf("cpus: %u of %lu\n", cpus, (unsigned long)rt_boot_info->num_cpus);
  int fd = rt_open("/hermit.toml", RT_O_RDONLY, 0);
  if (fd >= 0) {
    rt_puts("hermit.toml: open=fd\n");
    rt_close(fd);
  } else {
    rt_printf("hermit.toml: open=%d\n", fd);
  }
  if (!rt_fdt_prop("/chosen", "linux,initrd-start", &(uint32_t){0})) return bad ? 1 : 3;
  return bad;
}
