/**
 * `ldCacheLookup` on a cache whose strings share tails, as ldconfig ≥ 2.33
 * writes them: the key "libc.so.6" is the end of the value's path, and a
 * longer name ending the same way ("glibc.so.6") is not a match.
 * @module
 */

import assert from "node:assert/strict";
import { ldCacheLookup } from "../../src/host/libc_path.ts";

const X86_64 = 0x0303;

/** A new-format cache with `entries` (string offsets from the header) and `strings`. */
function cache(
  entries: readonly { flags: number; key: number; value: number }[],
  strings: string,
): Uint8Array {
  const stringsAt = 48 + entries.length * 24;
  const text = new TextEncoder().encode(strings);
  const out = new Uint8Array(stringsAt + text.length);
  const view = new DataView(out.buffer);
  out.set(new TextEncoder().encode("glibc-ld.so.cache1.1"));
  view.setUint32(20, entries.length, true);
  view.setUint32(24, text.length, true);
  entries.forEach((e, i) => {
    view.setInt32(48 + i * 24, e.flags, true);
    view.setUint32(48 + i * 24 + 4, stringsAt + e.key, true);
    view.setUint32(48 + i * 24 + 8, stringsAt + e.value, true);
  });
  out.set(text, stringsAt);
  return out;
}

Deno.test("ldCacheLookup() finds a key stored as the tail of another string", () => {
  const strings = "/lib/x86_64-linux-gnu/libc.so.6\0/opt/g/glibc.so.6\0";
  const path = "/lib/x86_64-linux-gnu/libc.so.6";
  const keyAt = path.length - "libc.so.6".length;
  const other = strings.indexOf("/opt");
  const entries = [
    { flags: X86_64, key: other + "/opt/g/".length, value: other }, // "glibc.so.6"
    { flags: X86_64, key: other + "/opt/g/g".length, value: other }, // "libc.so.6", a tail
    { flags: X86_64, key: keyAt, value: 0 },
  ];
  assert.deepEqual(ldCacheLookup(cache(entries, strings), "libc.so.6"), [
    "/opt/g/glibc.so.6",
    path,
  ]);
  assert.deepEqual(ldCacheLookup(cache(entries.slice(0, 1), strings), "libc.so.6"), []);
});

Deno.test("ldCacheLookup() reads bytes above 0x7f in other strings without shifting offsets", () => {
  const strings = "/\u00e9\u20ac/x\0/lib64/libc.so.6\0";
  const bytes = new TextEncoder().encode(strings);
  const value = bytes.indexOf(0) + 1;
  const key = value + "/lib64/".length;
  assert.deepEqual(ldCacheLookup(cache([{ flags: X86_64, key, value }], strings), "libc.so.6"), [
    "/lib64/libc.so.6",
  ]);
});
