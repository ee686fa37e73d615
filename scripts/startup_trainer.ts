/**
 * One recorded run for `deno task profile` (`scripts/profile_startup.ts`):
 * runs dhyve's command line from an unmarked bundle, as `main.ts` does,
 * under V8's precise coverage, and writes on stderr which functions of the
 * start-up files ran, and dhyve's exit code, as one line:
 * `dhyve-profile: {"exitCode":0,"executed":{"main.js":[END, …],
 * "machine/early_vm.js":[…]}}`, each function named by the offset just past
 * its last character.
 *
 * Usage (run by the profiler): `deno run --allow-ffi --allow-read --allow-sys
 * scripts/startup_trainer.ts BUNDLE_DIR KERNEL [dhyve arguments…]`.
 * The guest's output goes to stdout as in any run.
 * @module
 */

import { Session } from "node:inspector";
import { PROFILED_FILES } from "./startup_profile.ts";

interface ScriptCoverage {
  url: string;
  functions: { ranges: { startOffset: number; endOffset: number; count: number }[] }[];
}

const session = new Session();

function post<T>(method: string, params: Record<string, unknown> = {}): Promise<T> {
  return new Promise((resolve, reject) => {
    session.post(method, params, (error, result) => error ? reject(error) : resolve(result as T));
  });
}

/** What the end of a run throws instead of exiting, so that the coverage can be taken. */
class Exited extends Error {
  constructor(readonly code: number) {
    super(`exit ${code}`);
  }
}

async function train(
  bundleDir: string,
  argv: string[],
): Promise<{ exitCode: number; executed: Record<string, number[]> }> {
  session.connect();
  await post("Profiler.enable");
  await post("Profiler.startPreciseCoverage", { callCount: true, detailed: false });
  const realExit = Deno.exit;
  Deno.exit = (code = 0): never => {
    throw new Exited(code);
  };
  let exitCode = -1;
  try {
    const early = await import(`file://${bundleDir}/machine/early_vm.js`);
    early.openVmEarly(argv);
    const bundle = await import(`file://${bundleDir}/main.js`);
    await bundle.runCommandLine(argv).catch((error: unknown) => {
      if (!(error instanceof Exited)) throw error;
      exitCode = error.code;
    });
  } finally {
    Deno.exit = realExit;
  }
  const { result } = await post<{ result: ScriptCoverage[] }>("Profiler.takePreciseCoverage");
  const executed: Record<string, number[]> = {};
  for (const script of result) {
    const name = PROFILED_FILES.find((f) => script.url === `file://${bundleDir}/${f}`);
    if (name === undefined) continue;
    // The first range of each function is the whole function; the script's own is at offset 0.
    executed[name] = script.functions
      .map((f) => f.ranges[0]!)
      .filter((r) => r.count > 0 && r.startOffset > 0)
      .map((r) => r.endOffset);
  }
  return { exitCode, executed };
}

if (import.meta.main) {
  const [bundleDir, ...argv] = Deno.args;
  if (bundleDir === undefined || argv.length === 0) {
    Deno.stderr.writeSync(
      new TextEncoder().encode("usage: startup_trainer.ts BUNDLE_DIR KERNEL [ARGS…]\n"),
    );
    Deno.exit(64);
  }
  const recorded = await train(bundleDir, argv);
  Deno.stderr.writeSync(new TextEncoder().encode(`dhyve-profile: ${JSON.stringify(recorded)}\n`));
  Deno.exit(0);
}
