import { REPO_ROOT } from "./repo.ts";
/**
 * Builds and drives `sse_native.c`, which runs single SSE instructions on
 * the host CPU, for the differential tests of the SSE emulator. The binary
 * is built with gcc into `.build/sse_native/<hash>/` (keyed by the source and
 * flags) and fed fixed-size records on stdin. Needs `--allow-run`,
 * `--allow-read` and `--allow-write` (for `.build/`).
 * @module
 */

const SOURCE = `${REPO_ROOT}/tests/_helpers/sse_native.c`;
const CACHE_DIR = `${REPO_ROOT}/.build/sse_native`;
const FLAGS = ["-O2", "-std=gnu11", "-Wall", "-Wextra", "-Werror", "-fcf-protection=none"];

/** Where the helper maps its code page (the instruction's RIP). */
export const NATIVE_CODE_ADDRESS = 0x5000_0000_0000n;
/** Where the helper maps its data page; the page after it is inaccessible. */
export const NATIVE_DATA_ADDRESS = NATIVE_CODE_ADDRESS + 0x10000n;
/** Bytes of the data page a case sets and reads back. */
export const WINDOW = 64;
/** Size of one input record. */
export const CASE_IN_SIZE = 16 + 8 + 8 + 128 + 256 + WINDOW;
/** Size of one output record. */
export const CASE_OUT_SIZE = 8 + 8 + 8 + 8 + 128 + 256 + WINDOW;

/** One case for the native helper. */
export interface NativeCase {
  /** Instruction bytes (at most 15). */
  code: Uint8Array;
  /** MXCSR. */
  mxcsr: number;
  /** Offset of the 64-byte window in the data page. */
  memOffset: number;
  /** RFLAGS. */
  rflags: bigint;
  /** RAX…R15 in encoding order. */
  gpr: BigUint64Array;
  /** XMM0–15. */
  xmm: Uint8Array;
  /** The window's contents. */
  mem: Uint8Array;
}

/** What the native run produced. */
export interface NativeResult {
  /** 0 ok, 1 #GP, 2 #PF, 3 #XM (SIGFPE), 4 #UD (SIGILL), 5 other signal. */
  status: number;
  /** Signal number << 16 | si_code. */
  detail: number;
  /** si_addr for a fault. */
  faultAddress: bigint;
  /** RFLAGS after. */
  rflags: bigint;
  /** MXCSR after. */
  mxcsr: number;
  /** GPRs after (encoding order). */
  gpr: BigUint64Array;
  /** XMM registers after. */
  xmm: Uint8Array;
  /** The window after. */
  mem: Uint8Array;
}

/** Encodes cases into the helper's input format. */
export function encodeCases(cases: readonly NativeCase[]): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(cases.length * CASE_IN_SIZE);
  const view = new DataView(out.buffer);
  cases.forEach((c, i) => {
    const o = i * CASE_IN_SIZE;
    out[o] = c.code.length;
    out.set(c.code, o + 1);
    view.setUint32(o + 16, c.mxcsr, true);
    view.setUint32(o + 20, c.memOffset, true);
    view.setBigUint64(o + 24, c.rflags, true);
    for (let r = 0; r < 16; r++) view.setBigUint64(o + 32 + r * 8, c.gpr[r]!, true);
    out.set(c.xmm, o + 160);
    out.set(c.mem, o + 416);
  });
  return out;
}

/** Decodes the helper's output. */
export function decodeResults(bytes: Uint8Array, count: number): NativeResult[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const results: NativeResult[] = [];
  for (let i = 0; i < count; i++) {
    const o = i * CASE_OUT_SIZE;
    const gpr = new BigUint64Array(16);
    for (let r = 0; r < 16; r++) gpr[r] = view.getBigUint64(o + 32 + r * 8, true);
    results.push({
      status: view.getUint32(o, true),
      detail: view.getUint32(o + 4, true),
      faultAddress: view.getBigUint64(o + 8, true),
      rflags: view.getBigUint64(o + 16, true),
      mxcsr: view.getUint32(o + 24, true),
      gpr,
      xmm: bytes.slice(o + 160, o + 416),
      mem: bytes.slice(o + 416, o + 416 + WINDOW),
    });
  }
  return results;
}

/** CPU features the helper reported: CPUID.1:ECX and CPUID.7.0:EBX. */
export interface CpuFeatures {
  /** CPUID.1:ECX. */
  ecx1: number;
  /** CPUID.(EAX=7,ECX=0):EBX. */
  ebx7: number;
}

/** True when gcc runs here (the helper is built with it). */
export async function gccAvailable(): Promise<boolean> {
  try {
    const probe = new Deno.Command("gcc", { args: ["--version"], stdout: "null", stderr: "null" });
    return (await probe.output()).success;
  } catch {
    return false;
  }
}

/**
 * Builds the helper (or reuses the cached build).
 * @returns the path of the binary
 * @throws {Error} with gcc's output when the build fails
 */
export async function buildSseNative(): Promise<string> {
  const source = await Deno.readFile(SOURCE);
  const key = new TextEncoder().encode(JSON.stringify(FLAGS));
  const all = new Uint8Array(source.length + key.length);
  all.set(source);
  all.set(key, source.length);
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", all));
  const hash = Array.from(digest.subarray(0, 8), (b) => b.toString(16).padStart(2, "0")).join("");
  const dir = `${CACHE_DIR}/${hash}`;
  const out = `${dir}/sse_native`;
  try {
    if ((await Deno.stat(out)).isFile) return out;
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  await Deno.mkdir(dir, { recursive: true });
  const tmp = `${out}.tmp-${Deno.pid}-${crypto.randomUUID()}`;
  const result = await new Deno.Command("gcc", {
    args: [...FLAGS, "-o", tmp, SOURCE],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!result.success) {
    throw new Error(
      `Cannot build the SSE native helper: gcc exited with code ${result.code}\n` +
        new TextDecoder().decode(result.stderr),
    );
  }
  await Deno.rename(tmp, out);
  return out;
}

/** Runs `cases` natively; returns the CPU features and one result per case. */
export async function runNative(
  binary: string,
  cases: readonly NativeCase[],
): Promise<{ features: CpuFeatures; results: NativeResult[] }> {
  const child = new Deno.Command(binary, {
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const input = encodeCases(cases);
  const writer = child.stdin.getWriter();
  const writing = writer.write(input).then(() => writer.close());
  const [output] = await Promise.all([child.output(), writing]);
  if (!output.success) {
    throw new Error(
      `The SSE native helper failed (exit ${output.code}): ${
        new TextDecoder().decode(output.stderr)
      }`,
    );
  }
  const bytes = output.stdout;
  if (bytes.length !== 8 + cases.length * CASE_OUT_SIZE) {
    throw new Error(
      `The SSE native helper wrote ${bytes.length} bytes, expected ${
        8 + cases.length * CASE_OUT_SIZE
      }`,
    );
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return {
    features: { ecx1: view.getUint32(0, true), ebx7: view.getUint32(4, true) },
    results: decodeResults(bytes.subarray(8), cases.length),
  };
}
