import { REPO_ROOT } from "./repo.ts";
/**
 * Builds the freestanding C test guests of `tests/guests/` with gcc at test time.
 *
 * Each build is cached in `.build/guests/<name>-<variant>-<hash>/<name>`, keyed by a hash
 * of the sources and the exact gcc arguments, so repeated runs reuse it. Builds write to a
 * temporary name and rename it into place, so concurrent test files can build the same
 * guest safely. Needs `--allow-run=gcc`, `--allow-read` and `--allow-write` (for `.build/`).
 *
 * @module
 */

/**
 * The uhyve interface a guest is built for (hermit-abi.md §5): 1 uses the v1
 * ports and carries no UHYVEIF note; 2 and 3 use the v2 ports (RDI) and carry
 * a UHYVEIF note of 2 or 3. A v3 kernel gets the v2 boot state (uhyve 0.9.1).
 */
export type GuestIface = 1 | 2 | 3;

/** One build variant of a test guest. */
export interface GuestBuild {
  /** Hypercall interface and UHYVEIF note: 1 (v1 ports, no note), 2 or 3 (v2 ports, note = 2/3). */
  iface: GuestIface;
  /** `true`: ET_DYN linked at 0 with RELATIVE relocations; `false`: ET_EXEC at a fixed address. */
  pie: boolean;
  /** Emit the GNU ABI-tag note (Hermit 0.12.0, non-legacy mapping). Default `true`. */
  versionNote?: boolean;
  /**
   * Overrides the UHYVEIF note: its value (any u32, e.g. 0 or 4 for a version
   * dhyve rejects, or 1 for a guest that declares v1 but calls v2 ports), or
   * `null` for no note. Default: no note for `iface: 1`, else `iface`.
   */
  uhyveIfNote?: number | null;
}

/** Link address of fixed-address (ET_EXEC) guests, per boot interface (v3 boots as v2). */
export const FIXED_LINK_ADDRESS: Readonly<Record<GuestIface, number>> = Object.freeze({
  1: 0x800000,
  2: 0x1_0080_0000,
  3: 0x1_0080_0000,
});

/** The UHYVEIF note a build carries, or `null` for none. */
export function guestUhyveIfNote(opts: GuestBuild): number | null {
  if (opts.uhyveIfNote !== undefined) return opts.uhyveIfNote;
  return opts.iface === 1 ? null : opts.iface;
}

/**
 * The boot state the host gives a build: 2 (RAM from 4 GiB, serial port
 * 0x1030) for a UHYVEIF note of 2 or 3, else 1.
 */
export function guestBootIface(opts: GuestBuild): 1 | 2 {
  const note = guestUhyveIfNote(opts);
  return note === 2 || note === 3 ? 2 : 1;
}

const GUESTS_DIR = `${REPO_ROOT}/tests/guests`;
const RUNTIME_DIR = `${GUESTS_DIR}/runtime`;
const CACHE_DIR = `${REPO_ROOT}/.build/guests`;

/** Bump when the build procedure changes in a way the hashed inputs do not show. */
const BUILD_FORMAT = "dhyve-guest-build-1";

/** Files hashed into every build key (the guest's own source is added per build). */
const RUNTIME_FILES = ["rt.h", "rt.c", "start.S", "notes.S", "pie.ld", "fixed.ld"] as const;
const RUNTIME_SOURCES = ["start.S", "notes.S", "rt.c"] as const;

const COMPILE_FLAGS: readonly string[] = [
  "-std=gnu11",
  "-O2",
  "-ffreestanding",
  "-nostdlib",
  "-fno-builtin",
  "-mgeneral-regs-only",
  "-mno-red-zone",
  "-fno-stack-protector",
  "-fno-asynchronous-unwind-tables",
  "-fno-unwind-tables",
  "-fpie",
  "-fvisibility=hidden",
  "-fno-common",
  "-fno-tree-loop-distribute-patterns",
  "-fcf-protection=none",
  "-Wall",
  "-Wextra",
  "-Werror", // warnings would otherwise vanish: gcc's output is only shown on failure
];

const COMMON_LINK_FLAGS: readonly string[] = [
  "-Wl,-z,norelro",
  "-Wl,-z,noexecstack",
  "-Wl,-z,noseparate-code",
  "-Wl,--build-id=none",
];

const ELFOSABI_STANDALONE = 0xff;
const ET_EXEC = 2;
const ET_DYN = 3;
const EM_X86_64 = 62;

const inflight = new Map<string, Promise<string>>();

/**
 * The four interface × link-mode combinations every guest is built in.
 *
 * @returns `[v1 pie, v1 fixed, v2 pie, v2 fixed]`, each with the GNU version note.
 */
export function guestVariants(): GuestBuild[] {
  return [
    { iface: 1, pie: true },
    { iface: 1, pie: false },
    { iface: 2, pie: true },
    { iface: 2, pie: false },
  ];
}

/**
 * The two link modes of a version-3 guest (UHYVEIF note 3, v2 ports).
 *
 * @returns `[v3 pie, v3 fixed]`, each with the GNU version note.
 */
export function v3GuestVariants(): GuestBuild[] {
  return [{ iface: 3, pie: true }, { iface: 3, pie: false }];
}

/**
 * A short label for a build variant, for test names and cache directories.
 *
 * @param opts The build variant.
 * @returns For example `"v1-pie"`, `"v3-fixed"`, `"v1-pie-legacy"` (no GNU version note) or
 *   `"v2-pie-uhyveif1"` / `"v2-pie-nouhyveif"` (an overridden UHYVEIF note).
 */
export function guestVariantName(opts: GuestBuild): string {
  const legacy = opts.versionNote === false ? "-legacy" : "";
  const note = opts.uhyveIfNote === undefined
    ? ""
    : opts.uhyveIfNote === null
    ? "-nouhyveif"
    : `-uhyveif${opts.uhyveIfNote}`;
  return `v${opts.iface}-${opts.pie ? "pie" : "fixed"}${legacy}${note}`;
}

/**
 * Builds `tests/guests/<name>.c` on the test-guest runtime, or reuses a cached build.
 *
 * @param name The guest's file name without `.c`, e.g. `"hello"`.
 * @param opts Interface version, link mode and whether to emit the GNU version note.
 * @returns The absolute path of the built ELF (OSABI patched to 0xFF, STANDALONE).
 * @throws {Error} If the guest does not exist or gcc fails (the message holds gcc's stderr).
 */
export async function buildGuest(name: string, opts: GuestBuild): Promise<string> {
  if (!/^[a-z0-9_]+$/.test(name)) {
    throw new TypeError(`Cannot build guest: invalid name "${name}"`);
  }
  const key = `${name}\0${guestVariantName(opts)}`;
  let build = inflight.get(key);
  if (build === undefined) {
    build = buildOnce(name, opts);
    inflight.set(key, build);
    // A failed build may be retried (e.g. after the source is fixed in watch mode).
    build.catch(() => inflight.delete(key));
  }
  return await build;
}

async function buildOnce(name: string, opts: GuestBuild): Promise<string> {
  const source = `${GUESTS_DIR}/${name}.c`;
  const args = gccArgs(source, opts);
  const encoder = new TextEncoder();
  const parts: Uint8Array[] = [encoder.encode(`${BUILD_FORMAT}\0${JSON.stringify(args)}\0`)];
  for (const file of [...RUNTIME_FILES.map((f) => `${RUNTIME_DIR}/${f}`), source]) {
    let bytes: Uint8Array;
    try {
      bytes = await Deno.readFile(file);
    } catch (error) {
      throw new Error(`Cannot build guest "${name}": cannot read ${file}`, { cause: error });
    }
    parts.push(encoder.encode(`${file}\0${bytes.length}\0`), bytes);
  }
  const variant = guestVariantName(opts);
  const dir = `${CACHE_DIR}/${name}-${variant}-${(await sha256Hex(parts)).slice(0, 16)}`;
  const out = `${dir}/${name}`;
  if (await isFile(out)) return out;

  await Deno.mkdir(dir, { recursive: true });
  const tmp = `${out}.tmp-${Deno.pid}-${crypto.randomUUID()}`;
  try {
    await runGcc([...args, "-o", tmp], `${name} (${variant})`);
    const elf = await Deno.readFile(tmp);
    checkAndPatchElf(elf, opts, `${name} (${variant})`);
    await Deno.writeFile(tmp, elf);
    await Deno.rename(tmp, out);
  } catch (error) {
    await Deno.remove(tmp).catch(() => {});
    await Deno.remove(dir).catch(() => {}); // only succeeds if no other build filled it
    throw error;
  }
  return out;
}

function gccArgs(source: string, opts: GuestBuild): string[] {
  const note = guestUhyveIfNote(opts);
  if (note !== null && !(Number.isInteger(note) && note >= 0 && note <= 0xffff_ffff)) {
    throw new RangeError(`Cannot build guest: UHYVEIF note ${note} is not a u32`);
  }
  const defines = [
    `-DRT_IFACE=${opts.iface === 1 ? 1 : 2}`,
    `-DRT_HAS_UHYVEIF=${note === null ? 0 : 1}`,
    `-DRT_UHYVEIF=${note ?? 0}`,
    `-DRT_PIE=${opts.pie ? 1 : 0}`,
    `-DRT_GNU_NOTE=${opts.versionNote === false ? 0 : 1}`,
  ];
  const link = opts.pie
    ? [
      "-static-pie",
      "-Wl,--no-dynamic-linker",
      "-Wl,--hash-style=gnu",
      `-Wl,-T,${RUNTIME_DIR}/pie.ld`,
    ]
    : [
      "-static",
      "-no-pie",
      `-Wl,--defsym=__rt_base=0x${FIXED_LINK_ADDRESS[guestBootIface(opts)].toString(16)}`,
      `-Wl,-T,${RUNTIME_DIR}/fixed.ld`,
    ];
  return [
    ...COMPILE_FLAGS,
    `-I${RUNTIME_DIR}`,
    ...defines,
    ...link,
    ...COMMON_LINK_FLAGS,
    ...RUNTIME_SOURCES.map((f) => `${RUNTIME_DIR}/${f}`),
    source,
  ];
}

async function runGcc(args: string[], what: string): Promise<void> {
  let result: Deno.CommandOutput;
  try {
    result = await new Deno.Command("gcc", { args, stdout: "piped", stderr: "piped" }).output();
  } catch (error) {
    throw new Error(`Cannot build guest ${what}: cannot run gcc`, { cause: error });
  }
  if (!result.success) {
    const decoder = new TextDecoder();
    const stderr = decoder.decode(result.stderr).trim();
    const stdout = decoder.decode(result.stdout).trim();
    throw new Error(
      `Cannot build guest ${what}: gcc exited with code ${result.code}\n` +
        `gcc ${args.join(" ")}\n${stderr}${stdout ? `\n${stdout}` : ""}`,
    );
  }
}

/** Checks the ELF header gcc produced and sets EI_OSABI to STANDALONE, as Hermit kernels have. */
function checkAndPatchElf(elf: Uint8Array, opts: GuestBuild, what: string): void {
  const view = new DataView(elf.buffer, elf.byteOffset, elf.byteLength);
  const magicOk = elf.length >= 64 && view.getUint32(0, false) === 0x7f454c46;
  const wantType = opts.pie ? ET_DYN : ET_EXEC;
  if (
    !magicOk || elf[4] !== 2 || elf[5] !== 1 || view.getUint16(16, true) !== wantType ||
    view.getUint16(18, true) !== EM_X86_64
  ) {
    throw new Error(
      `Cannot build guest ${what}: gcc did not produce an x86_64 ELF64 of type ${wantType}`,
    );
  }
  elf[7] = ELFOSABI_STANDALONE;
}

async function sha256Hex(parts: Uint8Array[]): Promise<string> {
  const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    all.set(part, offset);
    offset += part.length;
  }
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", all));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isFile;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}
