/**
 * Tests that cannot run here (no root, a missing tool) are registered as
 * ignored with one SKIP line saying why, never run as a silent pass; and the
 * synchronous host probes those decisions need at registration time.
 * @module
 */

/**
 * Registers `fn` as test `name`, or, when `skip` gives a reason, prints
 * `SKIP: <name>: <skip>` and registers the test as ignored.
 */
export function testUnless(
  skip: string | null,
  name: string,
  fn: (t: Deno.TestContext) => void | Promise<void>,
): void {
  if (skip !== null) {
    // deno-lint-ignore no-console
    console.error(`SKIP: ${name}: ${skip}`);
  }
  Deno.test({ name, ignore: skip !== null, fn });
}

/** Whether `cmd args` runs and succeeds here (e.g. `unshare -m true`); false when absent. */
export function commandWorks(cmd: string, args: readonly string[]): boolean {
  try {
    return new Deno.Command(cmd, { args: [...args], stdout: "null", stderr: "null" })
      .outputSync().success;
  } catch {
    return false;
  }
}

let root: boolean | undefined;

/** Whether this process runs as root (`id -u`, so that no `--allow-sys` is needed). */
export function isRoot(): boolean {
  if (root === undefined) {
    try {
      const out = new Deno.Command("id", { args: ["-u"], stdout: "piped", stderr: "null" })
        .outputSync();
      root = out.success && new TextDecoder().decode(out.stdout).trim() === "0";
    } catch {
      root = false;
    }
  }
  return root;
}

/** Why tests that need root and `tool` (probed with `args`) cannot run here, or null. */
export function needsRootAnd(tool: string, args: readonly string[]): string | null {
  if (!isRoot()) return `needs root (for ${tool})`;
  if (!commandWorks(tool, args)) return `needs ${tool} (\`${[tool, ...args].join(" ")}\` failed)`;
  return null;
}
