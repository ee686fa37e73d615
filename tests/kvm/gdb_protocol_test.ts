/**
 * The GDB stub (`-s/--gdb-port`, `main.ts` as a subprocess) under a
 * protocol-level client: every packet it serves to the `gdb_target` guest,
 * malformed input, Ctrl-C, kill, detach, a debugger that hangs up, SIGTERM, a
 * taken port, no `--allow-net`, a guest fault, and one thread per vCPU. Needs
 * /dev/kvm, `--allow-run` (deno, gcc, nm), `--allow-read`, `--allow-write`
 * (the guest build cache) and `--allow-net` (loopback).
 * @module
 */

import assert from "node:assert/strict";
import { EXIT_CODE } from "../../src/exit_codes.ts";
import { encodePacket, fromHex, toHex } from "../../src/gdb/packet.ts";
import { REGISTER_FILE_SIZE, REGISTER_NUMBER, REGISTER_OFFSETS } from "../../src/gdb/target_xml.ts";
import { buildGuest } from "../_helpers/guests.ts";
import { runDhyve } from "../_helpers/cli.ts";
import { kvmTest } from "../_helpers/kvm.ts";
import {
  Client,
  enc,
  FIXED,
  requireLoopback,
  STUB_PERMISSIONS,
  symbols,
  WAIT_MS,
  withDhyve,
} from "../_helpers/gdb_stub.ts";

kvmTest(
  "gdb stub: protocol client — every packet, malformed input, breakpoints, step, watch, exit",
  async () => {
    const elf = await buildGuest("gdb_target", FIXED);
    const sym = await symbols(elf);
    const bump = sym.gdb_bump!;
    const counter = sym.gdb_counter!;
    await withDhyve(elf, [], async (dhyve) => {
      // The load address comes first, so add-symbol-file offsets can be worked out.
      await dhyve.waitForStderr(/Kernel loaded at 0x100800000: symbol offset 0x0/);
      const gdb = await Client.connect(await dhyve.port());
      try {
        // Noise, a bad checksum and an overlong packet: "-" each time, and the session goes on.
        await gdb.raw("garbage");
        await gdb.raw("$g#00");
        assert.equal((await gdb.next()).type, "nack");
        await gdb.raw("$g#zz");
        assert.equal((await gdb.next()).type, "nack");
        await gdb.raw(`$${"9".repeat(0x5000)}#00`);
        assert.equal((await gdb.next()).type, "nack");

        const supported = await gdb.ask("qSupported:swbreak+;hwbreak+");
        assert.match(supported, /PacketSize=4000/);
        assert.match(supported, /qXfer:features:read\+/);
        const xml = await gdb.ask("qXfer:features:read:target.xml:0,3fff");
        assert.equal(xml[0], "l");
        assert.match(xml, /i386:x86-64/);
        assert.equal(await gdb.ask("QStartNoAckMode"), "OK");
        gdb.noAck = true;

        assert.equal(await gdb.ask("?"), "T05thread:1;");
        assert.equal(await gdb.ask("qfThreadInfo"), "m1");
        assert.equal(await gdb.ask("qsThreadInfo"), "l");
        assert.equal(await gdb.ask("qC"), "QC1");
        assert.equal(await gdb.ask("Hg1"), "OK");
        assert.equal(await gdb.ask("vCont?"), "vCont;c;C;s;S");
        assert.equal(await gdb.ask("qAttached"), "1");
        assert.equal(await gdb.ask("qSymbol::"), "OK");
        assert.equal(await gdb.ask("vMustReplyEmpty"), "");
        assert.equal(await gdb.ask("qNoSuchThing"), "");

        // Registers: the guest has not run; RIP is the ELF entry (_start).
        const g = fromHex(await gdb.ask("g"))!;
        assert.equal(g.length, REGISTER_FILE_SIZE);
        const rip = new DataView(g.buffer).getBigUint64(
          REGISTER_OFFSETS[REGISTER_NUMBER.rip!]!,
          true,
        );
        assert.equal(Number(rip), sym._start);
        assert.equal(await gdb.register("rip"), BigInt(sym._start!));
        assert.equal(await gdb.register("cs"), 8n, "the boot GDT's code selector");
        assert.equal(await gdb.register("mxcsr"), 0x1f80n, "the reset MXCSR, via XSAVE");
        assert.equal(await gdb.register("fs_base"), 0n, "no TLS set up yet");
        // fs_base is writable (Hermit keeps TLS there); put it back afterwards.
        const fsBase = REGISTER_NUMBER.fs_base!.toString(16);
        assert.equal(await gdb.ask(`P${fsBase}=0010000000000000`), "OK");
        assert.equal(await gdb.register("fs_base"), 0x1000n);
        assert.equal(await gdb.ask(`P${fsBase}=0000000000000000`), "OK");
        assert.equal(await gdb.ask("Gzz"), "E01");
        assert.equal(await gdb.ask("p999"), "E00");

        // Memory through the page tables; unmapped and malformed reads are errors, not crashes.
        const code = await gdb.read(bump, 16);
        assert.ok(code !== null && code.length === 16);
        assert.equal(await gdb.ask("m7fff00000000,8"), "E14");
        assert.equal(await gdb.ask("mffffffffffffffff,8"), "E01");
        assert.equal(await gdb.ask("mzz,8"), "E01");
        const big = await gdb.ask(`m${(bump & ~0xfff).toString(16)},100000`);
        assert.ok(big.length > 0 && big.length <= 0x4000, "a huge m is clamped to one packet");
        // M and X write (and are read back).
        assert.equal(await gdb.ask(`M${counter.toString(16)},8:0000000000000000`), "OK");
        const x = new Uint8Array([
          ...enc.encode(`X${counter.toString(16)},8:`),
          ...new Uint8Array(8),
        ]);
        assert.equal(await gdb.ask(x), "OK");
        assert.deepEqual(await gdb.read(counter, 8), new Uint8Array(8));
        assert.equal(await gdb.ask("M7fff00000000,1:00"), "E14");

        // Software breakpoint: int3 in guest memory, restored on removal.
        assert.equal(await gdb.ask(`Z0,${bump.toString(16)},1`), "OK");
        assert.equal((await gdb.read(bump, 1))![0], 0xcc);
        assert.equal(await gdb.ask("c"), "T05swbreak:;thread:1;");
        assert.equal(await gdb.register("rip"), BigInt(bump));
        assert.equal(await gdb.register("rdi"), 1n, "first call: gdb_bump(1)");
        assert.equal(await gdb.ask(`z0,${bump.toString(16)},1`), "OK");
        assert.deepEqual(await gdb.read(bump, 16), code, "original bytes back");

        // Single step: s and vCont;s move RIP forward by one instruction each.
        assert.equal(await gdb.ask("s"), "T05thread:1;");
        const afterStep = await gdb.register("rip");
        assert.ok(afterStep > BigInt(bump) && afterStep < BigInt(bump) + 16n, `rip ${afterStep}`);
        assert.equal(await gdb.ask("vCont;s:1"), "T05thread:1;");
        assert.ok((await gdb.register("rip")) > afterStep);

        // Hardware breakpoint on the next call.
        assert.equal(await gdb.ask(`Z1,${bump.toString(16)},1`), "OK");
        assert.equal(await gdb.ask("vCont;c"), "T05hwbreak:;thread:1;");
        assert.equal(await gdb.register("rip"), BigInt(bump));
        assert.equal(await gdb.register("rdi"), 2n);
        // Continuing with the breakpoint still armed at RIP steps off it first: the next stop
        // is the next call, not the same place again.
        assert.equal(await gdb.ask("c"), "T05hwbreak:;thread:1;");
        assert.equal(await gdb.register("rdi"), 3n);
        assert.equal(await gdb.ask(`z1,${bump.toString(16)},1`), "OK");

        // Write watchpoint on gdb_counter: stops right after the write (1 + 2 + 3 = 6).
        assert.equal(await gdb.ask(`Z2,${counter.toString(16)},8`), "OK");
        assert.equal(await gdb.ask("c"), `T05watch:${counter.toString(16)};thread:1;`);
        const value = await gdb.read(counter, 8);
        assert.equal(new DataView(value!.buffer).getBigUint64(0, true), 6n);
        assert.equal(await gdb.ask(`z2,${counter.toString(16)},8`), "OK");

        // Change the counter: the guest exits with counter + 1, reported as W.
        assert.equal(await gdb.ask(`M${counter.toString(16)},8:6400000000000000`), "OK"); // 100
        assert.equal(await gdb.ask("c"), `W${(100 + 1).toString(16)}`);
      } finally {
        gdb.close();
      }
      const end = await dhyve.finish();
      assert.equal(end.code, 101, end.stderr);
      assert.match(end.stdout, /gdb_target: counter=100/);
    });
  },
);

kvmTest("gdb stub: Ctrl-C stops a spinning guest with T02, k kills it (exit 137)", async () => {
  const elf = await buildGuest("spin", FIXED);
  await withDhyve(elf, [], async (dhyve) => {
    const gdb = await Client.connect(await dhyve.port());
    try {
      await gdb.send("c");
      await dhyve.waitForStderr(/./); // running
      await new Promise((resolve) => setTimeout(resolve, 300));
      await gdb.raw(Uint8Array.of(0x03));
      assert.equal(await gdb.reply(), "T02thread:1;");
      // Stopped in the spin loop; continue and interrupt once more, after a flood of acks and
      // packets GDB would never send while the guest runs (queued up to a bound, answered later).
      await gdb.send("c");
      await gdb.raw("+".repeat(200_000));
      for (let i = 0; i < 300; i++) await gdb.raw(encodePacket("qC"));
      await gdb.raw(Uint8Array.of(0x03));
      assert.equal(await gdb.reply(), "T02thread:1;");
      await gdb.raw(encodePacket("k"));
    } finally {
      gdb.close();
    }
    const end = await dhyve.finish();
    assert.equal(end.code, EXIT_CODE.DEBUGGER_KILL, end.stderr);
    assert.match(end.stdout, /spin: spinning/);
  });
});

kvmTest(
  "gdb stub: a debugger that hangs up leaves the guest running, breakpoints removed",
  async (t) => {
    const elf = await buildGuest("gdb_target", FIXED);
    const sym = await symbols(elf);
    await t.step(
      "disconnect while stopped, with a breakpoint set: the guest exits normally",
      async () => {
        await withDhyve(elf, [], async (dhyve) => {
          const gdb = await Client.connect(await dhyve.port());
          assert.equal(await gdb.ask(`Z0,${sym.gdb_bump!.toString(16)},1`), "OK");
          gdb.close();
          const end = await dhyve.finish();
          // Had the int3 stayed, the guest would have failed (exit 81 on kvm_pvm).
          assert.equal(end.code, 7, end.stderr);
          assert.match(end.stderr, /debugger disconnected/);
        });
      },
    );
    await t.step("disconnect while running: the guest runs on to --timeout", async () => {
      const spin = await buildGuest("spin", FIXED);
      await withDhyve(spin, ["--timeout", "2s"], async (dhyve) => {
        const gdb = await Client.connect(await dhyve.port());
        await gdb.send("c");
        await new Promise((resolve) => setTimeout(resolve, 200));
        gdb.close();
        const end = await dhyve.finish();
        assert.equal(end.code, EXIT_CODE.TIMEOUT, end.stderr);
        assert.match(end.stderr, /debugger disconnected/);
      });
    });
    await t.step("D detaches: OK, then the guest runs to its end", async () => {
      await withDhyve(elf, [], async (dhyve) => {
        const gdb = await Client.connect(await dhyve.port());
        assert.equal(await gdb.ask(`Z0,${sym.gdb_bump!.toString(16)},1`), "OK");
        assert.equal(await gdb.ask("D"), "OK");
        gdb.close();
        const end = await dhyve.finish();
        assert.equal(end.code, 7, end.stderr);
        assert.match(end.stderr, /debugger detached/);
      });
    });
  },
);

kvmTest(
  "gdb stub: SIGTERM to dhyve ends a debug session with X0f and exit 143, running or stopped",
  async (t) => {
    const elf = await buildGuest("spin", FIXED);
    for (const running of [false, true]) {
      await t.step(running ? "while the guest runs" : "while it is stopped", async () => {
        await withDhyve(elf, [], async (dhyve) => {
          const gdb = await Client.connect(await dhyve.port());
          try {
            assert.equal(await gdb.ask("qC"), "QC1");
            if (running) {
              await gdb.send("c");
              await new Promise((resolve) => setTimeout(resolve, 200));
            }
            dhyve.signal("SIGTERM");
            assert.equal(await gdb.reply(), "X0f");
          } finally {
            gdb.close();
          }
          const end = await dhyve.finish();
          assert.equal(end.code, EXIT_CODE.SIGTERM, end.stderr);
        });
      });
    }
  },
);

kvmTest("gdb stub: a port that is taken is a host error (exit 71), not a hang", async () => {
  requireLoopback();
  const taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const elf = await buildGuest("gdb_target", FIXED);
    const out = await runDhyve(["-s", String(taken.addr.port), elf], {
      perms: STUB_PERMISSIONS,
      signal: AbortSignal.timeout(WAIT_MS),
    });
    const stderr = out.stderr;
    assert.equal(out.code, EXIT_CODE.HOST_ERROR, stderr);
    assert.match(stderr, /Cannot listen for GDB on 127\.0\.0\.1:\d+/);
  } finally {
    taken.close();
  }
});

kvmTest(
  "gdb stub: without --allow-net, -s stops before the guest with exit 77 and the flag",
  async () => {
    const elf = await buildGuest("gdb_target", FIXED);
    const out = await runDhyve(["-s", "0", elf], { signal: AbortSignal.timeout(WAIT_MS) });
    const stderr = out.stderr;
    assert.equal(out.code, EXIT_CODE.PERMISSION, stderr);
    assert.match(stderr, /^dhyve: error: .*--allow-net=127\.0\.0\.1/m);
    assert.doesNotMatch(stderr, /Waiting for a GDB connection/);
    assert.equal(out.stdout, "", "the guest never ran");
  },
);

kvmTest(
  "gdb stub: a guest fault stops in the debugger (SIGSEGV) for inspection; continue ends the run",
  async (t) => {
    await t.step("triple fault: T0b, registers readable, then exit 80", async () => {
      const elf = await buildGuest("triple", FIXED);
      await withDhyve(elf, [], async (dhyve) => {
        const gdb = await Client.connect(await dhyve.port());
        try {
          assert.equal(await gdb.ask("c"), "T0bthread:1;");
          assert.equal(await gdb.ask("?"), "T0bthread:1;");
          const rip = await gdb.register("rip");
          assert.ok(rip >= 0x1_0080_0000n, `rip 0x${rip.toString(16)} is in the guest image`);
          assert.equal((await gdb.ask("g")).length, REGISTER_FILE_SIZE * 2);
          await dhyve.waitForStderr(/triple-faulted.*stopped in the debugger/);
          assert.equal(await gdb.ask("c"), `W${EXIT_CODE.GUEST_TRIPLE_FAULT.toString(16)}`);
        } finally {
          gdb.close();
        }
        const end = await dhyve.finish();
        assert.equal(end.code, EXIT_CODE.GUEST_TRIPLE_FAULT, end.stderr);
      });
    });
    await t.step(
      "an unknown hypercall port: T0b; detaching ends the run (it cannot go on)",
      async () => {
        const elf = await buildGuest("bad_port", FIXED);
        await withDhyve(elf, [], async (dhyve) => {
          const gdb = await Client.connect(await dhyve.port());
          assert.equal(await gdb.ask("c"), "T0bthread:1;");
          assert.equal(await gdb.ask("D"), "OK");
          gdb.close();
          const end = await dhyve.finish();
          assert.equal(end.code, EXIT_CODE.GUEST_PROTOCOL, end.stderr);
          assert.doesNotMatch(end.stdout, /continued/);
        });
      },
    );
  },
);

kvmTest("gdb stub: two vCPUs are two threads; registers differ per thread", async () => {
  const elf = await buildGuest("smp_count", FIXED);
  await withDhyve(elf, ["-c", "2"], async (dhyve) => {
    const gdb = await Client.connect(await dhyve.port());
    try {
      assert.equal(await gdb.ask("qfThreadInfo"), "m1,2");
      assert.equal(await gdb.ask("T2"), "OK");
      assert.equal(await gdb.ask("T3"), "E01");
      assert.equal(await gdb.ask("qThreadExtraInfo,2"), toHex(enc.encode("vCPU 1")));
      // RSI holds the CPU id at entry.
      assert.equal(await gdb.ask("Hg2"), "OK");
      assert.equal(await gdb.register("rsi"), 1n);
      assert.equal(await gdb.ask("Hg1"), "OK");
      assert.equal(await gdb.register("rsi"), 0n);
      // A breakpoint only the application processor reaches stops thread 2.
      const sym = await symbols(elf);
      assert.equal(await gdb.ask(`Z0,${sym.ap_main!.toString(16)},1`), "OK");
      assert.equal(await gdb.ask("c"), "T05swbreak:;thread:2;");
      assert.equal(await gdb.ask("qC"), "QC2");
      assert.equal(await gdb.register("rip"), BigInt(sym.ap_main!));
      assert.equal(await gdb.ask(`z0,${sym.ap_main!.toString(16)},1`), "OK");
      // A write watchpoint while the boot CPU spins waiting: the vCPUs must still take turns
      // (single-stepped on kvm_pvm) for the other one to reach the write.
      const online = sym.online!.toString(16);
      assert.equal(await gdb.ask(`Z2,${online},8`), "OK");
      // The boot CPU may or may not have counted itself before the AP stopped: one or two hits.
      const readOnline = async (): Promise<bigint> =>
        new DataView((await gdb.read(sym.online!, 8))!.buffer).getBigUint64(0, true);
      let count = await readOnline();
      assert.ok(count < 2n, "the AP has not counted itself yet");
      for (let hits = 1; count < 2n; hits++) {
        assert.ok(hits <= 2, "at most two writes");
        assert.match(await gdb.ask("c"), new RegExp(`^T05watch:${online};thread:[12];$`));
        const now = await readOnline();
        assert.equal(now, count + 1n, "each stop follows exactly one write");
        count = now;
      }
      assert.equal(await gdb.ask(`z2,${online},8`), "OK");
      assert.equal(await gdb.ask("c"), "W00");
    } finally {
      gdb.close();
    }
    const end = await dhyve.finish();
    assert.equal(end.code, 0, end.stderr);
    assert.match(end.stdout, /all 2 cpus online/);
  });
});
