/**
 * The kernel step of a run: read the file (or unpack a Hermit image into
 * the file map), build the guest command line, parse the kernel and choose
 * where it goes. Errors name the file and carry their exit code.
 * @module
 */

import { checkCommandLine } from "../hypercall/args.ts";
import type { GuestCommandLine } from "../hypercall/context.ts";
import { EXIT_CODE } from "../exit_codes.ts";
import { detectFormat, type KernelImage, parseKernel } from "../loader/elf.ts";
import { ImageFormatError, LayoutError } from "../loader/errors.ts";
import { chooseLayout, type Layout, placeInitrd } from "../loader/layout.ts";
import { logger } from "../log.ts";
import { type HermitImageMode, UsageError } from "../params.ts";
import { type FileMap, FileMapError } from "../sandbox/file_map.ts";
import { VmError } from "./errors.ts";
import { encodeUtf8 } from "../utf8.ts";

const log = logger("vm");

/** Reads the kernel file, with clear errors for the usual problems. */
function readKernel(path: string): Uint8Array {
  try {
    // Sync: the async read would start Deno's blocking-pool threads (start-up
    // time, and threads that exist before Landlock are not fenced by it).
    return Deno.readFileSync(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new VmError(`Kernel file "${path}" does not exist`, EXIT_CODE.NO_INPUT);
    }
    if (error instanceof Deno.errors.NotCapable) {
      throw new VmError(
        `Deno may not read the kernel "${path}": add --allow-read=${path} to the deno command`,
        EXIT_CODE.PERMISSION,
      );
    }
    if (error instanceof Deno.errors.IsADirectory) {
      throw new VmError(
        `Kernel path "${path}" is a directory, not a kernel file`,
        EXIT_CODE.NO_INPUT,
      );
    }
    if (error instanceof Deno.errors.PermissionDenied) {
      throw new VmError(`Cannot read the kernel "${path}": permission denied`, EXIT_CODE.NO_INPUT);
    }
    throw new VmError(
      `Cannot read the kernel "${path}": ${error instanceof Error ? error.message : error}`,
      EXIT_CODE.NO_INPUT,
    );
  }
}

/** Parses and places the kernel (format errors become exit 65 in `toVmError`). */
function prepareKernel(
  bytes: Uint8Array,
  params: { memorySize: number; aslr: boolean; random?: () => number },
): { image: KernelImage; layout: Layout } {
  if (detectFormat(bytes) === "hermit-image") {
    throw new ImageFormatError("the image's kernel is itself a Hermit image");
  }
  const image = parseKernel(bytes);
  for (const w of image.warnings) log.warn(w);
  const layout = chooseLayout(image, {
    memorySize: params.memorySize,
    aslr: params.aslr,
    ...(params.random ? { random: params.random } : {}),
  });
  if (layout.aslrIgnored) {
    log.info("The kernel is not relocatable: it is loaded at its link address (no ASLR)");
  }
  return { image, layout };
}

/** Places the internal-mode initrd after the kernel; a misfit is a usage error (exit 64). */
function placeImageInitrd(
  layout: Layout,
  memorySize: number,
  tar: Uint8Array,
): { start: number; end: number } {
  try {
    return placeInitrd(layout, memorySize, tar.length);
  } catch (error) {
    if (error instanceof LayoutError) throw new UsageError(error.message, { cause: error });
    throw error;
  }
}

/** The guest command line: argv[0] is the kernel path, then the user's arguments. */
function commandLine(
  kernelPath: string,
  args: readonly string[],
  env: readonly (readonly [string, string])[],
): GuestCommandLine {
  return {
    argv: [kernelPath, ...args].map((a) => encodeUtf8(a)),
    env: env.map(([k, v]) => encodeUtf8(`${k}=${v}`)),
  };
}

/** `--net` needs Hermit ≥ 0.13.2, checked only when the kernel carries a version note (as uhyve). */
function checkNetKernel(image: KernelImage): void {
  const v = image.hermitVersion;
  if (v !== null && v.major === 0 && (v.minor < 13 || (v.minor === 13 && v.patch < 2))) {
    throw new VmError(
      `--net needs a kernel built with Hermit 0.13.2 or newer; this one is ${v.major}.${v.minor}.${v.patch}`,
      EXIT_CODE.BAD_KERNEL,
    );
  }
}

/**
 * The Hermit image reader, loaded only for images: it pulls in node:zlib,
 * which costs a plain ELF run some 30 ms of start-up.
 */
function hermitImageModule(): Promise<typeof import("../loader/hermit_image.ts")> {
  return import("../loader/hermit_image.ts");
}

/** What the guest is asked to run with, before a Hermit image's defaults apply. */
export interface KernelRequest {
  /** The guest's arguments. */
  readonly args: readonly string[];
  /** The guest's environment. */
  readonly env: readonly (readonly [string, string])[];
  /** Guest RAM size (an image may require more). */
  readonly memorySize: number;
  /** vCPU count (an image may require more). */
  readonly cpuCount: number;
  /** `-e host`: the whole host environment. */
  readonly envHost: boolean;
  /** Load a relocatable kernel at a random address. */
  readonly aslr: boolean;
  /** The random source for ASLR (tests). */
  readonly random?: (() => number) | undefined;
  /** `--net` is asked for (it needs Hermit ≥ 0.13.2). */
  readonly net: boolean;
  /** How a Hermit image reaches its kernel: its files in the file map, or an initrd. */
  readonly mode: HermitImageMode;
}

/** Unpacks a Hermit image: virtual files into the map, config into args/env. */
async function unpackImage(
  path: string,
  bytes: Uint8Array,
  map: FileMap,
  run: KernelRequest,
): Promise<
  { kernel: Uint8Array; args: string[]; env: [string, string][]; initrd: Uint8Array | null }
> {
  let image;
  try {
    image = await (await hermitImageModule()).readHermitImage(bytes);
  } catch (error) {
    if (error instanceof ImageFormatError) {
      throw new VmError(
        `"${path}" is not a usable Hermit image: ${error.message}`,
        EXIT_CODE.BAD_KERNEL,
        {
          cause: error,
        },
      );
    }
    throw error;
  }
  // Internal mode: the kernel reads the archive itself; the file map stays as given.
  const served = run.mode === "external" ? image.files : new Map<string, Uint8Array>();
  for (const [guestPath, content] of served) {
    try {
      map.addVirtual(guestPath, content);
    } catch (error) {
      if (error instanceof FileMapError) {
        throw new UsageError(
          `The image file ${guestPath} collides with a --file-mapping: ${error.message}`,
        );
      }
      throw error;
    }
  }
  const applied = (await hermitImageModule()).applyImageConfig(image, {
    args: [...run.args],
    envVars: run.env,
    envHost: run.envHost,
    memorySize: run.memorySize,
    cpuCount: run.cpuCount,
  });
  for (const note of applied.notes) log.info(note);
  if (applied.errors.length > 0) throw new UsageError(applied.errors.join("; "));
  return {
    kernel: image.kernel,
    args: applied.args,
    env: applied.env,
    initrd: run.mode === "internal" ? image.tar : null,
  };
}

/** What the kernel step hands on. */
export interface PreparedKernel {
  /** The kernel's bytes (from the file, or from the image). */
  readonly bytes: Uint8Array;
  /** The parsed kernel. */
  readonly image: KernelImage;
  /** Where it goes in guest RAM. */
  readonly layout: Layout;
  /** argv/env as the Cmdsize/Cmdval hypercalls hand them out. */
  readonly cmdline: GuestCommandLine;
  /** The guest's arguments (the image's defaults applied). */
  readonly args: readonly string[];
  /** The guest's environment (the image's defaults applied). */
  readonly env: readonly (readonly [string, string])[];
  /** `--hermit-image-mode internal`: the archive and where it goes in guest RAM. */
  readonly initrd:
    | { readonly start: number; readonly end: number; readonly bytes: Uint8Array }
    | null;
}

/**
 * Reads and prepares the kernel at `path`. A Hermit image supplies the
 * kernel, its files (added to `map`) and default arguments, environment and
 * requirements.
 * @throws {VmError} or {@linkcode UsageError} naming the problem.
 */
export async function prepareKernelFile(
  path: string,
  map: FileMap,
  run: KernelRequest,
): Promise<PreparedKernel> {
  let bytes = readKernel(path);
  let args = run.args;
  let env = run.env;
  let initrdBytes: Uint8Array | null = null;
  if (bytes.length >= 3 && bytes[0] === 0x1f && bytes[1] === 0x8b && bytes[2] === 0x08) {
    const unpacked = await unpackImage(path, bytes, map, run);
    bytes = unpacked.kernel;
    args = unpacked.args;
    env = unpacked.env;
    initrdBytes = unpacked.initrd;
  }
  const cmdline = commandLine(path, args, env);
  const tooLong = checkCommandLine(cmdline);
  if (tooLong !== null) throw new UsageError(tooLong);
  const { image, layout } = prepareKernel(bytes, {
    memorySize: run.memorySize,
    aslr: run.aslr,
    ...(run.random ? { random: run.random } : {}),
  });
  const initrd = initrdBytes === null
    ? null
    : { ...placeImageInitrd(layout, run.memorySize, initrdBytes), bytes: initrdBytes };
  if (run.net) checkNetKernel(image);
  log.debug(
    `Kernel: ${image.kind}, interface v${image.interfaceVersion}, guest RAM at 0x${
      layout.guestAddress.toString(16)
    }, kernel at 0x${layout.kernelAddress.toString(16)}..0x${layout.kernelEnd.toString(16)}`,
  );
  return { bytes, image, layout, cmdline, args, env, initrd };
}
