/**
 * `-s/--gdb-port` end to end (`main.ts` as a subprocess): a protocol-level
 * client speaks every packet the stub serves to the `gdb_target` guest,
 * including malformed input, Ctrl-C, kill, detach and a debugger that hangs
 * up; Debian's `gdb` drives the stub in batch mode (fixed and PIE guests);
 * and a two-vCPU guest shows one thread per vCPU. Needs /dev/kvm,
 * `--allow-run` (deno, gcc, nm, gdb), `--allow-read`, `--allow-write` (the
 * guest build cache) and `--allow-net` (loopback).
 * @module
 */

import assert from "node:assert/strict";
import { EXIT_CODE } from "../../src/exit_codes.ts";
import { encodePacket, fromHex, PacketDecoder, toHex } from "../../src/gdb/packet.ts";
import { REGISTER_FILE_SIZE, REGISTER_NUMBER, REGISTER_OFFSETS } from "../../src/gdb/target_xml.ts";
import {
  buildGuest,
  type GuestBuild,
  guestVariantName,
  guestVariants,
} from "../_helpers/guests.ts";
import { kvmTest } from "../_helpers/kvm.ts";

const REPO_ROOT = decodeURIComponent(new URL("../..", import.meta.url).pathname).replace(/\/$/, "");
const MAIN = `${REPO_ROOT}/main.ts`;
/** What `deno run` grants dhyve with a GDB stub in these tests. */
const STUB_PERMISSIONS = [
  "--allow-ffi",
  "--allow-read",
  "--allow-env",
  "--allow-net=127.0.0.1,[::1]",
];
const FIXED: GuestBuild = { iface: 2, pie: false };
const PIE: GuestBuild = { iface: 2, pie: true };
/** Longest any single wait may take before the test fails instead of hanging. */
const WAIT_MS = 30_000;
const enc = new TextEncoder();
const dec = new TextDecoder("latin1");

/** Rejects after `ms` with `what` in the message. */
async function within<T>(promise: Promise<T>, what: string, ms = WAIT_MS): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`Timed out: ${what}`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** A dhyve process running a guest under `-s 0`, its stderr collected as it arrives. */
class DhyveUnderGdb {
  readonly #child: Deno.ChildProcess;
  readonly #stdout: Promise<string>;
  #stderr = "";
  #stderrDone: Promise<void>;
  #stderrGrew: () => void = () => {};
  readonly status: Promise<Deno.CommandStatus>;

  constructor(kernel: string, extra: string[] = []) {
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--quiet",
        ...STUB_PERMISSIONS,
        MAIN,
        "--file-isolation",
        "none",
        "-s",
        "0",
        ...extra,
        kernel,
      ],
      cwd: REPO_ROOT,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).spawn();
    this.#child = child;
    this.status = child.status;
    this.#stdout = new Response(child.stdout).text();
    this.#stderrDone = (async () => {
      for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
        this.#stderr += chunk;
        this.#stderrGrew();
      }
      this.#stderrGrew();
    })();
  }

  get stderr(): string {
    return this.#stderr;
  }

  /** Waits for stderr to match `pattern`; returns the match. */
  async waitForStderr(pattern: RegExp): Promise<RegExpMatchArray> {
    return await within(
      (async () => {
        for (;;) {
          const m = this.#stderr.match(pattern);
          if (m !== null) return m;
          const grew = new Promise<void>((resolve) => (this.#stderrGrew = resolve));
          const ended = await Promise.race([
            grew.then(() => false),
            this.#stderrDone.then(() => true),
          ]);
          if (ended && this.#stderr.match(pattern) === null) {
            throw new Error(`dhyve ended without printing ${pattern}:\n${this.#stderr}`);
          }
        }
      })(),
      `stderr matching ${pattern}`,
    );
  }

  /** The port dhyve listens on. */
  async port(): Promise<number> {
    const m = await this.waitForStderr(/GDB connection on 127\.0\.0\.1:(\d+)/);
    return Number(m[1]);
  }

  /** Waits for the process to end; returns its exit code and output. */
  async finish(): Promise<{ code: number; stdout: string; stderr: string }> {
    const status = await within(this.status, "dhyve to exit");
    await this.#stderrDone;
    return { code: status.code, stdout: await this.#stdout, stderr: this.#stderr };
  }

  /** Sends `signal` to the process. */
  signal(signal: Deno.Signal): void {
    this.#child.kill(signal);
  }

  /** Kills the process if it still runs (every test calls this in `finally`). */
  async kill(): Promise<void> {
    try {
      this.#child.kill("SIGKILL");
    } catch {
      // already gone
    }
    await this.status.catch(() => {});
    await this.#stdout.catch(() => "");
    await this.#stderrDone.catch(() => {});
  }
}

/** A minimal GDB remote client: sends packets, checks acks and checksums. */
class Client {
  readonly #conn: Deno.TcpConn;
  readonly #decoder = new PacketDecoder();
  #queue: ({ type: string; payload?: Uint8Array })[] = [];
  #buf = new Uint8Array(65536);
  noAck = false;

  private constructor(conn: Deno.TcpConn) {
    this.#conn = conn;
  }

  static async connect(port: number): Promise<Client> {
    return new Client(await within(Deno.connect({ hostname: "127.0.0.1", port }), "connect"));
  }

  async raw(bytes: Uint8Array | string): Promise<void> {
    const b = typeof bytes === "string" ? enc.encode(bytes) : bytes;
    for (let done = 0; done < b.length;) done += await this.#conn.write(b.subarray(done));
  }

  /** The next decoded input (packet, ack, nack). */
  async next(): Promise<{ type: string; payload?: Uint8Array }> {
    while (this.#queue.length === 0) {
      const n = await within(this.#conn.read(this.#buf), "data from the stub");
      if (n === null) throw new Error("The stub closed the connection");
      this.#queue.push(...this.#decoder.push(this.#buf.subarray(0, n)));
    }
    return this.#queue.shift()!;
  }

  /** Reads the next packet (acking it), skipping acks. */
  async reply(): Promise<string> {
    for (;;) {
      const input = await this.next();
      if (input.type === "packet") {
        if (!this.noAck) await this.raw("+");
        return dec.decode(input.payload!);
      }
      if (input.type === "bad-packet") throw new Error("The stub sent a bad packet");
    }
  }

  /** Sends a packet; expects "+" first (in ack mode). */
  async send(payload: string | Uint8Array): Promise<void> {
    await this.raw(encodePacket(payload));
    if (!this.noAck) assert.equal((await this.next()).type, "ack");
  }

  /** Sends a packet and returns the reply. */
  async ask(payload: string | Uint8Array): Promise<string> {
    await this.send(payload);
    return await this.reply();
  }

  /** Reads memory; null for an error reply. */
  async read(addr: number, length: number): Promise<Uint8Array | null> {
    const r = await this.ask(`m${addr.toString(16)},${length.toString(16)}`);
    return r.startsWith("E") ? null : fromHex(r);
  }

  /** A register of the selected thread, as a bigint. */
  async register(name: string): Promise<bigint> {
    const r = await this.ask(`p${REGISTER_NUMBER[name]!.toString(16)}`);
    const bytes = fromHex(r)!;
    let v = 0n;
    for (let i = bytes.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(bytes[i]!);
    return v;
  }

  close(): void {
    try {
      this.#conn.close();
    } catch {
      // already closed
    }
  }
}

/** Symbol addresses of a guest ELF (from `nm`). */
async function symbols(elf: string): Promise<Record<string, number>> {
  const out = await new Deno.Command("nm", { args: [elf], stdout: "piped" }).output();
  const table: Record<string, number> = {};
  for (const line of new TextDecoder().decode(out.stdout).split("\n")) {
    const [addr, , name] = line.trim().split(/\s+/);
    if (addr !== undefined && name !== undefined) table[name] = parseInt(addr, 16);
  }
  return table;
}

/**
 * The client side needs loopback access; without it every test here fails
 * with this one clear message (`deno task test:kvm` grants it).
 */
function requireLoopback(): void {
  if (Deno.permissions.querySync({ name: "net", host: "127.0.0.1" }).state !== "granted") {
    throw new Error(
      "The GDB tests talk to dhyve over 127.0.0.1: run them with --allow-net=127.0.0.1",
    );
  }
}

/** Runs `f` against a dhyve under `-s`, always killing dhyve afterwards. */
async function withDhyve(
  kernel: string,
  extra: string[],
  f: (dhyve: DhyveUnderGdb) => Promise<void>,
): Promise<void> {
  requireLoopback();
  const dhyve = new DhyveUnderGdb(kernel, extra);
  try {
    await f(dhyve);
  } finally {
    await dhyve.kill();
  }
}

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
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--quiet",
        ...STUB_PERMISSIONS,
        MAIN,
        "-s",
        String(taken.addr.port),
        elf,
      ],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(WAIT_MS),
    }).output();
    const stderr = new TextDecoder().decode(out.stderr);
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
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--quiet", "--allow-ffi", "--allow-read", MAIN, "-s", "0", elf],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(WAIT_MS),
    }).output();
    const stderr = new TextDecoder().decode(out.stderr);
    assert.equal(out.code, EXIT_CODE.PERMISSION, stderr);
    assert.match(stderr, /^dhyve: error: .*--allow-net=127\.0\.0\.1/m);
    assert.doesNotMatch(stderr, /Waiting for a GDB connection/);
    assert.equal(new TextDecoder().decode(out.stdout), "", "the guest never ran");
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

/** Runs gdb in batch mode against `port` with `commands`; returns its output. */
async function gdbBatch(elf: string | null, commands: string[]): Promise<string> {
  const args = ["-batch", "-nx"];
  for (const c of commands) args.push("-ex", c);
  if (elf !== null) args.push(elf);
  const out = await new Deno.Command("gdb", {
    args,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(WAIT_MS * 2),
  }).output();
  return new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
}

kvmTest(
  "gdb (Debian's /usr/bin/gdb): break, continue, registers, a variable, stepi, watch, exit code",
  async () => {
    const elf = await buildGuest("gdb_target", FIXED);
    // A fixed-address guest: gdb names its link address (from nm, not written down here).
    const bump = (await symbols(elf)).gdb_bump!.toString(16);
    await withDhyve(elf, [], async (dhyve) => {
      const port = await dhyve.port();
      const out = await gdbBatch(elf, [
        `target remote 127.0.0.1:${port}`,
        "info threads",
        "print $fs_base",
        "break gdb_bump",
        "continue",
        "print $rdi",
        "print (long)gdb_counter",
        "stepi",
        "print $pc == gdb_bump",
        "delete",
        "watch *(long *)&gdb_counter",
        "continue",
        "delete",
        "set var *(long *)&gdb_counter = 40",
        "continue",
      ]);
      const end = await dhyve.finish();
      const context = `gdb:\n${out}\ndhyve stderr:\n${end.stderr}`;
      assert.match(out, /Thread 1 \(vCPU 0\)/, context);
      assert.match(out, /\$1 = 0\n/, context); // $fs_base
      assert.match(out, new RegExp(`Breakpoint 1, 0x0*${bump} in gdb_bump`), context);
      assert.match(out, /\$2 = 1\n/, context);
      assert.match(out, /\$3 = 0\n/, context);
      assert.match(out, /\$4 = 0\n/, context); // after stepi, no longer at the function's start
      // The watchpoint catches the first write (0 → 1); then 40 + 2 + 3 + 1 = 46 = 056 octal.
      assert.match(out, /Old value = 0\nNew value = 1/, context);
      assert.match(out, /exited with code 056/, context);
      assert.equal(end.code, 46, context);
    });
  },
);

kvmTest(
  "gdb with a PIE guest at a random address: the symbols follow (qOffsets, or add-symbol-file)",
  async (t) => {
    const elf = await buildGuest("gdb_target", PIE);
    for (const how of ["qOffsets", "add-symbol-file"] as const) {
      await t.step(how, async () => {
        await withDhyve(elf, [], async (dhyve) => {
          const offset = (await dhyve.waitForStderr(/symbol offset (0x[0-9a-f]+)/))[1]!;
          assert.notEqual(offset, "0x0", "ASLR moved the kernel");
          const port = await dhyve.port();
          // qOffsets: GDB relocates the main file itself. add-symbol-file: by the printed offset.
          const commands = [
            ...(how === "add-symbol-file" ? [`add-symbol-file ${elf} -o ${offset}`] : []),
            `target remote 127.0.0.1:${port}`,
            "break gdb_bump",
            "continue",
            "print $rdi",
            `print $pc - ${offset}`,
            "delete",
            "continue",
          ];
          const out = await gdbBatch(how === "qOffsets" ? elf : null, commands);
          const end = await dhyve.finish();
          const context = `gdb:\n${out}\ndhyve stderr:\n${end.stderr}`;
          const linked = (await symbols(elf)).gdb_bump!;
          assert.match(out, /Breakpoint 1, 0x[0-9a-f]+ in gdb_bump/, context);
          assert.match(out, /\$1 = 1\n/, context);
          assert.match(
            out,
            new RegExp(`\\$2 = \\(void \\(\\*\\)\\(\\)\\) 0x${linked.toString(16)}\\b`),
            context,
          );
          assert.match(out, /exited with code 07/, context);
          assert.equal(end.code, 7, context);
        });
      });
    }
  },
);

kvmTest(
  "gdb stub: the SSE guest under the debugger — emulated instructions step once and show in xmm0",
  async () => {
    const elf = await buildGuest("sse", FIXED);
    const tFp = (await symbols(elf)).t_fp!;
    await withDhyve(elf, [], async (dhyve) => {
      const gdb = await Client.connect(await dhyve.port());
      try {
        assert.equal(await gdb.ask(`Z0,${tFp.toString(16)},1`), "OK");
        assert.equal(await gdb.ask("c"), "T05swbreak:;thread:1;");
        assert.equal(await gdb.register("rip"), BigInt(tFp));
        const input = await gdb.read(Number(await gdb.register("rdi")), 8);
        assert.equal(await gdb.ask(`z0,${tFp.toString(16)},1`), "OK");
        // movsd (%rdi), %xmm0 (f2 0f 10 07) is one step, whether KVM or dhyve's SSE fallback
        // ran it (the fallback must not run ahead, and the registers it leaves in kvm_run's
        // sync area must be what the debugger reads).
        assert.equal(await gdb.ask("s"), "T05thread:1;");
        assert.equal(await gdb.register("rip"), BigInt(tFp + 4));
        const xmm0 = await gdb.ask(`p${REGISTER_NUMBER.xmm0!.toString(16)}`);
        assert.equal(xmm0.slice(0, 16), toHex(input!), "xmm0 holds the loaded double");
        assert.equal(await gdb.ask("c"), "W00");
      } finally {
        gdb.close();
      }
      const end = await dhyve.finish();
      assert.equal(end.code, 0, end.stderr);
      assert.match(end.stdout, /sse: all checks passed/);
    });
  },
);

/** uhyve's hello_world from `HERMIT_IMAGES`, or why the test below is skipped. */
function helloWorld(): { path: string } | { skip: string } {
  if (Deno.permissions.querySync({ name: "env", variable: "HERMIT_IMAGES" }).state !== "granted") {
    return { skip: "no --allow-env for HERMIT_IMAGES" };
  }
  const dir = Deno.env.get("HERMIT_IMAGES");
  if (dir === undefined || dir === "") return { skip: "HERMIT_IMAGES is not set" };
  try {
    if (Deno.statSync(`${dir}/hello_world`).isFile) return { path: `${dir}/hello_world` };
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  return { skip: `no hello_world in ${dir}` };
}

const hello = helloWorld();
const HELLO_TITLE =
  "gdb with uhyve's hello_world (a real Hermit kernel, PIE + ASLR, SSE emulated): break in main, fs_base, stepi, run to exit";
if ("skip" in hello) {
  // deno-lint-ignore no-console
  console.error(`SKIP: ${hello.skip}: the real-kernel GDB test skipped`);
  Deno.test({ name: HELLO_TITLE, ignore: true, fn(): void {} });
} else {
  kvmTest(HELLO_TITLE, async () => {
    const main = Object.keys(await symbols(hello.path)).find((n) =>
      n.startsWith("_ZN11hello_world4main")
    );
    assert.ok(main !== undefined, "hello_world's main symbol");
    // Hermit 0.6.9's hello_world needs 4 or more environment variables (README, known issues).
    const env = ["-e", "A=1", "-e", "B=2", "-e", "C=3", "-e", "D=4"];
    await withDhyve(hello.path, env, async (dhyve) => {
      const port = await dhyve.port();
      // The ELF as GDB's main file: qOffsets tells GDB where ASLR put it.
      const out = await gdbBatch(hello.path, [
        `target remote 127.0.0.1:${port}`,
        `break ${main}`,
        "continue",
        "print $fs_base != 0",
        "stepi",
        "print $pc > " + main,
        "delete",
        "continue",
      ]);
      const end = await dhyve.finish();
      const context = `gdb:\n${out}\ndhyve stderr:\n${end.stderr}`;
      assert.match(out, /Breakpoint 1, 0x[0-9a-f]+ in hello_world::main/, context);
      assert.match(out, /\$1 = 1\n/, context); // Hermit's TLS is set up by main
      assert.match(out, /\$2 = 1\n/, context);
      assert.match(out, /exited normally/, context);
      assert.equal(end.code, 0, context);
      assert.match(end.stdout, /Hello, world!/);
    });
  });
}

kvmTest(
  "gdb with two vCPUs: info threads, thread N, per-thread registers, a breakpoint on the AP",
  async () => {
    const elf = await buildGuest("smp_count", FIXED);
    await withDhyve(elf, ["-c", "2"], async (dhyve) => {
      const port = await dhyve.port();
      const out = await gdbBatch(elf, [
        `target remote 127.0.0.1:${port}`,
        "info threads",
        "thread 2",
        "print $rsi",
        "thread 1",
        "print $rsi",
        "break ap_main",
        "continue",
        "thread",
        "delete",
        "continue",
      ]);
      const end = await dhyve.finish();
      const context = `gdb:\n${out}\ndhyve stderr:\n${end.stderr}`;
      assert.match(out, /1 +Thread 1 \(vCPU 0\)/, context);
      assert.match(out, /2 +Thread 2 \(vCPU 1\)/, context);
      assert.match(out, /\$1 = 1\n/, context); // vCPU 1 enters with its id in RSI
      assert.match(out, /\$2 = 0\n/, context);
      assert.match(out, /Thread 2 hit Breakpoint 1, 0x[0-9a-f]+ in ap_main/, context);
      assert.match(out, /Current thread is 2/, context);
      assert.match(out, /exited normally/, context);
      assert.equal(end.code, 0, context);
    });
  },
);

kvmTest(
  "gdb on every guest variant (v1/v2 × PIE/fixed): break, a register, a watchpoint, exit",
  async (t) => {
    for (const variant of guestVariants()) {
      await t.step(guestVariantName(variant), async () => {
        const elf = await buildGuest("gdb_target", variant);
        await withDhyve(elf, [], async (dhyve) => {
          const out = await gdbBatch(elf, [
            `target remote 127.0.0.1:${await dhyve.port()}`,
            "break gdb_bump",
            "continue",
            "print $rdi",
            "watch *(long *)&gdb_counter",
            "continue",
            "delete",
            "continue",
          ]);
          const end = await dhyve.finish();
          const context = `gdb:\n${out}\ndhyve stderr:\n${end.stderr}`;
          assert.match(out, /Breakpoint 1, 0x[0-9a-f]+ in gdb_bump/, context);
          assert.match(out, /\$1 = 1\n/, context);
          assert.match(out, /Old value = 0\nNew value = 1/, context);
          assert.match(out, /exited with code 07/, context);
          assert.equal(end.code, 7, context);
        });
      });
    }
  },
);
