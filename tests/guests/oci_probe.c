/*
 * oci_probe: what a container gave the guest. Prints "ram=<N>MiB cpus=<N>" from the boot
 * info, then acts on each argument:
 *   read:PATH   prints "read PATH: <first line>" or "read PATH: error <ret>"
 *   write:PATH  creates PATH, writes "probe\n", prints "write PATH: ok" or "write PATH: error <ret>"
 *   env:KEY     prints "env KEY=<value>" or "env KEY unset"
 * and exits 0 (1 for an unknown argument). For tests/kvm/oci_*_test.ts.
 */
#include "rt.h"

static char buf[256];

static void do_read(const char *path) {
  int fd = rt_open(path, RT_O_RDONLY, 0);
  if (fd < 0) {
    rt_printf("read %s: error %d\n", path, fd);
    return;
  }
  int64_t n = rt_read(fd, buf, sizeof buf - 1);
  rt_close(fd);
  if (n < 0) {
    rt_printf("read %s: error %d\n", path, (int)n);
    return;
  }
  int64_t end = 0;
  while (end < n && buf[end] != '\n') end++;
  buf[end] = 0;
  rt_printf("read %s: %s\n", path, buf);
}

static void do_write(const char *path) {
  int fd = rt_open(path, RT_O_WRONLY | RT_O_CREAT | RT_O_TRUNC, 0644);
  if (fd < 0) {
    rt_printf("write %s: error %d\n", path, fd);
    return;
  }
  int64_t n = rt_write_fd(fd, "probe\n", 6);
  rt_close(fd);
  if (n != 6) {
    rt_printf("write %s: error %d\n", path, (int)n);
    return;
  }
  rt_printf("write %s: ok\n", path);
}

int main(void) {
  uint64_t ram = rt_boot_info->phys_addr_end - rt_boot_info->phys_addr_start;
  rt_printf("ram=%luMiB cpus=%lu\n", (unsigned long)(ram >> 20), (unsigned long)rt_num_cpus());
  for (int i = 1; i < rt_argc(); i++) {
    const char *arg = rt_argv(i);
    if (strncmp(arg, "read:", 5) == 0) {
      do_read(arg + 5);
    } else if (strncmp(arg, "write:", 6) == 0) {
      do_write(arg + 6);
    } else if (strncmp(arg, "env:", 4) == 0) {
      const char *value = rt_getenv(arg + 4);
      if (value == 0) rt_printf("env %s unset\n", arg + 4);
      else rt_printf("env %s=%s\n", arg + 4, value);
    } else {
      rt_printf("oci_probe: unknown argument \"%s\"\n", arg);
      return 1;
    }
  }
  return 0;
}
