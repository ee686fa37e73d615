/**
 * The import rules of the design, checked by reading every source file's
 * imports: FFI stays in `host/libc.ts`, used by the KVM layer (`kvm/`), the
 * rest of `host/` (threads, ticker, poll, mappings, Landlock) and `net/host_io.ts` only; KVM stays in `vcpu/`, the machine
 * assembly and the GDB stub's KVM side; only `kvm/` knows the `kvm_run`
 * layout; the pure layers (loader, boot, memory, abi, hypercall, emulate,
 * virtio, bus, devices, sandbox) import neither, and most call no Deno API at
 * all; the sandbox never imports the hypercall layer. Needs read access to
 * `src/` (hence tests/sandbox, not tests/unit, which runs with no permission).
 * @module
 */

import assert from "node:assert/strict";
import { REPO_ROOT } from "../_helpers/repo.ts";
import { dirname, join, relative } from "node:path";
import { existsSync } from "node:fs";
import { BUNDLE_DIR, WORKERS } from "../../src/locations.ts";
import { BUNDLE_ENTRIES } from "../../scripts/build.ts";

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

/** Repo-relative source text without comments (so prose naming `Deno.x` does not count). */
function code(file: string): string {
  return Deno.readTextFileSync(join(root, file)).replace(/\/\*[\s\S]*?\*\//g, "")
    .replace(/(^|[^:"'`])\/\/.*$/gm, "$1");
}

// The FFI layers: kvm/ (the fds), host/ (libc, threads, ticker, poll, mappings, Landlock's
// syscalls), plus one deliberate exception: net/host_io.ts (the TAP device needs an ioctl on an
// fd that Deno cannot open, the data path readv/writev/poll on guest RAM).
const FFI_LAYER = /^src\/(kvm|host)\/[^/]+\.ts$|^src\/kvm\.ts$|^src\/net\/host_io\.ts$/;
const LIBC = "src/host/libc.ts";

Deno.test("only src/kvm/, src/host/ and net/host_io.ts import src/host/libc.ts (the only FFI)", () => {
  for (const f of importers(LIBC)) assert.match(f, FFI_LAYER, `${f} imports libc.ts`);
  assert.ok(importers(LIBC).some((f) => f.startsWith("src/kvm/")));
});

Deno.test("only Deno.dlopen call is in src/host/libc.ts, and only the FFI layer uses Deno.UnsafePointer", () => {
  const callers = files.filter((f) => Deno.readTextFileSync(f).includes("Deno.dlopen("))
    .map((f) => relative(root, f));
  assert.deepEqual(callers, [LIBC]);
  for (const [file] of graph) {
    if (!file.startsWith("src/") || FFI_LAYER.test(file)) continue;
    // The net Worker views the main thread's guest RAM by address.
    if (file === "src/net/net_worker.ts") continue;
    assert.ok(!/Deno\.UnsafePointer/.test(code(file)), `${file} makes pointers`);
  }
});

/** Modules that may import the KVM layer (`src/kvm.ts` or `src/kvm/`). */
const KVM_USERS =
  /^(src\/(kvm|host)\/|src\/kvm\.ts$|src\/vcpu\/|src\/machine\/|src\/vm\.ts$|src\/cli\.ts$|src\/gdb\/(kvm_target|run)\.ts$|main\.ts$|mod\.ts$)/;

Deno.test("the KVM layer is imported only by vcpu/, the machine assembly, the GDB stub's KVM side and the entry points", () => {
  // The GDB stub's KVM side: kvm_target.ts reads registers and arms KVM_SET_GUEST_DEBUG,
  // run.ts drives KVM_RUN and the thread timer. The protocol itself stays pure (next test).
  for (const [file, deps] of graph) {
    for (const dep of deps) {
      if (dep !== "src/kvm.ts" && !dep.startsWith("src/kvm/")) continue;
      assert.match(file, KVM_USERS, `${file} imports ${dep}`);
    }
  }
});

/** Layers that work on plain buffers and data: no KVM, no FFI, no host calls. */
const PURE =
  /^src\/((loader|boot|memory|abi|hypercall|emulate|io|virtio|bus|devices)\/|gdb\/(packet|protocol|target_xml|breakpoints|connection)\.ts$|sandbox\/)/;

Deno.test("pure layers import neither the KVM layer, host/, nor libc.ts", () => {
  for (const [file, deps] of graph) {
    if (!PURE.test(file)) continue;
    for (const dep of deps) {
      assert.ok(
        dep !== "src/kvm.ts" && !/^src\/(kvm|host)\//.test(dep),
        `${file} imports ${dep}`,
      );
    }
  }
});

Deno.test("loader, boot, hypercall, virtio, bus, devices, memory, abi and emulate call no Deno API", () => {
  const strict = /^src\/(loader|boot|hypercall|virtio|bus|devices|memory|abi|emulate)\//;
  for (const [file] of graph) {
    if (!strict.test(file)) continue;
    assert.ok(!/\bDeno\./.test(code(file)), `${file} uses the Deno namespace`);
  }
});

Deno.test("the KVM layer imports no boot policy (boot/, loader/, hypercall/)", () => {
  for (const [file, deps] of graph) {
    if (file !== "src/kvm.ts" && !file.startsWith("src/kvm/")) continue;
    for (const dep of deps) {
      assert.ok(
        !/^src\/(boot|loader|hypercall|vcpu|machine)\//.test(dep),
        `${file} imports ${dep}`,
      );
    }
  }
});

Deno.test("kvm_run offsets (RUN) are read only by src/kvm/", () => {
  for (const [file, deps] of graph) {
    if (!file.startsWith("src/") || file.startsWith("src/kvm/") || file === "src/abi/kvm.ts") {
      continue;
    }
    if (!deps.includes("src/abi/kvm.ts")) continue;
    assert.ok(
      !/(?<![.\w])RUN(_SYNC_SREGS)?\b(?!\s*:)/.test(code(file)),
      `${file} reads kvm_run itself`,
    );
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

Deno.test("every Worker starts from src/locations.ts's list, which the bundle and scripts/compile.sh follow", () => {
  let started = 0;
  for (const file of files) {
    const text = Deno.readTextFileSync(file);
    for (const m of text.matchAll(/new Worker\(([^,]+),/g)) {
      started++;
      assert.match(m[1]!, /^workerUrl\("\w+"\)$/, `${relative(root, file)}: new Worker(${m[1]})`);
    }
  }
  const workers = Object.values(WORKERS);
  assert.ok(started >= 2 && workers.length >= 2, `found ${started} Workers`);
  for (const { source, bundled } of workers) {
    assert.ok(existsSync(join(root, source)), `${source} exists`);
    assert.ok(BUNDLE_ENTRIES.includes(source), `${source} is a bundle entry of scripts/build.ts`);
    const entryName = source.replace(/^src\//, `${BUNDLE_DIR}/`).replace(/\.ts$/, ".js");
    assert.equal(bundled, entryName, "deno bundle writes an entry at its path below src/");
  }
  const script = Deno.readTextFileSync(join(root, "scripts/compile.sh"));
  const included = [...script.matchAll(/--include (\S+)/g)].map((m) => m[1]!);
  assert.deepEqual(included.sort(), workers.map((w) => w.bundled).sort());
});
