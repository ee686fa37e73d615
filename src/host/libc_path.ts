/**
 * Where the C library is, found the way the platform's dynamic loader finds
 * it: the x86-64 `libc.so.6` entries of `/etc/ld.so.cache` (when Deno may read
 * it), then the directories distributions put glibc in (Debian/Ubuntu
 * multiarch, Fedora/openSUSE `lib64`, Arch `/usr/lib`). `src/host/libc.ts` tries
 * them in order with `Deno.dlopen`; the first that opens wins.
 *
 * Why not `dlopen("libc.so.6")`: Deno resolves a bare name against the
 * current directory (measured on Deno 2.9.6: "/cwd/libc.so.6: cannot open
 * shared object file"), so the loader's own search never runs. Trying paths
 * with `dlopen` needs no read permission (only `--allow-ffi`, which KVM needs
 * anyway), and the same order in every vCPU Worker reaches the same library.
 * Pure apart from {@linkcode readLdCache}; no FFI here.
 * @module
 */

import { decodeUtf8, encodeUtf8 } from "../utf8.ts";

/** The soname of glibc's C library on x86_64 Linux. */
export const LIBC_SONAME = "libc.so.6";

/** The dynamic loader's cache of library paths (`ldconfig` writes it). */
export const LD_SO_CACHE = "/etc/ld.so.cache";

/**
 * The directories glibc lives in on the common distributions, in the order
 * they are tried after the cache: Debian/Ubuntu's multiarch directories,
 * `lib64` (Fedora, RHEL, openSUSE), then plain `lib` (Arch).
 */
export const LIBC_DIRS: readonly string[] = [
  "/lib/x86_64-linux-gnu",
  "/usr/lib/x86_64-linux-gnu",
  "/lib64",
  "/usr/lib64",
  "/usr/lib",
  "/lib",
];

/** The C library cannot be found or loaded; the message is one line with what was tried. */
export class LibcLoadError extends Error {
  /** Error name. */
  override name = "LibcLoadError";
}

/** glibc's new format: this magic, a 48-byte header, 24-byte entries; string offsets from the magic. */
const NEW_MAGIC = encodeUtf8("glibc-ld.so.cache1.1");
/** The old format (glibc < 2.32 wrote it first): this magic and a library count, 16 bytes. */
const OLD_MAGIC = encodeUtf8("ld.so-1.7.0\0");
const OLD_HEADER_SIZE = 16;
const OLD_ENTRY_SIZE = 12;
const HEADER_SIZE = 48;
const ENTRY_SIZE = 24;
/** `FLAG_ELF_LIBC6 | FLAG_X8664_LIB64` in glibc's `ldconfig.h`: a 64-bit x86 glibc library. */
const FLAG_X86_64_LIBC6 = 0x0303;
/** The type (low byte) and required-architecture (second byte) fields of an entry's flags. */
const FLAG_TYPE_AND_ARCH_MASK = 0xffff;

/**
 * The paths `/etc/ld.so.cache` gives for `soname` built for x86-64 glibc, in
 * the cache's order, found as glibc's loader finds them: a binary search of
 * the entries, which `ldconfig` sorts by {@linkcode libcmp} (descending),
 * then every neighbour with the same name. Reads glibc's "new" format (the
 * only one glibc ≥ 2.32 writes, found also after an old-format prefix);
 * returns [] for anything it does not understand (a truncated or foreign file
 * is no error, just no hint). Nothing is decoded but the paths it returns:
 * searching the file as text made a string as large as it (35–200 KB), enough
 * to fill V8's young generation at start-up.
 */
export function ldCacheLookup(cache: Uint8Array, soname: string): string[] {
  const start = newFormatStart(cache);
  if (start < 0 || cache.length < start + HEADER_SIZE) return [];
  const name = encodeUtf8(soname);
  const view = new DataView(cache.buffer, cache.byteOffset, cache.byteLength);
  const count = Math.min(
    view.getUint32(start + 20, true),
    Math.floor((cache.length - start - HEADER_SIZE) / ENTRY_SIZE),
  );
  const entryAt = (i: number): number => start + HEADER_SIZE + i * ENTRY_SIZE;
  const compare = (i: number): number =>
    libcmp(name, cache, start + view.getUint32(entryAt(i) + 4, true));
  let left = 0;
  let right = count - 1;
  while (left <= right) {
    const middle = (left + right) >>> 1;
    const order = compare(middle);
    if (order < 0) left = middle + 1;
    else if (order > 0) right = middle - 1;
    else {
      let first = middle;
      while (first > 0 && compare(first - 1) === 0) first--;
      const found: string[] = [];
      for (let i = first; i < count && compare(i) === 0; i++) {
        const flags = view.getInt32(entryAt(i), true);
        if ((flags & FLAG_TYPE_AND_ARCH_MASK) !== FLAG_X86_64_LIBC6) continue;
        const value = cString(cache, start + view.getUint32(entryAt(i) + 8, true));
        if (value !== null && value.startsWith("/")) found.push(value);
      }
      return found;
    }
  }
  return [];
}

/**
 * glibc's `_dl_cache_libcmp`, the order of the cache's entries: `name`
 * against the NUL-terminated string at `bytes[at]`, runs of digits compared
 * as numbers (so `libx.so.10` sorts after `libx.so.9`), other bytes as C's
 * signed `char` on x86-64. A string that runs past the end of `bytes` ends there.
 */
export function libcmp(name: Uint8Array, bytes: Uint8Array, at: number): number {
  const a = (i: number): number => (i < name.length ? (name[i]! << 24) >> 24 : 0);
  const b = (i: number): number => (i >= 0 && i < bytes.length ? (bytes[i]! << 24) >> 24 : 0);
  let i = 0;
  let j = at;
  while (a(i) !== 0) {
    if (isDigit(a(i))) {
      if (!isDigit(b(j))) return 1;
      let x = 0;
      let y = 0;
      while (isDigit(a(i))) x = x * 10 + a(i++) - DIGIT_0;
      while (isDigit(b(j))) y = y * 10 + b(j++) - DIGIT_0;
      if (x !== y) return x - y;
    } else if (isDigit(b(j))) {
      return -1;
    } else if (a(i) !== b(j)) {
      return a(i) - b(j);
    } else {
      i++;
      j++;
    }
  }
  return 0 - b(j); // not -b(j): that is -0 for equal strings
}

const DIGIT_0 = 0x30;

function isDigit(c: number): boolean {
  return c >= DIGIT_0 && c <= DIGIT_0 + 9;
}

/**
 * Where the new-format part begins: at 0, or after an old-format part (its
 * 16-byte header, then 12 bytes per library, aligned to 8 as glibc's
 * `ALIGN_CACHE` does); -1 when neither holds the magic.
 */
function newFormatStart(cache: Uint8Array): number {
  if (bytesAt(cache, 0, NEW_MAGIC)) return 0;
  if (!bytesAt(cache, 0, OLD_MAGIC) || cache.length < OLD_HEADER_SIZE) return -1;
  const libraries = new DataView(cache.buffer, cache.byteOffset, cache.byteLength)
    .getUint32(OLD_MAGIC.length, true);
  const start = (OLD_HEADER_SIZE + libraries * OLD_ENTRY_SIZE + 7) & ~7;
  return bytesAt(cache, start, NEW_MAGIC) ? start : -1;
}

/** Whether `bytes` holds `want` at `at`. */
function bytesAt(bytes: Uint8Array, at: number, want: Uint8Array): boolean {
  if (at < 0 || at + want.length > bytes.length) return false;
  for (let i = 0; i < want.length; i++) if (bytes[at + i] !== want[i]) return false;
  return true;
}

/** The paths to try for libc, best first: the cache's entries, then {@linkcode LIBC_DIRS}. */
export function libcCandidates(cache: Uint8Array | null): string[] {
  const fromCache = cache === null ? [] : ldCacheLookup(cache, LIBC_SONAME);
  return [...new Set([...fromCache, ...LIBC_DIRS.map((dir) => `${dir}/${LIBC_SONAME}`)])];
}

/**
 * Opens the first of `candidates` that `open` accepts and returns it with its
 * path. A `Deno.errors.NotCapable` (no `--allow-ffi`) passes through at once.
 * @throws {LibcLoadError} when none opens: one line listing what was tried.
 */
export function openFirst<T>(
  candidates: readonly string[],
  open: (path: string) => T,
): { path: string; library: T } {
  let last: unknown = undefined;
  for (const path of candidates) {
    try {
      return { path, library: open(path) };
    } catch (error) {
      if (error instanceof Deno.errors.NotCapable) throw error;
      last = error;
    }
  }
  throw new LibcLoadError(
    `Cannot find the C library ${LIBC_SONAME} (tried ${LD_SO_CACHE} and ${
      candidates.join(", ")
    }): dhyve needs glibc on x86_64 Linux`,
    { cause: last },
  );
}

/**
 * The bytes of `/etc/ld.so.cache`, or null when Deno may not read it (checked
 * without prompting) or it cannot be read; the caller then tries the usual
 * directories alone.
 */
export function readLdCache(): Uint8Array | null {
  try {
    if (Deno.permissions.querySync({ name: "read", path: LD_SO_CACHE }).state !== "granted") {
      return null;
    }
    return Deno.readFileSync(LD_SO_CACHE);
  } catch {
    return null; // absent (musl, some containers) or fenced off by Landlock in a Worker
  }
}

function cString(bytes: Uint8Array, at: number): string | null {
  if (at >= bytes.length) return null;
  const end = bytes.indexOf(0, at);
  if (end < 0) return null;
  return decodeUtf8(bytes.subarray(at, end));
}
