/**
 * Pins the KVM ABI dhyve talks through FFI (`src/abi/`) to linux/kvm.h on
 * x86_64, as listed in hermit-abi.md Appendix A: struct sizes and offsets,
 * `kvm_run` offsets, exit reasons and every ioctl request number. A mismatch
 * here would be an EINVAL or memory corruption at run time. Runs with no
 * permissions.
 * @module
 */

import assert from "node:assert/strict";
import { io, ioc, ior, iow, iowr, KVM_IOCTL } from "../../../src/abi/ioctl.ts";
import {
  CAP,
  EXIT,
  exitName,
  IO_IN,
  IO_OUT,
  KVM_API_VERSION,
  KVM_CPUID2_HEADER_SIZE,
  KVM_CPUID_ENTRY2_SIZE,
  KVM_ENABLE_CAP_SIZE,
  KVM_MP_STATE_SIZE,
  KVM_MSR_ENTRY_SIZE,
  KVM_MSR_LIST_HEADER_SIZE,
  KVM_MSRS_HEADER_SIZE,
  KVM_PIT_CONFIG_SIZE,
  KVM_REGS_SIZE,
  KVM_SEGMENT_SIZE,
  KVM_SREGS_SIZE,
  KVM_USERSPACE_MEMORY_REGION_SIZE,
  KVM_VCPU_EVENTS_SIZE,
  KVM_XCRS_SIZE,
  KVM_XSAVE_SIZE,
  MP_STATE_RUNNABLE,
  REGS,
  RUN,
  RUN_SYNC_SREGS,
  SEGMENT,
  SREGS,
  SYNC_REGS,
} from "../../../src/abi/kvm.ts";

Deno.test("KVM struct sizes match linux/kvm.h on x86_64", () => {
  assert.deepEqual(
    {
      kvmRegs: KVM_REGS_SIZE,
      kvmSregs: KVM_SREGS_SIZE,
      kvmSegment: KVM_SEGMENT_SIZE,
      memoryRegion: KVM_USERSPACE_MEMORY_REGION_SIZE,
      enableCap: KVM_ENABLE_CAP_SIZE,
      pitConfig: KVM_PIT_CONFIG_SIZE,
      mpState: KVM_MP_STATE_SIZE,
      vcpuEvents: KVM_VCPU_EVENTS_SIZE,
      xcrs: KVM_XCRS_SIZE,
      xsave: KVM_XSAVE_SIZE,
      cpuid2Header: KVM_CPUID2_HEADER_SIZE,
      cpuidEntry2: KVM_CPUID_ENTRY2_SIZE,
      msrsHeader: KVM_MSRS_HEADER_SIZE,
      msrEntry: KVM_MSR_ENTRY_SIZE,
      msrListHeader: KVM_MSR_LIST_HEADER_SIZE,
    },
    {
      kvmRegs: 144,
      kvmSregs: 312,
      kvmSegment: 24,
      memoryRegion: 32,
      enableCap: 104,
      pitConfig: 64,
      mpState: 4,
      vcpuEvents: 64,
      xcrs: 392,
      xsave: 4096,
      cpuid2Header: 8,
      cpuidEntry2: 40,
      msrsHeader: 8,
      msrEntry: 16,
      msrListHeader: 4,
    },
  );
});

Deno.test("KVM_IOCTL pins every request number to linux/kvm.h (hermit-abi.md Appendix A)", () => {
  // A plain record, so that a request added to KVM_IOCTL fails here ("not pinned"), not in tsc.
  const expected: Record<string, number> = {
    GET_API_VERSION: 0xae00,
    GET_MP_STATE: 0x8004ae98,
    CREATE_VM: 0xae01,
    GET_MSR_INDEX_LIST: 0xc004ae02,
    CHECK_EXTENSION: 0xae03,
    GET_VCPU_MMAP_SIZE: 0xae04,
    GET_SUPPORTED_CPUID: 0xc008ae05,
    CREATE_VCPU: 0xae41,
    SET_USER_MEMORY_REGION: 0x4020ae46,
    CREATE_IRQCHIP: 0xae60,
    CREATE_PIT2: 0x4040ae77,
    SET_GSI_ROUTING: 0x4008ae6a,
    IRQFD: 0x4020ae76,
    IOEVENTFD: 0x4040ae79,
    RUN: 0xae80,
    GET_REGS: 0x8090ae81,
    SET_REGS: 0x4090ae82,
    GET_SREGS: 0x8138ae83,
    SET_SREGS: 0x4138ae84,
    SET_MSRS: 0x4008ae89,
    SET_CPUID2: 0x4008ae90,
    SET_MP_STATE: 0x4004ae99,
    SET_GUEST_DEBUG: 0x4048ae9b,
    GET_VCPU_EVENTS: 0x8040ae9f,
    SET_VCPU_EVENTS: 0x4040aea0,
    ENABLE_CAP: 0x4068aea3,
    GET_TSC_KHZ: 0xaea3,
    GET_XCRS: 0x8188aea6,
    SET_XCRS: 0x4188aea7,
    GET_XSAVE: 0x9000aea4,
    SET_XSAVE: 0x5000aea5,
  };
  const hex = (o: Record<string, number>): Record<string, string> =>
    Object.fromEntries(Object.entries(o).map(([k, v]) => [k, `0x${v.toString(16)}`]));
  assert.deepEqual(hex(KVM_IOCTL), hex(expected));
});

Deno.test("ioc() and friends encode like the kernel's _IOC macros, as unsigned numbers", () => {
  assert.equal(ioc(3, 0xae, 0x05, 8), 0xc008ae05);
  assert.equal(io(0xae, 0x80), 0xae80);
  assert.equal(ior(0xae, 0x81, 144), 0x8090ae81);
  assert.equal(iow(0xae, 0x82, 144), 0x4090ae82);
  assert.equal(iowr(0xae, 0x02, 4), 0xc004ae02);
  for (const value of Object.values(KVM_IOCTL)) {
    assert.ok(Number.isSafeInteger(value) && value > 0 && value <= 0xffff_ffff);
  }
});

Deno.test("kvm_run offsets: exit_reason 8, io at 32, sync regs at 304 with rdi at 344", () => {
  assert.equal(RUN.immediateExit, 1);
  assert.equal(RUN.exitReason, 8);
  assert.deepEqual(
    [RUN.ioDirection, RUN.ioSize, RUN.ioPort, RUN.ioCount, RUN.ioDataOffset],
    [32, 33, 34, 36, 40],
  );
  assert.deepEqual(
    [RUN.mmioPhysAddr, RUN.mmioData, RUN.mmioLen, RUN.mmioIsWrite],
    [32, 40, 48, 52],
  );
  assert.equal(RUN.failEntryReason, 32);
  assert.equal(RUN.internalSuberror, 32);
  assert.deepEqual([RUN.validRegs, RUN.dirtyRegs, RUN.syncRegs], [288, 296, 304]);
  assert.equal(RUN.syncRegs + REGS.rdi, 344);
  assert.equal(RUN_SYNC_SREGS, 304 + 144);
});

Deno.test("kvm_regs offsets: rsi 32, rdi 40, rsp 48, rip 128, rflags 136, 8 bytes apart", () => {
  assert.deepEqual([REGS.rax, REGS.rsi, REGS.rdi, REGS.rsp], [0, 32, 40, 48]);
  assert.deepEqual([REGS.rip, REGS.rflags], [128, 136]);
  const offsets = Object.values(REGS);
  offsets.forEach((o, i) => assert.equal(o, 8 * i));
  assert.equal(offsets.length * 8, KVM_REGS_SIZE);
});

Deno.test("kvm_sregs and kvm_segment offsets match Appendix A", () => {
  assert.deepEqual(
    [SREGS.cs, SREGS.ds, SREGS.es, SREGS.fs, SREGS.gs, SREGS.ss, SREGS.tr, SREGS.ldt],
    [0, 24, 48, 72, 96, 120, 144, 168],
  );
  assert.deepEqual([SREGS.gdt, SREGS.idt], [192, 208]);
  assert.deepEqual(
    [SREGS.cr0, SREGS.cr2, SREGS.cr3, SREGS.cr4, SREGS.cr8, SREGS.efer, SREGS.apicBase],
    [224, 232, 240, 248, 256, 264, 272],
  );
  assert.equal(SREGS.interruptBitmap, 280);
  assert.equal(SREGS.interruptBitmap + 32, KVM_SREGS_SIZE); // 256 bits
  assert.deepEqual(SEGMENT, {
    base: 0,
    limit: 8,
    selector: 12,
    type: 14,
    present: 15,
    dpl: 16,
    db: 17,
    s: 18,
    l: 19,
    g: 20,
    avl: 21,
    unusable: 22,
  });
});

Deno.test("KVM exit reasons and constants match linux/kvm.h", () => {
  assert.deepEqual(
    [EXIT.IO, EXIT.DEBUG, EXIT.HLT, EXIT.MMIO, EXIT.SHUTDOWN, EXIT.FAIL_ENTRY],
    [2, 4, 5, 6, 8, 9],
  );
  assert.equal(EXIT.INTERNAL_ERROR, 17);
  assert.equal(EXIT.SYSTEM_EVENT, 24);
  assert.equal(exitName(8), "SHUTDOWN");
  assert.equal(exitName(99), undefined);
  assert.deepEqual([IO_IN, IO_OUT], [0, 1]);
  assert.equal(MP_STATE_RUNNABLE, 0);
  assert.equal(KVM_API_VERSION, 12);
  assert.deepEqual([CAP.X2APIC_API, CAP.X86_DISABLE_EXITS, CAP.SYNC_REGS], [129, 143, 74]);
  assert.deepEqual([CAP.IRQCHIP, CAP.USER_MEMORY, CAP.PIT2, CAP.IMMEDIATE_EXIT], [0, 3, 33, 136]);
  assert.equal(SYNC_REGS.REGS, 1);
});
