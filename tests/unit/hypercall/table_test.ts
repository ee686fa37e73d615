/**
 * Unit tests of `src/hypercall/table.ts`: every port of the v1 and v2
 * interfaces in `abi.ts` has an entry of the right version, the supported ones
 * dispatch to their handlers, and the others stop the VM with a clear message.
 * Runs with no permissions.
 * @module
 */

import assert from "node:assert/strict";
import { ERRNO } from "../../../src/errno.ts";
import { READ_WRITE_V2, V1, V2, WRITE_V1 } from "../../../src/hypercall/abi.ts";
import { RESUME, VmStop } from "../../../src/hypercall/context.ts";
import type { GuestFiles } from "../../../src/hypercall/file.ts";
import {
  buildHypercallTable,
  hypercallAt,
  type HypercallEntry,
  hypercallPorts,
  MAX_HYPERCALL_PORT,
} from "../../../src/hypercall/table.ts";
import {
  assertProtocolStop,
  FAKE_RAM_BASE,
  fakeContext,
} from "../../_helpers/hypercall_context.ts";

const PARAM = FAKE_RAM_BASE + 0x100;

/** Ports dhyve serves today; every other port of abi.ts must stop with "not supported". */
const SUPPORTED: ReadonlyMap<number, string> = new Map<number, string>([
  [V1.FILE_WRITE, "FileWrite"],
  [V1.FILE_OPEN, "FileOpen"],
  [V1.FILE_CLOSE, "FileClose"],
  [V1.FILE_READ, "FileRead"],
  [V1.EXIT, "Exit"],
  [V1.FILE_LSEEK, "FileLseek"],
  [V1.CMDSIZE, "Cmdsize"],
  [V1.CMDVAL, "Cmdval"],
  [V1.UART, "Uart"],
  [V1.FILE_UNLINK, "FileUnlink"],
  [V1.SERIAL_BUFFER_WRITE, "SerialBufferWrite"],
  [V2.EXIT, "Exit"],
  [V2.SERIAL_WRITE_BYTE, "SerialWriteByte"],
  [V2.SERIAL_WRITE_BUFFER, "SerialWriteBuffer"],
  [V2.FILE_WRITE, "FileWrite"],
  [V2.FILE_OPEN, "FileOpen"],
  [V2.FILE_CLOSE, "FileClose"],
  [V2.FILE_READ, "FileRead"],
  [V2.FILE_LSEEK, "FileLseek"],
  [V2.FILE_UNLINK, "FileUnlink"],
  [V2.SERIAL_READ_BYTE, "SerialReadByte"],
  [V2.SERIAL_READ_BUFFER, "SerialReadBuffer"],
  [V2.GETDENTS, "Getdents"],
  [V2.FILE_STAT, "FileStat"],
  [V2.FILE_FSTAT, "FileFstat"],
  [V2.MKDIR, "Mkdir"],
]);

/** The ports that stop the VM: the legacy v1 net calls and the v2 shared-memory calls. */
const UNSUPPORTED: readonly number[] = [
  V1.NET_WRITE,
  V1.NET_READ,
  V1.NET_STAT,
  V2.SHARED_MEM_OPEN,
  V2.SHARED_MEM_CLOSE,
];

function entry(port: number): HypercallEntry {
  const e = hypercallAt(buildHypercallTable(), port);
  assert.ok(e !== undefined, `no table entry for port 0x${port.toString(16)}`);
  return e;
}

function portsOf(iface: typeof V1 | typeof V2): [string, number][] {
  return Object.entries(iface);
}

Deno.test("buildHypercallTable() has a version-1 entry for every v1 port in abi.ts", () => {
  const table = buildHypercallTable();
  const missing = portsOf(V1).filter(([, port]) => hypercallAt(table, port) === undefined)
    .map(([key, port]) => `${key} (0x${port.toString(16)})`);
  assert.deepEqual(missing, [], "v1 ports without an entry");
  for (const [key, port] of portsOf(V1)) assert.equal(hypercallAt(table, port)?.version, 1, key);
});

Deno.test("buildHypercallTable() has a version-2 entry for every v2 port in abi.ts", () => {
  const table = buildHypercallTable();
  const missing = portsOf(V2).filter(([, port]) => hypercallAt(table, port) === undefined)
    .map(([key, port]) => `${key} (0x${port.toString(16)})`);
  assert.deepEqual(missing, [], "v2 ports without an entry");
  for (const [key, port] of portsOf(V2)) assert.equal(hypercallAt(table, port)?.version, 2, key);
});

Deno.test("buildHypercallTable() has entries only at abi.ts ports, all below the limit", () => {
  const table = buildHypercallTable();
  const known = new Set<number>([...Object.values(V1), ...Object.values(V2)]);
  assert.deepEqual(hypercallPorts(table).map(([port]) => port), [...known].sort((a, b) => a - b));
  for (const port of known) assert.ok(port < MAX_HYPERCALL_PORT);
  // Between the ports, below 0 and past the limit: nothing (the run loop's bounds).
  for (const port of [...known].flatMap((p) => [p - 1, p + 1, p + 8])) {
    assert.equal(hypercallAt(table, port), undefined, `0x${port.toString(16)}`);
  }
  for (const port of [-0x10, MAX_HYPERCALL_PORT, MAX_HYPERCALL_PORT + 0x10, 0.5, NaN]) {
    assert.equal(hypercallAt(table, port), undefined, String(port));
  }
});

Deno.test("buildHypercallTable() names each supported hypercall as uhyve does", () => {
  for (const [port, name] of SUPPORTED) assert.equal(entry(port).name, name);
});

Deno.test("buildHypercallTable() builds a fresh, independent table each time", () => {
  const a = buildHypercallTable();
  const b = buildHypercallTable();
  assert.notEqual(a.slots, b.slots);
  assert.equal(hypercallAt(a, V2.EXIT)?.handle, hypercallAt(b, V2.EXIT)?.handle);
});

Deno.test("buildHypercallTable() entries for unsupported ports stop with a clear message", () => {
  const f = fakeContext();
  const stopped: number[] = [];
  hypercallPorts(buildHypercallTable()).forEach(([port, e]) => {
    if (SUPPORTED.has(port)) return;
    // A valid, zeroed parameter block: the stop must not depend on its contents.
    const stop = assertProtocolStop(e.handle(f.ctx, PARAM), {
      call: e.name,
      port,
      mentions: ["is not supported by dhyve"],
    });
    assert.match(stop.message, /^Guest hypercall /);
    stopped.push(port);
  });
  assert.deepEqual(stopped.sort((a, b) => a - b), [...UNSUPPORTED].sort((a, b) => a - b));
  assert.deepEqual(f.output(), { stdout: "", stderr: "" });
});

Deno.test("buildHypercallTable() serves every file hypercall with a zeroed block (no stop)", () => {
  const table = buildHypercallTable();
  const f = fakeContext();
  for (const [port, name] of SUPPORTED) {
    if (!name.startsWith("File")) continue;
    assert.equal(entry(port).handle(f.ctx, PARAM), RESUME, `${name} 0x${port.toString(16)}`);
    assert.equal(hypercallAt(table, port)?.name, name);
  }
});

Deno.test("buildHypercallTable() dispatches Exit v1 and v2 to the exit handlers", () => {
  const f = fakeContext();
  f.mem.writeI32(PARAM, 5);
  const v1 = entry(V1.EXIT).handle(f.ctx, PARAM);
  assert.ok(v1 instanceof VmStop);
  assert.deepEqual([v1.kind, v1.code], ["exit", 5]);
  const v2 = entry(V2.EXIT).handle(f.ctx, 6);
  assert.ok(v2 instanceof VmStop);
  assert.deepEqual([v2.kind, v2.code], ["exit", 6]);
});

Deno.test("buildHypercallTable() dispatches Uart and SerialWriteByte to serial output", () => {
  const f = fakeContext();
  assert.equal(entry(V1.UART).handle(f.ctx, 0x31), RESUME);
  assert.equal(entry(V2.SERIAL_WRITE_BYTE).handle(f.ctx, 0x32), RESUME);
  assert.equal(entry(V2.SERIAL_WRITE_BYTE).handle(f.ctx, 0x0a), RESUME);
  assert.equal(f.output().stdout, "12\n");
});

Deno.test("FileWrite v2 through the table: fd 1 → ret = len, unknown fd → ret = -EBADF", () => {
  const f = fakeContext();
  const text = FAKE_RAM_BASE + 0x800;
  f.mem.write(text, new TextEncoder().encode("v2 line\n"));
  f.mem.writeU64(PARAM + READ_WRITE_V2.buf, text);
  f.mem.writeU64(PARAM + READ_WRITE_V2.len, 8);
  f.mem.writeI32(PARAM + READ_WRITE_V2.fd, 1);
  assert.equal(entry(V2.FILE_WRITE).handle(f.ctx, PARAM), RESUME);
  assert.equal(f.mem.readI64(PARAM + READ_WRITE_V2.ret), 8);
  for (const fd of [0, 3, 7, -1]) {
    f.mem.writeI32(PARAM + READ_WRITE_V2.fd, fd);
    assert.equal(entry(V2.FILE_WRITE).handle(f.ctx, PARAM), RESUME);
    assert.equal(f.mem.readI64(PARAM + READ_WRITE_V2.ret), -ERRNO.EBADF, `fd ${fd}`);
  }
  assert.deepEqual(f.output(), { stdout: "v2 line\n", stderr: "" });
});

Deno.test("FileWrite v2 through the table: a parameter block outside RAM stops the VM", () => {
  const f = fakeContext();
  for (const arg of [0, FAKE_RAM_BASE - 1, f.mem.end - READ_WRITE_V2.size + 1]) {
    assertProtocolStop(entry(V2.FILE_WRITE).handle(f.ctx, arg), {
      call: "FileWrite",
      port: V2.FILE_WRITE,
      mentions: [`parameter block at 0x${arg.toString(16)}`, "outside guest memory"],
    });
  }
});

Deno.test("FileWrite v1 through the table: fd 2 goes to stderr, a file fd goes to ctx.files", () => {
  const f = fakeContext(); // identity translation
  const text = FAKE_RAM_BASE + 0x800;
  f.mem.write(text, new TextEncoder().encode("v1 err\n"));
  f.mem.writeI32(PARAM + WRITE_V1.fd, 2);
  f.mem.writeU64(PARAM + WRITE_V1.buf, text);
  f.mem.writeU64(PARAM + WRITE_V1.len, 7);
  assert.equal(entry(V1.FILE_WRITE).handle(f.ctx, PARAM), RESUME);
  assert.deepEqual(f.output(), { stdout: "", stderr: "v1 err\n" });

  const written: string[] = [];
  const errors: [number, number][] = [];
  const files: GuestFiles = {
    open: () => -ERRNO.ENOENT,
    close: () => -ERRNO.EBADF,
    read: () => -ERRNO.EBADF,
    write: (fd, from) => {
      written.push(`${fd}:${new TextDecoder().decode(from)}`);
      return fd === 3 ? from.length : -ERRNO.EBADF;
    },
    lseek: () => -ERRNO.EBADF,
    unlink: () => -ERRNO.ENOENT,
    getdents: () => -ERRNO.EBADF,
    stat: () => -ERRNO.ENOENT,
    fstat: () => -ERRNO.EBADF,
    mkdir: () => -ERRNO.EROFS,
  };
  const ctx = { ...f.ctx, files, onWriteError: (fd: number, e: number) => errors.push([fd, e]) };
  f.mem.writeI32(PARAM + WRITE_V1.fd, 3);
  assert.equal(entry(V1.FILE_WRITE).handle(ctx, PARAM), RESUME);
  f.mem.writeI32(PARAM + WRITE_V1.fd, 4);
  assert.equal(entry(V1.FILE_WRITE).handle(ctx, PARAM), RESUME);
  assert.deepEqual(written, ["3:v1 err\n", "4:v1 err\n"]);
  assert.deepEqual(errors, [[4, -ERRNO.EBADF]]);

  // Without files in the context the VM goes on too; the failure is only reported.
  const bare = { ...f.ctx, onWriteError: (fd: number, e: number) => errors.push([fd, e]) };
  assert.equal(entry(V1.FILE_WRITE).handle(bare, PARAM), RESUME);
  assert.deepEqual(errors, [[4, -ERRNO.EBADF], [4, -ERRNO.EBADF]]);
  assert.deepEqual(f.output(), { stdout: "", stderr: "v1 err\n" });
});
