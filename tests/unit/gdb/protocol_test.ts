/**
 * Unit tests of `src/gdb/protocol.ts` against a fake target (plain
 * ArrayBuffer memory with an unmapped page, fake register files): every
 * packet type, malformed requests, and the stop replies. No permissions.
 * @module
 */

import assert from "node:assert/strict";
import fc from "fast-check";
import type { VirtualMemory } from "../../../src/gdb/breakpoints.ts";
import {
  encodePacket,
  fromHex,
  PacketDecoder,
  toHex,
  unescapeBinary,
} from "../../../src/gdb/packet.ts";
import {
  type GdbOutcome,
  GdbSession,
  type GdbTarget,
  MAX_MEMORY_READ,
} from "../../../src/gdb/protocol.ts";
import {
  GDB_REGISTERS,
  REGISTER_FILE_SIZE,
  REGISTER_NUMBER,
  REGISTER_OFFSETS,
  TARGET_XML,
} from "../../../src/gdb/target_xml.ts";

const PAGE = 4096;
/** Guest-virtual base of the fake memory: pages 0x10000, 0x11000, 0x12000 (unmapped), 0x13000. */
const BASE = 0x10000;
const UNMAPPED_PAGE = BASE + 2 * PAGE;

class FakeMemory implements VirtualMemory {
  readonly bytes = new Uint8Array(4 * PAGE);
  #mapped(addr: number, length: number): boolean {
    if (addr < BASE || addr + length > BASE + this.bytes.length) return false;
    for (let a = addr; a < addr + length; a++) {
      if (a >= UNMAPPED_PAGE && a < UNMAPPED_PAGE + PAGE) return false;
    }
    return true;
  }
  read(addr: number, length: number): Uint8Array | null {
    return this.#mapped(addr, length) ? this.bytes.slice(addr - BASE, addr - BASE + length) : null;
  }
  write(addr: number, data: Uint8Array): boolean {
    if (!this.#mapped(addr, data.length)) return false;
    this.bytes.set(data, addr - BASE);
    return true;
  }
}

class FakeTarget implements GdbTarget {
  readonly threadCount = 2;
  readonly loadOffset = 0x20_0000;
  readonly files = [new Uint8Array(REGISTER_FILE_SIZE), new Uint8Array(REGISTER_FILE_SIZE)];
  readonly mem = new FakeMemory();
  reads: number[] = [];
  readRegisters(thread: number, into: Uint8Array): void {
    this.reads.push(thread);
    into.set(this.files[thread - 1]!);
  }
  writeRegisters(thread: number, from: Uint8Array): boolean {
    this.files[thread - 1]!.set(from);
    return true;
  }
  memory(): VirtualMemory {
    return this.mem;
  }
}

const enc = new TextEncoder();

function setup(): { target: FakeTarget; session: GdbSession; send: (p: string) => GdbOutcome } {
  const target = new FakeTarget();
  // Distinct registers: rax of thread N = 0x1111 * N, rip = 0x10000 + N.
  for (let t = 1; t <= 2; t++) {
    const view = new DataView(target.files[t - 1]!.buffer);
    view.setBigUint64(0, BigInt(0x1111 * t), true);
    view.setBigUint64(REGISTER_OFFSETS[REGISTER_NUMBER.rip!]!, BigInt(0x10000 + t), true);
  }
  const session = new GdbSession(target);
  return { target, session, send: (p) => session.handle(enc.encode(p)) };
}

function text(outcome: GdbOutcome): string | null {
  const r = outcome.reply;
  return r === null ? null : typeof r === "string" ? r : new TextDecoder("latin1").decode(r);
}

Deno.test("qSupported advertises PacketSize, the target description, no-ack, swbreak/hwbreak", () => {
  const { send } = setup();
  const reply = text(send("qSupported:multiprocess+;swbreak+;hwbreak+;xmlRegisters=i386"))!;
  for (
    const feature of [
      "PacketSize=4000",
      "qXfer:features:read+",
      "QStartNoAckMode+",
      "swbreak+",
      "hwbreak+",
    ]
  ) {
    assert.ok(reply.split(";").includes(feature), `${feature} in ${reply}`);
  }
});

Deno.test("QStartNoAckMode switches ack mode off", () => {
  const { session, send } = setup();
  assert.equal(session.noAck, false);
  assert.equal(text(send("QStartNoAckMode")), "OK");
  assert.equal(session.noAck, true);
});

Deno.test("qXfer:features:read serves target.xml in parts, m… then l…", () => {
  const { send } = setup();
  let xml = "";
  for (let offset = 0;;) {
    const r = text(send(`qXfer:features:read:target.xml:${offset.toString(16)},100`))!;
    xml += r.slice(1);
    offset += r.length - 1;
    if (r[0] === "l") break;
    assert.equal(r[0], "m");
  }
  assert.equal(xml, TARGET_XML);
  assert.equal(text(send("qXfer:features:read:other.xml:0,100")), "E00");
  assert.equal(text(send("qXfer:features:read:target.xml:zz")), "E01");
  // Past the end: an empty last part.
  assert.equal(text(send(`qXfer:features:read:target.xml:${(1e6).toString(16)},10`)), "l");
});

Deno.test("? reports the initial stop; g/G and p/P read and write registers of the selected thread", () => {
  const { target, send } = setup();
  assert.equal(text(send("?")), "T05thread:1;");
  const g = text(send("g"))!;
  assert.equal(g.length, REGISTER_FILE_SIZE * 2);
  assert.equal(g.slice(0, 16), "1111000000000000");
  assert.equal(text(send("Hg2")), "OK");
  assert.equal(text(send("g"))!.slice(0, 16), "2222000000000000");
  assert.equal(text(send(`p${REGISTER_NUMBER.rip!.toString(16)}`)), "0200010000000000");
  // P writes one register of the selected thread only.
  assert.equal(text(send(`P${REGISTER_NUMBER.rbx!.toString(16)}=efbeadde00000000`)), "OK");
  assert.equal(new DataView(target.files[1]!.buffer).getUint32(8, true), 0xdeadbeef);
  assert.equal(new DataView(target.files[0]!.buffer).getUint32(8, true), 0);
  // G replaces the whole file.
  const all = new Uint8Array(REGISTER_FILE_SIZE).fill(0x5a);
  assert.equal(text(send(`G${toHex(all)}`)), "OK");
  assert.deepEqual(target.files[1], all);
  // Every register has the width its XML entry says.
  GDB_REGISTERS.forEach((r, n) => {
    assert.equal(text(send(`p${n.toString(16)}`))!.length, r.bits / 4, r.name);
  });
});

Deno.test("g/G/p/P reject malformed input", () => {
  const { send } = setup();
  assert.equal(text(send("Gabc")), "E01", "odd length");
  assert.equal(text(send("G00")), "E01", "short");
  assert.equal(text(send(`G${"zz".repeat(REGISTER_FILE_SIZE)}`)), "E01", "not hex");
  assert.equal(text(send("p999")), "E00");
  assert.equal(text(send("pxyz")), "E00");
  assert.equal(text(send("P0=12")), "E01", "wrong width");
  assert.equal(text(send("P0")), "E00", "no value");
  assert.equal(text(send("Hg9")), "E01", "no such thread");
  assert.equal(text(send("Hx1")), "E01");
});

Deno.test("m reads memory; a read into an unmapped page is cut short; unmapped is E14", () => {
  const { target, send } = setup();
  target.mem.bytes.set([1, 2, 3, 4], 0);
  assert.equal(text(send(`m${BASE.toString(16)},4`)), "01020304");
  // Spanning two mapped pages: both translated.
  target.mem.bytes.set([0xaa, 0xbb], PAGE - 1);
  assert.equal(text(send(`m${(BASE + PAGE - 1).toString(16)},2`)), "aabb");
  // Running into the unmapped page: what came before it.
  const short = text(send(`m${(UNMAPPED_PAGE - 2).toString(16)},10`))!;
  assert.equal(short, "0000");
  assert.equal(text(send(`m${UNMAPPED_PAGE.toString(16)},4`)), "E14");
  assert.equal(text(send("m0,4")), "E14");
  assert.equal(text(send("mffffffffffffffff,4")), "E01", "beyond 2^53: not a usable address");
  assert.equal(text(send("m10000")), "E01");
  assert.equal(text(send("mzz,4")), "E01");
  assert.equal(text(send(`m${BASE.toString(16)},0`)), "");
});

Deno.test("m clamps a huge length to what fits in one packet", () => {
  const { send } = setup();
  const r = text(send(`m${BASE.toString(16)},ffffffff`))!;
  // The mapped run from BASE is two pages; the clamp is larger, so we get both pages.
  assert.equal(r.length, Math.min(MAX_MEMORY_READ, 2 * PAGE) * 2);
});

Deno.test("M and X write memory; length mismatches and unmapped targets fail without writing", () => {
  const { target, send, session } = setup();
  assert.equal(text(send(`M${BASE.toString(16)},2:beef`)), "OK");
  assert.deepEqual(target.mem.bytes.subarray(0, 2), Uint8Array.of(0xbe, 0xef));
  assert.equal(text(send(`M${BASE.toString(16)},3:beef`)), "E01");
  assert.equal(text(send(`M${BASE.toString(16)},2:zzzz`)), "E01");
  assert.equal(text(send(`M${BASE.toString(16)},2`)), "E01");
  // A write straddling into the unmapped page writes nothing at all.
  assert.equal(text(send(`M${(UNMAPPED_PAGE - 1).toString(16)},2:1122`)), "E14");
  assert.equal(target.mem.bytes[UNMAPPED_PAGE - BASE - 1], 0);
  // X: binary data with } escapes ($ # } * arrive escaped).
  const x = new Uint8Array([
    ...enc.encode(`X${(BASE + 8).toString(16)},3:`),
    0x7d,
    0x04,
    0x41,
    0x7d,
    0x5d,
  ]);
  assert.equal(text(session.handle(x)), "OK");
  assert.deepEqual(target.mem.bytes.subarray(8, 11), Uint8Array.of(0x24, 0x41, 0x7d));
  assert.equal(text(send(`X${BASE.toString(16)},0:`)), "OK", "the empty probe GDB sends");
  assert.equal(text(send(`X${BASE.toString(16)},2:a`)), "E01", "short data");
  assert.equal(text(send("Xnothing")), "E01");
  assert.equal(
    text(session.handle(Uint8Array.of(0x58, 0x31, 0x2c, 0x31, 0x3a, 0x7d))),
    "E01",
    "trailing }",
  );
});

Deno.test("threads: qfThreadInfo/qsThreadInfo, qC, T, qThreadExtraInfo, Hg/Hc", () => {
  const { send } = setup();
  assert.equal(text(send("qfThreadInfo")), "m1,2");
  assert.equal(text(send("qsThreadInfo")), "l");
  assert.equal(text(send("qC")), "QC1");
  assert.equal(text(send("T2")), "OK");
  assert.equal(text(send("T3")), "E01");
  assert.equal(text(send("Tq")), "E01");
  assert.equal(text(send("qThreadExtraInfo,2")), toHex(enc.encode("vCPU 1")));
  assert.equal(text(send("Hg0")), "OK", "any thread");
  assert.equal(text(send("Hc-1")), "OK", "all threads");
  assert.equal(text(send("Hg2")), "OK");
  assert.equal(text(send("qC")), "QC2");
});

Deno.test("c, s, C, S and vCont become resume actions; vCont? lists c/C/s/S", () => {
  const { send, target } = setup();
  assert.equal(text(send("vCont?")), "vCont;c;C;s;S");
  assert.deepEqual(send("c").action, { type: "resume", step: null });
  assert.deepEqual(send("s").action, { type: "resume", step: 1 });
  assert.deepEqual(send("C05").action, { type: "resume", step: null });
  assert.deepEqual(send("S05").action, { type: "resume", step: 1 });
  assert.deepEqual(send("vCont;c").action, { type: "resume", step: null });
  assert.deepEqual(send("vCont;s:2;c").action, { type: "resume", step: 2 });
  assert.deepEqual(send("vCont;S05:1;c").action, { type: "resume", step: 1 });
  assert.equal(text(send("vCont;x")), "E01");
  assert.equal(text(send("vCont;s:9")), "E01");
  assert.equal(text(send("vCont;s:zz")), "E01");
  assert.equal(text(send("czz")), "E01");
  // c ADDR resumes at ADDR: RIP is set first.
  assert.deepEqual(send("c10040").action, { type: "resume", step: null });
  const rip = new DataView(target.files[0]!.buffer).getBigUint64(
    REGISTER_OFFSETS[REGISTER_NUMBER.rip!]!,
    true,
  );
  assert.equal(rip, 0x10040n);
  // The resume packets have no immediate reply: the stop reply comes later.
  assert.equal(send("c").reply, null);
});

Deno.test("Z0/z0 write and restore int3; Z1-Z4 fill the debug-register slots", () => {
  const { target, session, send } = setup();
  target.mem.bytes[0x10] = 0x55;
  assert.equal(text(send(`Z0,${(BASE + 0x10).toString(16)},1`)), "OK");
  assert.equal(target.mem.bytes[0x10], 0xcc);
  assert.equal(text(send(`Z0,${(BASE + 0x10).toString(16)},1`)), "OK", "twice is harmless");
  assert.equal(text(send(`z0,${(BASE + 0x10).toString(16)},1`)), "OK");
  assert.equal(target.mem.bytes[0x10], 0x55);
  assert.equal(text(send(`z0,${(BASE + 0x10).toString(16)},1`)), "E14", "nothing to remove");
  assert.equal(text(send(`Z0,${UNMAPPED_PAGE.toString(16)},1`)), "E14");
  assert.equal(text(send(`Z1,${BASE.toString(16)},1;X2,ab`)), "OK", "conditions are ignored");
  assert.equal(text(send(`Z2,${(BASE + 8).toString(16)},8`)), "OK");
  assert.equal(text(send(`Z3,${(BASE + 16).toString(16)},4`)), "OK");
  assert.equal(text(send(`Z4,${(BASE + 32).toString(16)},2`)), "OK");
  assert.equal(text(send(`Z2,${(BASE + 64).toString(16)},1`)), "E01", "all four slots in use");
  assert.equal(text(send(`Z2,${(BASE + 3).toString(16)},4`)), "E01", "misaligned");
  assert.deepEqual(session.breakpoints.hardwareSlots.map((s) => s?.kind), [
    "exec",
    "write",
    "read",
    "access",
  ]);
  assert.equal(text(send(`z2,${(BASE + 8).toString(16)},8`)), "OK");
  assert.equal(session.breakpoints.hardwareSlots[1], null);
  assert.equal(text(send("Z5,0,1")), "", "unknown type: unsupported");
  assert.equal(text(send("Z0,zz,1")), "E01");
  assert.equal(text(send("Z0")), "E01");
});

Deno.test("D detaches, k kills, unknown packets get the empty reply", () => {
  const { send } = setup();
  assert.deepEqual(send("D"), { reply: "OK", action: { type: "detach" } });
  assert.deepEqual(send("D;1"), { reply: "OK", action: { type: "detach" } });
  assert.deepEqual(send("k"), { reply: null, action: { type: "kill" } });
  for (const p of ["", "vMustReplyEmpty", "qTStatus", "!", "QNonStop:1", "\x00\xff", "b9600"]) {
    assert.deepEqual(send(p), { reply: "", action: { type: "none" } }, JSON.stringify(p));
  }
  assert.equal(text(send("qAttached")), "1");
  assert.equal(text(send("qOffsets")), "Text=200000;Data=200000;Bss=200000");
  assert.equal(text(send("qSymbol::")), "OK");
});

Deno.test("stop replies: T05 with swbreak/hwbreak/watch, T02 for Ctrl-C, W on exit, X on a signal", () => {
  const { session, send } = setup();
  assert.equal(session.stopReply({ type: "signal", thread: 2, signal: 5 }), "T05thread:2;");
  assert.equal(text(send("qC")), "QC2", "the stopped thread becomes current");
  assert.equal(
    session.stopReply({ type: "signal", thread: 1, signal: 5, reason: { kind: "swbreak" } }),
    "T05swbreak:;thread:1;",
  );
  assert.equal(
    session.stopReply({ type: "signal", thread: 1, signal: 5, reason: { kind: "hwbreak" } }),
    "T05hwbreak:;thread:1;",
  );
  assert.equal(
    session.stopReply({
      type: "signal",
      thread: 1,
      signal: 5,
      reason: { kind: "watch", addr: 0x1008356c0 },
    }),
    "T05watch:1008356c0;thread:1;",
  );
  assert.equal(session.stopReply({ type: "signal", thread: 1, signal: 2 }), "T02thread:1;");
  assert.equal(session.stopReply({ type: "exited", code: 7 }), "W07");
  assert.equal(session.stopReply({ type: "exited", code: -1 }), "Wff");
  assert.equal(text(send("?")), "Wff", "? repeats the last stop");
  assert.equal(session.stopReply({ type: "terminated", signal: 9 }), "X09");
});

Deno.test("a target that throws gets an error reply, not an exception", () => {
  const { target, send } = setup();
  target.readRegisters = () => {
    throw new Error("ioctl failed");
  };
  assert.equal(text(send("g")), "E01");
  assert.equal(text(send("p0")), "E01");
});

Deno.test("fromHex of a g reply gives back the register file", () => {
  const { target, send } = setup();
  assert.deepEqual(fromHex(text(send("g"))!), target.files[0]);
});

Deno.test("property: any packet, valid-looking or garbage, gets a reply or an action, never a throw", () => {
  // Packets built from the real commands' first letters plus random tails, and raw bytes.
  const heads = [
    "g",
    "G",
    "p",
    "P",
    "m",
    "M",
    "X",
    "Z0,",
    "z1,",
    "Z2,",
    "H",
    "T",
    "c",
    "s",
    "vCont;",
    "q",
    "Q",
    "D",
    "?",
  ];
  const packet = fc.oneof(
    fc.tuple(fc.constantFrom(...heads), fc.string({ maxLength: 40 })).map(([h, t]) =>
      enc.encode(h + t)
    ),
    fc.uint8Array({ maxLength: 64 }),
  );
  fc.assert(
    fc.property(fc.array(packet, { maxLength: 20 }), (packets) => {
      const { session, target } = setup();
      for (const p of packets) {
        const out = session.handle(p);
        assert.ok(out.reply !== null || out.action.type !== "none", "something is said or done");
        // Nothing ever writes outside the fake memory (FakeMemory checks every access).
        assert.equal(target.mem.bytes.length, 4 * PAGE);
      }
    }),
    { numRuns: 2000, seed: 10 },
  );
});

Deno.test("property: the decoder splits any byte stream without throwing, and framing round-trips", () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ maxLength: 300 }),
      fc.integer({ min: 1, max: 50 }),
      (payload, cut) => {
        const framed = encodePacket(payload);
        const d = new PacketDecoder();
        const got = [...d.push(framed.subarray(0, cut)), ...d.push(framed.subarray(cut))];
        assert.equal(got.length, 1);
        const first = got[0]!;
        assert.ok(first.type === "packet");
        assert.deepEqual(unescapeBinary(first.payload), payload);
      },
    ),
    { numRuns: 1000, seed: 11 },
  );
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 500 }), (noise) => {
      new PacketDecoder().push(noise);
    }),
    { numRuns: 1000, seed: 12 },
  );
});
