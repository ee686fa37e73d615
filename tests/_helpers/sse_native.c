/*
 * Runs single SSE instructions natively for the differential tests of
 * src/emulate/sse.ts (tests/kvm/sse_diff_test.ts builds it with gcc at test
 * time; see tests/_helpers/sse_native.ts for the record format).
 *
 * Each case names the instruction bytes, the input XMM/GPR/RFLAGS/MXCSR
 * state and a 64-byte window of the data page. The bytes are copied into a
 * code page at a fixed address followed by a jump back; a trampoline loads
 * every register (RSP included), jumps there, and stores every register
 * afterwards. Faults come back through signal handlers on an alternate
 * stack: #GP is SIGSEGV with SI_KERNEL, #PF is SIGSEGV with the address,
 * #XM is SIGFPE, #UD is SIGILL. The data page is followed by an inaccessible
 * guard page, so accesses that cross into it page-fault.
 *
 * stdout starts with 8 bytes: CPUID.1:ECX and CPUID.7.0:EBX.
 */
#define _GNU_SOURCE
#include <cpuid.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define CODE_ADDR 0x500000000000ULL
#define DATA_ADDR (CODE_ADDR + 0x10000ULL)
#define PAGE 4096
#define WINDOW 64

struct io {
  uint64_t gpr[16];       /* 0: rax rcx rdx rbx rsp rbp rsi rdi r8..r15 */
  uint8_t xmm[256];       /* 128 */
  uint64_t rflags;        /* 384 */
  uint32_t mxcsr;         /* 392 */
  uint32_t pad;
};

struct io g_in __attribute__((aligned(16), visibility("hidden")));
struct io g_out __attribute__((aligned(16), visibility("hidden")));
uint64_t g_saved_rsp __attribute__((visibility("hidden")));
uint64_t g_code_ptr __attribute__((visibility("hidden")));

static sigjmp_buf g_jmp;
static volatile int g_signo;
static volatile int g_sicode;
static volatile uint64_t g_addr;

void run_case(void);
void case_return(void);

#define LOAD_XMM(n) "movdqu g_in+" #n "*16+128(%rip), %xmm" #n "\n"
#define SAVE_XMM(n) "movdqu %xmm" #n ", g_out+" #n "*16+128(%rip)\n"

__asm__(
    ".text\n"
    ".globl run_case\n"
    ".type run_case,@function\n"
    "run_case:\n"
    "push %rbx\n push %rbp\n push %r12\n push %r13\n push %r14\n push %r15\n"
    "mov %rsp, g_saved_rsp(%rip)\n"
    "ldmxcsr g_in+392(%rip)\n"
    LOAD_XMM(0) LOAD_XMM(1) LOAD_XMM(2) LOAD_XMM(3) LOAD_XMM(4) LOAD_XMM(5) LOAD_XMM(6)
    LOAD_XMM(7) LOAD_XMM(8) LOAD_XMM(9) LOAD_XMM(10) LOAD_XMM(11) LOAD_XMM(12) LOAD_XMM(13)
    LOAD_XMM(14) LOAD_XMM(15)
    "pushq g_in+384(%rip)\n popfq\n"
    "mov g_in+0(%rip), %rax\n mov g_in+8(%rip), %rcx\n mov g_in+16(%rip), %rdx\n"
    "mov g_in+24(%rip), %rbx\n mov g_in+40(%rip), %rbp\n mov g_in+48(%rip), %rsi\n"
    "mov g_in+56(%rip), %rdi\n mov g_in+64(%rip), %r8\n mov g_in+72(%rip), %r9\n"
    "mov g_in+80(%rip), %r10\n mov g_in+88(%rip), %r11\n mov g_in+96(%rip), %r12\n"
    "mov g_in+104(%rip), %r13\n mov g_in+112(%rip), %r14\n mov g_in+120(%rip), %r15\n"
    "mov g_in+32(%rip), %rsp\n"
    "jmp *g_code_ptr(%rip)\n"
    ".globl case_return\n"
    "case_return:\n"
    "mov %rax, g_out+0(%rip)\n mov %rcx, g_out+8(%rip)\n mov %rdx, g_out+16(%rip)\n"
    "mov %rbx, g_out+24(%rip)\n mov %rsp, g_out+32(%rip)\n mov %rbp, g_out+40(%rip)\n"
    "mov %rsi, g_out+48(%rip)\n mov %rdi, g_out+56(%rip)\n mov %r8, g_out+64(%rip)\n"
    "mov %r9, g_out+72(%rip)\n mov %r10, g_out+80(%rip)\n mov %r11, g_out+88(%rip)\n"
    "mov %r12, g_out+96(%rip)\n mov %r13, g_out+104(%rip)\n mov %r14, g_out+112(%rip)\n"
    "mov %r15, g_out+120(%rip)\n"
    "mov g_saved_rsp(%rip), %rsp\n"
    "pushfq\n popq g_out+384(%rip)\n"
    "stmxcsr g_out+392(%rip)\n"
    SAVE_XMM(0) SAVE_XMM(1) SAVE_XMM(2) SAVE_XMM(3) SAVE_XMM(4) SAVE_XMM(5) SAVE_XMM(6)
    SAVE_XMM(7) SAVE_XMM(8) SAVE_XMM(9) SAVE_XMM(10) SAVE_XMM(11) SAVE_XMM(12) SAVE_XMM(13)
    SAVE_XMM(14) SAVE_XMM(15)
    "pop %r15\n pop %r14\n pop %r13\n pop %r12\n pop %rbp\n pop %rbx\n"
    "ret\n"
    ".size run_case, .-run_case\n");

static void on_signal(int signo, siginfo_t *info, void *uctx) {
  (void)uctx;
  g_signo = signo;
  g_sicode = info->si_code;
  g_addr = (uint64_t)(uintptr_t)info->si_addr;
  siglongjmp(g_jmp, 1);
}

#pragma pack(push, 1)
struct case_in {
  uint8_t len;
  uint8_t code[15];
  uint32_t mxcsr;
  uint32_t mem_offset;
  uint64_t rflags;
  uint64_t gpr[16];
  uint8_t xmm[256];
  uint8_t mem[WINDOW];
};
struct case_out {
  uint32_t status; /* 0 ok, 1 #GP, 2 #PF, 3 #XM (SIGFPE), 4 #UD (SIGILL), 5 other signal */
  uint32_t detail; /* signal number << 16 | si_code */
  uint64_t fault_addr;
  uint64_t rflags;
  uint32_t mxcsr;
  uint32_t pad;
  uint64_t gpr[16];
  uint8_t xmm[256];
  uint8_t mem[WINDOW];
};
#pragma pack(pop)

static int read_all(void *buf, size_t n) {
  uint8_t *p = buf;
  while (n > 0) {
    ssize_t r = read(0, p, n);
    if (r <= 0) return 0;
    p += r;
    n -= (size_t)r;
  }
  return 1;
}

static void write_all(const void *buf, size_t n) {
  const uint8_t *p = buf;
  while (n > 0) {
    ssize_t r = write(1, p, n);
    if (r <= 0) exit(3);
    p += r;
    n -= (size_t)r;
  }
}

int main(void) {
  uint8_t *code = mmap((void *)CODE_ADDR, PAGE, PROT_READ | PROT_WRITE | PROT_EXEC,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
  uint8_t *data = mmap((void *)DATA_ADDR, 2 * PAGE, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
  if (code != (uint8_t *)CODE_ADDR || data != (uint8_t *)DATA_ADDR) {
    fprintf(stderr, "sse_native: cannot map the code/data pages\n");
    return 2;
  }
  if (mprotect(data + PAGE, PAGE, PROT_NONE) != 0) return 2;

  static uint8_t altstack[65536];
  stack_t ss = {.ss_sp = altstack, .ss_size = sizeof altstack, .ss_flags = 0};
  if (sigaltstack(&ss, NULL) != 0) return 2;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_signal;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGSEGV, &sa, NULL);
  sigaction(SIGBUS, &sa, NULL);
  sigaction(SIGFPE, &sa, NULL);
  sigaction(SIGILL, &sa, NULL);

  unsigned a, b, c, d;
  uint32_t features[2] = {0, 0};
  if (__get_cpuid(1, &a, &b, &c, &d)) features[0] = c;
  if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) features[1] = b;
  write_all(features, sizeof features);

  g_code_ptr = CODE_ADDR;
  struct case_in in;
  struct case_out out;
  while (read_all(&in, sizeof in)) {
    memset(code, 0xcc, 64);
    memcpy(code, in.code, in.len);
    /* jmp *0(%rip); .quad case_return */
    static const uint8_t jmp[6] = {0xff, 0x25, 0, 0, 0, 0};
    memcpy(code + in.len, jmp, 6);
    uint64_t back = (uint64_t)(uintptr_t)case_return;
    memcpy(code + in.len + 6, &back, 8);
    memset(data, 0, PAGE);
    if (in.mem_offset > PAGE - WINDOW) in.mem_offset = PAGE - WINDOW;
    memcpy(data + in.mem_offset, in.mem, WINDOW);

    memcpy(g_in.gpr, in.gpr, sizeof in.gpr);
    memcpy(g_in.xmm, in.xmm, sizeof in.xmm);
    g_in.rflags = in.rflags;
    g_in.mxcsr = in.mxcsr;
    memset(&out, 0, sizeof out);
    g_signo = 0;
    if (sigsetjmp(g_jmp, 1) == 0) {
      run_case();
      out.status = 0;
      out.rflags = g_out.rflags;
      out.mxcsr = g_out.mxcsr;
      memcpy(out.gpr, g_out.gpr, sizeof out.gpr);
      memcpy(out.xmm, g_out.xmm, sizeof out.xmm);
    } else {
      __builtin_ia32_ldmxcsr(0x1f80);
      if (g_signo == SIGSEGV) out.status = g_sicode == SI_KERNEL ? 1 : 2;
      else if (g_signo == SIGFPE) out.status = 3;
      else if (g_signo == SIGILL) out.status = 4;
      else out.status = 5;
      out.detail = (uint32_t)g_signo << 16 | (uint32_t)(g_sicode & 0xffff);
      out.fault_addr = g_addr;
    }
    memcpy(out.mem, data + in.mem_offset, WINDOW);
    write_all(&out, sizeof out);
  }
  return 0;
}
