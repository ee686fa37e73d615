/**
 * Unit tests of `src/stats_report.ts`: row names and order, the uhyve table
 * layout, CPU runtimes in Rust's Duration format, and the `--stats=json`
 * object. Runs with no permissions.
 * @module
 */

import assert from "node:assert/strict";
import { EXIT } from "../../src/abi/kvm.ts";
import { V1, V2 } from "../../src/hypercall/abi.ts";
import { exitRows, formatDuration, formatStats, statsJson } from "../../src/stats_report.ts";
import { VcpuStats } from "../../src/vcpu/stats.ts";

/** Counters as the run loop would leave them (exits[IO] etc. kept consistent). */
function vcpu(cpu: number, counts: {
  hypercalls?: [number, number][];
  portReads?: number;
  portWrites?: number;
  mmioReads?: number;
  mmioWrites?: number;
  hlt?: number;
  emulated?: number;
  shutdown?: number;
  startedAt?: number;
  stoppedAt?: number;
}): VcpuStats {
  const s = new VcpuStats(cpu);
  let io = 0;
  for (const [port, n] of counts.hypercalls ?? []) {
    s.hypercalls[port] = n;
    io += n;
  }
  s.portReads = counts.portReads ?? 0;
  s.portWrites = counts.portWrites ?? 0;
  s.exits[EXIT.IO] = io + s.portReads + s.portWrites;
  s.mmioReads = counts.mmioReads ?? 0;
  s.mmioWrites = counts.mmioWrites ?? 0;
  s.exits[EXIT.MMIO] = s.mmioReads + s.mmioWrites;
  s.exits[EXIT.HLT] = counts.hlt ?? 0;
  s.emulated = counts.emulated ?? 0;
  s.exits[EXIT.INTERNAL_ERROR] = s.emulated;
  s.exits[EXIT.SHUTDOWN] = counts.shutdown ?? 0;
  s.startedAt = counts.startedAt ?? 0;
  s.stoppedAt = counts.stoppedAt ?? 0;
  return s;
}

Deno.test("exitRows() names exits as uhyve does and sorts by count, then name", () => {
  const rows = exitRows([
    vcpu(0, {
      hypercalls: [[V1.UART, 50], [V1.EXIT, 1], [V1.CMDSIZE, 1], [V2.SERIAL_WRITE_BUFFER, 3]],
      portReads: 7,
      portWrites: 3,
      mmioReads: 2,
      mmioWrites: 1,
      hlt: 4,
      emulated: 2,
      shutdown: 1,
    }),
  ]);
  assert.deepEqual(rows.map((r) => [r.name, r.total]), [
    ["Hypercall(V1(Uart))", 50],
    ["PCIRead", 7],
    ["Hlt", 4],
    ["Hypercall(V2(SerialWriteBuffer))", 3],
    ["PCIWrite", 3],
    ["Emulated", 2],
    ["MMIORead", 2],
    ["Hypercall(V1(Cmdsize))", 1],
    ["Hypercall(V1(Exit))", 1],
    ["MMIOWrite", 1],
    ["Shutdown", 1],
  ]);
});

Deno.test("exitRows() accounts for every KVM exit", () => {
  const s = vcpu(0, { hypercalls: [[V1.FILE_WRITE, 2]], portWrites: 1, emulated: 1 });
  s.exits[EXIT.IO]! += 1; // an OUT to an unknown hypercall port (it stops the VM)
  s.exits[EXIT.INTERNAL_ERROR]! += 1; // an emulation failure
  s.exits[EXIT.FAIL_ENTRY] = 1;
  s.exits[EXIT.DEBUG] = 2;
  s.exits[EXIT.SYSTEM_EVENT] = 1;
  s.exits[50] = 1;
  const rows = exitRows([s]);
  assert.deepEqual(Object.fromEntries(rows.map((r) => [r.name, r.total])), {
    "Hypercall(V1(FileWrite))": 2,
    Debug: 2,
    PCIWrite: 1,
    Emulated: 1,
    UnknownPortWrite: 1,
    InternalError: 1,
    FailEntry: 1,
    SystemEvent: 1,
    "Exit(50)": 1,
  });
  assert.equal(rows.reduce((n, r) => n + r.total, 0), s.totalExits);
});

Deno.test("exitRows() gives per-vCPU counts in vCPU id order and drops empty rows", () => {
  const rows = exitRows([
    vcpu(1, { hypercalls: [[V1.UART, 5]], hlt: 2 }),
    vcpu(0, { hypercalls: [[V1.UART, 3], [V1.EXIT, 1]] }),
  ]);
  assert.deepEqual(rows, [
    { name: "Hypercall(V1(Uart))", total: 8, perCpu: [3, 5] },
    { name: "Hlt", total: 2, perCpu: [0, 2] },
    { name: "Hypercall(V1(Exit))", total: 1, perCpu: [1, 0] },
  ]);
  assert.deepEqual(exitRows([new VcpuStats(0)]), []);
  assert.deepEqual(exitRows([]), []);
});

Deno.test("formatStats() lays the table out as uhyve 0.8 does", () => {
  const out = formatStats([
    vcpu(0, {
      hypercalls: [[V1.UART, 1234], [V1.EXIT, 1]],
      portReads: 12,
      startedAt: 1000,
      stoppedAt: 1012.345678,
    }),
    vcpu(1, { hypercalls: [[V1.UART, 30]], hlt: 5, startedAt: 1001, stoppedAt: 1002.5 }),
  ]);
  assert.equal(
    out,
    [
      "Run statistics:",
      "VM exits:                       total     cpu0    cpu1",
      "  Hypercall(V1(Uart)):           1264     1234      30",
      "  PCIRead:                         12       12",
      "  Hlt:                              5                5",
      "  Hypercall(V1(Exit)):              1        1",
      "CPU runtimes:",
      "  cpu 0: 12.345678ms",
      "  cpu 1: 1.5ms",
      "",
    ].join("\n"),
  );
});

Deno.test("formatStats() widens columns for long names and big counts", () => {
  const out = formatStats([
    vcpu(0, { hypercalls: [[V2.SERIAL_WRITE_BUFFER, 12_345_678]], hlt: 1 }),
  ]);
  const lines = out.split("\n");
  assert.equal(lines[1], "VM exits:                              total       cpu0");
  assert.equal(lines[2], "  Hypercall(V2(SerialWriteBuffer)): 12345678   12345678");
  assert.equal(lines[3], "  Hlt:                                     1          1");
  for (const line of lines) assert.equal(line, line.trimEnd());
});

Deno.test("formatStats() adds boot and run time; skips vCPUs that never ran", () => {
  const out = formatStats([vcpu(0, { hlt: 1, startedAt: 5, stoppedAt: 7 }), vcpu(1, {})], {
    bootMs: 12.3456,
    runMs: 1500,
  });
  assert.equal(
    out,
    [
      "Run statistics:",
      "VM exits:                       total     cpu0    cpu1",
      "  Hlt:                              1        1",
      "CPU runtimes:",
      "  cpu 0: 2ms",
      "Boot time: 12.346 ms (start to the first guest instruction)",
      "Run time: 1500.000 ms",
      "",
    ].join("\n"),
  );
});

Deno.test("formatStats() with no exits still prints the headers", () => {
  assert.equal(
    formatStats([new VcpuStats(0)]),
    "Run statistics:\nVM exits:                       total     cpu0\nCPU runtimes:\n",
  );
});

Deno.test("formatDuration() writes like Rust's Duration Debug", () => {
  assert.equal(formatDuration(0), "0ns");
  assert.equal(formatDuration(0.000999), "999ns");
  assert.equal(formatDuration(0.001), "1µs");
  assert.equal(formatDuration(0.0015), "1.5µs");
  assert.equal(formatDuration(1), "1ms");
  assert.equal(formatDuration(12.345678), "12.345678ms");
  assert.equal(formatDuration(999.999999), "999.999999ms");
  assert.equal(formatDuration(1000), "1s");
  assert.equal(formatDuration(1500), "1.5s");
  assert.equal(formatDuration(1000.000001), "1.000000001s");
  assert.equal(formatDuration(-3), "0ns");
});

Deno.test("statsJson() gives a JSON-ready summary", () => {
  const stats = [
    vcpu(1, { hypercalls: [[V1.UART, 2]], startedAt: 10, stoppedAt: 10.5 }),
    vcpu(0, { hypercalls: [[V1.UART, 3], [V1.EXIT, 1]], startedAt: 9, stoppedAt: 11.0004 }),
    vcpu(2, {}),
  ];
  const json = statsJson(stats, { bootMs: 42.00049, runMs: 2.0004 });
  assert.deepEqual(json, {
    bootMs: 42,
    runMs: 2,
    totalExits: 6,
    cpus: [
      { cpu: 0, runtimeMs: 2, exits: 4 },
      { cpu: 1, runtimeMs: 0.5, exits: 2 },
      { cpu: 2, runtimeMs: null, exits: 0 },
    ],
    exits: [
      { name: "Hypercall(V1(Uart))", total: 5, perCpu: [3, 2, 0] },
      { name: "Hypercall(V1(Exit))", total: 1, perCpu: [1, 0, 0] },
    ],
  });
  assert.deepEqual(JSON.parse(JSON.stringify(json)), json);
});
