/*
 * args: prints what the guest received, one item per line:
 *   argc=N, argv[i]=..., envc=N, env[i]=..., kargc=N, kargv[i]=...
 * (kargc/kargv are the v2 kernel args before "--"; always kargc=0 on v1). Exit 0.
 */
#include "rt.h"

int main(void) {
  int argc = rt_argc();
  rt_printf("argc=%d\n", argc);
  for (int i = 0; i < argc; i++) rt_printf("argv[%d]=%s\n", i, rt_argv(i));
  int envc = rt_envc();
  rt_printf("envc=%d\n", envc);
  for (int i = 0; i < envc; i++) rt_printf("env[%d]=%s\n", i, rt_env(i));
  int kargc = rt_kargc();
  rt_printf("kargc=%d\n", kargc);
  for (int i = 0; i < kargc; i++) rt_printf("kargv[%d]=%s\n", i, rt_kargv(i));
  return 0;
}
