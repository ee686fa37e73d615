/**
 * Reading one environment variable without prompting and without an error
 * to build: the permission is queried first (a refused `Deno.env.get`
 * throws a NotCapable that cost ~0.6 ms at start-up, measured).
 * @module
 */

/** The variable's value, or undefined when it is unset or `--allow-env` does not grant it. */
export function grantedEnvVar(name: string): string | undefined {
  try {
    if (Deno.permissions.querySync({ name: "env", variable: name }).state !== "granted") {
      return undefined;
    }
    return Deno.env.get(name);
  } catch {
    return undefined; // a name Deno rejects (empty, with "=" or NUL): no such variable
  }
}
