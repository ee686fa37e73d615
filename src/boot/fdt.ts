/**
 * The flattened device tree handed to Hermit at guest+0x5000 (hermit-abi.md §4.1).
 *
 * Owns a small DTB writer (v17 blobs, as vm-fdt 0.3 writes them), the
 * `/chosen/bootargs` string with uhyve's `env=KEY=VALUE` quoting, and the
 * Hermit node set. Pure: returns bytes, no I/O; must not import kvm.ts or
 * libc.ts.
 * @module
 */

import { FDT_MAX_SIZE } from "./layout.ts";
import { encodeUtf8 } from "../utf8.ts";

/** DTB header magic. */
export const FDT_MAGIC = 0xd00d_feed;
/** DTB version written. */
export const FDT_VERSION = 17;
/** Oldest DTB version the blob is compatible with. */
export const FDT_LAST_COMP_VERSION = 16;
/** Structure-block token: start of a node (followed by its NUL-terminated name). */
export const FDT_BEGIN_NODE = 0x1;
/** Structure-block token: end of a node. */
export const FDT_END_NODE = 0x2;
/** Structure-block token: a property (length, name offset, value). */
export const FDT_PROP = 0x3;
/** Structure-block token: no-op. */
export const FDT_NOP = 0x4;
/** Structure-block token: end of the structure block. */
export const FDT_END = 0x9;
/** Size of the DTB header in bytes. */
export const FDT_HEADER_SIZE = 40;

const TWO_POW_32 = 0x1_0000_0000;

/** A growable big-endian byte buffer. */
class ByteSink {
  #bytes = new Uint8Array(256);
  #view = new DataView(this.#bytes.buffer);
  length = 0;

  #reserve(extra: number): void {
    if (this.length + extra <= this.#bytes.length) return;
    let size = this.#bytes.length * 2;
    while (size < this.length + extra) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.#bytes.subarray(0, this.length));
    this.#bytes = next;
    this.#view = new DataView(next.buffer);
  }

  u32(value: number): void {
    this.#reserve(4);
    this.#view.setUint32(this.length, value >>> 0);
    this.length += 4;
  }

  bytes(data: Uint8Array): void {
    this.#reserve(data.length);
    this.#bytes.set(data, this.length);
    this.length += data.length;
  }

  /** Pads with zero bytes to a multiple of 4. */
  align4(): void {
    const pad = (4 - (this.length % 4)) % 4;
    this.#reserve(pad);
    this.#bytes.fill(0, this.length, this.length + pad);
    this.length += pad;
  }

  view(): Uint8Array {
    return this.#bytes.subarray(0, this.length);
  }
}

/** UTF-8 bytes of `text` plus a NUL; rejects text that already contains NUL. */
function cString(text: string, what: string): Uint8Array {
  if (text.includes("\0")) {
    throw new TypeError(`Cannot write device tree: ${what} contains a NUL character`);
  }
  const encoded = encodeUtf8(text);
  const bytes = new Uint8Array(encoded.length + 1);
  bytes.set(encoded);
  return bytes;
}

/** Big-endian bytes of 64-bit values given as non-negative safe integers. */
function u64Cells(values: readonly number[]): Uint8Array {
  const out = new Uint8Array(values.length * 8);
  const view = new DataView(out.buffer);
  values.forEach((value, i) => {
    if (!Number.isSafeInteger(value) || value < 0) {
      throw new RangeError(`Cannot write device tree: invalid u64 cell: ${value}`);
    }
    const high = Math.floor(value / TWO_POW_32);
    view.setUint32(i * 8, high);
    view.setUint32(i * 8 + 4, value - high * TWO_POW_32);
  });
  return out;
}

/** One entry of the DTB's memory-reservation block: guest-physical `[address, address + size)`. */
export interface FdtReservation {
  /** First reserved byte. */
  readonly address: number;
  /** Reserved bytes. */
  readonly size: number;
}

/**
 * Writes a DTB: header, the memory-reservation block (the given entries, then
 * the terminating empty one), the structure block, and a strings block in
 * which each property name appears once. Call {@linkcode FdtWriter.beginNode}
 * for the root node (name `""`) first and close every node before
 * {@linkcode FdtWriter.finish}.
 */
export class FdtWriter {
  #reservations: Uint8Array;
  #struct = new ByteSink();
  #strings = new ByteSink();
  #stringOffsets = new Map<string, number>();
  #depth = 0;
  #finished = false;

  /** Starts a blob whose reservation block holds `reservations` (default: none), in order. */
  constructor(reservations: readonly FdtReservation[] = []) {
    this.#reservations = u64Cells(reservations.flatMap((r) => [r.address, r.size]));
  }

  #checkOpen(what: string): void {
    if (this.#finished) throw new Error(`Cannot ${what}: the device tree is finished`);
  }

  /** Opens a node; the root node's name is the empty string. */
  beginNode(name: string): void {
    this.#checkOpen("begin a node");
    if (this.#depth === 0 && this.#struct.length > 0) {
      throw new Error("Cannot begin a node: the root node is already closed");
    }
    this.#struct.u32(FDT_BEGIN_NODE);
    this.#struct.bytes(cString(name, `node name "${name}"`));
    this.#struct.align4();
    this.#depth++;
  }

  /** Closes the most recently opened node. */
  endNode(): void {
    this.#checkOpen("end a node");
    if (this.#depth === 0) throw new Error("Cannot end a node: no node is open");
    this.#struct.u32(FDT_END_NODE);
    this.#depth--;
  }

  /** Adds a property with a raw value to the open node. */
  property(name: string, value: Uint8Array): void {
    this.#checkOpen("add a property");
    if (this.#depth === 0) throw new Error(`Cannot add property "${name}": no node is open`);
    let nameOffset = this.#stringOffsets.get(name);
    if (nameOffset === undefined) {
      nameOffset = this.#strings.length;
      this.#strings.bytes(cString(name, `property name "${name}"`));
      this.#stringOffsets.set(name, nameOffset);
    }
    this.#struct.u32(FDT_PROP);
    this.#struct.u32(value.length);
    this.#struct.u32(nameOffset);
    this.#struct.bytes(value);
    this.#struct.align4();
  }

  /** Adds a NUL-terminated string property. */
  propertyString(name: string, value: string): void {
    this.property(name, cString(value, `property "${name}"`));
  }

  /** Adds a string-list property: each string NUL-terminated, back to back. */
  propertyStringList(name: string, values: readonly string[]): void {
    const parts = values.map((v) => cString(v, `property "${name}"`));
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const part of parts) {
      out.set(part, at);
      at += part.length;
    }
    this.property(name, out);
  }

  /** Adds a big-endian u32 property. */
  propertyU32(name: string, value: number): void {
    if (!Number.isInteger(value) || value < 0 || value > 0xffff_ffff) {
      throw new RangeError(`Cannot write device tree: property "${name}" is not a u32: ${value}`);
    }
    const out = new Uint8Array(4);
    new DataView(out.buffer).setUint32(0, value);
    this.property(name, out);
  }

  /** Adds a property holding big-endian u64 cells. */
  propertyU64Array(name: string, values: readonly number[]): void {
    this.property(name, u64Cells(values));
  }

  /** Ends the structure block and returns the complete blob. */
  finish(): Uint8Array {
    this.#checkOpen("finish");
    if (this.#depth !== 0 || this.#struct.length === 0) {
      throw new Error("Cannot finish the device tree: a node is still open or none was written");
    }
    this.#struct.u32(FDT_END);
    this.#finished = true;
    const offMemRsvmap = FDT_HEADER_SIZE; // already 8-byte aligned
    // The entries, then one all-zero terminating entry.
    const offDtStruct = offMemRsvmap + this.#reservations.length + 16;
    const sizeDtStruct = this.#struct.length;
    const offDtStrings = offDtStruct + sizeDtStruct;
    const sizeDtStrings = this.#strings.length;
    const totalSize = offDtStrings + sizeDtStrings;

    const blob = new Uint8Array(totalSize);
    const view = new DataView(blob.buffer);
    view.setUint32(0, FDT_MAGIC);
    view.setUint32(4, totalSize);
    view.setUint32(8, offDtStruct);
    view.setUint32(12, offDtStrings);
    view.setUint32(16, offMemRsvmap);
    view.setUint32(20, FDT_VERSION);
    view.setUint32(24, FDT_LAST_COMP_VERSION);
    view.setUint32(28, 0); // boot_cpuid_phys
    view.setUint32(32, sizeDtStrings);
    view.setUint32(36, sizeDtStruct);
    blob.set(this.#reservations, offMemRsvmap);
    blob.set(this.#struct.view(), offDtStruct);
    blob.set(this.#strings.view(), offDtStrings);
    return blob;
  }
}

/** Characters that make `shell-words` quote a word (besides `'` and newline). */
const SHELL_SPECIAL = new Set([...'|&;<>()$`\\" \t*?[#~=%']);

/**
 * Quotes one word the way Rust's `shell-words` 1.1.1 `quote` does (uhyve's
 * choice for env keys and values): the empty string becomes `''`; a word
 * without any special character is left as is; otherwise it is wrapped in
 * single quotes, with each `'` written as `'\''`. The special characters are
 * the single quote, newline, space, tab, backtick, backslash, double quote and
 * `| & ; < > ( ) $ * ? [ # ~ = %`. (Before 1.1.1 the crate listed U+02DC SMALL
 * TILDE instead of `~`; uhyve 0.8.0 pins 1.1.1.)
 */
export function quoteShellWord(word: string): string {
  if (word === "") return "''";
  let special = false;
  for (const ch of word) {
    if (ch === "'" || ch === "\n" || SHELL_SPECIAL.has(ch)) {
      special = true;
      break;
    }
  }
  if (!special) return word;
  return `'${word.replaceAll("'", "'\\''")}'`;
}

/** Appends `word` to a space-separated list the way uhyve does (no space before the first). */
function appendWord(list: string, word: string): string {
  return list === "" ? word : `${list} ${word}`;
}

/**
 * Builds `/chosen/bootargs` as uhyve 0.8.0 does: `args` is split at the first
 * `"--"` into kernel words K and application words A; one
 * `env=KEY=VALUE` word per variable (key and value each quoted by
 * {@linkcode quoteShellWord}) is appended to K. Words are joined with single
 * spaces, unquoted. The result is `""` if K and A are both empty, K if A is
 * empty, `"-- " + A` if K is empty, else `K + " -- " + A`.
 *
 * Like uhyve, a word is joined with a space only when the text so far is
 * non-empty, so leading empty words leave no trace.
 */
export function hermitBootargs(
  args: readonly string[],
  env: readonly (readonly [string, string])[],
): string {
  const sep = args.indexOf("--");
  const kernelWords = sep < 0 ? args : args.slice(0, sep);
  const appWords = sep < 0 ? [] : args.slice(sep + 1);
  let kernel = "";
  for (const word of kernelWords) kernel = appendWord(kernel, word);
  for (const [key, value] of env) {
    kernel = appendWord(kernel, `env=${quoteShellWord(key)}=${quoteShellWord(value)}`);
  }
  let app = "";
  for (const word of appWords) app = appendWord(app, word);
  if (app === "") return kernel;
  if (kernel === "") return `-- ${app}`;
  return `${kernel} -- ${app}`;
}

/** Raised when the device tree does not fit below the boot info (0x4000 bytes). */
export class FdtSizeError extends RangeError {
  /** Size of the blob that was built. */
  readonly size: number;
  /** The exclusive limit. */
  readonly limit: number;

  /** Builds the error for a blob of `size` bytes. */
  constructor(size: number, limit: number) {
    super(`Device tree is too large: ${size} bytes, must be below ${limit}`);
    this.size = size;
    this.limit = limit;
  }
  /** Error name. */
  override name = "FdtSizeError";
}

/** Inputs of {@linkcode buildHermitFdt}. */
export interface HermitFdtOptions {
  /** Guest-physical address of the first byte of RAM. */
  guestAddress: number;
  /** Size of guest RAM in bytes. */
  memorySize: number;
  /** TSC frequency in kHz; null (or 0) omits `/hermit,tsc`. */
  tscKhz: number | null;
  /** Guest directories of the file map; empty omits `/uhyve,mounts`. */
  mounts: readonly string[];
  /** Kernel and application arguments, split at the first `"--"`. */
  args: readonly string[];
  /** Environment variables for the guest, in order. */
  env: readonly (readonly [string, string])[];
  /** Number of vCPUs: adds uhyve main's `/cpus` node; absent omits it (uhyve 0.9.1 on x86). */
  cpuCount?: number;
  /**
   * A Hermit image given to the kernel as an initrd (`--hermit-image-mode
   * internal`): guest-physical `[start, end)` of its bytes. Adds
   * `linux,initrd-start`/`-end` to `/chosen` and reserves the range, rounded
   * up to whole 4 KiB pages, in the reservation block.
   */
  initrd?: { readonly start: number; readonly end: number };
}

/** Page granule of the initrd's memory reservation. */
const INITRD_RESERVE_ALIGN = 0x1000;

/**
 * Builds the FDT uhyve (0.8.0 to main) gives a Hermit kernel, nodes in this
 * order: `/` (`compatible = "hermit,uhyve"`, `#address-cells = #size-cells =
 * <2>`), `/memory@<guestAddress in lowercase hex>` (`device_type = "memory"`,
 * `reg = <guestAddress memorySize>` as u64 cells), `/uhyve,mounts` (`mounts`
 * string list, only when `mounts` is non-empty), `/cpus` (uhyve main:
 * `#address-cells = <1>`, `#size-cells = <0>`, one `cpu@<decimal id>` child
 * per vCPU holding only `device_type = "cpu"`; only when `cpuCount` is given),
 * `/hermit,tsc` (`khz`, only when `tscKhz` is known) and `/chosen`
 * (`bootargs`, see {@linkcode hermitBootargs}; with `initrd`, then
 * `linux,initrd-start` and `linux,initrd-end` as u64 cells, the end being the
 * image's exact end as on uhyve main (0.9.1 rounds it up to 4 KiB), plus a
 * reservation-block entry for the initrd's whole pages).
 *
 * @throws {FdtSizeError} (a RangeError) if the blob is 0x4000 bytes or more,
 *   i.e. the arguments, environment or mounts are too long for the device tree
 * @throws {TypeError} if a string contains a NUL character
 * @throws {RangeError} if an address, size or frequency does not fit its cell
 */
export function buildHermitFdt(options: HermitFdtOptions): Uint8Array {
  const { guestAddress, memorySize, tscKhz, mounts, args, env, cpuCount, initrd } = options;
  if (initrd !== undefined && !(initrd.end > initrd.start)) {
    throw new RangeError(
      `Cannot write device tree: empty or reversed initrd range ${initrd.start}..${initrd.end}`,
    );
  }
  const fdt = new FdtWriter(
    initrd === undefined ? [] : [{
      address: initrd.start,
      size: Math.ceil((initrd.end - initrd.start) / INITRD_RESERVE_ALIGN) * INITRD_RESERVE_ALIGN,
    }],
  );
  fdt.beginNode("");
  fdt.propertyString("compatible", "hermit,uhyve");
  fdt.propertyU32("#address-cells", 2);
  fdt.propertyU32("#size-cells", 2);

  fdt.beginNode(`memory@${guestAddress.toString(16)}`);
  fdt.propertyString("device_type", "memory");
  fdt.propertyU64Array("reg", [guestAddress, memorySize]);
  fdt.endNode();

  if (mounts.length > 0) {
    fdt.beginNode("uhyve,mounts");
    fdt.propertyStringList("mounts", mounts);
    fdt.endNode();
  }

  if (cpuCount !== undefined) {
    if (!Number.isSafeInteger(cpuCount) || cpuCount < 1) {
      throw new RangeError(`Cannot write device tree: invalid vCPU count ${cpuCount}`);
    }
    fdt.beginNode("cpus");
    fdt.propertyU32("#address-cells", 1);
    fdt.propertyU32("#size-cells", 0);
    for (let id = 0; id < cpuCount; id++) {
      fdt.beginNode(`cpu@${id}`);
      fdt.propertyString("device_type", "cpu");
      fdt.endNode();
    }
    fdt.endNode();
  }

  if (tscKhz !== null && tscKhz !== 0) {
    fdt.beginNode("hermit,tsc");
    fdt.propertyU32("khz", tscKhz);
    fdt.endNode();
  }

  fdt.beginNode("chosen");
  fdt.propertyString("bootargs", hermitBootargs(args, env));
  if (initrd !== undefined) {
    fdt.propertyU64Array("linux,initrd-start", [initrd.start]);
    fdt.propertyU64Array("linux,initrd-end", [initrd.end]);
  }
  fdt.endNode();

  fdt.endNode();
  const blob = fdt.finish();
  if (blob.length >= FDT_MAX_SIZE) throw new FdtSizeError(blob.length, FDT_MAX_SIZE);
  return blob;
}
