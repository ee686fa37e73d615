import assert from "node:assert/strict";
import { CODE_SEGMENT, DATA_SEGMENT } from "../../../src/boot/gdt.ts";
import * as layout from "../../../src/boot/layout.ts";
import {
  BOOT_CR0,
  BOOT_CR4,
  BOOT_EFER,
  BOOT_MSRS,
  BOOT_RFLAGS,
  IA32_MISC_ENABLE,
  initialRegisters,
  initialSpecialRegisters,
} from "../../../src/boot/registers.ts";

Deno.test("initialRegisters() sets RIP, RSP (stack bottom), RDI, RSI and RFLAGS", () => {
  const guest = 0x44e0_0000;
  const kernel = guest + layout.KERNEL_OFFSET;
  const regs = initialRegisters({
    entry: kernel + 0x1234,
    bootInfo: guest + layout.BOOT_INFO_OFFSET,
    cpuId: 3,
    stack: kernel - layout.BOOT_STACK_SIZE,
  });
  assert.deepEqual(regs, {
    rip: kernel + 0x1234,
    rsp: guest + 0x38000,
    rdi: guest + 0x9000,
    rsi: 3,
    rflags: 2,
  });
  assert.equal(BOOT_RFLAGS, 2);
});

Deno.test("initialSpecialRegisters() gives long mode with the boot PML4 and GDT", () => {
  const guest = 0x1_0000_0000;
  const sregs = initialSpecialRegisters({
    guestAddress: guest,
    gdt: { base: guest + 0x1000, limit: 23 },
  });
  assert.deepEqual(sregs, {
    cr0: 0x8000_0031,
    cr3: guest + 0x10000,
    cr4: 0x20,
    efer: 0xd00,
    cs: CODE_SEGMENT,
    ds: DATA_SEGMENT,
    es: DATA_SEGMENT,
    ss: DATA_SEGMENT,
    gdt: { base: guest + 0x1000, limit: 23 },
  });
  assert.equal(BOOT_CR0, 0x80000031);
  assert.equal(BOOT_CR4, 0x20);
  assert.equal(BOOT_EFER, 0xd00);
});

Deno.test("BOOT_MSRS sets only IA32_MISC_ENABLE = 1", () => {
  assert.equal(IA32_MISC_ENABLE, 0x1a0);
  assert.deepEqual(BOOT_MSRS, [{ index: 0x1a0, data: 1 }]);
  assert.ok(Object.isFrozen(BOOT_MSRS));
});

Deno.test("layout constants match hermit-abi.md §2.2", () => {
  assert.equal(layout.GDT_OFFSET, 0x1000);
  assert.equal(layout.FDT_OFFSET, 0x5000);
  assert.equal(layout.FDT_OFFSET + layout.FDT_MAX_SIZE, layout.BOOT_INFO_OFFSET);
  assert.equal(layout.BOOT_INFO_OFFSET, 0x9000);
  assert.equal(layout.BOOT_INFO_SIZE, 128);
  assert.equal(layout.PML4_OFFSET, 0x10000);
  assert.equal(layout.PAGE_TABLES_OFFSET, layout.PML4_OFFSET + 0x1000);
  assert.equal((layout.PAGE_TABLES_END - layout.PAGE_TABLES_OFFSET) / 0x1000, 31);
  assert.equal(layout.KERNEL_OFFSET, 0x40000);
  assert.equal(layout.BOOT_STACK_SIZE, 0x8000);
  // the boot stack sits between the page-table frames and the kernel
  assert.ok(layout.KERNEL_OFFSET - layout.BOOT_STACK_SIZE >= layout.PAGE_TABLES_END);
  assert.equal(layout.V1_RAM_HIGHEST + 1, layout.KVM_32BIT_GAP_START);
  assert.equal(layout.V2_RAM_LOWEST, layout.KVM_32BIT_GAP_END);
});
