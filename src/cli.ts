/**
 * The command line: uhyve 0.9.1's flags (and the `HERMIT_*` environment
 * variables and `uhyve.toml` it honours) → one run request. Pure parsing plus
 * the config-file read; `main.ts` does the run.
 * @module
 */

import { parseMacAddress, parseNetOption, parsePublish } from "./net/net_option.ts";
import { FlagError, parseFlags } from "./argv.ts";
import {
  type CliOptions,
  ConfigError,
  findConfigFile,
  loadTomlParser,
  mergeConfig,
  parseAffinity,
  parseConfig,
  TomlParserNotLoaded,
} from "./config.ts";
import { LIBC_SONAME } from "./kvm.ts";
import {
  DEFAULT_GDB_PORT,
  parseDuration,
  parseEnvEntry,
  parseFileIsolation,
  parseHermitImageMode,
  parseIoMode,
  parseMemorySize,
  UsageError,
  validateCpuCount,
  type VmParams,
} from "./params.ts";
import {
  denoCommandLine,
  optionPermissionInput,
  type RequiredPermissions,
  requiredPermissions,
} from "./permissions.ts";
import { FileMap, FileMapError } from "./sandbox/file_map.ts";
import { VERSION } from "./version.ts";
import { cliEntry, dhyveRoot } from "./locations.ts";
import { pathExists } from "./host/path_probe.ts";
import { grantedEnvVar } from "./env_var.ts";

/** The help text (`--help`). */
export const HELP = `dhyve ${VERSION}: run a Hermit unikernel under KVM (uhyve 0.9.1 compatible)

Usage: deno run --allow-ffi --allow-read=KERNEL main.ts [OPTIONS] KERNEL [-- ARGS...]

Guest:
  -m, --memory-size SIZE  guest RAM, e.g. 64MiB, 1GiB (default 64MiB; env HERMIT_MEMORY_SIZE)
  -c, --cpu-count N       number of vCPUs (default 1; env HERMIT_CPU_COUNT)
  -a, --affinity LIST     pin vCPU i to host core i of LIST ("0-1,3" or "0 1")
  -e, --env-vars K=V      guest environment variable (repeatable); "host" passes
                          the whole host environment (needs --allow-env)
      --no-aslr           load a relocatable kernel at the lowest address
      --thp               back guest RAM with transparent huge pages
      --ksm               let KSM merge identical guest pages
      --pit               give the guest an in-kernel PIT
      --cpu-pm            let the guest use power management (HLT/MWAIT/PAUSE
                          without exits), where KVM supports it
      --timeout DURATION  stop the guest after this long (e.g. 30s, 500ms, 2m)
  -n, --net tap[:DEV]     a virtio-net card on host TAP interface DEV (default
                          tap10); needs a Hermit >= 0.13.2 kernel
  -n, --net passt[:SOCKET]
                          user-mode networking, no root needed: dhyve starts
                          passt (guest 10.0.5.3/24, gateway and DNS 10.0.5.1),
                          or attaches to the passt listening on SOCKET
      --publish [ADDR:]HOSTPORT:GUESTPORT[/tcp|/udp]
                          with --net passt: forward a host port (on 127.0.0.1
                          unless ADDR is given) to the guest (repeatable)
      --mac ADDR          the card's MAC address (default: derived from the TAP's)
  -s, --gdb-port [PORT]   wait for GDB on 127.0.0.1/[::1]:PORT before the guest
                          runs (default 6677; 0: any free port; env
                          HERMIT_GDB_PORT; needs --allow-net=127.0.0.1,[::1])

Files:
      --file-mapping HOST:GUEST[:ro]
                          let the guest see host file or directory HOST at GUEST
                          (repeatable; :ro makes it read-only)
      --tempdir DIR       where the guest's own new files go (default: $TMPDIR)
      --max-temp-size SIZE
                          most bytes the guest may write there (default 1GiB)
      --file-isolation MODE
                          Landlock: none, normal (default; warns if unsupported)
                          or strict (refuses to run without it)
      --io-mode host=direct|sync
                          flags for files the guest creates (uhyve compatible)
      --hermit-image-mode external|internal
                          a Hermit image's files: served by dhyve (external,
                          default) or handed to the kernel as an initrd

Output and diagnostics:
  -o, --output FILE       guest output to a new FILE ("none" discards it)
      --stats[=json]      print run statistics after the guest's output
      --config FILE       settings file (default: ./uhyve.toml, then
                          $XDG_CONFIG_HOME/uhyve/uhyve.toml; env HERMIT_CONFIG)
      --print-permissions print the minimal deno command line for these options
  -v, --verbose           more diagnostics (-vv for debug)
  -q, --quiet             errors only
  -h, --help              this help
  -V, --version           print the version

Arguments after the kernel are passed to it; put them after "--" when they
start with "-". A second "--" separates kernel arguments from application
arguments, as in uhyve. The kernel may be a Hermit ELF or a Hermit image.

Examples:
  deno run --allow-ffi --allow-read=hello main.ts hello
  deno run --allow-ffi --allow-read=app main.ts -m 256MiB -c 2 -e RUST_LOG=debug app -- -x 1
  deno run --allow-ffi --allow-read=app,data --allow-write=data main.ts \\
      --file-mapping data:/root/data app

Exit status: the guest's exit code, or one of dhyve's own codes (64-85,
see the README); 130/143 after SIGINT/SIGTERM.`;

/** The CLI's default cap on the bytes a guest may write into its temp files. */
export const DEFAULT_MAX_TEMP_BYTES = 1024 * 1024 * 1024;

/** What the command line asks for. */
export type CliRequest =
  | { kind: "info"; text: string }
  | {
    kind: "run";
    /** The kernel or Hermit image path. */
    kernel: string;
    /** Run parameters (without the output sinks, which main.ts opens). */
    params: VmParams;
    /** -1 quiet, 0 default, 1 verbose, 2 debug. */
    verbosity: number;
    /** `-o`: a file path, "none", or undefined for stdout. */
    output: string | undefined;
    /** `--stats`: off, a table, or JSON. */
    stats: false | "table" | "json";
    /** The config file that was read, if any. */
    configPath: string | null;
    /** Notes from the config file. */
    warnings: readonly string[];
  };

/** How the parser reads the environment and files (tests pass fakes). */
export interface CliEnvironment {
  /** An environment variable, or undefined (also when not permitted). */
  env(name: string): string | undefined;
  /** The whole environment, for `-e host`. */
  envAll(): [string, string][];
  /** Reads a text file (the config). */
  readTextFile(path: string): string;
  /** Whether a path exists (false when not permitted). */
  exists(path: string): boolean;
  /** The current directory. */
  cwd(): string;
}

/** The real environment, with missing permissions treated as "not there". */
export const denoEnvironment: CliEnvironment = {
  env: grantedEnvVar,
  envAll(): [string, string][] {
    try {
      return Object.entries(Deno.env.toObject());
    } catch {
      throw new UsageError('"-e host" needs access to the environment: add --allow-env');
    }
  },
  readTextFile(path: string): string {
    return Deno.readTextFileSync(path);
  },
  exists: pathExists,
  cwd(): string {
    return Deno.cwd();
  },
};

const OPTIONS = {
  "memory-size": { type: "string", short: "m" },
  "cpu-count": { type: "string", short: "c" },
  affinity: { type: "string", short: "a" },
  "env-vars": { type: "string", short: "e", multiple: true },
  "file-mapping": { type: "string", multiple: true },
  tempdir: { type: "string" },
  "max-temp-size": { type: "string" },
  "file-isolation": { type: "string" },
  "io-mode": { type: "string" },
  "hermit-image-mode": { type: "string" },
  output: { type: "string", short: "o" },
  stats: { type: "boolean" },
  config: { type: "string" },
  "print-permissions": { type: "boolean" },
  timeout: { type: "string" },
  "no-aslr": { type: "boolean" },
  thp: { type: "boolean" },
  ksm: { type: "boolean" },
  pit: { type: "boolean" },
  "cpu-pm": { type: "boolean" },
  "gdb-port": { type: "string", short: "s" },
  net: { type: "string", short: "n" },
  mac: { type: "string" },
  publish: { type: "string", multiple: true },
  verbose: { type: "boolean", short: "v", multiple: true },
  quiet: { type: "boolean", short: "q" },
  help: { type: "boolean", short: "h" },
  version: { type: "boolean", short: "V" },
} as const;

function parseCpuCount(text: string): number {
  if (!/^\s*\d+\s*$/.test(text)) {
    throw new UsageError(`Invalid vCPU count "${text}": use a whole number from 1 to 256`);
  }
  return validateCpuCount(Number(text));
}

/**
 * Gives a bare `-s`/`--gdb-port` (last, or followed by something that is not
 * a port number) uhyve's default port, so that `-s KERNEL` works.
 */
function withGdbPortDefault(args: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    out.push(a);
    if ((a === "-s" || a === "--gdb-port") && !/^\d+$/.test(args[i + 1] ?? "")) {
      out.push(String(DEFAULT_GDB_PORT));
    }
  }
  return out;
}

/** A GDB port: 0 (any free port) to 65535. */
function parseGdbPort(text: string): number {
  const port = /^\d{1,5}$/.test(text) ? Number(text) : NaN;
  if (!(port >= 0 && port <= 65535)) {
    throw new UsageError(`Invalid GDB port "${text}": give a TCP port from 0 to 65535`);
  }
  return port;
}

/**
 * Parses the command line (plus `HERMIT_*` variables and the config file).
 * @throws {UsageError} for bad flags or values.
 * @throws {ConfigError} for a bad config file.
 * @throws {TomlParserNotLoaded} when a config file is found before
 *   `loadTomlParser()` ran (see {@linkcode parseCommandLineLoading}).
 */
export function parseCommandLine(
  argv: readonly string[],
  sys: CliEnvironment = denoEnvironment,
): CliRequest {
  // `--stats=json` and `-s [PORT]` take optional values; the flag parser has none.
  const dashDash = argv.indexOf("--");
  const head = withGdbPortDefault(dashDash < 0 ? [...argv] : argv.slice(0, dashDash));
  const statsJson = head.includes("--stats=json");
  const args = [
    ...head.filter((a) => a !== "--stats=json"),
    ...(dashDash < 0 ? [] : argv.slice(dashDash)),
  ];
  let parsed;
  try {
    parsed = parseFlags(args, OPTIONS);
  } catch (error) {
    if (!(error instanceof FlagError)) throw error;
    throw new UsageError(`${error.message} (see --help)`);
  }
  const { values, positionals } = parsed;
  if (values.help) return { kind: "info", text: HELP };
  if (values.version) return { kind: "info", text: `dhyve ${VERSION}` };
  let net = values.net === undefined ? undefined : parseNetOption(values.net);
  if (net !== undefined && "error" in net) throw new UsageError(net.error);
  if (values.mac !== undefined) {
    if (net === undefined) throw new UsageError("--mac needs -n/--net (it names the guest's card)");
    const mac = parseMacAddress(values.mac);
    if ("error" in mac) throw new UsageError(mac.error);
    net = { ...net, mac };
  }
  if (values.publish !== undefined && values.publish.length > 0) {
    if (net === undefined || net.mode !== "passt" || net.socket !== undefined) {
      throw new UsageError(
        "--publish needs --net passt (dhyve starts passt with the forwards; a passt you " +
          "started yourself takes them as its own -t/-u options)",
      );
    }
    const publish = values.publish.map((text) => {
      const forward = parsePublish(text);
      if ("error" in forward) throw new UsageError(forward.error);
      return forward;
    });
    net = { ...net, publish };
  }
  const [kernel, ...kernelArgs] = positionals;
  if (kernel === undefined) {
    throw new UsageError("No kernel given: dhyve [OPTIONS] KERNEL [-- ARGS...] (see --help)");
  }

  const memoryText = values["memory-size"] ?? sys.env("HERMIT_MEMORY_SIZE");
  const gdbPortText = values["gdb-port"] ?? sys.env("HERMIT_GDB_PORT");
  const cpuText = values["cpu-count"] ?? sys.env("HERMIT_CPU_COUNT");
  const envEntries = values["env-vars"] ?? [];
  const cli: CliOptions = {
    memorySize: memoryText === undefined ? undefined : parseMemorySize(memoryText),
    cpuCount: cpuText === undefined ? undefined : parseCpuCount(cpuText),
    affinity: values.affinity === undefined ? undefined : parseAffinity(values.affinity),
    envVars: envEntries.filter((e) => e !== "host"),
    envHost: envEntries.includes("host"),
    fileMappings: values["file-mapping"] ?? [],
    tempDir: values.tempdir,
    fileIsolation: values["file-isolation"] === undefined
      ? undefined
      : parseFileIsolation(values["file-isolation"]),
    ioMode: values["io-mode"] === undefined ? undefined : parseIoMode(values["io-mode"]),
    hermitImageMode: values["hermit-image-mode"] === undefined
      ? undefined
      : parseHermitImageMode(values["hermit-image-mode"]),
    output: values.output,
    stats: statsJson ? "json" : values.stats ? true : undefined,
    noAslr: values["no-aslr"] ? true : undefined,
    thp: values.thp ? true : undefined,
    ksm: values.ksm ? true : undefined,
    pit: values.pit ? true : undefined,
    cpuPm: values["cpu-pm"] ? true : undefined,
    gdbPort: gdbPortText === undefined ? undefined : parseGdbPort(gdbPortText),
  };

  const configPath = findConfigFile({
    explicit: values.config,
    env: (name) => sys.env(name),
    cwd: sys.cwd(),
    exists: (path) => sys.exists(path),
  });
  let merged = cli;
  let warnings: readonly string[] = [];
  if (configPath !== null) {
    let text: string;
    try {
      text = sys.readTextFile(configPath);
    } catch (error) {
      const why = error instanceof Deno.errors.NotCapable
        ? `Deno may not read it: add --allow-read=${configPath}`
        : error instanceof Error
        ? error.message
        : String(error);
      throw new ConfigError({ path: configPath, line: 0 }, `cannot read the file: ${why}`);
    }
    const file = parseConfig(text, configPath);
    warnings = file.warnings;
    merged = mergeConfig(cli, file);
  }

  const env = merged.envHost ? sys.envAll() : merged.envVars.map((e) => parseEnvEntry(e));
  const params: VmParams = {
    fileIsolation: merged.fileIsolation ?? "normal",
    args: kernelArgs,
    env,
    aslr: !(merged.noAslr ?? false),
    thp: merged.thp ?? false,
    ksm: merged.ksm ?? false,
    pit: merged.pit ?? false,
  };
  if (merged.memorySize !== undefined) params.memorySize = merged.memorySize;
  if (merged.cpuCount !== undefined) params.cpuCount = merged.cpuCount;
  if (merged.affinity !== undefined) params.affinity = merged.affinity;
  if (merged.fileMappings.length > 0) params.fileMappings = merged.fileMappings;
  if (merged.tempDir !== undefined) params.tempDir = merged.tempDir;
  if (merged.ioMode !== undefined) params.ioMode = merged.ioMode;
  if (merged.hermitImageMode !== undefined) params.hermitImageMode = merged.hermitImageMode;
  if (merged.cpuPm) params.cpuPm = true;
  if (merged.envHost) params.envHost = true;
  if (merged.gdbPort !== undefined) params.gdbPort = merged.gdbPort;
  if (net !== undefined) params.net = net;
  if (values.timeout !== undefined) params.timeoutMs = parseDuration(values.timeout);
  params.maxTempBytes = values["max-temp-size"] === undefined
    ? DEFAULT_MAX_TEMP_BYTES
    : parseMemorySize(values["max-temp-size"]);

  if (values["print-permissions"]) {
    return {
      kind: "info",
      text: minimalCommandLine(kernel, params, {
        argv: argv.filter((a) => a !== "--print-permissions"),
        envHost: merged.envHost,
        output: merged.output,
        configPath,
        cwd: sys.cwd(),
        dhyveRoot: dhyveRoot(),
      }),
    };
  }
  const verbosity = values.quiet ? -1 : (values.verbose?.length ?? 0);
  return {
    kind: "run",
    kernel,
    params,
    verbosity,
    output: merged.output,
    stats: merged.stats === "json" ? "json" : merged.stats ? "table" : false,
    configPath,
    warnings,
  };
}

/**
 * {@linkcode parseCommandLine}, loading the TOML parser first when a config
 * file is found (the only case that needs it; `main.ts` uses this).
 */
export async function parseCommandLineLoading(
  argv: readonly string[],
  sys: CliEnvironment = denoEnvironment,
): Promise<CliRequest> {
  try {
    return parseCommandLine(argv, sys);
  } catch (error) {
    if (!(error instanceof TomlParserNotLoaded)) throw error;
  }
  await loadTomlParser();
  return parseCommandLine(argv, sys);
}

/** What, beside the parameters, decides a run's Deno permissions. */
interface PermissionContext {
  envHost: boolean;
  output: string | undefined;
  configPath: string | null;
  cwd: string;
  /** dhyve's root directory as the run will see it (its Workers read modules there), or null. */
  dhyveRoot: string | null;
}

/** The minimal `deno run` line for these options (`--print-permissions`). */
function minimalCommandLine(
  kernel: string,
  params: VmParams,
  extra: PermissionContext & { argv: readonly string[] },
): string {
  const req = runPermissions(kernel, params, extra);
  const entry = cliEntry() ?? "main.ts";
  return denoCommandLine(req, entry, extra.argv);
}

/** The Deno permissions a run of `kernel` with `params` needs. */
function runPermissions(
  kernel: string,
  params: VmParams,
  extra: PermissionContext,
): RequiredPermissions {
  let map: FileMap;
  try {
    map = FileMap.fromSpecs(params.fileMappings ?? [], extra.cwd);
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
    output: extra.output === undefined || extra.output.toLowerCase() === "none"
      ? null
      : extra.output,
    envHost: extra.envHost,
    libcPath: LIBC_SONAME,
    ...optionPermissionInput(params, extra.dhyveRoot),
  }, { cwd: extra.cwd });
  if (extra.configPath !== null) req.read.push(extra.configPath);
  return req;
}

/**
 * The minimal Deno permissions for running dhyve with command line `argv`
 * (what `--print-permissions` prints, as data), where dhyve's root directory
 * is `dhyveRoot` and files and the environment are as `sys` shows them. For
 * `dhyve-oci`, which starts dhyve inside a container.
 * @throws {UsageError} for a bad command line, or one that runs no kernel.
 * @throws {ConfigError} for a bad config file.
 */
export function commandLinePermissions(
  argv: readonly string[],
  sys: CliEnvironment,
  dhyveRoot: string,
): RequiredPermissions {
  const request = parseCommandLine(argv, sys);
  if (request.kind !== "run") {
    throw new UsageError("The command line runs no kernel: it has no permissions to compute");
  }
  return runPermissions(request.kernel, request.params, {
    envHost: request.params.envHost ?? false,
    output: request.output,
    configPath: request.configPath,
    cwd: sys.cwd(),
    dhyveRoot,
  });
}
