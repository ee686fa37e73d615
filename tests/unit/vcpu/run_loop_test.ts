/**
 * The run loop's dispatch, driven by fabricated exits on a fake `kvm_run`
 * (a DataView over a plain ArrayBuffer) and a fake vCPU: hypercalls,
 * the PCI configuration latch across returns to the caller, ports nobody
 * answers, MMIO holes and faults, kicks, EINTR/EAGAIN and triple faults.
 * No KVM, no permissions.
 * @module
 */

import assert from "node:assert/strict";
import { EXIT, IO_OUT, RUN } from "../../../src/abi/kvm.ts";
import { ERRNO } from "../../../src/errno.ts";
import { EXIT_CODE } from "../../../src/exit_codes.ts";
import { V1, V2 } from "../../../src/hypercall/abi.ts";
import type { VcpuFd } from "../../../src/kvm.ts";
import { KvmRun } from "../../../src/kvm/run.ts";
import { OUTCOME, vcpuBuses, VcpuLoop } from "../../../src/vcpu/run_loop.ts";
import { VcpuStats } from "../../../src/vcpu/stats.ts";
import { NetRegisters } from "../../../src/virtio/net_registers.ts";
import { createNetState } from "../../../src/virtio/net_state.ts";
import { fakeContext } from "../../_helpers/hypercall_context.ts";

/** Where KVM puts port I/O data: right after the kvm_run page. */
const IO_DATA = 4096;

type Step = (run: DataView) => number;

/** A vCPU whose KVM_RUN plays a script of exits. */
class FakeVcpu {
  readonly id = 0;
  readonly syncRegs = true;
  readonly runView = new DataView(new ArrayBuffer(2 * 4096));
  readonly kvmRun = new KvmRun(this.runView);
  readonly script: Step[] = [];
  entries = 0;
  run(): number {
    this.entries++;
    const step = this.script.shift();
    if (step === undefined) throw new Error("the script ran out");
    return step(this.runView);
  }
  getRegs(): void {}
  getSregs(): void {}
}

/** An OUT of `size` bytes of `value` to `port`. */
function out(port: number, size: number, value: number): Step {
  return (run) => {
    run.setUint32(RUN.exitReason, EXIT.IO, true);
    run.setUint8(RUN.ioDirection, IO_OUT);
    run.setUint8(RUN.ioSize, size);
    run.setUint16(RUN.ioPort, port, true);
    run.setUint32(RUN.ioCount, 1, true);
    run.setUint32(RUN.ioDataOffset, IO_DATA, true);
    run.setUint32(IO_DATA, value, true);
    return 0;
  };
}

/** An IN of `size` bytes from `port`; the data area is poisoned first. */
function inp(port: number, size: number, seen: number[]): Step[] {
  return [
    (run) => {
      out(port, size, 0xdead_beef)(run);
      run.setUint8(RUN.ioDirection, 0);
      return 0;
    },
    // The next entry reads what the loop left there, as KVM would hand it to the guest.
    (run) => {
      const v = size === 4 ? run.getUint32(IO_DATA, true) : run.getUint8(IO_DATA);
      seen.push(v);
      return ERRNO.EINTR;
    },
  ];
}

function mmio(addr: number, len: number, write: boolean): Step {
  return (run) => {
    run.setUint32(RUN.exitReason, EXIT.MMIO, true);
    run.setUint32(RUN.mmioPhysAddr, addr % 2 ** 32, true);
    run.setUint32(RUN.mmioPhysAddr + 4, Math.floor(addr / 2 ** 32), true);
    run.setUint32(RUN.mmioLen, len, true);
    run.setUint8(RUN.mmioIsWrite, write ? 1 : 0);
    for (let i = 0; i < 8; i++) run.setUint8(RUN.mmioData + i, 0xaa);
    return 0;
  };
}

const exitOnly = (reason: number): Step => (run) => {
  run.setUint32(RUN.exitReason, reason, true);
  return 0;
};

const errno = (e: number): Step => () => e;

/** RDI in the synced registers (kvm_regs: rdi is the sixth u64). */
function withRdi(step: Step, rdi: number): Step {
  return (run) => {
    run.setBigInt64(RUN.syncRegs + 40, BigInt(rdi), true);
    return step(run);
  };
}

/** A loop over a fake vCPU; `withNet` adds the virtio-net function, `yieldEveryMs` pauses. */
function setUp(
  options: { withNet?: boolean; yieldEveryMs?: number } = {},
): { vcpu: FakeVcpu; loop: VcpuLoop; output: () => string; stats: VcpuStats } {
  const vcpu = new FakeVcpu();
  const fake = fakeContext();
  const stats = new VcpuStats(0);
  const asVcpu = vcpu as unknown as VcpuFd;
  const nothing = (): void => {};
  const net = options.withNet
    ? new NetRegisters(createNetState(new Uint8Array(6)), fake.mem, {
      wake: nothing,
      interrupt: nothing,
      notify: nothing,
    })
    : null;
  const loop = new VcpuLoop({
    vcpu: asVcpu,
    mem: fake.mem,
    ctx: fake.ctx,
    stats,
    control: new Int32Array(1),
    xsaveLayout: new Map(),
    buses: vcpuBuses(asVcpu, { ctx: fake.ctx, stats, net, ioapic: null }),
    ...(options.yieldEveryMs === undefined ? {} : { yieldEveryMs: options.yieldEveryMs }),
  });
  return { vcpu, loop, output: () => fake.output().stdout, stats };
}

Deno.test("VcpuLoop: v1 Uart and v2 SerialWriteByte reach the guest's stdout; Exit stops with its code", () => {
  const { vcpu, loop, output, stats } = setUp();
  vcpu.script.push(
    out(V1.UART, 1, 0x68),
    withRdi(out(V2.SERIAL_WRITE_BYTE, 4, 0), 0x69),
    withRdi(out(V2.EXIT, 4, 0), -3),
  );
  assert.equal(loop.run(), OUTCOME.STOPPED);
  assert.equal(loop.stop?.kind, "exit");
  assert.equal(loop.stop?.code, -3, "RDI read signed from the synced registers");
  assert.equal(output(), "hi");
  assert.equal(stats.hypercalls[V1.UART], 1);
  assert.equal(stats.exits[EXIT.IO], 3);
  assert.equal(stats.portWrites, 0, "hypercalls are not counted as port writes");
});

Deno.test("VcpuLoop: the PCI address latched at 0xCF8 survives every return to the caller", () => {
  const { vcpu, loop } = setUp();
  const seen: number[] = [];
  for (let i = 0; i < 500; i++) {
    vcpu.script.push(out(0xcf8, 4, 0x8000_0000), errno(ERRNO.EINTR));
    vcpu.script.push(...inp(0xcf8, 4, seen));
    assert.equal(loop.run(), OUTCOME.INTERRUPTED); // after the OUT: the caller's turn
    assert.equal(loop.run(), OUTCOME.INTERRUPTED); // the IN, then the check
  }
  assert.equal(seen.length, 500);
  assert.ok(seen.every((v) => v === 0x8000_0000), "the address reads back as latched");
});

Deno.test("VcpuLoop: PCI data reads of an empty bus give all ones; a yield keeps the latch", () => {
  const { vcpu, loop } = setUp();
  const seen: number[] = [];
  vcpu.script.push(out(0xcf8, 4, 0x8000_0008), errno(ERRNO.EINTR), ...inp(0xcfc, 4, seen));
  vcpu.script.push(...inp(0xcf8, 4, seen));
  for (let i = 0; i < 3; i++) loop.run();
  assert.deepEqual(seen, [0xffff_ffff, 0x8000_0008]);
});

Deno.test("VcpuLoop: a port nobody answers: writes vanish, reads give all ones", () => {
  const { vcpu, loop, stats } = setUp();
  const seen: number[] = [];
  vcpu.script.push(out(0x80, 1, 0), ...inp(0x61, 1, seen));
  assert.equal(loop.run(), OUTCOME.INTERRUPTED);
  assert.deepEqual(seen, [0xff]);
  assert.equal(stats.portWrites, 1);
  assert.equal(stats.portReads, 1);
});

Deno.test("VcpuLoop: an unknown port in the hypercall region stops the VM (82) with a register dump", () => {
  const { vcpu, loop } = setUp();
  vcpu.script.push(out(0x1234, 4, 0));
  assert.equal(loop.run(), OUTCOME.STOPPED);
  assert.equal(loop.stop?.code, EXIT_CODE.GUEST_PROTOCOL);
  assert.match(loop.stop!.message, /port 0x1234/);
  assert.match(loop.stop!.detail, /vCPU 0 registers/);
});

Deno.test("VcpuLoop: MP-table holes read zeroes; other MMIO outside RAM stops the VM (83)", () => {
  const { vcpu, loop } = setUp();
  let data = -1;
  vcpu.script.push(mmio(0xf_0010, 4, false), (run) => {
    data = run.getUint32(RUN.mmioData, true);
    return ERRNO.EINTR;
  });
  assert.equal(loop.run(), OUTCOME.INTERRUPTED);
  assert.equal(data, 0);
  vcpu.script.push(mmio(0xfe00_0000, 4, true));
  assert.equal(loop.run(), OUTCOME.STOPPED, "no --net: the window is not there");
  assert.equal(loop.stop?.code, EXIT_CODE.GUEST_BAD_MEMORY_ACCESS);
  assert.match(loop.stop!.message, /wrote 4 bytes at guest-physical 0xfe000000/);
});

Deno.test("VcpuLoop: EAGAIN retries, EINTR returns, a set control word kicks before KVM_RUN", () => {
  const { vcpu, loop } = setUp();
  vcpu.script.push(errno(ERRNO.EAGAIN), errno(ERRNO.EINTR));
  assert.equal(loop.run(), OUTCOME.INTERRUPTED);
  assert.equal(vcpu.entries, 2);
  loop.options.control[0] = 1;
  assert.equal(loop.run(), OUTCOME.KICKED);
  assert.equal(vcpu.entries, 2, "no KVM_RUN once asked to stop");
});

Deno.test("VcpuLoop: HLT resumes, SHUTDOWN is a triple fault (80), an unknown exit a vCPU error (84)", () => {
  const { vcpu, loop } = setUp();
  vcpu.script.push(exitOnly(EXIT.HLT), exitOnly(EXIT.SHUTDOWN));
  assert.equal(loop.run(), OUTCOME.STOPPED);
  assert.equal(loop.stop?.code, EXIT_CODE.GUEST_TRIPLE_FAULT);
  vcpu.script.push(exitOnly(63));
  assert.equal(loop.run(), OUTCOME.STOPPED);
  assert.equal(loop.stop?.code, EXIT_CODE.GUEST_VCPU_ERROR);
});

Deno.test("VcpuLoop: KVM_EXIT_DEBUG is reported to the caller", () => {
  const { vcpu, loop } = setUp();
  vcpu.script.push(exitOnly(EXIT.DEBUG));
  assert.equal(loop.run(), OUTCOME.DEBUG);
});

Deno.test("VcpuLoop: with --net, 0xCF8/0xCFC pairs across many yields never read all ones", () => {
  // yieldEveryMs 0: the loop returns to its caller every few exits, as the main thread's does.
  const { vcpu, loop } = setUp({ withNet: true, yieldEveryMs: 0 });
  const seen: number[] = [];
  const record = (step: Step): Step => (run) => {
    seen.push(run.getUint32(IO_DATA, true));
    return step(run);
  };
  const readData: Step = (run) => {
    out(0xcfc, 4, 0xdead_beef)(run);
    run.setUint8(RUN.ioDirection, 0);
    return 0;
  };
  const pairs = 2000;
  for (let i = 0; i < pairs; i++) {
    vcpu.script.push(i === 0 ? out(0xcf8, 4, 0x8000_0000) : record(out(0xcf8, 4, 0x8000_0000)));
    vcpu.script.push(readData);
  }
  vcpu.script.push(record(errno(ERRNO.EINTR)));
  let yields = 0;
  for (;;) {
    const outcome = loop.run();
    if (outcome === OUTCOME.INTERRUPTED) break;
    assert.equal(outcome, OUTCOME.YIELDED);
    yields++;
  }
  assert.ok(yields > 100, `${yields} yields`);
  assert.equal(seen.length, pairs);
  assert.ok(seen.every((v) => v === 0x1041_1af4), "every data read names the virtio-net card");
});
