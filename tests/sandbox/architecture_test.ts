/**
 * The import rules of the design, checked by reading every source file's
 * imports: FFI stays in `libc.ts` (used by `kvm.ts`, `landlock.ts` and `net/host_io.ts` only),
 * KVM stays in `vcpu/` and the VM assembly, and the pure layers (sandbox,
 * loader, boot, memory, abi, hypercall, emulate) import neither; the sandbox
 * never imports the hypercall layer. Needs read access to `src/`.
 * @module
 */

import assert from "node:assert/strict";
import { REPO_ROOT } from "../_helpers/repo.ts";
import { dirname, join, relative } from "node:path";

const root = REPO_ROOT;

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of Deno.readDirSync(dir)) {
    const path = join(dir, entry.name);
    if (entry.isDirectory) out.push(...sourceFiles(path));
    else if (entry.name.endsWith(".ts")) out.push(path);
  }
  return out;
}

/** Repo-relative paths that `file` imports (local imports only). */
function importsOf(file: string): string[] {
  const text = Deno.readTextFileSync(file);
  const specs = [...text.matchAll(/^\s*(?:import|export)[^"';]*?from\s+"(\.[^"]+)"/gm)]
    .map((m) => m[1]!);
  return specs.map((s) => relative(root, join(dirname(file), s)));
}

const files = [...sourceFiles(join(root, "src")), join(root, "main.ts"), join(root, "mod.ts")];
const graph = new Map(files.map((f) => [relative(root, f), importsOf(f)]));

function importers(target: string): string[] {
  return [...graph].filter(([, deps]) => deps.includes(target)).map(([f]) => f).sort();
}

// src/net/host_io.ts is the third, deliberately: the TAP device needs an ioctl on an fd that
// Deno cannot open, and the data path needs readv/writev/poll on guest RAM and eventfds.
Deno.test("only kvm.ts, landlock.ts and net/host_io.ts import src/libc.ts (the only FFI)", () => {
  assert.deepEqual(importers("src/libc.ts"), [
    "src/kvm.ts",
    "src/landlock.ts",
    "src/net/host_io.ts",
  ]);
});

Deno.test("only Deno.dlopen call is in src/libc.ts", () => {
  const callers = files.filter((f) => Deno.readTextFileSync(f).includes("Deno.dlopen("))
    .map((f) => relative(root, f));
  assert.deepEqual(callers, ["src/libc.ts"]);
});

Deno.test("src/kvm.ts is imported only by vcpu/, the VM assembly, the GDB stub's KVM side and the entry points", () => {
  // The GDB stub's KVM side: kvm_target.ts reads registers and arms KVM_SET_GUEST_DEBUG,
  // run.ts drives KVM_RUN and the thread timer. The protocol itself stays pure (next test).
  const allowed =
    /^(src\/vcpu\/|src\/vm\.ts$|src\/cli\.ts$|src\/gdb\/(kvm_target|run)\.ts$|main\.ts$|mod\.ts$)/;
  for (const f of importers("src/kvm.ts")) assert.match(f, allowed, `${f} imports kvm.ts`);
});

Deno.test("pure layers import neither kvm.ts nor libc.ts", () => {
  const pure =
    /^src\/((sandbox|loader|boot|memory|abi|hypercall|emulate|io)\/|gdb\/(packet|protocol|target_xml|breakpoints|connection)\.ts$)/;
  for (const [file, deps] of graph) {
    if (!pure.test(file)) continue;
    for (const dep of deps) {
      assert.ok(dep !== "src/kvm.ts" && dep !== "src/libc.ts", `${file} imports ${dep}`);
    }
  }
});

Deno.test("src/sandbox/ never imports src/hypercall/", () => {
  for (const [file, deps] of graph) {
    if (!file.startsWith("src/sandbox/")) continue;
    for (const dep of deps) assert.ok(!dep.startsWith("src/hypercall/"), `${file} imports ${dep}`);
  }
});

Deno.test("guest file I/O: only src/sandbox/host_fs.ts opens or removes files for the guest", () => {
  const io = /Deno\.(openSync|removeSync|open|remove)\(/;
  for (const f of files) {
    const rel = relative(root, f);
    if (!rel.startsWith("src/sandbox/") && !rel.startsWith("src/hypercall/")) continue;
    if (rel === "src/sandbox/host_fs.ts") continue;
    assert.ok(!io.test(Deno.readTextFileSync(f)), `${rel} does file I/O itself`);
  }
});

Deno.test("every Worker module is --include'd by scripts/compile.sh (the compiled binary needs it)", () => {
  const workers: string[] = [];
  for (const file of files) {
    const text = Deno.readTextFileSync(file);
    for (const m of text.matchAll(/new Worker\(new URL\("(\.[^"]+)", import\.meta\.url\)/g)) {
      workers.push(relative(root, join(dirname(file), m[1]!)));
    }
  }
  assert.ok(workers.length >= 2, `found only ${workers.join(", ")}`);
  const script = Deno.readTextFileSync(join(root, "scripts/compile.sh"));
  const included = [...script.matchAll(/--include (\S+)/g)].map((m) => m[1]!);
  assert.deepEqual(included.sort(), workers.sort());
});
