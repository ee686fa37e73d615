/**
 * Unit tests of `src/hypercall/args.ts`: Cmdsize and Cmdval (v1) describe and
 * copy the same argv (kernel path first, user arguments at i + 1) and env, and
 * checkCommandLine enforces uhyve's 128-entry limits. Runs with no permissions.
 * @module
 */

import assert from "node:assert/strict";
import { CMDSIZE, CMDVAL, MAX_ARGC_ENVC, V1 } from "../../../src/hypercall/abi.ts";
import { checkCommandLine, cmdsize, cmdval } from "../../../src/hypercall/args.ts";
import { RESUME } from "../../../src/hypercall/context.ts";
import type { GuestMemory } from "../../../src/memory/guest_memory.ts";
import {
  assertProtocolStop,
  FAKE_RAM_BASE,
  fakeContext,
  utf8,
} from "../../_helpers/hypercall_context.ts";

const KERNEL = "/images/hello_c";
const PARAM = FAKE_RAM_BASE + 0x100;

function commandLine(argc: number, envc: number): { argv: Uint8Array[]; env: Uint8Array[] } {
  return {
    argv: Array.from({ length: argc }, (_, i) => utf8(i === 0 ? KERNEL : `arg${i}`)),
    env: Array.from({ length: envc }, (_, i) => utf8(`K${i}=v`)),
  };
}

/** Reads the NUL-terminated string at `addr`. */
function cString(mem: GuestMemory, addr: number): string {
  const n = mem.cStringLength(addr, 4096);
  assert.ok(n >= 0, `no NUL after 0x${addr.toString(16)}`);
  return new TextDecoder().decode(mem.bytes(addr, n));
}

/**
 * Lays out what a guest does after Cmdsize: an argv and an env array of u64
 * pointers, each to a buffer of the announced size. Returns the array addresses.
 */
function allocateLikeAGuest(mem: GuestMemory): { argvArray: number; envArray: number } {
  const argc = mem.readI32(PARAM + CMDSIZE.argc);
  const envc = mem.readI32(PARAM + CMDSIZE.envc);
  const argvArray = FAKE_RAM_BASE + 0x1000;
  const envArray = FAKE_RAM_BASE + 0x2000;
  let heap = FAKE_RAM_BASE + 0x3000;
  for (let i = 0; i < argc; i++) {
    mem.writeU64(argvArray + 8 * i, heap);
    mem.fill(heap, mem.readI32(PARAM + CMDSIZE.argsz + 4 * i), 0xaa);
    heap += mem.readI32(PARAM + CMDSIZE.argsz + 4 * i);
  }
  for (let i = 0; i < envc; i++) {
    mem.writeU64(envArray + 8 * i, heap);
    mem.fill(heap, mem.readI32(PARAM + CMDSIZE.envsz + 4 * i), 0xaa);
    heap += mem.readI32(PARAM + CMDSIZE.envsz + 4 * i);
  }
  return { argvArray, envArray };
}

Deno.test("checkCommandLine() accepts the kernel path plus 127 arguments and 128 env entries", () => {
  assert.equal(checkCommandLine(commandLine(MAX_ARGC_ENVC, MAX_ARGC_ENVC)), null);
  assert.equal(checkCommandLine(commandLine(1, 0)), null);
});

Deno.test("checkCommandLine() rejects a 128th argument, counting argv[0] as the kernel", () => {
  const message = checkCommandLine(commandLine(MAX_ARGC_ENVC + 1, 0));
  assert.equal(
    message,
    "Too many kernel arguments: 128 given, at most 127 fit (argv[0] is the kernel path)",
  );
});

Deno.test("checkCommandLine() rejects a 129th environment entry", () => {
  const message = checkCommandLine(commandLine(1, MAX_ARGC_ENVC + 1));
  assert.equal(message, "Too many environment variables: 129 given, at most 128 fit");
});

Deno.test("cmdsize() reports argc, envc and every size including the NUL, in UTF-8 bytes", () => {
  const f = fakeContext({ argv: [KERNEL, "a1", "bb", "", "grüße"], env: ["A=b", "LANG=C.UTF-8"] });
  f.mem.fill(PARAM, CMDSIZE.size, 0xee);
  assert.equal(cmdsize(f.ctx, PARAM), RESUME);
  assert.equal(f.mem.readI32(PARAM + CMDSIZE.argc), 5);
  const argsz = [0, 1, 2, 3, 4].map((i) => f.mem.readI32(PARAM + CMDSIZE.argsz + 4 * i));
  assert.deepEqual(argsz, [KERNEL.length + 1, 3, 3, 1, 8]);
  assert.equal(f.mem.readI32(PARAM + CMDSIZE.envc), 2);
  const envsz = [0, 1].map((i) => f.mem.readI32(PARAM + CMDSIZE.envsz + 4 * i));
  assert.deepEqual(envsz, [4, 13]);
});

Deno.test("cmdsize() with no arguments and no env reports argc 1 (the kernel) and envc 0", () => {
  const f = fakeContext({ argv: [KERNEL], env: [] });
  assert.equal(cmdsize(f.ctx, PARAM), RESUME);
  assert.equal(f.mem.readI32(PARAM + CMDSIZE.argc), 1);
  assert.equal(f.mem.readI32(PARAM + CMDSIZE.argsz), KERNEL.length + 1);
  assert.equal(f.mem.readI32(PARAM + CMDSIZE.envc), 0);
});

Deno.test("cmdsize() caps argc and envc at 128 and writes no size past its arrays", () => {
  const f = fakeContext(commandLineOptions(MAX_ARGC_ENVC + 5, MAX_ARGC_ENVC + 5));
  f.mem.fill(PARAM, CMDSIZE.size + 16, 0xee);
  assert.equal(cmdsize(f.ctx, PARAM), RESUME);
  assert.equal(f.mem.readI32(PARAM + CMDSIZE.argc), MAX_ARGC_ENVC);
  assert.equal(f.mem.readI32(PARAM + CMDSIZE.envc), MAX_ARGC_ENVC);
  assert.equal(f.mem.readU32(PARAM + CMDSIZE.size), 0xeeee_eeee);
});

function commandLineOptions(argc: number, envc: number): { argv: string[]; env: string[] } {
  const td = new TextDecoder();
  const c = commandLine(argc, envc);
  return { argv: c.argv.map((a) => td.decode(a)), env: c.env.map((e) => td.decode(e)) };
}

Deno.test("cmdsize() stops with a protocol error for a parameter block not wholly in RAM", () => {
  const f = fakeContext();
  for (const arg of [0, FAKE_RAM_BASE - 4, f.mem.end - CMDSIZE.size + 1, f.mem.end]) {
    assertProtocolStop(cmdsize(f.ctx, arg), {
      call: "Cmdsize",
      port: V1.CMDSIZE,
      mentions: [`0x${arg.toString(16)} (1032 bytes)`, "outside guest memory"],
    });
  }
});

Deno.test("cmdval() copies argv[0] = kernel path and each argument i to slot i + 1", () => {
  const f = fakeContext({ argv: [KERNEL, "a1", "bb", "grüße"], env: ["A=b", "EMPTY="] });
  cmdsize(f.ctx, PARAM);
  const { argvArray, envArray } = allocateLikeAGuest(f.mem);
  f.mem.writeU64(PARAM + CMDVAL.argv, argvArray);
  f.mem.writeU64(PARAM + CMDVAL.envp, envArray);
  assert.equal(cmdval(f.ctx, PARAM), RESUME);
  const argv = [0, 1, 2, 3].map((i) => cString(f.mem, f.mem.readU64(argvArray + 8 * i)));
  assert.deepEqual(argv, [KERNEL, "a1", "bb", "grüße"]);
  const env = [0, 1].map((i) => cString(f.mem, f.mem.readU64(envArray + 8 * i)));
  assert.deepEqual(env, ["A=b", "EMPTY="]);
});

Deno.test("cmdval() fills each buffer exactly: the string and its NUL, nothing beyond", () => {
  const f = fakeContext({ argv: [KERNEL, "xy"], env: [] });
  const buf = FAKE_RAM_BASE + 0x3000;
  f.mem.fill(buf, 0x100, 0xaa);
  f.mem.writeU64(FAKE_RAM_BASE + 0x1000, buf + 0x80); // argv[0]
  f.mem.writeU64(FAKE_RAM_BASE + 0x1008, buf); // argv[1]
  f.mem.writeU64(PARAM + CMDVAL.argv, FAKE_RAM_BASE + 0x1000);
  f.mem.writeU64(PARAM + CMDVAL.envp, 0);
  assert.equal(cmdval(f.ctx, PARAM), RESUME);
  assert.deepEqual([...f.mem.bytes(buf, 4)], [0x78, 0x79, 0, 0xaa]);
  assert.equal(f.mem.readU8(buf + 0x80 + KERNEL.length + 1), 0xaa);
});

Deno.test("cmdval() with no env entries never reads the envp array", () => {
  const f = fakeContext({ argv: [KERNEL], env: [] });
  f.mem.writeU64(FAKE_RAM_BASE + 0x1000, FAKE_RAM_BASE + 0x3000);
  f.mem.writeU64(PARAM + CMDVAL.argv, FAKE_RAM_BASE + 0x1000);
  f.mem.writeU64(PARAM + CMDVAL.envp, 0xdead_0000); // not RAM: must not matter
  assert.equal(cmdval(f.ctx, PARAM), RESUME);
  assert.equal(cString(f.mem, FAKE_RAM_BASE + 0x3000), KERNEL);
});

Deno.test("cmdval() stops with a protocol error for a parameter block not wholly in RAM", () => {
  const f = fakeContext();
  for (const arg of [0, FAKE_RAM_BASE - 1, f.mem.end - 8]) {
    assertProtocolStop(cmdval(f.ctx, arg), {
      call: "Cmdval",
      port: V1.CMDVAL,
      mentions: [`0x${arg.toString(16)} (16 bytes)`, "outside guest memory"],
    });
  }
});

Deno.test("cmdval() stops with a protocol error for an argv array outside RAM", () => {
  const f = fakeContext({ argv: [KERNEL, "a"], env: [] });
  f.mem.writeU64(PARAM + CMDVAL.argv, f.mem.end - 8); // room for 1 pointer, 2 needed
  assertProtocolStop(cmdval(f.ctx, PARAM), {
    call: "Cmdval",
    port: V1.CMDVAL,
    mentions: [`argv array at 0x${(f.mem.end - 8).toString(16)} (2 pointers)`],
  });
});

Deno.test("cmdval() stops with a protocol error for an env array outside RAM", () => {
  const f = fakeContext({ argv: [KERNEL], env: ["A=b"] });
  f.mem.writeU64(FAKE_RAM_BASE + 0x1000, FAKE_RAM_BASE + 0x3000);
  f.mem.writeU64(PARAM + CMDVAL.argv, FAKE_RAM_BASE + 0x1000);
  f.mem.writeU64(PARAM + CMDVAL.envp, 0x10);
  assertProtocolStop(cmdval(f.ctx, PARAM), {
    call: "Cmdval",
    port: V1.CMDVAL,
    mentions: ["env array at 0x10 (1 pointers)"],
  });
});

Deno.test("cmdval() stops with a protocol error for a string pointer without room", () => {
  const f = fakeContext({ argv: [KERNEL, "abc"], env: ["A=b"] });
  const array = FAKE_RAM_BASE + 0x1000;
  f.mem.writeU64(array, FAKE_RAM_BASE + 0x3000);
  f.mem.writeU64(array + 8, f.mem.end - 3); // "abc" fits, its NUL does not
  f.mem.writeU64(PARAM + CMDVAL.argv, array);
  assertProtocolStop(cmdval(f.ctx, PARAM), {
    call: "Cmdval",
    port: V1.CMDVAL,
    mentions: [`argv[1] at 0x${(f.mem.end - 3).toString(16)}`, "4 bytes"],
  });
  assert.equal(f.mem.readU8(f.mem.end - 3), 0, "nothing copied to the bad slot");

  const g = fakeContext({ argv: [KERNEL], env: ["A=b"] });
  g.mem.writeU64(array, FAKE_RAM_BASE + 0x3000);
  g.mem.writeU64(array + 0x100, 0x20); // env[0] → not RAM
  g.mem.writeU64(PARAM + CMDVAL.argv, array);
  g.mem.writeU64(PARAM + CMDVAL.envp, array + 0x100);
  assertProtocolStop(cmdval(g.ctx, PARAM), {
    call: "Cmdval",
    port: V1.CMDVAL,
    mentions: ["env[0] at 0x20"],
  });
});
