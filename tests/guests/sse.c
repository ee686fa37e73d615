/*
 * sse: runs SSE instructions and checks their results, for dhyve's SSE
 * emulation on hosts whose KVM cannot run them (kvm_pvm). The SSE code is in
 * a global asm block (the guests are compiled with -mgeneral-regs-only, so C
 * may not touch XMM registers; the runtime stays SSE-free). It installs an
 * IDT to see the exceptions the CPU (or the emulator) raises:
 *   - #NM with CR0.TS set (lazy FPU switching, as Hermit does): the handler
 *     clears TS and the instruction runs again;
 *   - #GP for a misaligned MOVAPS and a non-canonical address;
 *   - #PF with CR2 and the error code for an unmapped address, from SSE
 *     loads and from FXSAVE/FXRSTOR/XSAVE/XRSTOR (the lazy FPU switch's
 *     instructions, which dhyve also runs itself where KVM cannot).
 * Prints "sse: <check> ok" per check and exits 0, or "sse: FAIL ..." and
 * exits 1. With the argument "unsupported" it runs RSQRTPS (which dhyve does
 * not emulate) and prints "sse: still running" if that returns.
 */
#include "rt.h"

/* ---- SSE routines (SysV ABI: rdi, rsi, rdx; result in rax) ---- */
__asm__(
    ".text\n"
    /* t_fp(in[2], out[4]): a+b, a*b, a/b, sqrt(a) */
    "t_fp:\n"
    "  movsd (%rdi), %xmm0\n"
    "  movsd 8(%rdi), %xmm1\n"
    "  movapd %xmm0, %xmm2\n"
    "  addsd %xmm1, %xmm2\n"
    "  movsd %xmm2, (%rsi)\n"
    "  movapd %xmm0, %xmm3\n"
    "  mulsd %xmm1, %xmm3\n"
    "  movsd %xmm3, 8(%rsi)\n"
    "  movapd %xmm0, %xmm4\n"
    "  divsd %xmm1, %xmm4\n"
    "  movsd %xmm4, 16(%rsi)\n"
    "  sqrtsd %xmm0, %xmm5\n"
    "  movsd %xmm5, 24(%rsi)\n"
    "  ret\n"
    /* t_mask16(p, c): bit i set where p[i] == c (memchr's core, as hashbrown does it) */
    "t_mask16:\n"
    "  movd %esi, %xmm0\n"
    "  punpcklbw %xmm0, %xmm0\n"
    "  pshuflw $0, %xmm0, %xmm0\n"
    "  pshufd $0, %xmm0, %xmm0\n"
    "  movdqu (%rdi), %xmm1\n"
    "  pcmpeqb %xmm0, %xmm1\n"
    "  pmovmskb %xmm1, %eax\n"
    "  ret\n"
    /* t_ucomisd(a*, b*): RFLAGS after ucomisd */
    "t_ucomisd:\n"
    "  movsd (%rdi), %xmm0\n"
    "  ucomisd (%rsi), %xmm0\n"
    "  pushfq\n"
    "  popq %rax\n"
    "  ret\n"
    "t_cvttsd2si:\n"
    "  cvttsd2si (%rdi), %rax\n"
    "  ret\n"
    "t_cvtsi2sd:\n"
    "  cvtsi2sd %rdi, %xmm0\n"
    "  movq %xmm0, %rax\n"
    "  ret\n"
    "t_stmxcsr:\n"
    "  subq $8, %rsp\n"
    "  stmxcsr (%rsp)\n"
    "  movl (%rsp), %eax\n"
    "  addq $8, %rsp\n"
    "  ret\n"
    "t_ldmxcsr:\n"
    "  subq $8, %rsp\n"
    "  movl %edi, (%rsp)\n"
    "  ldmxcsr (%rsp)\n"
    "  addq $8, %rsp\n"
    "  ret\n"
    /* t_copy16(dst aligned, src): movups load, pxor with itself twice, movaps store */
    "t_copy16:\n"
    "  movups (%rsi), %xmm7\n"
    "  pxor %xmm6, %xmm6\n"
    "  por %xmm7, %xmm6\n"
    "  movaps %xmm6, (%rdi)\n"
    "  ret\n"
    /* 3-byte loads the trap tests fault on (the handler skips them) */
    "t_movaps_load:\n"
    "  movaps (%rdi), %xmm0\n"
    "  ret\n"
    "t_movups_load:\n"
    "  movups (%rdi), %xmm0\n"
    "  ret\n"
    /* t_ones(): all-ones XMM0 via pcmpeqd, low half in rax */
    "t_ones:\n"
    "  pxor %xmm0, %xmm0\n"
    "  pcmpeqd %xmm0, %xmm0\n"
    "  movq %xmm0, %rax\n"
    "  ret\n"
    "t_rsqrtps:\n"
    "  rsqrtps %xmm0, %xmm0\n"
    "  ret\n"
    /* the FPU-state instructions on (rdi), 3 bytes each; XSAVE/XRSTOR with RFBM = x87|SSE */
    "t_fxsave:\n"
    "  fxsave (%rdi)\n"
    "  ret\n"
    "t_fxrstor:\n"
    "  fxrstor (%rdi)\n"
    "  ret\n"
    "t_xsave:\n"
    "  movl $3, %eax\n"
    "  xorl %edx, %edx\n"
    "  xsave (%rdi)\n"
    "  ret\n"
    "t_xrstor:\n"
    "  movl $3, %eax\n"
    "  xorl %edx, %edx\n"
    "  xrstor (%rdi)\n"
    "  ret\n");

void t_fp(const uint64_t in[2], uint64_t out[4]);
uint32_t t_mask16(const void *p, int c);
uint64_t t_ucomisd(const uint64_t *a, const uint64_t *b);
uint64_t t_cvttsd2si(const uint64_t *a);
uint64_t t_cvtsi2sd(int64_t v);
uint32_t t_stmxcsr(void);
void t_ldmxcsr(uint32_t v);
void t_copy16(void *dst, const void *src);
void t_movaps_load(const void *p);
void t_movups_load(const void *p);
uint64_t t_ones(void);
void t_rsqrtps(void);
/* hidden: their addresses are taken, and the fixed-address variants link above 4 GiB */
__attribute__((visibility("hidden"))) void t_fxsave(void *p);
__attribute__((visibility("hidden"))) void t_fxrstor(const void *p);
__attribute__((visibility("hidden"))) void t_xsave(void *p);
__attribute__((visibility("hidden"))) void t_xrstor(const void *p);

/* ---- exceptions ---- */
struct trap_frame {
  uint64_t r11, r10, r9, r8, rdi, rsi, rdx, rcx, rax;
  uint64_t vector, error, rip, cs, rflags, rsp, ss;
};

static volatile uint64_t g_traps, g_vector, g_error, g_cr2, g_skip, g_nm;

void sse_trap(struct trap_frame *f);
void sse_trap(struct trap_frame *f) {
  g_traps++;
  g_vector = f->vector;
  g_error = f->error;
  if (f->vector == 14) {
    uint64_t cr2;
    __asm__ volatile("movq %%cr2, %0" : "=r"(cr2));
    g_cr2 = cr2;
  }
  if (f->vector == 7) {
    g_nm++;
    __asm__ volatile("clts" ::: "memory"); /* lazy FPU switch done: run it again */
    return;
  }
  if (g_skip != 0) {
    f->rip += g_skip;
    g_skip = 0;
    return;
  }
  rt_printf("sse: FAIL unexpected exception %lu (error %lu) at %p\n", (unsigned long)f->vector,
            (unsigned long)f->error, (void *)f->rip);
  rt_exit(1);
}

#define STUB(vec, err)                 \
  "trap_" #vec ":\n"                   \
  err                                  \
  "  pushq $" #vec "\n"                \
  "  pushq %rax\n  pushq %rcx\n  pushq %rdx\n  pushq %rsi\n  pushq %rdi\n" \
  "  pushq %r8\n  pushq %r9\n  pushq %r10\n  pushq %r11\n" \
  "  movq %rsp, %rdi\n"                \
  "  call sse_trap\n"                  \
  "  popq %r11\n  popq %r10\n  popq %r9\n  popq %r8\n  popq %rdi\n" \
  "  popq %rsi\n  popq %rdx\n  popq %rcx\n  popq %rax\n" \
  "  addq $16, %rsp\n"                 \
  "  iretq\n"

__asm__(".text\n" STUB(6, "  pushq $0\n") STUB(7, "  pushq $0\n") STUB(13, "") STUB(14, "")
            STUB(19, "  pushq $0\n"));

#define HIDDEN __attribute__((visibility("hidden")))
HIDDEN void trap_6(void);
HIDDEN void trap_7(void);
HIDDEN void trap_13(void);
HIDDEN void trap_14(void);
HIDDEN void trap_19(void);

struct gate {
  uint16_t off0, sel;
  uint8_t ist, type;
  uint16_t off1;
  uint32_t off2, zero;
} __attribute__((packed));

static struct gate idt[32] __attribute__((aligned(16)));

static void set_gate(int vec, void (*fn)(void), uint16_t cs) {
  uint64_t a = (uint64_t)(uintptr_t)fn;
  idt[vec] = (struct gate){(uint16_t)a, cs, 0, 0x8e, (uint16_t)(a >> 16), (uint32_t)(a >> 32), 0};
}

static void install_idt(void) {
  uint16_t cs;
  __asm__ volatile("movw %%cs, %0" : "=r"(cs));
  set_gate(6, trap_6, cs);
  set_gate(7, trap_7, cs);
  set_gate(13, trap_13, cs);
  set_gate(14, trap_14, cs);
  set_gate(19, trap_19, cs);
  struct {
    uint16_t limit;
    uint64_t base;
  } __attribute__((packed)) idtr = {sizeof idt - 1, (uint64_t)(uintptr_t)idt};
  __asm__ volatile("lidt %0" : : "m"(idtr) : "memory");
}

/* ---- checks ---- */
static int failures;

static void expect_u64(const char *what, uint64_t got, uint64_t want) {
  if (got != want) {
    rt_printf("sse: FAIL %s: got %p, expected %p\n", what, (void *)got, (void *)want);
    failures++;
  }
}

/* Runs fn(addr) (a 3-byte instruction on an unmapped page): a #PF with CR2 = addr and `error`. */
static void expect_pf(const char *what, void (*fn)(void *), uint64_t addr, uint64_t error) {
  g_skip = 3;
  g_cr2 = 0;
  g_vector = 0;
  fn((void *)addr);
  if (g_vector != 14 || g_cr2 != addr || g_error != error) {
    rt_printf("sse: FAIL unmapped %s: vector %lu CR2 %p error %lu, expected #PF at %p error %lu\n",
              what, (unsigned long)g_vector, (void *)g_cr2, (unsigned long)g_error, (void *)addr,
              (unsigned long)error);
    failures++;
  }
}

static void passed(const char *what, int before) {
  if (failures == before) rt_printf("sse: %s ok\n", what);
}

/* Enables SSE as an OS does (Hermit too): CR0.EM off, CR0.MP on, CR4.OSFXSR and OSXMMEXCPT on. */
static void enable_sse(void) {
  uint64_t cr0, cr4;
  __asm__ volatile("movq %%cr0, %0" : "=r"(cr0));
  __asm__ volatile("movq %0, %%cr0" : : "r"((cr0 & ~4ull) | 2) : "memory");
  __asm__ volatile("movq %%cr4, %0" : "=r"(cr4));
  __asm__ volatile("movq %0, %%cr4" : : "r"(cr4 | 0x600) : "memory");
}

int main(void) {
  install_idt();
  enable_sse();
  const char *mode = rt_argv(1);
  if (mode != 0 && strcmp(mode, "unsupported") == 0) {
    t_rsqrtps();
    rt_puts("sse: still running\n");
    return 0;
  }
  int f;

  f = failures;
  static const uint64_t in[2] = {0x3ff8000000000000ull /* 1.5 */, 0x4002000000000000ull /* 2.25 */};
  uint64_t out[4];
  t_fp(in, out);
  expect_u64("1.5 + 2.25", out[0], 0x400e000000000000ull);          /* 3.75 */
  expect_u64("1.5 * 2.25", out[1], 0x400b000000000000ull);          /* 3.375 */
  expect_u64("1.5 / 2.25", out[2], 0x3fe5555555555555ull);          /* 2/3, rounded to nearest */
  expect_u64("sqrt(1.5)", out[3], 0x3ff3988e1409212eull);           /* 1.224744871391589 */
  expect_u64("PE after an inexact division", t_stmxcsr() & 0x20, 0x20);
  passed("fp", f);

  f = failures;
  static const char text[16] = "Hello, SSE world";
  expect_u64("mask of 'o'", t_mask16(text, 'o'), (1u << 4) | (1u << 12));
  expect_u64("mask of 'x'", t_mask16(text, 'x'), 0);
  passed("pcmpeqb/pmovmskb", f);

  f = failures;
  static const uint64_t nan = 0x7ff8000000000000ull, one = 0x3ff0000000000000ull,
                        two = 0x4000000000000000ull;
  expect_u64("ucomisd NaN: ZF PF CF", t_ucomisd(&nan, &one) & 0x45, 0x45);
  expect_u64("ucomisd 1 < 2: CF", t_ucomisd(&one, &two) & 0x45, 0x01);
  expect_u64("ucomisd 2 > 1: none", t_ucomisd(&two, &one) & 0x45, 0x00);
  passed("ucomisd", f);

  f = failures;
  static const uint64_t big = 0x43e0000000000000ull; /* 2^63: out of range */
  expect_u64("cvttsd2si NaN", t_cvttsd2si(&nan), 0x8000000000000000ull);
  expect_u64("cvttsd2si 2^63", t_cvttsd2si(&big), 0x8000000000000000ull);
  expect_u64("IE after invalid conversions", t_stmxcsr() & 1, 1);
  expect_u64("cvtsi2sd INT64_MIN", t_cvtsi2sd(INT64_MIN), 0xc3e0000000000000ull);
  t_ldmxcsr(0x1f80);
  expect_u64("ldmxcsr/stmxcsr", t_stmxcsr(), 0x1f80);
  passed("conversions and MXCSR", f);

  f = failures;
  static uint8_t src[17], dst[16] __attribute__((aligned(16)));
  for (int i = 0; i < 17; i++) src[i] = (uint8_t)(i * 7 + 1);
  t_copy16(dst, src + 1);
  expect_u64("movups/movaps copy", (uint64_t)memcmp(dst, src + 1, 16), 0);
  passed("moves", f);

  f = failures;
  uint64_t cr0;
  __asm__ volatile("movq %%cr0, %0" : "=r"(cr0));
  __asm__ volatile("movq %0, %%cr0" : : "r"(cr0 | 8) : "memory"); /* CR0.TS: FPU state "not loaded" */
  g_nm = 0;
  expect_u64("pcmpeqd under CR0.TS", t_ones(), ~0ull);
  expect_u64("one #NM for the lazy FPU switch", g_nm, 1);
  passed("#NM", f);

  f = failures;
  g_traps = 0;
  g_skip = 3;
  t_movaps_load(dst + 1);
  expect_u64("misaligned movaps: #GP", g_vector, 13);
  expect_u64("#GP error code", g_error, 0);
  g_skip = 3;
  t_movups_load((const void *)0x8000000000000000ull);
  expect_u64("non-canonical movups: #GP", g_vector, 13);
  g_skip = 3;
  t_movups_load((const void *)0x7f0000000000ull);
  expect_u64("unmapped movups: #PF", g_vector, 14);
  expect_u64("#PF CR2", g_cr2, 0x7f0000000000ull);
  expect_u64("#PF error code (read, not present, supervisor)", g_error, 0);
  expect_u64("three exceptions", g_traps, 3);
  passed("exceptions", f);

  f = failures;
  static uint8_t area[4096] __attribute__((aligned(64)));
  t_ldmxcsr(0x1f80 | 0x6000); /* round toward zero: a value to find in the save area */
  t_fxsave(area);
  expect_u64("fxsave: MXCSR at byte 24", *(volatile uint32_t *)(area + 24), 0x1f80 | 0x6000);
  t_ldmxcsr(0x1f80);
  t_fxrstor(area);
  expect_u64("fxrstor: MXCSR restored", t_stmxcsr(), 0x1f80 | 0x6000);
  t_ldmxcsr(0x1f80);
  g_traps = 0;
  expect_pf("fxsave", t_fxsave, 0x7f0000000000ull, 2);
  expect_pf("fxrstor", (void (*)(void *))t_fxrstor, 0x7f0000001000ull, 0);
  uint32_t eax, ebx, ecx, edx;
  __asm__ volatile("cpuid" : "=a"(eax), "=b"(ebx), "=c"(ecx), "=d"(edx) : "a"(1), "c"(0));
  if (ecx & (1u << 26)) { /* XSAVE: enable it (CR4.OSXSAVE, XCR0 = x87 | SSE) as Hermit does */
    uint64_t cr4;
    __asm__ volatile("movq %%cr4, %0" : "=r"(cr4));
    __asm__ volatile("movq %0, %%cr4" : : "r"(cr4 | (1ull << 18)) : "memory");
    __asm__ volatile("xsetbv" : : "a"(3), "d"(0), "c"(0));
    expect_pf("xsave", t_xsave, 0x7f0000002000ull, 2);
    expect_pf("xrstor", (void (*)(void *))t_xrstor, 0x7f0000003000ull, 0);
    expect_u64("four exceptions", g_traps, 4);
    t_xsave(area);
    expect_u64("xsave: XSTATE_BV has x87|SSE bits only", area[512] & ~3u, 0);
    t_xrstor(area);
  } else {
    expect_u64("two exceptions", g_traps, 2);
    rt_puts("sse: no XSAVE on this CPU: XSAVE/XRSTOR checks skipped\n");
  }
  passed("fxsave/xsave", f);

  if (failures != 0) return 1;
  rt_puts("sse: all checks passed\n");
  return 0;
}
