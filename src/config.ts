/**
 * The `uhyve.toml` config file (hermit-abi §7.1): where it is looked up, what
 * it may hold, and how it merges with the command line. Also `--affinity`
 * parsing, shared by both. Pure: the caller reads the file and the
 * environment; nothing here touches the host. Never imports KVM or FFI.
 * @module
 */

import * as posix from "./posix_path.ts";
import { EXIT_CODE } from "./exit_codes.ts";
import {
  checkCores,
  type FileIsolation,
  type HermitImageMode,
  MAX_CPU_ID,
  parseEnvEntry,
  parseFileIsolation,
  parseHermitImageMode,
  parseIoMode,
  parseMemorySize,
  UsageError,
  validateAffinity,
  validateCpuCount,
  validateMemorySize,
} from "./params.ts";

/** The affinity checks live with the other parameter checks (`params.ts`); re-exported here. */
export { MAX_CPU_ID, validateAffinity };
import { FileMapError, parseMapping } from "./sandbox/file_map.ts";

/**
 * A config file that cannot be used: bad TOML, an unknown section or key, a
 * value of the wrong type or one the CLI would refuse too. The message is
 * `<file>:<line>: <what is wrong>`; `main.ts` maps it to exit code 78
 * (`EXIT_CODE.CONFIG`).
 */
export class ConfigError extends Error {
  /** Always `"ConfigError"`. */
  override name = "ConfigError";
  /** The process exit code: `EXIT_CODE.CONFIG` (78). */
  readonly exitCode: number = EXIT_CODE.CONFIG;
  /** The config file, as it was given. */
  readonly path: string;
  /** The 1-based line the problem is on (1 when it cannot be placed). */
  readonly line: number;

  /** Builds `"<path>:<line>: <problem>"`; `options.cause` carries an underlying error. */
  constructor(where: { path: string; line: number }, problem: string, options?: ErrorOptions) {
    super(`${where.path}:${where.line}: ${problem}`, options);
    this.path = where.path;
    this.line = where.line;
  }
}

/** `--io-mode` flags, as {@linkcode parseIoMode} returns them. */
export interface IoMode {
  /** O_DIRECT on files the guest creates. */
  readonly direct: boolean;
  /** O_SYNC on files the guest creates. */
  readonly sync: boolean;
}

/**
 * Everything the command line (flags plus `HERMIT_*` environment variables)
 * can set, before defaults. `undefined` means "not given", which lets the
 * config file fill it in ({@linkcode mergeConfig}); `main.ts` then applies
 * the defaults and builds `VmParams`.
 */
export interface CliOptions {
  /** `-m` / `HERMIT_MEMORY_SIZE`, in bytes, already validated. */
  memorySize?: number | undefined;
  /** `-c` / `HERMIT_CPU_COUNT`, already validated. */
  cpuCount?: number | undefined;
  /** `-a`: host CPU i for vCPU i ({@linkcode parseAffinity}). */
  affinity?: number[] | undefined;
  /** `-e KEY=VALUE` entries, in order (`host` is {@linkcode CliOptions.envHost}). */
  envVars: string[];
  /** `-e host`: pass the whole host environment; other entries are then ignored. */
  envHost: boolean;
  /** `--file-mapping HOST:GUEST[:ro|:rw]` specs, in order. */
  fileMappings: string[];
  /** `--tempdir`. */
  tempDir?: string | undefined;
  /** `--file-isolation`. */
  fileIsolation?: FileIsolation | undefined;
  /** `--io-mode`. */
  ioMode?: IoMode | undefined;
  /** `--hermit-image-mode`. */
  hermitImageMode?: HermitImageMode | undefined;
  /** `-o`: a file to create, or `"none"`/`"None"` to discard the guest's output. */
  output?: string | undefined;
  /** `--stats` (`true`) or `--stats=json`. */
  stats?: boolean | "json" | undefined;
  /** `--no-aslr`. */
  noAslr?: boolean | undefined;
  /** `--thp`. */
  thp?: boolean | undefined;
  /** `--ksm`. */
  ksm?: boolean | undefined;
  /** `--pit`. */
  pit?: boolean | undefined;
  /** `--cpu-pm`. */
  cpuPm?: boolean | undefined;
  /** `-s` / `HERMIT_GDB_PORT`. */
  gdbPort?: number | undefined;
  /** `-n`, e.g. `"tap:tap10"`. */
  net?: string | undefined;
}

/** The options one config file sets; keys it does not set are absent. */
export type ConfigOptions = Partial<CliOptions>;

/** A parsed, validated config file. */
export interface ConfigFile {
  /** The file, as given to {@linkcode parseConfig}. */
  readonly path: string;
  /** What it sets. */
  readonly options: ConfigOptions;
  /**
   * `"<file>:<line>: …"` notes about keys uhyve 0.8 knows but ignores in a
   * config file (`[uhyve] config`, `net`, `trace_dir`; `[guest] kernel`,
   * `kernel_args`); dhyve ignores them too and the caller may log these.
   */
  readonly warnings: readonly string[];
}

/** The config file's name, in the cwd and under `$XDG_CONFIG_HOME/uhyve/`. */
export const CONFIG_FILE_NAME = "uhyve.toml";

/**
 * Finds the config file as uhyve 0.8 does; the first hit wins:
 * 1. `explicit` (`--config`), else `HERMIT_CONFIG` when set and non-empty;
 *    returned even if it does not exist, so that reading it reports the error;
 * 2. `<cwd>/uhyve.toml` when it exists;
 * 3. `$XDG_CONFIG_HOME/uhyve/uhyve.toml` when XDG_CONFIG_HOME is set and
 *    non-empty and the file exists (there is no `~/.config` fallback).
 *
 * Returns null when there is none. `exists` should answer false, not throw,
 * when a permission is missing.
 * @throws {UsageError} when `explicit` is the empty string.
 */
export function findConfigFile(opts: {
  explicit?: string | undefined;
  env: (name: string) => string | undefined;
  cwd: string;
  exists: (path: string) => boolean;
}): string | null {
  if (opts.explicit !== undefined) {
    if (opts.explicit === "") {
      throw new UsageError('Invalid --config "": give the path of a TOML file');
    }
    return opts.explicit;
  }
  const fromEnv = opts.env("HERMIT_CONFIG");
  if (fromEnv !== undefined && fromEnv !== "") return fromEnv;
  const local = posix.join(opts.cwd, CONFIG_FILE_NAME);
  if (opts.exists(local)) return local;
  const xdg = opts.env("XDG_CONFIG_HOME");
  if (xdg !== undefined && xdg !== "") {
    const inXdg = posix.join(xdg, "uhyve", CONFIG_FILE_NAME);
    if (opts.exists(inXdg)) return inXdg;
  }
  return null;
}

/** Reads one key's value into the options, or throws a problem description. */
type KeyReader = (value: unknown, into: ConfigOptions, key: string) => void;

/** A key-level problem; {@linkcode parseConfig} adds the file and line. */
class ValueProblem extends Error {}

function typeName(value: unknown): string {
  if (Array.isArray(value)) return "an array";
  if (value === null || value === undefined) return "nothing";
  if (typeof value === "object") return isTable(value) ? "a table" : "a date or time";
  if (typeof value === "number") return Number.isInteger(value) ? "an integer" : "a float";
  return `a ${typeof value}`;
}

function wrongType(key: string, expected: string, value: unknown): ValueProblem {
  return new ValueProblem(`${key} must be ${expected}, not ${typeName(value)}`);
}

function asString(key: string, value: unknown): string {
  if (typeof value !== "string") throw wrongType(key, "a string", value);
  return value;
}

function asBoolean(key: string, value: unknown): boolean {
  if (typeof value !== "boolean") throw wrongType(key, "true or false", value);
  return value;
}

function asInteger(key: string, value: unknown): number {
  if (typeof value !== "number" || !Number.isSafeInteger(value)) {
    throw wrongType(key, "an integer", value);
  }
  return value;
}

function asStringArray(key: string, value: unknown): string[] {
  if (!Array.isArray(value) || value.some((v) => typeof v !== "string")) {
    throw wrongType(key, "an array of strings", value);
  }
  return value as string[];
}

/** Runs a params.ts validator and turns its UsageError into a ValueProblem. */
function validated<T>(key: string, fn: () => T): T {
  try {
    return fn();
  } catch (error) {
    if (error instanceof UsageError || error instanceof FileMapError) {
      throw new ValueProblem(`${key}: ${error.message}`);
    }
    throw error;
  }
}

function readBoolean(field: "noAslr" | "thp" | "ksm" | "pit" | "cpuPm"): KeyReader {
  return (value, into, key) => {
    into[field] = asBoolean(key, value);
  };
}

/** The schema: section → key → reader. `null` marks keys uhyve knows but skips. */
const SCHEMA: Readonly<Record<string, Readonly<Record<string, KeyReader | null>>>> = {
  uhyve: {
    output(value, into, key): void {
      const text = asString(key, value);
      if (text === "") throw new ValueProblem(`${key} must name a file, or be "none"`);
      into.output = text;
    },
    stats(value, into, key): void {
      if (value === "json") into.stats = "json";
      else if (typeof value === "boolean") into.stats = value;
      else throw wrongType(key, 'true, false or "json"', value);
    },
    tempdir(value, into, key): void {
      const text = asString(key, value);
      if (text === "") throw new ValueProblem(`${key} must name a directory`);
      into.tempDir = text;
    },
    file_isolation(value, into, key): void {
      into.fileIsolation = validated(key, () => parseFileIsolation(asString(key, value)));
    },
    io_mode(value, into, key): void {
      into.ioMode = validated(key, () => parseIoMode(asString(key, value)));
    },
    hermit_image_mode(value, into, key): void {
      into.hermitImageMode = validated(key, () => parseHermitImageMode(asString(key, value)));
    },
    gdb_port(value, into, key): void {
      const port = asInteger(key, value);
      if (port < 1 || port > 65535) {
        throw new ValueProblem(`${key} must be a TCP port from 1 to 65535, not ${port}`);
      }
      into.gdbPort = port;
    },
    file_mapping(value, into, key): void {
      const specs = asStringArray(key, value);
      // Same syntax check as --file-mapping; the map itself is built later, from the cwd.
      for (const spec of specs) validated(key, () => parseMapping(spec, "/"));
      into.fileMappings = [...specs];
    },
    config: null,
    net: null,
    trace_dir: null,
  },
  memory: {
    memory_size(value, into, key): void {
      if (typeof value === "string") {
        into.memorySize = validated(key, () => validateMemorySize(parseMemorySize(value)));
      } else if (typeof value === "number" && Number.isSafeInteger(value)) {
        into.memorySize = validated(key, () => validateMemorySize(value));
      } else {
        throw wrongType(key, 'a size such as "256MiB" or a number of bytes', value);
      }
    },
    no_aslr: readBoolean("noAslr"),
    thp: readBoolean("thp"),
    ksm: readBoolean("ksm"),
  },
  cpu: {
    cpu_count(value, into, key): void {
      into.cpuCount = validated(key, () => validateCpuCount(asInteger(key, value)));
    },
    cpu_pm: readBoolean("cpuPm"),
    pit: readBoolean("pit"),
    affinity(value, into, key): void {
      if (typeof value === "string") {
        into.affinity = validated(key, () => parseAffinity(value));
      } else if (Array.isArray(value)) {
        if (!value.every((v) => typeof v === "number" && Number.isSafeInteger(v))) {
          throw wrongType(key, "an array of host CPU numbers", value);
        }
        into.affinity = validated(
          key,
          () => checkCores(value as number[], `affinity [${value.join(", ")}]`),
        );
      } else {
        throw wrongType(key, 'a string such as "0-1,3" or an array such as [0, 1, 3]', value);
      }
    },
  },
  guest: {
    env_vars(value, into, key): void {
      const entries = asStringArray(key, value);
      const vars: string[] = [];
      for (const entry of entries) {
        if (entry === "host") {
          into.envHost = true;
          continue;
        }
        validated(key, () => parseEnvEntry(entry));
        vars.push(entry);
      }
      into.envVars = vars;
    },
    kernel: null,
    kernel_args: null,
  },
};

const SECTIONS = Object.keys(SCHEMA);

function sectionList(): string {
  const names = SECTIONS.map((s) => `[${s}]`);
  return `${names.slice(0, -1).join(", ")} and ${names.at(-1)}`;
}

function knownKeys(section: string): string[] {
  return Object.entries(SCHEMA[section] ?? {}).filter(([, r]) => r !== null).map(([k]) => k);
}

/** The section (other than `section`) where `key` is known, if any. */
function homeOf(key: string, section?: string): string | undefined {
  return SECTIONS.find((s) => s !== section && Object.hasOwn(SCHEMA[s]!, key));
}

const HEADER = /^\s*\[\s*([^\[\]]*?)\s*\]\s*(?:#.*)?$/;

function unquote(name: string): string {
  return name.split(".").map((p) => p.trim().replace(/^(["'])(.*)\1$/, "$2")).join(".");
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/**
 * Finds the line of `key` in `[section]` (or of the section header when `key`
 * is undefined; of a top-level key when `section` is undefined) by scanning
 * the text: good enough for error messages. Knows `[section]` headers,
 * `key = …` lines and top-level `section.key = …`; falls back to the
 * section's header, then to the first line that mentions the key or
 * section, then to line 1.
 */
function findLine(text: string, section: string | undefined, key?: string): number {
  const lines = text.split(/\r?\n/);
  const names = (name: string): string => {
    const e = escapeRegExp(name);
    return `(?:${e}|"${e}"|'${e}')`;
  };
  const keyAt = key === undefined ? null : new RegExp(`^\\s*${names(key)}\\s*=`);
  const dotted = key === undefined || section === undefined
    ? null
    : new RegExp(`^\\s*${names(section)}\\s*\\.\\s*${names(key)}\\s*=`);
  let current = "";
  let headerLine = 0;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    const header = line.trimStart().startsWith("[[") ? null : HEADER.exec(line);
    if (header !== null) {
      current = unquote(header[1]!);
      if (current === section && headerLine === 0) {
        if (keyAt === null) return i + 1;
        headerLine = i + 1;
      }
      continue;
    }
    if (keyAt === null) continue;
    if (section === undefined) {
      if (current === "" && keyAt.test(line)) return i + 1;
    } else if (current === section ? keyAt.test(line) : current === "" && dotted!.test(line)) {
      return i + 1;
    }
  }
  if (headerLine !== 0) return headerLine;
  const word = key ?? section;
  if (word !== undefined) {
    const mention = lines.findIndex((l) => l.includes(word));
    if (mention >= 0) return mention + 1;
  }
  return 1;
}

let toml: typeof import("npm:smol-toml@1.9.1") | undefined;

/**
 * Loads the TOML parser (smol-toml), which {@linkcode parseConfig} needs: only
 * runs that read a config file pay for it at start-up.
 */
export async function loadTomlParser(): Promise<void> {
  toml ??= await import("npm:smol-toml@1.9.1");
}

/** {@linkcode parseConfig} was called before {@linkcode loadTomlParser}. */
export class TomlParserNotLoaded extends Error {
  /** Builds the error. */
  constructor() {
    super("The TOML parser is not loaded: await loadTomlParser() first");
  }
  /** Error name. */
  override name = "TomlParserNotLoaded";
}

/** A TOML table: smol-toml makes them with a null prototype (dates are Date objects). */
function isTable(value: unknown): value is Record<string, unknown> {
  if (typeof value !== "object" || value === null) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === null || proto === Object.prototype;
}

/**
 * Parses and validates a `uhyve.toml`. Every section and key of uhyve 0.8 is
 * known; unlike uhyve, an unknown section or key, a value of the wrong type,
 * or a value the CLI would refuse is an error, and the boolean keys take
 * effect. Values follow the CLI's rules (`parseMemorySize`, `validateCpuCount`,
 * `parseFileIsolation`, `parseIoMode`, `parseEnvEntry`, {@linkcode parseAffinity}).
 *
 * dhyve extensions: `[uhyve] file_mapping = ["HOST:GUEST", …]` is honoured
 * (uhyve 0.8 ignores it) and appended after the `--file-mapping` flags;
 * `[uhyve] stats = "json"`; `[guest] env_vars = ["host"]` means `-e host`.
 * Keys uhyve knows but ignores in a file (`[uhyve] config`, `net`,
 * `trace_dir`; `[guest] kernel`, `kernel_args`) are ignored with a warning.
 * @throws {ConfigError} `"<path>:<line>: <what is wrong>"`.
 */
export function parseConfig(text: string, path: string): ConfigFile {
  if (toml === undefined) throw new TomlParserNotLoaded();
  let doc: Record<string, unknown>;
  try {
    doc = toml.parse(text, { unsafeKeyBehaviour: "throw" });
  } catch (error) {
    if (error instanceof toml.TomlError) {
      const what = (error.message.split("\n")[0] ?? "").replace(/^Invalid TOML document:\s*/, "");
      throw new ConfigError(
        { path, line: error.line > 0 ? error.line : 1 },
        `Invalid TOML: ${what}`,
        { cause: error },
      );
    }
    throw error;
  }
  const options: ConfigOptions = {};
  const warnings: string[] = [];
  for (const [section, body] of Object.entries(doc)) {
    if (!Object.hasOwn(SCHEMA, section)) {
      const home = homeOf(section);
      if (!isTable(body) && home !== undefined) {
        throw new ConfigError(
          { path, line: findLine(text, undefined, section) },
          `Key "${section}" is outside any section: put it under [${home}]`,
        );
      }
      throw new ConfigError(
        { path, line: findLine(text, section) },
        `Unknown section [${section}]: the sections are ${sectionList()}`,
      );
    }
    if (!isTable(body)) {
      throw new ConfigError(
        { path, line: findLine(text, undefined, section) },
        `[${section}] must be a table, not ${typeName(body)}`,
      );
    }
    const schema = SCHEMA[section]!;
    for (const [key, value] of Object.entries(body)) {
      const where = (): { path: string; line: number } => ({
        path,
        line: findLine(text, section, key),
      });
      if (!Object.hasOwn(schema, key)) {
        const home = homeOf(key, section);
        throw new ConfigError(
          where(),
          home !== undefined
            ? `Key "${key}" does not belong in [${section}]: put it under [${home}]`
            : `Unknown key "${key}" in [${section}]: the keys are ${knownKeys(section).join(", ")}`,
        );
      }
      const reader = schema[key];
      if (reader === null || reader === undefined) {
        const at = where();
        warnings.push(
          `${at.path}:${at.line}: [${section}] ${key} is ignored in a config file, as in uhyve`,
        );
        continue;
      }
      try {
        reader(value, options, `[${section}] ${key}`);
      } catch (error) {
        if (error instanceof ValueProblem) {
          throw new ConfigError(where(), error.message);
        }
        throw error;
      }
    }
  }
  return { path, options, warnings };
}

/**
 * Merges a config file into the command line, as uhyve: a CLI (or `HERMIT_*`
 * environment) value wins; the file fills only options that are absent;
 * `env_vars` and `file_mapping` from the file are appended after the CLI's;
 * `-e host` from either side wins. Returns a new object and validates nothing
 * across options: check the affinity against the merged vCPU count with
 * {@linkcode validateAffinity} afterwards.
 */
export function mergeConfig(cli: CliOptions, file: ConfigFile): CliOptions {
  const f = file.options;
  return {
    memorySize: cli.memorySize ?? f.memorySize,
    cpuCount: cli.cpuCount ?? f.cpuCount,
    affinity: cli.affinity ?? f.affinity,
    envVars: [...cli.envVars, ...(f.envVars ?? [])],
    envHost: cli.envHost || (f.envHost ?? false),
    fileMappings: [...cli.fileMappings, ...(f.fileMappings ?? [])],
    tempDir: cli.tempDir ?? f.tempDir,
    fileIsolation: cli.fileIsolation ?? f.fileIsolation,
    ioMode: cli.ioMode ?? f.ioMode,
    hermitImageMode: cli.hermitImageMode ?? f.hermitImageMode,
    output: cli.output ?? f.output,
    stats: cli.stats ?? f.stats,
    noAslr: cli.noAslr ?? f.noAslr,
    thp: cli.thp ?? f.thp,
    ksm: cli.ksm ?? f.ksm,
    pit: cli.pit ?? f.pit,
    cpuPm: cli.cpuPm ?? f.cpuPm,
    gdbPort: cli.gdbPort ?? f.gdbPort,
    net: cli.net ?? f.net,
  };
}

/**
 * Parses `--affinity` as uhyve does: items separated by commas and/or spaces,
 * each a host CPU number or an inclusive range `a-b` (`"0-1,3"`, `"0 1 2"`,
 * `"0,1"`). Unlike uhyve, a reversed range and a CPU listed twice are errors.
 * When `cpuCount` is given, the list must have exactly that many CPUs.
 * @throws {UsageError} naming what is wrong.
 */
export function parseAffinity(text: string, cpuCount?: number): number[] {
  const label = `--affinity "${text}"`;
  const trimmed = text.trim();
  if (trimmed === "") {
    throw new UsageError(`Invalid ${label}: list host CPU numbers, e.g. "0-1,3" or "0 1 2"`);
  }
  const cores: number[] = [];
  for (const item of trimmed.split(/\s*,\s*|\s+/)) {
    if (item === "") throw new UsageError(`Invalid ${label}: an item between commas is empty`);
    const m = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(item);
    if (m === null) {
      throw new UsageError(
        `Invalid ${label}: "${item}" is neither a CPU number nor a range such as 0-3`,
      );
    }
    const first = Number(m[1]);
    const last = m[2] === undefined ? first : Number(m[2]);
    if (first > MAX_CPU_ID || last > MAX_CPU_ID) {
      throw new UsageError(
        `Invalid ${label}: CPU ${
          Math.max(first, last)
        } is not a host CPU number (0 to ${MAX_CPU_ID})`,
      );
    }
    if (last < first) {
      throw new UsageError(
        `Invalid ${label}: the range ${item} runs backwards; write ${last}-${first}`,
      );
    }
    for (let core = first; core <= last; core++) cores.push(core);
  }
  checkCores(cores, label);
  if (cpuCount !== undefined) return validateAffinity(cores, { cpuCount });
  return cores;
}
