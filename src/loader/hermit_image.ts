/**
 * Hermit images (hermit-abi §1.8): a gzip'd ustar archive holding the kernel
 * ELF, a `hermit.toml` and any other files, which become read-only virtual
 * files of the guest. Unpacks and checks the archive, parses the config and
 * applies it to the command line's settings. Pure: no host I/O, never
 * imports KVM, FFI or `sandbox/`.
 * @module
 */

import { gunzip } from "node:zlib";
import { parse, TomlError } from "npm:smol-toml@1.9.1";
import { cleanGuestPath } from "../guest_path.ts";
import { formatSize, MEMORY_ALIGN, MIN_MEMORY_SIZE, parseMemorySize } from "../params.ts";
import { ImageFormatError } from "./errors.ts";

/** Default cap on the decompressed archive: 1 GiB (guards against gzip bombs). */
export const DEFAULT_MAX_IMAGE_SIZE = 1024 * 1024 * 1024;

/** Where the image's config lives, as a guest path. */
export const HERMIT_CONFIG_PATH = "/hermit.toml";

/** The image's `hermit.toml` (format version 1), checked. */
export interface HermitImageConfig {
  /** Config format version; only `"1"` exists. */
  readonly version: "1";
  /** Path of the kernel ELF inside the image, as written (leading `/` optional). */
  readonly kernel: string;
  /** `[input] kernel_args`. */
  readonly kernelArgs: readonly string[];
  /** `[input] app_args`. */
  readonly appArgs: readonly string[];
  /** `[input] env_vars`, `KEY=VALUE` items as written (default: none). */
  readonly envVars: readonly string[];
  /** `[requirements] memory`: least guest RAM in bytes, when given. */
  readonly memory?: number;
  /** `[requirements] cpus`: least vCPU count (default 0). */
  readonly cpus: number;
}

/** An unpacked Hermit image. */
export interface HermitImage {
  /**
   * Every regular file of the archive by guest path (`"/" + cleaned name`),
   * in archive order, `hermit.toml` and the kernel included. The bytes are
   * views into one decompressed buffer: read-only by convention, never copy.
   */
  readonly files: Map<string, Uint8Array>;
  /** The parsed `hermit.toml`. */
  readonly config: HermitImageConfig;
  /** The kernel ELF's bytes (also in `files`). */
  readonly kernel: Uint8Array;
  /** The kernel's guest path in `files`, e.g. `"/hello"`. */
  readonly kernelPath: string;
  /** The whole decompressed archive (`--hermit-image-mode internal` hands it to the kernel). */
  readonly tar: Uint8Array;
}

/** Options of {@linkcode readHermitImage}. */
export interface ReadHermitImageOptions {
  /** Largest decompressed archive accepted, in bytes (default {@linkcode DEFAULT_MAX_IMAGE_SIZE}). */
  readonly maxSize?: number;
}

/** True when `bytes` starts like a Hermit image (gzip + deflate: `1F 8B 08`), as uhyve checks. */
export function isHermitImage(bytes: Uint8Array): boolean {
  return bytes.length >= 4 && bytes[0] === 0x1f && bytes[1] === 0x8b && bytes[2] === 0x08;
}

function gunzipCapped(bytes: Uint8Array, maxSize: number): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    gunzip(bytes, { maxOutputLength: maxSize }, (error, result) => {
      if (error === null) {
        resolve(new Uint8Array(result.buffer, result.byteOffset, result.byteLength));
        return;
      }
      if (
        error instanceof RangeError || (error as { code?: string }).code === "ERR_BUFFER_TOO_LARGE"
      ) {
        reject(
          new ImageFormatError(
            `The Hermit image unpacks to more than ${formatSize(maxSize)}: refusing it ` +
              "(it may be a gzip bomb)",
            { cause: error },
          ),
        );
        return;
      }
      reject(
        new ImageFormatError(`Cannot decompress the Hermit image: ${error.message}`, {
          cause: error,
        }),
      );
    });
  });
}

/**
 * Unpacks a Hermit image: gunzip (at most `options.maxSize` bytes), read the
 * tar ({@linkcode readTar}), parse `/hermit.toml` ({@linkcode parseHermitConfig})
 * and find the kernel it names.
 * @throws {ImageFormatError} for anything wrong with the image, the message
 * saying what.
 */
export async function readHermitImage(
  bytes: Uint8Array,
  options: ReadHermitImageOptions = {},
): Promise<HermitImage> {
  if (!isHermitImage(bytes)) {
    throw new ImageFormatError("Not a Hermit image: the file does not start with a gzip header");
  }
  const tar = await gunzipCapped(bytes, options.maxSize ?? DEFAULT_MAX_IMAGE_SIZE);
  const files = readTar(tar);
  const configBytes = files.get(HERMIT_CONFIG_PATH);
  if (configBytes === undefined) {
    throw new ImageFormatError("The Hermit image has no hermit.toml at its root");
  }
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(configBytes);
  } catch (error) {
    throw new ImageFormatError("Invalid hermit.toml in the Hermit image: it is not UTF-8 text", {
      cause: error,
    });
  }
  const config = parseHermitConfig(text);
  const kernelPath = `/${cleanGuestPath(config.kernel)}`;
  const kernel = files.get(kernelPath);
  if (kernel === undefined) {
    throw new ImageFormatError(
      `The Hermit image's hermit.toml names the kernel "${config.kernel}", ` +
        "but the image has no such file",
    );
  }
  return { files, config, kernel, kernelPath, tar };
}

const BLOCK = 512;

/** The bytes of a header field up to its first NUL. */
function field(header: Uint8Array, start: number, length: number): Uint8Array {
  const raw = header.subarray(start, start + length);
  const nul = raw.indexOf(0);
  return nul < 0 ? raw : raw.subarray(0, nul);
}

/** Reads an octal numeric field: optional spaces, octal digits, then NUL/space padding. */
function octal(
  header: Uint8Array,
  start: number,
  length: number,
  what: string,
  at: number,
): number {
  const raw = header.subarray(start, start + length);
  if ((raw[0]! & 0x80) !== 0) {
    throw new ImageFormatError(
      `The Hermit image's tar header at byte ${at} has a base-256 ${what} field, ` +
        "which dhyve does not accept",
    );
  }
  let i = 0;
  while (i < raw.length && raw[i] === 0x20) i++;
  let value = 0;
  for (; i < raw.length; i++) {
    const c = raw[i]!;
    if (c === 0 || c === 0x20) break;
    if (c < 0x30 || c > 0x37) {
      throw new ImageFormatError(
        `The Hermit image's tar header at byte ${at} has a ${what} field that is not octal`,
      );
    }
    value = value * 8 + (c - 0x30);
  }
  for (; i < raw.length; i++) {
    if (raw[i] !== 0 && raw[i] !== 0x20) {
      throw new ImageFormatError(
        `The Hermit image's tar header at byte ${at} has a ${what} field that is not octal`,
      );
    }
  }
  return value;
}

function checksumOk(header: Uint8Array, at: number): boolean {
  const stored = octal(header, 148, 8, "checksum", at);
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const b = i >= 148 && i < 156 ? 0x20 : header[i]!;
    unsigned += b;
    signed += b < 0x80 ? b : b - 0x100;
  }
  return stored === unsigned || stored === signed;
}

function isZeroBlock(block: Uint8Array): boolean {
  for (let i = 0; i < BLOCK; i++) if (block[i] !== 0) return false;
  return true;
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * Reads a ustar archive (POSIX `ustar\0` with the `prefix` field, GNU
 * `ustar  ` and old v7 headers) into guest path → bytes. Only regular files
 * (type `'0'` or NUL) are kept; directories, links, PAX and GNU long-name
 * records and all other types are skipped, as uhyve 0.8 does; so is a
 * regular-file entry whose name ends in `/` (the old way to write a
 * directory). Names are `prefix + "/" + name` (POSIX ustar only), must be
 * UTF-8, and are cleaned lexically to `"/" + path`. Every header is
 * checksummed and every size bounds-checked; reading stops at two zero
 * blocks (one zero block at the very end is accepted); anything after them
 * is ignored. The returned bytes are views into `tar`.
 * @throws {ImageFormatError} for a truncated or corrupt archive, a non-UTF-8
 * name, a name that cleans to the root, the same path twice, or a file that
 * is also a directory of another.
 */
export function readTar(tar: Uint8Array): Map<string, Uint8Array> {
  if (tar.length === 0) throw new ImageFormatError("The Hermit image's tar archive is empty");
  const files = new Map<string, Uint8Array>();
  const dirs = new Set<string>();
  let off = 0;
  let zeroBlocks = 0;
  for (;;) {
    if (off >= tar.length) {
      if (zeroBlocks > 0 && off === tar.length) break;
      throw new ImageFormatError(
        `The Hermit image is truncated: its tar archive ends at byte ${tar.length} ` +
          "without an end-of-archive marker",
      );
    }
    if (off + BLOCK > tar.length) {
      throw new ImageFormatError(
        `The Hermit image is truncated: the tar header at byte ${off} is cut off ` +
          `after ${tar.length - off} of 512 bytes`,
      );
    }
    const header = tar.subarray(off, off + BLOCK);
    if (isZeroBlock(header)) {
      off += BLOCK;
      if (++zeroBlocks === 2) break;
      continue;
    }
    zeroBlocks = 0;
    if (!checksumOk(header, off)) {
      throw new ImageFormatError(
        `The Hermit image's tar header at byte ${off} has a bad checksum: the archive is corrupt`,
      );
    }
    const size = octal(header, 124, 12, "size", off);
    const dataStart = off + BLOCK;
    if (size > tar.length - dataStart) {
      throw new ImageFormatError(
        `The Hermit image is truncated: the tar entry at byte ${off} needs ${size} bytes of ` +
          `data, but only ${tar.length - dataStart} are left`,
      );
    }
    const type = header[156]!;
    if (type === 0x30 || type === 0) {
      const isPosix = header[257] === 0x75 && utf8Equals(header.subarray(257, 263), "ustar\0");
      let name: string;
      try {
        name = utf8.decode(field(header, 0, 100));
        const prefix = isPosix ? utf8.decode(field(header, 345, 155)) : "";
        if (prefix !== "") name = `${prefix}/${name}`;
      } catch (error) {
        throw new ImageFormatError(
          `The Hermit image has a file name that is not UTF-8 (tar entry at byte ${off})`,
          { cause: error },
        );
      }
      if (!(name.endsWith("/") && size === 0)) {
        addFile(files, dirs, name, tar.subarray(dataStart, dataStart + size));
      }
    }
    off = dataStart + Math.ceil(size / BLOCK) * BLOCK;
  }
  return files;
}

function utf8Equals(bytes: Uint8Array, text: string): boolean {
  if (bytes.length !== text.length) return false;
  for (let i = 0; i < text.length; i++) if (bytes[i] !== text.charCodeAt(i)) return false;
  return true;
}

function addFile(
  files: Map<string, Uint8Array>,
  dirs: Set<string>,
  name: string,
  bytes: Uint8Array,
): void {
  const clean = cleanGuestPath(name);
  if (clean === "") {
    throw new ImageFormatError(
      `The Hermit image has a file named "${name}", which is not a usable path`,
    );
  }
  const path = `/${clean}`;
  if (files.has(path)) throw new ImageFormatError(`The Hermit image has the file "${path}" twice`);
  if (dirs.has(path)) {
    throw new ImageFormatError(
      `The Hermit image has "${path}" both as a file and as a directory of other files`,
    );
  }
  const parts = clean.split("/");
  for (let i = 1; i < parts.length; i++) {
    const dir = `/${parts.slice(0, i).join("/")}`;
    if (files.has(dir)) {
      throw new ImageFormatError(
        `The Hermit image has "${dir}" both as a file and as a directory of other files`,
      );
    }
    dirs.add(dir);
  }
  files.set(path, bytes);
}

function configError(problem: string, options?: ErrorOptions): ImageFormatError {
  return new ImageFormatError(`Invalid hermit.toml in the Hermit image: ${problem}`, options);
}

/** A TOML table: smol-toml makes them with a null prototype (dates are Date objects). */
function isTable(value: unknown): value is Record<string, unknown> {
  if (typeof value !== "object" || value === null) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === null || proto === Object.prototype;
}

function stringArray(value: unknown, key: string): string[] {
  if (!Array.isArray(value) || value.some((v) => typeof v !== "string")) {
    throw configError(`${key} must be an array of strings`);
  }
  return value as string[];
}

/**
 * Parses an image's `hermit.toml` as hermit-entry's version-1 config:
 * `version = "1"` and `kernel` (string) are required; `[input]` with
 * `kernel_args` and `app_args` (arrays of strings) is required, `env_vars`
 * defaults to `[]`; `[requirements]` is optional, with `memory` (a size such
 * as `"64MiB"`, units read as by `-m`, or a number of bytes) and `cpus`
 * (0 to 2^32−1, default 0). Unknown keys are ignored, as uhyve does.
 * @throws {ImageFormatError} naming the problem (with the line for TOML syntax errors).
 */
export function parseHermitConfig(text: string): HermitImageConfig {
  let doc: Record<string, unknown>;
  try {
    doc = parse(text, { unsafeKeyBehaviour: "drop" });
  } catch (error) {
    if (error instanceof TomlError) {
      const what = (error.message.split("\n")[0] ?? "").replace(/^Invalid TOML document:\s*/, "");
      throw configError(`line ${error.line}: ${what}`, { cause: error });
    }
    throw error;
  }
  const version = doc.version;
  if (version === undefined) throw configError('there is no version: expected version = "1"');
  if (version !== "1") {
    throw configError(
      `version is ${JSON.stringify(version) ?? String(version)}: dhyve knows only version = "1"`,
    );
  }
  const kernel = doc.kernel;
  if (typeof kernel !== "string" || kernel === "") {
    throw configError(
      kernel === undefined
        ? 'there is no kernel: name the kernel file, e.g. kernel = "hello"'
        : "kernel must be the path of the kernel file in the image",
    );
  }
  const input = doc.input;
  if (!isTable(input)) {
    throw configError(
      input === undefined
        ? "there is no [input] section (kernel_args and app_args are required)"
        : "input must be a table",
    );
  }
  for (const key of ["kernel_args", "app_args"] as const) {
    if (input[key] === undefined) {
      throw configError(`[input] ${key} is missing: write ${key} = [] for none`);
    }
  }
  const kernelArgs = stringArray(input.kernel_args, "[input] kernel_args");
  const appArgs = stringArray(input.app_args, "[input] app_args");
  const envVars = input.env_vars === undefined
    ? []
    : stringArray(input.env_vars, "[input] env_vars");
  const requirements = doc.requirements ?? {};
  if (!isTable(requirements)) throw configError("requirements must be a table");
  let memory: number | undefined;
  const mem = requirements.memory;
  if (typeof mem === "string") {
    try {
      memory = parseMemorySize(mem);
    } catch (error) {
      throw configError(`[requirements] memory "${mem}" is not a size such as "64MiB"`, {
        cause: error,
      });
    }
  } else if (typeof mem === "number" && Number.isSafeInteger(mem) && mem >= 0) {
    memory = mem;
  } else if (mem !== undefined) {
    throw configError('[requirements] memory must be a size such as "64MiB" or a number of bytes');
  }
  const cpus = requirements.cpus ?? 0;
  if (typeof cpus !== "number" || !Number.isInteger(cpus) || cpus < 0 || cpus > 0xffff_ffff) {
    throw configError("[requirements] cpus must be a whole number from 0 to 4294967295");
  }
  const config: HermitImageConfig = {
    version: "1",
    kernel,
    kernelArgs: [...kernelArgs],
    appArgs: [...appArgs],
    envVars: [...envVars],
    cpus,
  };
  return memory === undefined ? config : { ...config, memory };
}

/** The effective run settings after {@linkcode applyImageConfig}. */
export interface ImageRun {
  /** Kernel arguments (a `"--"` separates the application's). */
  readonly args: string[];
  /** Guest environment. */
  readonly env: [string, string][];
  /** Requirements the run does not meet: one message each; empty when it can go ahead. */
  readonly errors: string[];
  /** Things worth an info log line (e.g. the image's env ignored because of `-e host`). */
  readonly notes: string[];
}

/** A size as `-m` takes it: "100MiB", "2GiB". */
function memoryFlag(bytes: number): string {
  return formatSize(bytes).replace(" ", "");
}

/**
 * Applies an image's config to the command line's settings, as uhyve 0.8:
 * 1. args: the command line's, if it gave any; else `kernel_args`, then
 *    `"--"` and `app_args` when `app_args` is non-empty;
 * 2. env: with `-e host` (`cli.envHost`; `cli.envVars` then holds the host's
 *    environment) the image's env is ignored; otherwise the image's items
 *    that contain `=` (others are dropped), overlaid by `cli.envVars`: the
 *    command line wins on equal keys, keeping the image's order;
 * 3. requirements: `memory` above `cli.memorySize` and `cpus` above
 *    `cli.cpuCount` each add a message to `errors`, saying which flag fixes it.
 */
export function applyImageConfig(
  image: { readonly config: HermitImageConfig },
  cli: {
    args: readonly string[];
    envVars: readonly (readonly [string, string])[];
    envHost: boolean;
    memorySize: number;
    cpuCount: number;
  },
): ImageRun {
  const { config } = image;
  const notes: string[] = [];
  const errors: string[] = [];
  const args = cli.args.length > 0
    ? [...cli.args]
    : [...config.kernelArgs, ...(config.appArgs.length > 0 ? ["--", ...config.appArgs] : [])];
  let env: [string, string][];
  if (cli.envHost) {
    env = cli.envVars.map(([k, v]) => [k, v]);
    if (config.envVars.length > 0) {
      notes.push("Ignoring the Hermit image's environment variables because of -e host");
    }
  } else {
    const merged = new Map<string, string>();
    for (const item of config.envVars) {
      const eq = item.indexOf("=");
      if (eq >= 0) merged.set(item.slice(0, eq), item.slice(eq + 1));
    }
    for (const [k, v] of cli.envVars) merged.set(k, v);
    env = [...merged];
  }
  if (config.memory !== undefined && config.memory > cli.memorySize) {
    const need = Math.max(MIN_MEMORY_SIZE, Math.ceil(config.memory / MEMORY_ALIGN) * MEMORY_ALIGN);
    errors.push(
      `The image needs at least ${formatSize(config.memory)} of memory, ` +
        `but the guest has ${formatSize(cli.memorySize)}: use -m ${memoryFlag(need)}`,
    );
  }
  if (config.cpus > cli.cpuCount) {
    errors.push(
      `The image needs at least ${config.cpus} vCPUs, but the guest has ${cli.cpuCount}: ` +
        `use -c ${config.cpus}`,
    );
  }
  return { args, env, errors, notes };
}
