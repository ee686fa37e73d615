/**
 * Finding libc on Debian, Fedora and Arch layouts: fake `/etc/ld.so.cache`
 * files built here in glibc's format, and fake file systems standing in for
 * `Deno.dlopen`. No permissions needed.
 * @module
 */

import assert from "node:assert/strict";
import {
  LD_SO_CACHE,
  ldCacheLookup,
  LIBC_DIRS,
  libcCandidates,
  LibcLoadError,
  libcmp,
  openFirst,
  readLdCache,
} from "../../src/host/libc_path.ts";

/** An x86-64 glibc library entry (`FLAG_ELF_LIBC6 | FLAG_X8664_LIB64`). */
const X86_64 = 0x0303;
/** A 32-bit glibc library entry (`FLAG_ELF_LIBC6`, no architecture flag). */
const I386 = 0x0003;

interface CacheEntry {
  flags: number;
  key: string;
  value: string;
}

/**
 * A cache in glibc's new format ("glibc-ld.so.cache1.1": 48-byte header,
 * 24-byte entries, then the strings; offsets count from the header), after
 * `prefix` bytes (an old-format part, as glibc < 2.32 wrote).
 */
function ldCache(entries: readonly CacheEntry[], prefix = new Uint8Array()): Uint8Array {
  const encoder = new TextEncoder();
  const stringsAt = 48 + entries.length * 24;
  const strings: number[] = [];
  const offsets = entries.map((entry) => {
    const key = stringsAt + strings.length;
    strings.push(...encoder.encode(entry.key), 0);
    const value = stringsAt + strings.length;
    strings.push(...encoder.encode(entry.value), 0);
    return { key, value };
  });
  const body = new Uint8Array(stringsAt + strings.length);
  const view = new DataView(body.buffer);
  body.set(encoder.encode("glibc-ld.so.cache1.1"));
  view.setUint32(20, entries.length, true);
  view.setUint32(24, strings.length, true);
  body[28] = 2; // little-endian
  entries.forEach((entry, i) => {
    view.setInt32(48 + i * 24, entry.flags, true);
    view.setUint32(48 + i * 24 + 4, offsets[i]!.key, true);
    view.setUint32(48 + i * 24 + 8, offsets[i]!.value, true);
  });
  body.set(strings, stringsAt);
  const out = new Uint8Array(prefix.length + body.length);
  out.set(prefix);
  out.set(body, prefix.length);
  return out;
}

/** A fake file system: `open` succeeds for the paths in it, fails like dlopen otherwise. */
function fakeFs(paths: readonly string[]): (path: string) => string {
  return (path) => {
    if (!paths.includes(path)) throw new Error(`${path}: cannot open shared object file`);
    return `handle:${path}`;
  };
}

Deno.test("ldCacheLookup() returns the x86-64 libc.so.6 of a Debian cache", () => {
  const cache = ldCache([
    { flags: X86_64, key: "libz.so.1", value: "/lib/x86_64-linux-gnu/libz.so.1" },
    { flags: X86_64, key: "libc.so.6", value: "/lib/x86_64-linux-gnu/libc.so.6" },
  ]);
  assert.deepEqual(ldCacheLookup(cache, "libc.so.6"), ["/lib/x86_64-linux-gnu/libc.so.6"]);
});

Deno.test("ldCacheLookup() skips a multilib cache's 32-bit libc (Fedora)", () => {
  const cache = ldCache([
    { flags: I386, key: "libc.so.6", value: "/lib/libc.so.6" },
    { flags: X86_64, key: "libc.so.6", value: "/lib64/libc.so.6" },
  ]);
  assert.deepEqual(ldCacheLookup(cache, "libc.so.6"), ["/lib64/libc.so.6"]);
});

Deno.test("ldCacheLookup() finds the new format after an old-format prefix", () => {
  const prefix = new TextEncoder().encode("ld.so-1.7.0\0\0\0\0\0");
  const cache = ldCache([{ flags: X86_64, key: "libc.so.6", value: "/usr/lib/libc.so.6" }], prefix);
  assert.deepEqual(ldCacheLookup(cache, "libc.so.6"), ["/usr/lib/libc.so.6"]);
});

Deno.test("ldCacheLookup() finds the new format after an old part listing libraries", () => {
  // "ld.so-1.7.0\0", two libraries (12 bytes each): the new part starts at 40, aligned to 8.
  const prefix = new Uint8Array(40);
  prefix.set(new TextEncoder().encode("ld.so-1.7.0\0"));
  new DataView(prefix.buffer).setUint32(12, 2, true);
  const cache = ldCache([{ flags: X86_64, key: "libc.so.6", value: "/usr/lib/libc.so.6" }], prefix);
  assert.deepEqual(ldCacheLookup(cache, "libc.so.6"), ["/usr/lib/libc.so.6"]);
  new DataView(cache.buffer).setUint32(12, 3, true); // a count that points elsewhere: no cache
  assert.deepEqual(ldCacheLookup(cache, "libc.so.6"), []);
});

Deno.test("ldCacheLookup() finds libc among many entries in ldconfig's order", () => {
  // ldconfig sorts by libcmp, descending; the loader (and the lookup) search that order.
  const names = Array.from(
    { length: 300 },
    (_, i) => `lib${String.fromCharCode(97 + i % 26)}${i}.so.${i % 7}`,
  );
  names.push("libc.so.6", "libc.so.10", "libc.so.5");
  const key = (name: string): Uint8Array => new TextEncoder().encode(`${name}\0`);
  names.sort((a, b) => libcmp(new TextEncoder().encode(b), key(a), 0));
  const cache = ldCache(
    names.map((name) => ({ flags: X86_64, key: name, value: `/lib64/${name}` })),
  );
  assert.deepEqual(ldCacheLookup(cache, "libc.so.6"), ["/lib64/libc.so.6"]);
  assert.deepEqual(ldCacheLookup(cache, "libc.so.10"), ["/lib64/libc.so.10"]);
  assert.deepEqual(ldCacheLookup(cache, "libz.so.1"), []);
  for (const name of names.filter((_, i) => i % 37 === 0)) {
    assert.deepEqual(ldCacheLookup(cache, name), [`/lib64/${name}`], name);
  }
});

Deno.test("libcmp() orders as glibc's _dl_cache_libcmp: digit runs as numbers", () => {
  const cmp = (a: string, b: string): number =>
    Math.sign(libcmp(new TextEncoder().encode(a), new TextEncoder().encode(`${b}\0`), 0));
  assert.equal(cmp("libc.so.6", "libc.so.6"), 0);
  assert.equal(cmp("libx.so.10", "libx.so.9"), 1);
  assert.equal(cmp("libx.so.9", "libx.so.10"), -1);
  assert.equal(cmp("libx.so.007", "libx.so.7"), 0);
  assert.equal(cmp("liba.so", "libb.so"), -1);
  assert.equal(cmp("libc.so", "libc.so.6"), -1); // a prefix sorts first
  assert.equal(cmp("lib1", "liba"), 1); // a digit sorts after any other byte
  assert.equal(cmp("liba", "lib1"), -1);
  // Past the end of the bytes the string ends, as at a NUL.
  assert.equal(
    Math.sign(libcmp(new TextEncoder().encode("libc"), new TextEncoder().encode("lib"), 0)),
    1,
  );
});

Deno.test("ldCacheLookup() returns [] for garbage, a truncated cache and wild offsets", () => {
  assert.deepEqual(ldCacheLookup(new Uint8Array(100).fill(0x41), "libc.so.6"), []);
  const cache = ldCache([{ flags: X86_64, key: "libc.so.6", value: "/lib64/libc.so.6" }]);
  assert.deepEqual(ldCacheLookup(cache.subarray(0, 60), "libc.so.6"), []);
  const wild = cache.slice();
  new DataView(wild.buffer).setUint32(48 + 8, 0xffff_fff0, true); // value beyond the end
  assert.deepEqual(ldCacheLookup(wild, "libc.so.6"), []);
  const relative = ldCache([{ flags: X86_64, key: "libc.so.6", value: "lib/libc.so.6" }]);
  assert.deepEqual(ldCacheLookup(relative, "libc.so.6"), []);
});

Deno.test("libcCandidates() puts the cache's entry first, then the usual directories once each", () => {
  const cache = ldCache([{ flags: X86_64, key: "libc.so.6", value: "/usr/lib/libc.so.6" }]);
  const candidates = libcCandidates(cache);
  assert.equal(candidates[0], "/usr/lib/libc.so.6");
  assert.equal(candidates.filter((p) => p === "/usr/lib/libc.so.6").length, 1);
  assert.deepEqual(libcCandidates(null), LIBC_DIRS.map((dir) => `${dir}/libc.so.6`));
});

Deno.test("openFirst() finds libc on Debian, Fedora and Arch file systems without a cache", () => {
  const layouts: [string, string][] = [
    ["debian", "/lib/x86_64-linux-gnu/libc.so.6"],
    ["fedora", "/lib64/libc.so.6"],
    ["arch", "/usr/lib/libc.so.6"],
  ];
  for (const [name, path] of layouts) {
    const found = openFirst(libcCandidates(null), fakeFs([path, "/usr/lib32/libc.so.6"]));
    assert.deepEqual(found, { path, library: `handle:${path}` }, name);
  }
});

Deno.test("openFirst() uses the cache's path where the usual directories have none", () => {
  const cache = ldCache([{ flags: X86_64, key: "libc.so.6", value: "/opt/glibc/lib/libc.so.6" }]);
  const found = openFirst(libcCandidates(cache), fakeFs(["/opt/glibc/lib/libc.so.6"]));
  assert.equal(found.path, "/opt/glibc/lib/libc.so.6");
});

Deno.test("openFirst() without any libc throws one line naming what it tried", () => {
  assert.throws(() => openFirst(libcCandidates(null), fakeFs([])), (e: unknown) => {
    assert.ok(e instanceof LibcLoadError);
    assert.doesNotMatch(e.message, /\n/);
    assert.match(e.message, /^Cannot find the C library libc\.so\.6 \(tried \/etc\/ld\.so\.cache/);
    for (const dir of LIBC_DIRS) assert.ok(e.message.includes(`${dir}/libc.so.6`), dir);
    assert.match((e.cause as Error).message, /cannot open shared object file/);
    return true;
  });
});

Deno.test("openFirst() passes NotCapable (no --allow-ffi) through at once", () => {
  let tried = 0;
  assert.throws(() =>
    openFirst(["/a/libc.so.6", "/b/libc.so.6"], () => {
      tried++;
      throw new Deno.errors.NotCapable("Requires ffi access");
    }), Deno.errors.NotCapable);
  assert.equal(tried, 1);
});

Deno.test("readLdCache() returns null without read permission (no prompt)", {
  permissions: { read: false },
}, () => {
  assert.equal(readLdCache(), null);
  assert.equal(LD_SO_CACHE, "/etc/ld.so.cache");
});
