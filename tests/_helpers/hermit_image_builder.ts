/**
 * Builds Hermit images for tests, in memory: ustar headers (POSIX, GNU or
 * v7, with raw-field overrides for broken archives), tar archives, gzip, and
 * a `hermit.toml` writer. Test-only; imports nothing from `src/`.
 * @module
 */

import { gzipSync } from "node:zlib";

const BLOCK = 512;
const encoder = new TextEncoder();

/** One tar entry. Everything but `name` has a sensible default. */
export interface TarEntrySpec {
  /** The path; names over 100 bytes are split into `prefix` + `name` (POSIX only). */
  readonly name: string;
  /** Contents (default: empty). */
  readonly data?: Uint8Array | string;
  /** Type flag character (default `"0"`, a regular file; `"5"` directory, `"2"` symlink …). */
  readonly type?: string;
  /** The ustar `prefix` field, written as is (overrides the automatic split). */
  readonly prefix?: string;
  /** Raw bytes for the name field (e.g. invalid UTF-8); overrides `name`. */
  readonly nameBytes?: Uint8Array;
  /** Raw text for the 12-byte size field (default: the data length in octal). */
  readonly sizeField?: string;
  /** Header flavour (default `"posix"`: magic `ustar\0`, version `00`). */
  readonly format?: "posix" | "gnu" | "v7";
  /** Link target (for type `"1"`/`"2"`). */
  readonly linkname?: string;
}

function bytesOf(data: Uint8Array | string | undefined): Uint8Array {
  if (data === undefined) return new Uint8Array(0);
  return typeof data === "string" ? encoder.encode(data) : data;
}

function put(block: Uint8Array, offset: number, length: number, value: Uint8Array | string): void {
  const bytes = typeof value === "string" ? encoder.encode(value) : value;
  block.set(bytes.subarray(0, length), offset);
}

function octalField(value: number, length: number): string {
  return `${value.toString(8).padStart(length - 1, "0")}\0`;
}

/** Writes a valid checksum into a 512-byte header block (in place). */
export function setTarChecksum(block: Uint8Array): void {
  block.fill(0x20, 148, 156);
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += block[i]!;
  put(block, 148, 8, `${sum.toString(8).padStart(6, "0")}\0 `);
}

/** One 512-byte header for `spec`, with a valid checksum. */
export function tarHeader(spec: TarEntrySpec): Uint8Array {
  const block = new Uint8Array(BLOCK);
  const data = bytesOf(spec.data);
  const format = spec.format ?? "posix";
  let name = spec.name;
  let prefix = spec.prefix ?? "";
  if (spec.prefix === undefined && format === "posix" && encoder.encode(name).length > 100) {
    const cut = name.lastIndexOf("/", name.length - 1);
    prefix = name.slice(0, cut);
    name = name.slice(cut + 1);
  }
  put(block, 0, 100, spec.nameBytes ?? name);
  put(block, 100, 8, "0000644\0");
  put(block, 108, 8, "0001750\0");
  put(block, 116, 8, "0001750\0");
  put(block, 124, 12, spec.sizeField ?? octalField(data.length, 12));
  put(block, 136, 12, octalField(1_700_000_000, 12));
  put(block, 156, 1, spec.type ?? "0");
  put(block, 157, 100, spec.linkname ?? "");
  if (format === "posix") {
    put(block, 257, 6, "ustar\0");
    put(block, 263, 2, "00");
    put(block, 345, 155, prefix);
  } else if (format === "gnu") {
    put(block, 257, 8, "ustar  \0");
  }
  if (format !== "v7") {
    put(block, 265, 32, "user");
    put(block, 297, 32, "user");
  }
  setTarChecksum(block);
  return block;
}

/** Options of {@linkcode buildTar}. */
export interface BuildTarOptions {
  /** Zero blocks at the end (default 2). */
  readonly endBlocks?: number;
}

/** A tar archive of `entries`: header, data padded to 512, then the end blocks. */
export function buildTar(entries: readonly TarEntrySpec[], opts: BuildTarOptions = {}): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const entry of entries) {
    parts.push(tarHeader(entry));
    const data = bytesOf(entry.data);
    const padded = new Uint8Array(Math.ceil(data.length / BLOCK) * BLOCK);
    padded.set(data);
    parts.push(padded);
  }
  parts.push(new Uint8Array(BLOCK * (opts.endBlocks ?? 2)));
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

/** gzip-compresses `bytes`. */
export function gzip(bytes: Uint8Array): Uint8Array {
  const out = gzipSync(bytes);
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}

/** Fields of {@linkcode hermitToml}; each may be left out to test a missing key. */
export interface HermitTomlSpec {
  /** `version` (default `"1"`); null leaves it out. */
  readonly version?: string | null;
  /** `kernel` (default `"hello"`); null leaves it out. */
  readonly kernel?: string | null;
  /** `[input] kernel_args` (default `[]`). */
  readonly kernelArgs?: readonly string[];
  /** `[input] app_args` (default `[]`). */
  readonly appArgs?: readonly string[];
  /** `[input] env_vars` (left out by default). */
  readonly envVars?: readonly string[];
  /** `[requirements] memory`, written as given (a string is quoted). */
  readonly memory?: string | number;
  /** `[requirements] cpus`. */
  readonly cpus?: number;
}

/** A `hermit.toml` text. */
export function hermitToml(spec: HermitTomlSpec = {}): string {
  const list = (items: readonly string[]): string =>
    `[${items.map((i) => JSON.stringify(i)).join(", ")}]`;
  const lines: string[] = [];
  const version = spec.version === undefined ? "1" : spec.version;
  const kernel = spec.kernel === undefined ? "hello" : spec.kernel;
  if (version !== null) lines.push(`version = ${JSON.stringify(version)}`);
  if (kernel !== null) lines.push(`kernel = ${JSON.stringify(kernel)}`);
  lines.push("", "[input]");
  lines.push(`kernel_args = ${list(spec.kernelArgs ?? [])}`);
  lines.push(`app_args = ${list(spec.appArgs ?? [])}`);
  if (spec.envVars !== undefined) lines.push(`env_vars = ${list(spec.envVars)}`);
  if (spec.memory !== undefined || spec.cpus !== undefined) {
    lines.push("", "[requirements]");
    if (spec.memory !== undefined) lines.push(`memory = ${JSON.stringify(spec.memory)}`);
    if (spec.cpus !== undefined) lines.push(`cpus = ${spec.cpus}`);
  }
  return `${lines.join("\n")}\n`;
}

/** A small stand-in for a kernel ELF: only the bytes matter to the image reader. */
export const FAKE_KERNEL: Uint8Array = new Uint8Array([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0xff]);

/**
 * A gzip'd Hermit image of `files` (name → contents, in order). By default it
 * holds `hermit.toml` (from `toml`, default {@linkcode hermitToml}()) and
 * `hello` ({@linkcode FAKE_KERNEL}) first; pass `{ defaults: false }` to
 * write exactly `files`.
 */
export function buildHermitImage(
  files: ReadonlyMap<string, Uint8Array | string> = new Map(),
  opts: { toml?: string; defaults?: boolean } & BuildTarOptions = {},
): Uint8Array {
  const entries: TarEntrySpec[] = [];
  if (opts.defaults !== false) {
    entries.push({ name: "hermit.toml", data: opts.toml ?? hermitToml() });
    entries.push({ name: "hello", data: FAKE_KERNEL });
  }
  for (const [name, data] of files) entries.push({ name, data });
  return gzip(buildTar(entries, opts));
}
