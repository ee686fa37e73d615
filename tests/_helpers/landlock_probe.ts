/**
 * A subprocess for `tests/kvm/landlock_test.ts`: applies Landlock as told by
 * its one JSON argument ({@linkcode ProbeConfig}), then tries file access in
 * several ways (Deno's sync and async APIs, libc `open()` through FFI, a
 * Worker started afterwards, ioctl on `/dev/kvm`) and prints one JSON line
 * ({@linkcode ProbeReport}) on stdout. Landlock cannot be undone, which is why
 * this runs in its own process. Needs `--allow-ffi --allow-read --allow-env`.
 * @module
 */

import {
  applyLandlock,
  denoRuntimeRules,
  type LandlockMode,
  type LandlockResult,
  type LandlockRule,
} from "../../src/host/landlock.ts";
import { cString, errno, libc, O_CLOEXEC, O_RDWR } from "../../src/host/libc.ts";
import { type AccessReport, probeAccess } from "./landlock_probe_worker.ts";

/** What the probe applies and tries. */
export interface ProbeConfig {
  /** Landlock mode. */
  mode: LandlockMode;
  /** The test's own rules. */
  rules: LandlockRule[];
  /** Add {@linkcode denoRuntimeRules} (dhyve's root, Deno's cache, /dev/kvm, …). */
  runtime: boolean;
  /** Apply the same rules a second time (to see the warning or error). */
  twice?: boolean;
  /** Files to read from the main thread, once restricted. */
  read: string[];
  /** Files to write (create or truncate) from the main thread, once restricted. */
  write?: string[];
  /** Paths to remove from the main thread, once restricted (after the writes). */
  remove?: string[];
  /** Start `landlock_probe_worker.ts` afterwards and let it read these files. */
  workerRead?: string[];
  /** A Worker script URL to start afterwards that should not load (its dir is not allowed). */
  deniedWorker?: string;
  /** Open `/dev/kvm` afterwards with these flags (`"rw"` or `"ro"`) and ioctl it. */
  kvm?: "rw" | "ro";
}

/** What happened; errors are class names ("PermissionDenied") or errno values. */
export interface ProbeReport {
  /** The result of applyLandlock, or the error it threw. */
  result: LandlockResult | { error: string; message: string };
  /** Second application, when asked. */
  second?: LandlockResult | { error: string; message: string };
  /** Main thread access. */
  main?: AccessReport;
  /** Main thread writes: "ok" or the error class name, per path. */
  write?: Record<string, string>;
  /** Main thread removals: "ok" or the error class name, per path. */
  remove?: Record<string, string>;
  /** Worker results, or the error that stopped it. */
  worker?: AccessReport | { error: string };
  /** Whether the denied Worker loaded ("loaded") or what stopped it. */
  deniedWorker?: string;
  /** `/dev/kvm`: errno of open (0 = ok), then the ioctl result or -errno. */
  kvm?: { open: number; ioctl: number };
  /** Threads whose NoNewPrivs is still 0 after the restriction (i.e. not restricted). */
  unrestrictedThreads?: string[];
}

/** KVM_GET_API_VERSION = _IO(0xAE, 0x00). */
const KVM_GET_API_VERSION = 0xae00;

function apply(config: ProbeConfig): ProbeReport["result"] {
  const rules = config.runtime ? [...config.rules, ...denoRuntimeRules()] : config.rules;
  try {
    return applyLandlock(rules, { mode: config.mode });
  } catch (error) {
    const e = error as Error;
    return { error: e.name, message: e.message };
  }
}

function outcomes(
  paths: readonly string[],
  act: (path: string) => void,
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const path of paths) {
    try {
      act(path);
      out[path] = "ok";
    } catch (error) {
      out[path] = (error as Error).name;
    }
  }
  return out;
}

function startWorker(url: string, message: unknown): Promise<unknown> {
  return new Promise((resolve) => {
    const worker = new Worker(url, { type: "module" });
    const timer = setTimeout(() => finish({ error: "timeout" }), 10_000);
    function finish(value: unknown): void {
      clearTimeout(timer);
      worker.terminate();
      resolve(value);
    }
    worker.onmessage = (event: MessageEvent): void => finish(event.data);
    worker.onerror = (event: ErrorEvent): void => {
      event.preventDefault();
      finish({ error: event.message });
    };
    worker.postMessage(message);
  });
}

function kvmProbe(mode: "rw" | "ro"): { open: number; ioctl: number } {
  const fd = libc().open(cString("/dev/kvm"), (mode === "rw" ? O_RDWR : 0) | O_CLOEXEC, 0);
  if (fd < 0) return { open: errno(), ioctl: 0 };
  const version = libc().ioctl_val(fd, KVM_GET_API_VERSION, 0);
  const ioctl = version < 0 ? -errno() : version;
  libc().close(fd);
  return { open: 0, ioctl };
}

function unrestrictedThreads(): string[] {
  const out: string[] = [];
  try {
    for (const entry of Deno.readDirSync("/proc/self/task")) {
      const status = Deno.readTextFileSync(`/proc/self/task/${entry.name}/status`);
      const name = /^Name:\s*(.*)$/m.exec(status)?.[1] ?? "?";
      if (/^NoNewPrivs:\s*0$/m.test(status)) out.push(`${entry.name} ${name}`);
    }
  } catch (error) {
    out.push(`cannot list threads: ${(error as Error).name}`);
  }
  return out;
}

async function main(): Promise<void> {
  const config = JSON.parse(Deno.args[0] ?? "{}") as ProbeConfig;
  const report: ProbeReport = { result: apply(config) };
  if (config.twice === true) report.second = apply(config);
  report.unrestrictedThreads = unrestrictedThreads();
  report.main = await probeAccess(config.read);
  if (config.write !== undefined) {
    report.write = outcomes(config.write, (path) => Deno.writeTextFileSync(path, "written\n"));
  }
  if (config.remove !== undefined) {
    report.remove = outcomes(config.remove, (path) => Deno.removeSync(path));
  }
  if (config.workerRead !== undefined) {
    const url = new URL("./landlock_probe_worker.ts", import.meta.url).href;
    report.worker = await startWorker(url, config.workerRead) as AccessReport | { error: string };
  }
  if (config.deniedWorker !== undefined) {
    const result = await startWorker(config.deniedWorker, null) as { error?: string } | string;
    report.deniedWorker = typeof result === "string" ? result : result.error ?? "?";
  }
  if (config.kvm !== undefined) report.kvm = kvmProbe(config.kvm);
  Deno.stdout.writeSync(new TextEncoder().encode(`${JSON.stringify(report)}\n`));
}

if (import.meta.main) await main();
