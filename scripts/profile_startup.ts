/**
 * `deno task profile`: records the start-up profile
 * (`scripts/startup_profile.ts`) and writes it to
 * `scripts/startup_profile.json`; then run `deno task build`.
 *
 * It builds the bundle with nothing marked for eager compilation (in
 * `dist/.profile-*`, removed afterwards), runs dhyve's command line from it
 * on a few test guests (`scripts/startup_trainer.ts`, under V8's precise
 * coverage), and keeps the keys of the start-up files' functions that any
 * run executed. The guests cover what every run does and the usual guest
 * paths: a v2 PIE kernel that exits at once; one line through each output
 * path from a v3 PIE kernel (with arguments and environment, as a current
 * Hermit kernel) and from a v1 fixed-address one (as uhyve's 0.6
 * `hello_c`); and every file hypercall from a v3 kernel over a mapped
 * directory (`TRAINING_RUNS`). A run that does not exit 0 stops the
 * recording: it took another path than the one to record.
 *
 * Needs `/dev/kvm` and gcc (the guests are built as the tests build them).
 * Usage: `deno run --allow-all scripts/profile_startup.ts`.
 * @module
 */

import { fileURLToPath } from "node:url";
import { makeFixture } from "../tests/_helpers/files_fixture.ts";
import { buildGuest, type GuestBuild } from "../tests/_helpers/guests.ts";
import { buildBundle } from "./build.ts";
import {
  keyedFunctionsOfFile,
  PROFILE_FILE,
  PROFILED_FILES,
  type StartupProfile,
} from "./startup_profile.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url)).replace(/\/$/, "");
const TRAINER = `${ROOT}/scripts/startup_trainer.ts`;

/** One recorded run: a test guest and the dhyve arguments around it. */
export interface TrainingRun {
  /** The guest (`tests/guests/NAME.c`). */
  readonly guest: string;
  /** How it is built. */
  readonly build: GuestBuild;
  /** dhyve's options before the kernel. */
  readonly options?: readonly string[];
  /** The guest's arguments after it. */
  readonly args?: readonly string[];
  /** Makes what the run needs on the host: more options, arguments and Deno flags, and its cleanup. */
  readonly prepare?: () => Prepared;
}

/** What {@linkcode TrainingRun.prepare} made. */
export interface Prepared {
  readonly options: readonly string[];
  readonly args: readonly string[];
  /** Deno's flags besides `--allow-ffi --allow-read` (e.g. `--allow-write`). */
  readonly denoFlags: readonly string[];
  cleanup(): void;
}

/** The `files` guest's directory map (tests/_helpers/files_fixture.ts), writable. */
function filesFixture(): Prepared {
  const fx = makeFixture();
  return {
    options: ["--file-mapping", `${fx.data}:/root/data`, "--tempdir", fx.tempParent],
    args: [fx.bigSum],
    denoFlags: ["--allow-write"],
    cleanup: () => fx.cleanup(),
  };
}

/** The runs `deno task profile` records. */
export const TRAINING_RUNS: readonly TrainingRun[] = [
  { guest: "noop", build: { iface: 2, pie: true } },
  {
    guest: "hello",
    build: { iface: 3, pie: true },
    options: ["-e", "A=1", "-e", "B=2", "-e", "C=3", "-e", "D=4"],
    args: ["one", "two"],
  },
  { guest: "hello", build: { iface: 1, pie: false } },
  // Every file hypercall, as a v3 kernel (long enough for the run loop's ticks too).
  { guest: "files", build: { iface: 3, pie: true }, prepare: filesFixture },
];

/** What a recording found. */
export interface Recording {
  /** Keys of the functions the runs executed. */
  readonly functions: ReadonlySet<string>;
  /** How many executed functions had no key (no source position): the build marks those anyway. */
  readonly unkeyed: number;
  /** The runs, by guest and variant. */
  readonly runs: readonly string[];
}

/**
 * Builds an unmarked bundle, runs `runs` from it and returns the keys of
 * the start-up files' functions they executed. Throws when a run fails or
 * reports nothing.
 */
export async function recordStartupProfile(runs: readonly TrainingRun[]): Promise<Recording> {
  Deno.mkdirSync(`${ROOT}/dist`, { recursive: true });
  // Beside dist/bundle, at its depth: the maps name the sources relative to the files.
  const dir = Deno.makeTempDirSync({ dir: `${ROOT}/dist`, prefix: ".profile-" });
  try {
    await buildBundle(dir, "none");
    const files = new Map(
      PROFILED_FILES.map((name) => [name, keyedFunctionsOfFile(ROOT, `${dir}/${name}`)] as const),
    );
    const functions = new Set<string>();
    let unkeyed = 0;
    const names: string[] = [];
    for (const run of runs) {
      const kernel = await buildGuest(run.guest, run.build);
      const prepared = run.prepare?.() ?? null;
      let executed: Record<string, number[]>;
      try {
        executed = await trainOnce(dir, prepared?.denoFlags ?? [], [
          ...(run.options ?? []),
          ...(prepared?.options ?? []),
          kernel,
          ...(run.args ?? []),
          ...(prepared?.args ?? []),
        ]);
      } finally {
        prepared?.cleanup();
      }
      names.push(`${run.guest} v${run.build.iface} ${run.build.pie ? "pie" : "fixed"}`);
      for (const [name, ends] of Object.entries(executed)) {
        const ran = new Set(ends);
        for (const fn of files.get(name) ?? []) {
          if (!ran.has(fn.end)) continue;
          if (fn.key === null) unkeyed++;
          else functions.add(fn.key);
        }
      }
    }
    return { functions, unkeyed, runs: names };
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
}

/** One trainer run; returns the end offsets of the functions it executed, per file. */
async function trainOnce(
  bundleDir: string,
  denoFlags: readonly string[],
  argv: string[],
): Promise<Record<string, number[]>> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-ffi",
      "--allow-read",
      ...denoFlags,
      "--allow-sys",
      TRAINER,
      bundleDir,
      ...argv,
    ],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  const line = stderr.split("\n").find((l) => l.startsWith("dhyve-profile: "));
  if (!out.success || line === undefined) {
    throw new Error(`The recorded run of ${argv.join(" ")} failed:\n${stderr.trimEnd()}`);
  }
  const { exitCode, executed } = JSON.parse(line.slice("dhyve-profile: ".length)) as {
    exitCode: number;
    executed: Record<string, number[]>;
  };
  // A run that went wrong took another path than the one to record.
  if (exitCode !== 0) {
    throw new Error(`The recorded run of ${argv.join(" ")} exited with ${exitCode}:\n${stderr}`);
  }
  if (Object.values(executed).every((ends) => ends.length === 0)) {
    throw new Error(`The recorded run of ${argv.join(" ")} reported no functions`);
  }
  return executed;
}

function say(line: string): void {
  Deno.stderr.writeSync(new TextEncoder().encode(`dhyve profile: ${line}\n`));
}

if (import.meta.main) {
  try {
    const recording = await recordStartupProfile(TRAINING_RUNS);
    const profile: StartupProfile = {
      about: "Functions of the start-up files a plain run executes (scripts/startup_profile.ts). " +
        "Made by `deno task profile`.",
      runs: recording.runs,
      functions: [...recording.functions].sort(),
    };
    Deno.writeTextFileSync(`${ROOT}/${PROFILE_FILE}`, `${JSON.stringify(profile, null, 2)}\n`);
    say(
      `${profile.functions.length} functions from ${recording.runs.length} runs ` +
        `(${recording.unkeyed} without a source position) in ${PROFILE_FILE}; ` +
        "now run `deno task build`",
    );
  } catch (error) {
    say(error instanceof Error ? error.message : String(error));
    Deno.exit(1);
  }
}
