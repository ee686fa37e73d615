/**
 * Bare Deno's memory at the end of an empty script, for `bench/startup.ts`'s
 * RSS split: prints `anon=<RssAnon KiB> file=<RssFile KiB>` from
 * `/proc/self/status` on stderr. Run with `--allow-all` (Deno asks for it to
 * read `/proc/self`).
 * @module
 */

const status = Deno.readTextFileSync("/proc/self/status");
const kib = (name: string): number =>
  Number.parseInt(/^\w+:\s+(\d+)/m.exec(status.slice(status.indexOf(`${name}:`)))?.[1] ?? "", 10);
Deno.stderr.writeSync(new TextEncoder().encode(`anon=${kib("RssAnon")} file=${kib("RssFile")}\n`));
