/**
 * Warms Deno's V8 code cache for dhyve's bundle. Deno stores a module's
 * compiled code only once a program's module evaluation has finished and
 * its event loop has had a turn; a dhyve run ends with `Deno.exit` before
 * either, so its runs never write the cache themselves, and without this
 * every run compiles the bundle afresh (~9 ms more per run, measured).
 * `deno task build` calls it for the user's cache, `dhyve-oci` for the cache
 * its containers mount.
 * @module
 */

/**
 * Loads the command line and the chunks it loads on use (every `.js` file
 * directly in `bundleDir`; the Workers' entries below it are not run) in a
 * child `deno run` that then ends normally. Its main module is a `data:` URL
 * (`deno eval` never touches the code cache). `env` adds to the child's
 * environment (e.g. `DENO_DIR`). Returns whether the child succeeded.
 */
export async function warmCodeCache(
  bundleDir: string,
  env: Record<string, string> = {},
): Promise<boolean> {
  const modules: string[] = [];
  for (const entry of Deno.readDirSync(bundleDir)) {
    if (entry.isFile && entry.name.endsWith(".js")) modules.push(`${bundleDir}/${entry.name}`);
  }
  modules.sort();
  const imports = modules.map((m) => `await import(${JSON.stringify(`file://${m}`)});`);
  const program = `data:application/javascript,${encodeURIComponent(imports.join("\n"))}`;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--no-config", "--quiet", program],
    env,
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).output();
  return out.success;
}
