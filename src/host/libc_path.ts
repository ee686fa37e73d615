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

const CACHE_MAGIC = "glibc-ld.so.cache1.1";
const HEADER_SIZE = 48;
const ENTRY_SIZE = 24;
/** `FLAG_ELF_LIBC6 | FLAG_X8664_LIB64` in glibc's `ldconfig.h`: a 64-bit x86 glibc library. */
const FLAG_X86_64_LIBC6 = 0x0303;
/** The type (low byte) and required-architecture (second byte) fields of an entry's flags. */
const FLAG_TYPE_AND_ARCH_MASK = 0xffff;

/**
 * The paths `/etc/ld.so.cache` gives for `soname` built for x86-64 glibc, in
 * the cache's order. Reads glibc's "new" format (the only one glibc ≥ 2.32
 * writes, found also after an old-format prefix); returns [] for anything it
 * does not understand (a truncated or foreign file is no error, just no hint).
 */
export function ldCacheLookup(cache: Uint8Array, soname: string): string[] {
  // One byte per UTF-16 unit, so that the engine's native indexOf finds the
  // magic and the key (a loop over the bytes cost ~1 ms at start-up).
  const text = bytesAsText.decode(cache);
  const start = text.indexOf(CACHE_MAGIC);
  if (start < 0 || cache.length < start + HEADER_SIZE) return [];
  // Where the C string `soname` may begin: every "soname\0" (ldconfig shares string tails).
  const keys = new Set<number>();
  for (let at = text.indexOf(`${soname}\0`); at >= 0; at = text.indexOf(`${soname}\0`, at + 1)) {
    keys.add(at);
  }
  if (keys.size === 0) return [];
  const view = new DataView(cache.buffer, cache.byteOffset, cache.byteLength);
  const count = view.getUint32(start + 20, true);
  const found: string[] = [];
  for (let i = 0; i < count; i++) {
    const at = start + HEADER_SIZE + i * ENTRY_SIZE;
    if (at + ENTRY_SIZE > cache.length) break;
    if (!keys.has(start + view.getUint32(at + 4, true))) continue;
    const flags = view.getInt32(at, true);
    if ((flags & FLAG_TYPE_AND_ARCH_MASK) !== FLAG_X86_64_LIBC6) continue;
    const value = cString(cache, start + view.getUint32(at + 8, true));
    if (value !== null && value.startsWith("/")) found.push(value);
  }
  return found;
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

const decoder = new TextDecoder();
/** Decodes each byte to one UTF-16 unit (windows-1252 maps all 256 bytes one to one). */
const bytesAsText = new TextDecoder("windows-1252");

function cString(bytes: Uint8Array, at: number): string | null {
  if (at >= bytes.length) return null;
  const end = bytes.indexOf(0, at);
  if (end < 0) return null;
  return decoder.decode(bytes.subarray(at, end));
}
