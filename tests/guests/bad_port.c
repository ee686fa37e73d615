/*
 * bad_port: a 4-byte OUT of 0xdeadbeef to port 0x1234, which is no hypercall. The host
 * is expected to stop the VM there ("unsupported hypercall"); if the guest ever runs on,
 * it prints "bad_port: continued" and exits 0.
 */
#include "rt.h"

int main(void) {
  rt_outl(0x1234, 0xdeadbeef);
  rt_puts("bad_port: continued\n");
  return 0;
}
