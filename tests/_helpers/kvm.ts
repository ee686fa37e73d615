/**
 * KVM detection for the `tests/kvm` group. {@linkcode kvmTest} registers a
 * test that runs wherever `/dev/kvm` opens read-write; elsewhere it registers
 * the test as ignored and prints one loud SKIP line per test file, so a
 * missing KVM is never a silent pass.
 * @module
 */

import { Kvm } from "../../src/kvm.ts";
import { testUnless } from "./skip.ts";

const KVM_PATH = "/dev/kvm";

let probe: { ok: true } | { ok: false; why: string } | undefined;
let announced = false;

function describe(error: unknown): string {
  if (error instanceof Error) return `${error.name}: ${error.message.split("\n")[0]}`;
  return String(error);
}

/** Opens /dev/kvm O_RDWR with Deno's own API; null when that worked, else why not. */
function openWithDeno(): unknown {
  try {
    Deno.openSync(KVM_PATH, { read: true, write: true }).close();
    return null;
  } catch (error) {
    return error;
  }
}

/**
 * Whether `/dev/kvm` can be opened O_RDWR here (the check dhyve itself needs;
 * a `stat` would not see permission problems). Probed once per test file.
 *
 * Deno 2 lets `Deno.openSync` open a device file only under `--allow-all`, so
 * when Deno refuses (NotCapable) the probe opens it the way dhyve does, through
 * libc with `--allow-ffi`.
 */
export function kvmAvailable(): boolean {
  if (probe === undefined) {
    const denied = openWithDeno();
    if (denied === null) {
      probe = { ok: true };
    } else if (!(denied instanceof Deno.errors.NotCapable)) {
      probe = { ok: false, why: describe(denied) };
    } else {
      try {
        Kvm.open(KVM_PATH).close();
        probe = { ok: true };
      } catch (error) {
        probe = {
          ok: false,
          why: error instanceof Deno.errors.NotCapable
            ? "Deno opens it only with --allow-all, or through FFI with --allow-ffi"
            : describe(error),
        };
      }
    }
  }
  return probe.ok;
}

/** Options of {@linkcode kvmTest}. */
export interface KvmTestOptions {
  /** Another reason this test cannot run here (e.g. "needs root"), or null. */
  skip?: string | null;
}

/**
 * Registers a KVM test: it runs when {@linkcode kvmAvailable} is true, and is
 * registered as ignored (after one SKIP line for the file) when it is not.
 * With `options.skip`, it is also ignored, after a SKIP line naming the test
 * and the reason.
 */
export function kvmTest(
  name: string,
  fn: (t: Deno.TestContext) => void | Promise<void>,
  options: KvmTestOptions = {},
): void {
  const ok = kvmAvailable();
  if (!ok && !announced) {
    announced = true;
    const why = probe !== undefined && !probe.ok ? ` (${probe.why})` : "";
    // deno-lint-ignore no-console
    console.error(`SKIP: ${KVM_PATH} is not available here${why}: KVM tests skipped`);
  }
  if (!ok) Deno.test({ name, ignore: true, fn });
  else testUnless(options.skip ?? null, name, fn);
}
