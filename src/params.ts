/**
 * The parameters of one VM run, their defaults and their validation. Shared
 * by the CLI (`main.ts`) and the library (`mod.ts`). Pure: no I/O.
 * @module
 */

import type { NetOption } from "./net/net_option.ts";
import type { OutputSink } from "./io/guest_output.ts";
import type { InputSource } from "./hypercall/serial_input.ts";

/** A problem with what the user asked for; the message says what and how to fix it. */
export class UsageError extends TypeError {
  /** Error name. */
  override name = "UsageError";
}

const KIB = 1024;
const MIB = 1024 * KIB;
const GIB = 1024 * MIB;

/** Default guest RAM: 64 MiB, as uhyve. */
export const DEFAULT_MEMORY_SIZE = 64 * MIB;
/** Smallest guest RAM uhyve accepts. */
export const MIN_MEMORY_SIZE = 16 * MIB;
/** Guest RAM must be a multiple of this (2 MiB pages). */
export const MEMORY_ALIGN = 2 * MIB;
/** Largest guest RAM dhyve maps (a v2 kernel's range tops out at 64 GiB). */
export const MAX_MEMORY_SIZE = 60 * GIB;

/** The port `-s` uses when given without one (uhyve's default). */
export const DEFAULT_GDB_PORT = 6677;

/** Everything that shapes one run. All fields but the kernel have defaults. */
export interface VmParams {
  /** Guest RAM in bytes (default 64 MiB; ≥ 16 MiB, a multiple of 2 MiB). */
  memorySize?: number;
  /** Number of vCPUs (default 1). */
  cpuCount?: number;
  /** Randomise where a relocatable kernel is placed (default true). */
  aslr?: boolean;
  /** Kernel arguments; a `"--"` separates kernel from application arguments. */
  args?: readonly string[];
  /** Guest environment as `[KEY, VALUE]` pairs (default: none). */
  env?: readonly (readonly [string, string])[];
  /** Where guest serial output and guest fd 1 go (default: the process's stdout). */
  stdout?: OutputSink;
  /** Where guest fd 2 goes (default: the process's stderr). */
  stderr?: OutputSink;
  /** Serial input for the guest (default: the process's stdin; one vCPU only). */
  stdin?: InputSource;
  /** madvise(MADV_HUGEPAGE) on guest RAM. */
  thp?: boolean;
  /** madvise(MADV_MERGEABLE) on guest RAM. */
  ksm?: boolean;
  /** Create an in-kernel PIT. */
  pit?: boolean;
  /** Let the guest halt/pause/mwait without exits (`--cpu-pm`), where KVM supports it. */
  cpuPm?: boolean;
  /**
   * `env` came from `-e host`: a Hermit image's own environment is then
   * ignored, as uhyve does.
   */
  envHost?: boolean;
  /** Source of randomness in [0, 1) for ASLR (tests pin it). */
  random?: () => number;
  /** `HOST:GUEST` file mappings (`--file-mapping`); relative host paths are from the cwd. */
  fileMappings?: readonly string[];
  /** Parent directory of the per-VM temp directory (`--tempdir`; default: the OS temp dir). */
  tempDir?: string;
  /**
   * Landlock: "none", "normal" (warn where unsupported) or "strict" (refuse).
   * The library default is "none", because Landlock restricts the whole
   * calling process for good; the CLI defaults to "normal".
   */
  fileIsolation?: FileIsolation;
  /** `--io-mode` flags for files the guest creates in the temp dir. */
  ioMode?: { direct?: boolean; sync?: boolean };
  /** Most files the guest may hold open (default 1024). */
  maxOpenFiles?: number;
  /** Most bytes the guest may write into temp files (default: no limit). */
  maxTempBytes?: number;
  /** Stop the guest after this many milliseconds (`--timeout`); default: no limit. */
  timeoutMs?: number;
  /**
   * Run under a GDB remote stub on this loopback TCP port (0: any free port),
   * waiting for the debugger before the guest runs. Absent: no stub.
   */
  gdbPort?: number;
  /** Host core for each vCPU (`-a`); default: vCPUs float. */
  affinity?: readonly number[];
  /** Check up front that Deno's permissions cover every path (default true). */
  checkPermissions?: boolean;
  /** `-n/--net`: a virtio-net device backed by a host TAP interface (default: none). */
  net?: NetOption;
  /**
   * How a Hermit image reaches its kernel (`--hermit-image-mode`): "external"
   * (default) serves its files through the file map; "internal" copies the
   * whole archive into guest RAM as an initrd announced in the device tree.
   */
  hermitImageMode?: HermitImageMode;
}

/** `--hermit-image-mode` values (uhyve 0.9.1). */
export type HermitImageMode = "external" | "internal";

/**
 * Parses `--hermit-image-mode` (case-insensitive, as uhyve 0.9.1).
 * @throws {UsageError} for other values (uhyve panics).
 */
export function parseHermitImageMode(text: string): HermitImageMode {
  const v = text.toLowerCase();
  if (v === "external" || v === "internal") return v;
  throw new UsageError(`Invalid --hermit-image-mode "${text}": use external or internal`);
}

/** Landlock modes of `--file-isolation`. */
export type FileIsolation = "none" | "normal" | "strict";

/**
 * Parses `--file-isolation` (case-insensitive, as uhyve).
 * @throws {UsageError} for other values.
 */
export function parseFileIsolation(text: string): FileIsolation {
  const v = text.toLowerCase();
  if (v === "none" || v === "normal" || v === "strict") return v;
  throw new UsageError(`Invalid --file-isolation "${text}": use none, normal or strict`);
}

/**
 * Parses `--io-mode` as uhyve does: `host=direct`, `host=sync`,
 * `host=direct,sync`; a value without "=" (e.g. "default") means no flags.
 * @throws {UsageError} for anything else.
 */
export function parseIoMode(text: string): { direct: boolean; sync: boolean } {
  const eq = text.indexOf("=");
  if (eq < 0) return { direct: false, sync: false };
  const key = text.slice(0, eq);
  const flags = text.slice(eq + 1).split(",").filter((f) => f !== "");
  if (key !== "host" || flags.some((f) => f !== "direct" && f !== "sync")) {
    throw new UsageError(
      `Invalid --io-mode "${text}": use host=direct, host=sync or host=direct,sync`,
    );
  }
  return { direct: flags.includes("direct"), sync: flags.includes("sync") };
}

/**
 * Parses a memory size as uhyve does: a number with an optional unit. Binary
 * units (KiB, MiB, GiB, TiB; also K/M/G and KB/MB/GB taken as binary, since
 * nobody means 64 000 000 bytes of RAM) and plain bytes.
 * @throws {UsageError} for anything else.
 */
export function parseMemorySize(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(i?B?)\s*$/i.exec(text);
  if (m === null || (m[2] === "" && m[3] !== "" && m[3]!.toUpperCase() !== "B")) {
    throw new UsageError(
      `Invalid memory size "${text}": use a number with a unit, e.g. 64MiB, 512MiB or 2GiB`,
    );
  }
  const unit = { "": 1, K: KIB, M: MIB, G: GIB, T: 1024 * GIB }[m[2]!.toUpperCase()] ?? 1;
  const bytes = Number(m[1]) * unit;
  if (!Number.isSafeInteger(bytes)) {
    throw new UsageError(`Invalid memory size "${text}": not a whole number of bytes`);
  }
  return bytes;
}

/** Formats a byte count the way the messages show it (e.g. "64 MiB"). */
export function formatSize(bytes: number): string {
  if (bytes % GIB === 0) return `${bytes / GIB} GiB`;
  if (bytes % MIB === 0) return `${bytes / MIB} MiB`;
  return `${bytes} bytes`;
}

/**
 * Checks a guest memory size.
 * @throws {UsageError} naming the rule that was broken.
 */
export function validateMemorySize(bytes: number): number {
  if (!Number.isSafeInteger(bytes) || bytes < MIN_MEMORY_SIZE) {
    throw new UsageError(
      `Guest memory of ${formatSize(bytes)} is too small: use at least ${
        formatSize(MIN_MEMORY_SIZE)
      } (-m 16MiB)`,
    );
  }
  if (bytes % MEMORY_ALIGN !== 0) {
    const up = Math.ceil(bytes / MEMORY_ALIGN) * MEMORY_ALIGN;
    throw new UsageError(
      `Guest memory of ${bytes} bytes is not a multiple of 2 MiB: use ${formatSize(up)}`,
    );
  }
  if (bytes > MAX_MEMORY_SIZE) {
    throw new UsageError(
      `Guest memory of ${formatSize(bytes)} is too large: at most ${formatSize(MAX_MEMORY_SIZE)}`,
    );
  }
  return bytes;
}

/**
 * Parses one `-e KEY=VALUE` entry.
 * @throws {UsageError} when there is no `=` or the key is empty.
 */
export function parseEnvEntry(text: string): [string, string] {
  const eq = text.indexOf("=");
  if (eq <= 0) {
    throw new UsageError(
      `Invalid environment entry "${text}": write KEY=VALUE, or "host" to pass the host environment`,
    );
  }
  return [text.slice(0, eq), text.slice(eq + 1)];
}

/**
 * Checks a vCPU count.
 * @throws {UsageError} for 0, negative or absurd counts.
 */
export function validateCpuCount(count: number): number {
  if (!Number.isSafeInteger(count) || count < 1 || count > 256) {
    throw new UsageError(`Invalid vCPU count ${count}: use a whole number from 1 to 256`);
  }
  return count;
}

/**
 * Parses a duration for `--timeout`: a number of seconds, or a number with a
 * unit `ms`, `s`, `m` or `h` (e.g. `500ms`, `10s`, `2m`). Returns milliseconds.
 * @throws {UsageError} for anything else or a non-positive value.
 */
export function parseDuration(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$/.exec(text);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m?.[2] ?? "s"] ?? 1000;
  const ms = m === null ? NaN : Math.round(Number(m[1]) * unit);
  if (!(ms > 0) || !Number.isSafeInteger(ms)) {
    throw new UsageError(
      `Invalid duration "${text}": use seconds or a unit, e.g. 30, 500ms, 10s, 2m`,
    );
  }
  return ms;
}

/** Highest host CPU number accepted (Linux's largest NR_CPUS is 8192). */
export const MAX_CPU_ID = 8191;

/** Checks core numbers: whole, in range, no duplicates. `label` names the input in messages. */
export function checkCores(cores: readonly number[], label: string): number[] {
  const seen = new Set<number>();
  for (const core of cores) {
    if (!Number.isSafeInteger(core) || core < 0 || core > MAX_CPU_ID) {
      throw new UsageError(
        `Invalid ${label}: CPU ${core} is not a host CPU number (0 to ${MAX_CPU_ID})`,
      );
    }
    if (seen.has(core)) {
      throw new UsageError(
        `Invalid ${label}: CPU ${core} is listed twice; give each vCPU its own host CPU`,
      );
    }
    seen.add(core);
  }
  return [...cores];
}

/**
 * Checks an affinity list against the run: whole, distinct CPU numbers, one
 * per vCPU (`cpuCount`, as uhyve requires) and, when `hostCpus` is given
 * (e.g. `navigator.hardwareConcurrency`), each below it.
 * @throws {UsageError} naming what is wrong.
 */
export function validateAffinity(
  cores: readonly number[],
  opts: { cpuCount: number; hostCpus?: number },
): number[] {
  const label = `--affinity ${cores.join(",")}`;
  checkCores(cores, label);
  if (cores.length !== opts.cpuCount) {
    throw new UsageError(
      `Invalid ${label}: it lists ${cores.length} host CPU${
        cores.length === 1 ? "" : "s"
      } but there ${opts.cpuCount === 1 ? "is 1 vCPU" : `are ${opts.cpuCount} vCPUs`}` +
        " (-c); give exactly one host CPU per vCPU",
    );
  }
  if (opts.hostCpus !== undefined) {
    const missing = cores.find((c) => c >= opts.hostCpus!);
    if (missing !== undefined) {
      throw new UsageError(
        `Invalid ${label}: this host has CPUs 0 to ${opts.hostCpus - 1}, not ${missing}`,
      );
    }
  }
  return [...cores];
}
