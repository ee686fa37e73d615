/**
 * Property test of Getdents (0x1160) through its handler: for random trees of
 * virtual files (as a Hermit image or a file map makes them) and random
 * buffer sizes, paging a directory fd from FileOpen with Getdents yields
 * exactly the directory's entries, no entry twice, no record cut, `d_off`
 * equal to the cursor, then EndOfDirectory. Runs with no permissions.
 * @module
 */

import assert from "node:assert/strict";
import { posix } from "node:path";
import fc from "fast-check";
import { ERRNO } from "../../../src/errno.ts";
import { GETDENTS, GETDENTS_RESULT, OPEN } from "../../../src/hypercall/abi.ts";
import { fileOpenV2 } from "../../../src/hypercall/file.ts";
import { getdents } from "../../../src/hypercall/file_meta.ts";
import { DIRENT64, DT } from "../../../src/sandbox/dirents.ts";
import { FileMap } from "../../../src/sandbox/file_map.ts";
import { OPEN_FLAGS } from "../../../src/sandbox/host_fs.ts";
import { Sandbox } from "../../../src/sandbox/sandbox.ts";
import { FAKE_RAM_BASE, fakeContext, utf8 } from "../../_helpers/hypercall_context.ts";

const PARAM = FAKE_RAM_BASE + 0x100;
const TEXT = FAKE_RAM_BASE + 0x400;
const BUF = FAKE_RAM_BASE + 0x2000;

const component = fc.stringMatching(/^[a-zA-Z0-9_.-]{1,40}$/).filter((c) =>
  c !== "." && c !== ".."
);
/** Random file paths of 1–4 components; a path that is a prefix of another is dropped. */
const files = fc.uniqueArray(fc.array(component, { minLength: 1, maxLength: 4 }), {
  maxLength: 30,
  selector: (parts) => parts.join("/"),
}).map((list) =>
  list.filter((parts) =>
    !list.some((other) => other.length > parts.length && parts.every((p, i) => other[i] === p))
  )
);

/** The expected entries of each directory of the tree: dir → name → d_type. */
function expected(paths: string[][]): Map<string, Map<string, number>> {
  const dirs = new Map<string, Map<string, number>>([["/", new Map()]]);
  for (const parts of paths) {
    for (let i = 0; i < parts.length; i++) {
      const dir = `/${parts.slice(0, i).join("/")}`;
      const children = dirs.get(dir) ?? new Map<string, number>();
      dirs.set(dir, children);
      children.set(parts[i]!, i === parts.length - 1 ? DT.REG : DT.DIR);
    }
  }
  return dirs;
}

Deno.test("Getdents (property): random trees and buffer sizes page to exactly the listing", () => {
  let directories = 0;
  let calls = 0;
  fc.assert(
    fc.property(files, fc.integer({ min: 1, max: 700 }), (paths, size) => {
      const map = new FileMap();
      for (const parts of paths) map.addVirtual(`/${parts.join("/")}`, utf8(parts.join("|")));
      using sandbox = new Sandbox({ map });
      const f = fakeContext();
      const ctx = { ...f.ctx, files: sandbox };
      for (const [dir, children] of expected(paths)) {
        directories++;
        f.mem.write(TEXT, utf8(dir));
        f.mem.writeU8(TEXT + utf8(dir).length, 0);
        f.mem.writeU64(PARAM + OPEN.name, TEXT);
        f.mem.writeI32(PARAM + OPEN.flags, OPEN_FLAGS.O_DIRECTORY);
        fileOpenV2(ctx, PARAM);
        const fd = f.mem.readI32(PARAM + OPEN.ret);
        assert.ok(fd >= 3, `open ${dir}: ${fd}`);
        const seen = new Map<string, number>();
        let cursor = 0;
        for (;;) {
          calls++;
          f.mem.fill(BUF, size, 0xee);
          f.mem.writeI32(PARAM + GETDENTS.fd, fd);
          f.mem.writeU64(PARAM + GETDENTS.buf, BUF);
          f.mem.writeU64(PARAM + GETDENTS.len, size);
          getdents(ctx, PARAM);
          const tag = f.mem.readU32(PARAM + GETDENTS.tag);
          if (tag === GETDENTS_RESULT.END_OF_DIRECTORY) break;
          if (tag === GETDENTS_RESULT.ERROR) {
            // Only a buffer too small for the next record; the guest must grow it.
            assert.equal(f.mem.readI32(PARAM + GETDENTS.value), ERRNO.EINVAL);
            const next = [...children.keys()].filter((n) => !seen.has(n)).sort()[0]!;
            const reclen = Math.ceil((DIRENT64.name + utf8(next).length + 1) / 8) * 8;
            assert.ok(reclen > size, `EINVAL with ${size} bytes for "${next}" (${reclen})`);
            size *= 2;
            continue;
          }
          assert.equal(tag, GETDENTS_RESULT.SUCCESS);
          const n = f.mem.readU64(PARAM + GETDENTS.value);
          assert.ok(n > 0 && n <= size);
          for (let at = 0; at < n;) {
            const reclen = f.mem.readU16(BUF + at + DIRENT64.reclen);
            assert.ok(reclen % 8 === 0 && reclen > DIRENT64.name && at + reclen <= n, "record cut");
            const raw = f.mem.bytes(BUF + at + DIRENT64.name, reclen - DIRENT64.name);
            const name = new TextDecoder().decode(raw.subarray(0, raw.indexOf(0)));
            assert.ok(raw.indexOf(0) > 0, "no NUL");
            assert.ok(!seen.has(name), `${name} twice in ${dir}`);
            cursor += reclen;
            assert.equal(f.mem.readI64(BUF + at + DIRENT64.off), cursor);
            seen.set(name, f.mem.readU8(BUF + at + DIRENT64.type));
            at += reclen;
          }
          assert.ok(f.mem.readU8(BUF + n) === 0xee || n === size, "wrote past the records");
        }
        assert.deepEqual(
          [...seen].sort(),
          [...children].sort(),
          `listing of ${posix.normalize(dir)}`,
        );
        sandbox.close(fd);
      }
    }),
    { numRuns: 200 },
  );
  assert.ok(directories > 200 && calls > directories, `${directories} dirs, ${calls} calls`);
});
