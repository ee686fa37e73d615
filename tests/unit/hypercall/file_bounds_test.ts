/**
 * Every file hypercall handler against hostile parameter blocks: blocks
 * outside guest memory stop the VM, a block in the last bytes of RAM works,
 * and random blocks never throw and write only the handler's result field.
 * Runs with no permissions.
 * @module
 */

import assert from "node:assert/strict";
import fc from "fast-check";
import {
  CLOSE,
  LSEEK_V1,
  LSEEK_V2,
  OPEN,
  READ_V1,
  READ_WRITE_V2,
  UNLINK,
  V1,
  V2,
  WRITE_V1,
} from "../../../src/hypercall/abi.ts";
import { type Handler, RESUME } from "../../../src/hypercall/context.ts";
import {
  fileCloseV1,
  fileCloseV2,
  fileLseekV1,
  fileLseekV2,
  fileOpenV1,
  fileOpenV2,
  fileReadV1,
  fileReadV2,
  fileUnlinkV1,
  fileUnlinkV2,
  fileWriteV1,
  fileWriteV2,
} from "../../../src/hypercall/file.ts";
import {
  assertProtocolStop,
  FAKE_RAM_BASE,
  fakeContext,
} from "../../_helpers/hypercall_context.ts";
import { FakeFiles, rig } from "../../_helpers/file_hypercall_rig.ts";

// ---- parameter blocks outside guest memory ---------------------------------------------

/** Every handler, with its block size and the one field it may write: [offset, bytes]. */
const ALL_HANDLERS: readonly {
  name: string;
  port: number;
  size: number;
  handle: Handler;
  result: readonly [number, number] | null;
}[] = [
  { name: "FileOpen", port: V1.FILE_OPEN, size: OPEN.size, handle: fileOpenV1, result: [16, 4] },
  { name: "FileOpen", port: V2.FILE_OPEN, size: OPEN.size, handle: fileOpenV2, result: [16, 4] },
  { name: "FileClose", port: V1.FILE_CLOSE, size: CLOSE.size, handle: fileCloseV1, result: [4, 4] },
  { name: "FileClose", port: V2.FILE_CLOSE, size: CLOSE.size, handle: fileCloseV2, result: [4, 4] },
  {
    name: "FileUnlink",
    port: V1.FILE_UNLINK,
    size: UNLINK.size,
    handle: fileUnlinkV1,
    result: [8, 4],
  },
  {
    name: "FileUnlink",
    port: V2.FILE_UNLINK,
    size: UNLINK.size,
    handle: fileUnlinkV2,
    result: [8, 4],
  },
  { name: "FileRead", port: V1.FILE_READ, size: READ_V1.size, handle: fileReadV1, result: [20, 8] },
  {
    name: "FileRead",
    port: V2.FILE_READ,
    size: READ_WRITE_V2.size,
    handle: fileReadV2,
    result: [8, 8],
  },
  {
    name: "FileWrite",
    port: V1.FILE_WRITE,
    size: WRITE_V1.size,
    handle: fileWriteV1,
    result: null,
  },
  {
    name: "FileWrite",
    port: V2.FILE_WRITE,
    size: READ_WRITE_V2.size,
    handle: fileWriteV2,
    result: [8, 8],
  },
  {
    name: "FileLseek",
    port: V1.FILE_LSEEK,
    size: LSEEK_V1.size,
    handle: fileLseekV1,
    result: [4, 8],
  },
  {
    name: "FileLseek",
    port: V2.FILE_LSEEK,
    size: LSEEK_V2.size,
    handle: fileLseekV2,
    result: [0, 8],
  },
];

Deno.test("file hypercalls stop the VM for a parameter block outside guest memory", () => {
  for (const { name, port, size, handle } of ALL_HANDLERS) {
    const r = rig();
    const end = r.f.mem.end;
    for (const arg of [0, FAKE_RAM_BASE - 1, end - size + 1, end, 0xffff_ffff]) {
      assertProtocolStop(handle(r.ctx, arg), {
        call: name,
        port,
        mentions: [`parameter block at 0x${arg.toString(16)}`, `${size} bytes`, "outside"],
      });
    }
    assert.deepEqual(r.files.calls, [], `${name} 0x${port.toString(16)}`);
    assert.deepEqual(r.writeErrors, []);
  }
});

Deno.test("file hypercalls accept a parameter block in the last bytes of guest memory", () => {
  for (const { name, port, size, handle } of ALL_HANDLERS) {
    const r = rig();
    const arg = r.f.mem.end - size;
    assert.equal(handle(r.ctx, arg), RESUME, `${name} 0x${port.toString(16)}`);
  }
});

// ---- property: hostile parameter blocks ------------------------------------------------

Deno.test("file hypercalls, given random parameter blocks, never throw and write only their result", () => {
  const size = 0x4000;
  const end = FAKE_RAM_BASE + size;
  // Addresses worth trying: inside RAM (often), at its edges, and anywhere.
  const address = fc.oneof(
    fc.integer({ min: FAKE_RAM_BASE, max: end }),
    fc.constantFrom(0, FAKE_RAM_BASE - 1, end - 1, end, 2 ** 32 - 1, 2 ** 53 - 1),
    fc.maxSafeNat(),
  );
  const block = fc.record({
    handler: fc.nat({ max: ALL_HANDLERS.length - 1 }),
    at: fc.integer({ min: -40, max: size + 40 }),
    bytes: fc.uint8Array({ minLength: 32, maxLength: 32 }),
    // 64-bit fields (name, buf, len, offset) overwritten with interesting values.
    words: fc.array(fc.record({ at: fc.constantFrom(0, 4, 8, 12, 16), value: address }), {
      maxLength: 3,
    }),
    // A NUL somewhere, so that some names are short strings.
    nul: fc.option(fc.integer({ min: FAKE_RAM_BASE, max: end - 1 })),
  });
  fc.assert(
    fc.property(block, ({ handler, at, bytes, words, nul }) => {
      const h = ALL_HANDLERS[handler]!;
      const f = fakeContext({ size });
      const arg = FAKE_RAM_BASE + at;
      bytes.forEach((b, i) => {
        if (f.mem.contains(arg + i, 1)) f.mem.writeU8(arg + i, b);
      });
      for (const w of words) {
        if (f.mem.contains(arg + w.at, 8)) f.mem.writeU64(arg + w.at, w.value);
      }
      if (nul !== null) f.mem.writeU8(nul, 0);
      const before = f.mem.u8.slice();
      const files = new FakeFiles(); // reads deliver nothing, so RAM changes only by the handler
      const result = h.handle({ ...f.ctx, files, onWriteError: (): void => {} }, arg);
      const inside = f.mem.contains(arg, h.size);
      if (!inside) {
        assertProtocolStop(result, { call: h.name, port: h.port });
        assert.deepEqual(f.mem.u8, before);
        assert.deepEqual(files.calls, []);
        return;
      }
      assert.equal(result, RESUME);
      const [from, len] = h.result === null ? [0, 0] : h.result;
      const lo = arg - FAKE_RAM_BASE + from;
      for (let i = 0; i < before.length; i++) {
        if (i >= lo && i < lo + len) continue;
        if (f.mem.u8[i] !== before[i]) assert.fail(`${h.name}: byte 0x${i.toString(16)} changed`);
      }
    }),
    { numRuns: 500 },
  );
});
