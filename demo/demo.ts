/**
 * `npm start`: builds the bundled demo guest (tests/guests/hello.c, a tiny
 * freestanding C program entered like a Hermit kernel) with gcc, boots it
 * under dhyve, and prints its greeting and exit code.
 * @module
 */

import { buildGuest } from "../tests/_helpers/guests.ts";
import { runVm } from "../mod.ts";

const enc = new TextEncoder();
function say(text: string): void {
  Deno.stdout.writeSync(enc.encode(text + "\n"));
}

const kernel = await buildGuest("hello", { iface: 2, pie: true });
say(`dhyve demo: booting ${kernel}`);
const result = await runVm(kernel, { args: ["demo"] });
if (result.error !== null) say(`dhyve demo: the guest stopped: ${result.error}`);
say(`dhyve demo: the guest exited with code ${result.exitCode}`);
Deno.exit(result.exitCode);
