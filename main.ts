/**
 * The dhyve command line: flags → parameters → {@linkcode runVm} → exit code.
 * Every error ends as one line on stderr and a documented exit code, never a
 * stack trace.
 * @module
 */

import { parseArgs } from "node:util";
import { EXIT_CODE } from "./src/exit_codes.ts";
import { fileURLToPath } from "node:url";
import { KvmUnavailableError, LIBC_PATH } from "./src/kvm.ts";
import { denoCommandLine, requiredPermissions } from "./src/permissions.ts";
import { FileMap, FileMapError } from "./src/sandbox/file_map.ts";
import { configureLogging } from "./src/log.ts";
import {
  parseDuration,
  parseEnvEntry,
  parseFileIsolation,
  parseIoMode,
  parseMemorySize,
  UsageError,
  validateCpuCount,
  type VmParams,
} from "./src/params.ts";
import { runVm, VmError } from "./src/vm.ts";
import { VERSION } from "./src/version.ts";

const HELP = `dhyve ${VERSION}: run a Hermit unikernel under KVM (uhyve 0.8 compatible)

Usage: deno run --allow-ffi --allow-read=KERNEL main.ts [OPTIONS] KERNEL [-- ARGS...]

Options:
  -m, --memory-size SIZE  guest RAM, e.g. 64MiB, 1GiB (default 64MiB; env HERMIT_MEMORY_SIZE)
  -c, --cpu-count N       number of vCPUs (default 1; env HERMIT_CPU_COUNT)
  -e, --env-vars K=V      guest environment variable (repeatable); "host" passes
                          the whole host environment (needs --allow-env)
      --file-mapping HOST:GUEST
                          let the guest see host file or directory HOST at GUEST
                          (repeatable; append :ro for read-only)
      --tempdir DIR       where the guest's own new files go (default: $TMPDIR)
      --file-isolation MODE
                          Landlock: none, normal (default; warns if unsupported)
                          or strict (refuses to run without it)
      --io-mode host=direct|sync
                          flags for files the guest creates (uhyve compatible)
      --timeout DURATION  stop the guest after this long (e.g. 30s, 500ms, 2m)
      --print-permissions print the minimal deno command line for these options
      --no-aslr           load a relocatable kernel at the lowest address
      --thp               back guest RAM with transparent huge pages
      --ksm               let KSM merge identical guest pages
      --pit               give the guest an in-kernel PIT
  -v, --verbose           more diagnostics (repeat for debug output)
  -q, --quiet             errors only
  -h, --help              this help
  -V, --version           print the version

Arguments after the kernel are passed to it; put them after "--" when they
start with "-". A second "--" separates kernel arguments from application
arguments, as in uhyve.

Examples:
  deno run --allow-ffi --allow-read=hello main.ts hello
  deno run --allow-ffi --allow-read=app main.ts -m 256MiB -e RUST_LOG=debug app -- -x 1

Exit status: the guest's exit code, or one of dhyve's own codes (64-85,
see the README); 130/143 after SIGINT/SIGTERM.`;

const encoder = new TextEncoder();

function printError(message: string): void {
  try {
    Deno.stderr.writeSync(encoder.encode(`dhyve: error: ${message}\n`));
  } catch {
    // stderr is gone
  }
}

function print(text: string): void {
  Deno.stdout.writeSync(encoder.encode(`${text}\n`));
}

/** Reads an environment variable, or undefined without --allow-env for it. */
function envVar(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch {
    return undefined;
  }
}

function hostEnvironment(): [string, string][] {
  try {
    return Object.entries(Deno.env.toObject());
  } catch {
    throw new UsageError('"-e host" needs access to the environment: add --allow-env');
  }
}

/** Parses the command line into the kernel path and run parameters. */
export function parseCommandLine(
  argv: readonly string[],
): { kernel: string; params: VmParams; verbosity: number } | { info: string } {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      allowPositionals: true,
      strict: true,
      options: {
        "memory-size": { type: "string", short: "m" },
        "cpu-count": { type: "string", short: "c" },
        "env-vars": { type: "string", short: "e", multiple: true },
        "file-mapping": { type: "string", multiple: true },
        tempdir: { type: "string" },
        "file-isolation": { type: "string" },
        "io-mode": { type: "string" },
        "print-permissions": { type: "boolean" },
        timeout: { type: "string" },
        "no-aslr": { type: "boolean" },
        thp: { type: "boolean" },
        ksm: { type: "boolean" },
        pit: { type: "boolean" },
        verbose: { type: "boolean", short: "v", multiple: true },
        quiet: { type: "boolean", short: "q" },
        help: { type: "boolean", short: "h" },
        version: { type: "boolean", short: "V" },
      },
    });
  } catch (error) {
    const message = error instanceof Error ? error.message.split("\n")[0] : String(error);
    throw new UsageError(`${message} (see --help)`);
  }
  const { values, positionals } = parsed;
  if (values.help) return { info: HELP };
  if (values.version) return { info: `dhyve ${VERSION}` };
  const [kernel, ...args] = positionals;
  if (kernel === undefined) {
    throw new UsageError("No kernel given: dhyve [OPTIONS] KERNEL [-- ARGS...] (see --help)");
  }
  const memoryText = values["memory-size"] ?? envVar("HERMIT_MEMORY_SIZE");
  const cpuText = values["cpu-count"] ?? envVar("HERMIT_CPU_COUNT");
  const envEntries = values["env-vars"] ?? [];
  const env = envEntries.includes("host")
    ? hostEnvironment()
    : envEntries.map((e) => parseEnvEntry(e));
  const params: VmParams = {
    fileIsolation: "normal",
    args,
    env,
    aslr: !values["no-aslr"],
    thp: values.thp ?? false,
    ksm: values.ksm ?? false,
    pit: values.pit ?? false,
  };
  if (values["file-mapping"] !== undefined) params.fileMappings = values["file-mapping"];
  if (values.tempdir !== undefined) params.tempDir = values.tempdir;
  if (values.timeout !== undefined) params.timeoutMs = parseDuration(values.timeout);
  if (values["file-isolation"] !== undefined) {
    params.fileIsolation = parseFileIsolation(values["file-isolation"]);
  }
  if (values["io-mode"] !== undefined) params.ioMode = parseIoMode(values["io-mode"]);
  if (memoryText !== undefined) params.memorySize = parseMemorySize(memoryText);
  if (cpuText !== undefined) {
    if (!/^\s*\d+\s*$/.test(cpuText)) {
      throw new UsageError(`Invalid vCPU count "${cpuText}": use a whole number from 1 to 256`);
    }
    params.cpuCount = validateCpuCount(Number(cpuText));
  }
  const verbosity = values.quiet ? -1 : (values.verbose?.length ?? 0);
  if (values["print-permissions"]) {
    return { info: minimalCommandLine(kernel, params, argv, envEntries.includes("host")) };
  }
  return { kernel, params, verbosity };
}

/** The minimal `deno run` line for these options (`--print-permissions`). */
function minimalCommandLine(
  kernel: string,
  params: VmParams,
  argv: readonly string[],
  envHost: boolean,
): string {
  let map: FileMap;
  try {
    map = FileMap.fromSpecs(params.fileMappings ?? [], Deno.cwd());
  } catch (error) {
    if (error instanceof FileMapError) throw new UsageError(error.message);
    throw error;
  }
  const req = requiredPermissions({
    kernel,
    mappings: map.hostPaths().map((m) => ({
      host: m.hostPath,
      guest: m.guestPath,
      writable: m.writable,
    })),
    tempDir: params.tempDir ?? null,
    output: null,
    envHost: argv.includes("host"),
    libcPath: LIBC_PATH,
  });
  const entry = new URL(import.meta.url).protocol === "file:"
    ? fileURLToPath(import.meta.url)
    : "main.ts";
  return denoCommandLine(req, entry, argv.filter((a) => a !== "--print-permissions"));
}

/** Runs the CLI and returns the process exit code. */
export async function main(argv: readonly string[]): Promise<number> {
  let request;
  try {
    request = parseCommandLine(argv);
  } catch (error) {
    printError(error instanceof Error ? error.message : String(error));
    return EXIT_CODE.USAGE;
  }
  if ("info" in request) {
    print(request.info);
    return 0;
  }
  const { kernel, params, verbosity } = request;
  configureLogging(
    verbosity < 0 ? "error" : verbosity === 0 ? "warning" : verbosity === 1 ? "info" : "debug",
  );
  try {
    const result = await runVm(kernel, params);
    if (result.error !== null) {
      printError(result.error);
      if (verbosity > 0 && result.errorDetail) {
        Deno.stderr.writeSync(encoder.encode(`${result.errorDetail}\n`));
      }
    }
    return result.exitCode;
  } catch (error) {
    if (error instanceof UsageError) {
      printError(error.message);
      return EXIT_CODE.USAGE;
    }
    if (error instanceof VmError) {
      printError(error.message);
      return error.exitCode;
    }
    if (error instanceof KvmUnavailableError) {
      printError(error.message);
      return EXIT_CODE.KVM_UNAVAILABLE;
    }
    if (error instanceof Deno.errors.NotCapable) {
      printError(
        `${
          error.message.split("\n")[0]
        } (dhyve needs --allow-ffi for KVM and --allow-read for the kernel)`,
      );
      return EXIT_CODE.PERMISSION;
    }
    printError(
      `Internal error, please report it: ${
        error instanceof Error ? error.stack ?? error.message : error
      }`,
    );
    return EXIT_CODE.INTERNAL;
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
