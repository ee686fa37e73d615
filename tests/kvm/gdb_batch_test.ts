/**
 * Debian's `gdb` in batch mode against dhyve's GDB stub: breakpoints,
 * registers, variables, steps and watchpoints on fixed and PIE guests, the SSE
 * guest, two vCPUs, every guest variant, and uhyve's `hello_world` when
 * `HERMIT_IMAGES` names it. Needs /dev/kvm, `--allow-run` (deno, gcc, nm,
 * gdb), `--allow-read`, `--allow-write`, `--allow-env` and `--allow-net`
 * (loopback).
 * @module
 */

import assert from "node:assert/strict";
import { toHex } from "../../src/gdb/packet.ts";
import { REGISTER_NUMBER } from "../../src/gdb/target_xml.ts";
import { buildGuest, guestVariantName, guestVariants } from "../_helpers/guests.ts";
import { kvmTest } from "../_helpers/kvm.ts";
import { Client, FIXED, gdbBatch, PIE, symbols, withDhyve } from "../_helpers/gdb_stub.ts";

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
