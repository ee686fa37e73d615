/**
 * Property tests of every hypercall handler in `buildHypercallTable()` (v1,
 * v2 and the v3 calls on v2 ports): fast-check builds random parameter blocks in a plain ArrayBuffer guest
 * memory (pointers inside, across the end, far outside and wrapping around
 * 2^64; huge lengths; bad fds, flags, whence and offsets; paths that are
 * valid, unterminated, too long or not UTF-8; v1 buffers through a random page
 * map) and calls the handler with a fake {@linkcode GuestFiles} that checks
 * what it is given and answers with random plausible results. For every case:
 * no exception escapes; the result is RESUME, WOULD_BLOCK (only a read of
 * stdin, with nothing changed) or a VmStop (an "exit" only from Exit, else one
 * line with GUEST_PROTOCOL); result fields hold a success the
 * fake gave or a −errno; and no byte of guest memory changes outside the
 * result fields and the buffers the handler was entitled to write. Prints the
 * number of cases run (docs/security.md records it). Runs with no permissions.
 * @module
 */

import assert from "node:assert/strict";
import fc from "fast-check";
import {
  CLOSE,
  CMDSIZE,
  CMDVAL,
  EXIT_V1,
  FILE_ATTR,
  FSTAT,
  GETDENTS,
  GETDENTS_RESULT,
  LSEEK_V1,
  LSEEK_V2,
  MAX_ARGC_ENVC,
  MKDIR,
  OPEN,
  READ_V1,
  READ_WRITE_V2,
  SERIAL_BUFFER_V1,
  SERIAL_BUFFER_V2,
  SERIAL_READ_BUFFER_V2,
  STAT,
  STATUS_RESULT,
  UNLINK,
  WRITE_V1,
} from "../../../src/hypercall/abi.ts";
import { RESUME, VmStop, WOULD_BLOCK } from "../../../src/hypercall/context.ts";
import type { InputSource } from "../../../src/hypercall/serial_input.ts";
import { ALLOWED_OPEN_FLAGS, type GuestFiles, PATH_MAX } from "../../../src/hypercall/file.ts";
import {
  buildHypercallTable,
  type HypercallEntry,
  hypercallPorts,
} from "../../../src/hypercall/table.ts";
import { EXIT_CODE } from "../../../src/exit_codes.ts";
import { GuestMemory } from "../../../src/memory/guest_memory.ts";
import { FAKE_PAGE_SIZE, fakeContext } from "../../_helpers/hypercall_context.ts";

/** Cases per handler. */
const RUNS_PER_HANDLER = 2000;
/** Guest RAM per case: four pages. */
const RAM_SIZE = 0x4000;
/** Guest-physical base of RAM: below 4 GiB for v1 (32-bit OUT value), at 4 GiB for v2. */
const RAM_BASE = { 1: 0x1000_0000, 2: 0x1_0000_0000 } as const;
/** Guest-virtual base of the random page map that v1 buffers may use. */
const VIRTUAL_BASE = 0x40_0000;
/** Pages of the random page map. */
const VIRTUAL_PAGES = 8;
/** The command line Cmdsize/Cmdval hand out. */
const ARGV = ["/kernel/path", "a1", "bb2"] as const;
const ENV = ["KEY=value"] as const;
const TWO_64 = 1n << 64n;
/** Highest Linux errno: a negative result must be −1 … −133. */
const MAX_ERRNO = 133;

/** What a parameter field holds, which decides how its values are drawn. */
type Kind =
  | "ptr" // guest-physical pointer to something the host only reads
  | "vptr" // v1 guest-virtual buffer pointer
  | "wptr" // guest-physical buffer the host may write
  | "path" // guest-physical pointer to a C string
  | "array" // guest-physical pointer to an array of u64 guest-physical pointers (Cmdval)
  | "len"
  | "fd"
  | "i32"
  | "u32"
  | "i64";

/** One field of a parameter block. */
interface Field {
  readonly at: number;
  readonly kind: Kind;
  readonly width: 4 | 8;
}

/** A parameter block layout, the fields the host may write, and the path/array fields. */
interface Spec {
  readonly size: number;
  readonly fields: readonly Field[];
  /** `[offset, length]` of result fields the handler writes. */
  readonly results: readonly (readonly [number, number])[];
  /** The handler takes the value itself (Uart, SerialWriteByte, v2 Exit), not a block. */
  readonly value?: boolean;
}

const f = (at: number, kind: Kind, width: 4 | 8 = 8): Field => ({ at, kind, width });

const OPEN_SPEC: Spec = {
  size: OPEN.size,
  fields: [f(OPEN.name, "path"), f(OPEN.flags, "i32", 4), f(OPEN.mode, "i32", 4)],
  results: [[OPEN.ret, 4]],
};
const CLOSE_SPEC: Spec = { size: CLOSE.size, fields: [f(CLOSE.fd, "fd", 4)], results: [[4, 4]] };
const UNLINK_SPEC: Spec = {
  size: UNLINK.size,
  fields: [f(UNLINK.name, "path")],
  results: [[UNLINK.ret, 4]],
};
const RW_V2_FIELDS = [
  f(READ_WRITE_V2.len, "len"),
  f(READ_WRITE_V2.fd, "fd", 4),
] as const;
const VALUE: Spec = { size: 0, fields: [], results: [], value: true };
const NO_FIELDS: Spec = { size: 0, fields: [], results: [] };

/** The layout each hypercall port's handler reads (hermit-abi.md §5.4). */
const SPECS: ReadonlyMap<number, Spec> = new Map<number, Spec>([
  [0x400, {
    size: WRITE_V1.size,
    fields: [f(WRITE_V1.fd, "fd", 4), f(WRITE_V1.buf, "vptr"), f(WRITE_V1.len, "len")],
    results: [],
  }],
  [0x440, OPEN_SPEC],
  [0x480, CLOSE_SPEC],
  [0x500, {
    size: READ_V1.size,
    fields: [f(READ_V1.fd, "fd", 4), f(READ_V1.buf, "vptr"), f(READ_V1.len, "len")],
    results: [[READ_V1.ret, 8]],
  }],
  [0x540, { size: EXIT_V1.size, fields: [f(EXIT_V1.arg, "i32", 4)], results: [] }],
  [0x580, {
    size: LSEEK_V1.size,
    fields: [f(LSEEK_V1.fd, "fd", 4), f(LSEEK_V1.offset, "i64"), f(LSEEK_V1.whence, "i32", 4)],
    results: [[LSEEK_V1.offset, 8]],
  }],
  [0x640, NO_FIELDS],
  [0x680, NO_FIELDS],
  [0x700, NO_FIELDS],
  [0x740, { size: CMDSIZE.size, fields: [], results: [] }], // checked against a model
  [0x780, {
    size: CMDVAL.size,
    fields: [f(CMDVAL.argv, "array"), f(CMDVAL.envp, "array")],
    results: [],
  }], // checked against a model
  [0x800, VALUE],
  [0x840, UNLINK_SPEC],
  [0x880, {
    size: SERIAL_BUFFER_V1.size,
    fields: [f(SERIAL_BUFFER_V1.buf, "ptr"), f(SERIAL_BUFFER_V1.len, "len")],
    results: [],
  }],
  [0x1010, VALUE],
  [0x1020, VALUE],
  [0x1030, {
    size: SERIAL_BUFFER_V2.size,
    fields: [f(SERIAL_BUFFER_V2.len, "len"), f(SERIAL_BUFFER_V2.buf, "ptr")],
    results: [],
  }],
  [0x1040, { size: 4, fields: [], results: [[0, 4]] }], // RDI → i32: a byte or -1
  [0x1050, {
    size: SERIAL_READ_BUFFER_V2.size,
    fields: [f(SERIAL_READ_BUFFER_V2.maxlen, "len"), f(SERIAL_READ_BUFFER_V2.buf, "wptr")],
    results: [[SERIAL_READ_BUFFER_V2.len, 8]],
  }],
  [0x1100, {
    size: READ_WRITE_V2.size,
    fields: [...RW_V2_FIELDS, f(READ_WRITE_V2.buf, "ptr")],
    results: [[READ_WRITE_V2.ret, 8]],
  }],
  [0x1110, OPEN_SPEC],
  [0x1120, CLOSE_SPEC],
  [0x1130, {
    size: READ_WRITE_V2.size,
    fields: [...RW_V2_FIELDS, f(READ_WRITE_V2.buf, "wptr")],
    results: [[READ_WRITE_V2.ret, 8]],
  }],
  [0x1140, {
    size: LSEEK_V2.size,
    fields: [f(LSEEK_V2.offset, "i64"), f(LSEEK_V2.whence, "u32", 4), f(LSEEK_V2.fd, "fd", 4)],
    results: [[LSEEK_V2.offset, 8]],
  }],
  [0x1150, UNLINK_SPEC],
  [0x1160, {
    size: GETDENTS.size,
    fields: [f(GETDENTS.fd, "fd", 4), f(GETDENTS.buf, "wptr"), f(GETDENTS.len, "len")],
    results: [[GETDENTS.tag, 4], [GETDENTS.value, 8]],
  }],
  [0x1170, {
    size: STAT.size,
    fields: [f(STAT.name, "path"), f(STAT.kind, "u32", 4), f(STAT.attr, "wptr")],
    results: [[STAT.tag, 4], [STAT.errno, 4]],
  }],
  [0x1180, {
    size: FSTAT.size,
    fields: [f(FSTAT.fd, "fd", 4), f(FSTAT.attr, "wptr")],
    results: [[FSTAT.tag, 4], [FSTAT.errno, 4]],
  }],
  [0x1190, {
    size: MKDIR.size,
    fields: [f(MKDIR.path, "path"), f(MKDIR.len, "len")],
    results: [[MKDIR.tag, 4], [MKDIR.errno, 4]],
  }],
  [0x1200, NO_FIELDS],
  [0x1210, NO_FIELDS],
]);

// ---- arbitraries ----------------------------------------------------------------------

const u64 = fc.bigInt({ min: 0n, max: TWO_64 - 1n });
const nearTop = fc.bigInt({ min: TWO_64 - 0x2000n, max: TWO_64 - 1n });
const aboveSafe = fc.bigInt({ min: 1n << 53n, max: (1n << 53n) + 0x2000n });

/** A guest-physical pointer: mostly inside RAM, else at its edges, outside, or wrapping. */
function pointer(base: number): fc.Arbitrary<bigint> {
  const b = BigInt(base);
  const size = BigInt(RAM_SIZE);
  return fc.oneof(
    { weight: 6, arbitrary: fc.bigInt({ min: b, max: b + size - 1n }) },
    { weight: 2, arbitrary: fc.bigInt({ min: b + size - 64n, max: b + size + 64n }) },
    { weight: 1, arbitrary: fc.bigInt({ min: b - 64n, max: b + 64n }) },
    { weight: 1, arbitrary: fc.oneof(u64, nearTop, aboveSafe, fc.constant(0n)) },
  );
}

/** A v1 buffer: a guest-physical pointer, or a guest-virtual one under the page map. */
function virtualPointer(base: number): fc.Arbitrary<bigint> {
  const v = BigInt(VIRTUAL_BASE);
  return fc.oneof(
    { weight: 2, arbitrary: pointer(base) },
    {
      weight: 3,
      arbitrary: fc.bigInt({ min: v - 64n, max: v + BigInt(VIRTUAL_PAGES * FAKE_PAGE_SIZE) + 64n }),
    },
  );
}

const length = fc.oneof(
  { weight: 5, arbitrary: fc.bigInt({ min: 0n, max: 64n }) },
  { weight: 3, arbitrary: fc.bigInt({ min: 0n, max: BigInt(RAM_SIZE) + 64n }) },
  { weight: 1, arbitrary: fc.oneof(u64, nearTop, aboveSafe, fc.constant(1n << 40n)) },
);

const fd = fc.oneof(
  { weight: 3, arbitrary: fc.integer({ min: -2, max: 12 }) },
  { weight: 1, arbitrary: fc.constantFrom(-0x8000_0000, 0x7fff_ffff, 1024, 4096) },
  { weight: 1, arbitrary: fc.integer({ min: -0x8000_0000, max: 0x7fff_ffff }) },
).map((n) => BigInt(n));

const i32 = fc.oneof(
  fc.integer({ min: -4, max: 0o300000 }),
  fc.integer({ min: -0x8000_0000, max: 0x7fff_ffff }),
).map((n) => BigInt(n));
const u32 = fc.oneof(fc.integer({ min: 0, max: 4 }), fc.nat({ max: 0xffff_ffff })).map((n) =>
  BigInt(n)
);
const i64 = fc.oneof(
  fc.bigInt({ min: -4096n, max: 4096n }),
  fc.bigInt({ min: -(1n << 63n), max: (1n << 63n) - 1n }),
  fc.constantFrom((1n << 53n) - 1n, 1n << 53n, -(1n << 53n), (1n << 63n) - 1n, -(1n << 63n)),
);

/** Bytes to put where a path pointer points: good paths, junk, no NUL, too long. */
const pathBytes = fc.oneof(
  fc.constantFrom("/root/data/hello.txt", "/", "", "../../etc/passwd", "/tmp/x", "/a/../../b")
    .map((s) => ({ bytes: new TextEncoder().encode(s), nul: true })),
  fc.record({ bytes: fc.uint8Array({ maxLength: 48 }), nul: fc.boolean() }),
  fc.record({
    bytes: fc.integer({ min: PATH_MAX - 2, max: PATH_MAX + 2 }).map((n) =>
      new Uint8Array(n).fill(0x61)
    ),
    nul: fc.boolean(),
  }),
);

function fieldValue(kind: Kind, base: number): fc.Arbitrary<bigint> {
  switch (kind) {
    case "ptr":
    case "wptr":
    case "path":
    case "array":
      return pointer(base);
    case "vptr":
      return virtualPointer(base);
    case "len":
      return length;
    case "fd":
      return fd;
    case "i32":
      return i32;
    case "u32":
      return u32;
    case "i64":
      return i64;
  }
}

/** One random case for one handler. */
interface Scenario {
  /** The handler's argument: a parameter address or the value itself. */
  readonly arg: number;
  /** Background of guest memory: zeroes, or bytes from this seed. */
  readonly background: number | null;
  /** One value per field of the spec, in order. */
  readonly values: readonly bigint[];
  /** Bytes written where each path field points (when it points into RAM). */
  readonly paths: readonly { bytes: Uint8Array; nul: boolean }[];
  /** Cmdval: pointers written into the argv and envp arrays. */
  readonly slots: readonly bigint[];
  /** Physical page (index into RAM, or -1 unmapped, or 4 = just past RAM) per virtual page. */
  readonly pages: readonly number[];
  /** Seed of the fake file service's answers. */
  readonly seed: number;
}

/** Where the parameter block goes: mostly inside RAM, else across its end, or anywhere. */
function argument(version: 1 | 2, spec: Spec, base: number): fc.Arbitrary<number> {
  const size = Math.max(spec.size, 1);
  const inside = fc.integer({ min: base, max: base + RAM_SIZE - size });
  const edge = fc.integer({ min: base + RAM_SIZE - size - 8, max: base + RAM_SIZE + 8 });
  const wild = version === 1
    ? fc.nat({ max: 0xffff_ffff })
    : fc.oneof(i64, u64).map((x) => Number(BigInt.asIntN(64, x))); // RDI, read as signed
  return fc.oneof({ weight: 8, arbitrary: inside }, { weight: 1, arbitrary: edge }, {
    weight: 1,
    arbitrary: wild,
  });
}

function scenario(version: 1 | 2, spec: Spec): fc.Arbitrary<Scenario> {
  const base = RAM_BASE[version];
  const valueArg = version === 1
    ? fc.nat({ max: 0xffff_ffff })
    : fc.oneof(i64, u64).map((x) => Number(BigInt.asIntN(64, x)));
  return fc.record({
    arg: spec.value ? valueArg : argument(version, spec, base),
    background: fc.option(fc.nat(), { freq: 2 }),
    values: fc.tuple(...spec.fields.map((field) => fieldValue(field.kind, base))),
    paths: fc.array(pathBytes, { minLength: 2, maxLength: 2 }),
    slots: fc.array(pointer(base), { minLength: 8, maxLength: 8 }),
    pages: fc.array(fc.integer({ min: -1, max: RAM_SIZE / FAKE_PAGE_SIZE }), {
      minLength: VIRTUAL_PAGES,
      maxLength: VIRTUAL_PAGES,
    }),
    seed: fc.integer(),
  });
}

// ---- the fake file service ----------------------------------------------------------

/** xorshift32: the fake's answers, reproducible from the case's seed. */
function rng(seed: number): () => number {
  let x = seed | 0 || 0x2545f491;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return x >>> 0;
  };
}

/** Serial input that checks the buffer it gets and fills a random part of it. */
class CheckingInput implements InputSource {
  readonly #mem: GuestMemory;
  readonly #next: () => number;
  /** `[gpa, length]` ranges filled. */
  readonly written: [number, number][] = [];
  /** Every count handed out. */
  readonly counts = new Set<number>();

  constructor(mem: GuestMemory, seed: number) {
    this.#mem = mem;
    this.#next = rng(seed ^ 0x5bd1e995);
  }

  /** Randomly not ready: a handler must then change nothing and ask to wait. */
  ready(): boolean {
    return this.#next() % 4 !== 0;
  }

  readSync(p: Uint8Array): number | null {
    const u8 = this.#mem.u8;
    assert.equal(p.buffer, u8.buffer, "stdin: not a view of guest memory");
    const offset = p.byteOffset - u8.byteOffset;
    assert.ok(offset >= 0 && offset + p.length <= u8.length, "stdin: view outside RAM");
    if (this.#next() % 5 === 0) return null;
    const n = this.#next() % (p.length + 1);
    for (let i = 0; i < n; i++) p[i] = this.#next() & 0xff;
    if (n > 0) this.written.push([this.#mem.base + offset, n]);
    this.counts.add(n);
    return n;
  }
}

/** A GuestFiles that checks its inputs, answers randomly, and records what it wrote. */
class CheckingFiles implements GuestFiles {
  readonly #mem: GuestMemory;
  readonly #next: () => number;
  /** `[gpa, length]` ranges `read` filled. */
  readonly written: [number, number][] = [];
  /** Every non-negative result handed out (a handler may pass only these on). */
  readonly successes = new Set<number>();

  constructor(mem: GuestMemory, seed: number) {
    this.#mem = mem;
    this.#next = rng(seed);
  }

  #fail(): number | null {
    return this.#next() % 4 === 0 ? -(1 + (this.#next() % MAX_ERRNO)) : null;
  }

  #ok(n: number): number {
    this.successes.add(n);
    return n;
  }

  #fd(fd: number, what: string): void {
    assert.ok(Number.isInteger(fd) && fd >= -0x8000_0000 && fd <= 0x7fff_ffff, `${what}: fd ${fd}`);
  }

  #path(path: string, what: string): void {
    assert.equal(typeof path, "string", what);
    assert.ok(!path.includes("\0"), `${what}: path with NUL`);
    assert.ok(new TextEncoder().encode(path).length < PATH_MAX, `${what}: path too long`);
  }

  /** Checks that `view` lies inside guest RAM; returns its guest-physical address. */
  #view(view: Uint8Array, what: string): number {
    const u8 = this.#mem.u8;
    assert.ok(view instanceof Uint8Array, `${what}: not a Uint8Array`);
    assert.equal(view.buffer, u8.buffer, `${what}: not a view of guest memory`);
    const offset = view.byteOffset - u8.byteOffset;
    assert.ok(offset >= 0 && offset + view.length <= u8.length, `${what}: view outside RAM`);
    return this.#mem.base + offset;
  }

  open(path: string, flags: number, mode: number): number {
    this.#path(path, "open");
    assert.ok(Number.isInteger(flags) && (flags & ~ALLOWED_OPEN_FLAGS) === 0, `open: flags`);
    assert.ok(Number.isInteger(mode), "open: mode");
    return this.#fail() ?? this.#ok(3 + (this.#next() % 64));
  }

  close(fd: number): number {
    this.#fd(fd, "close");
    assert.ok(fd < 0 || fd > 2, "close: stdio fds are the handler's");
    return this.#fail() ?? this.#ok(0);
  }

  read(fd: number, into: Uint8Array): number {
    return this.#fill(fd, into, "read");
  }

  /** Checks a read-like call and fills a random part of `into` (or fails). */
  #fill(fd: number, into: Uint8Array, what: string): number {
    this.#fd(fd, what);
    const gpa = this.#view(into, what);
    const failed = this.#fail();
    if (failed !== null) return failed;
    const n = this.#next() % (into.length + 1);
    for (let i = 0; i < n; i++) into[i] = this.#next() & 0xff;
    if (n > 0) this.written.push([gpa, n]);
    return this.#ok(n);
  }

  write(fd: number, from: Uint8Array): number {
    this.#fd(fd, "write");
    assert.ok(fd !== 1 && fd !== 2, "write: fds 1 and 2 are the handler's");
    this.#view(from, "write");
    return this.#fail() ??
      this.#ok(this.#next() % 2 ? from.length : this.#next() % (from.length + 1));
  }

  lseek(fd: number, offset: number, whence: number): number {
    this.#fd(fd, "lseek");
    assert.ok(Number.isInteger(offset), `lseek: offset ${offset}`);
    assert.ok(Number.isInteger(whence), `lseek: whence ${whence}`);
    return this.#fail() ?? this.#ok(this.#next() * 0x800 + (this.#next() & 0x7ff));
  }

  unlink(path: string): number {
    this.#path(path, "unlink");
    return this.#fail() ?? this.#ok(0);
  }

  getdents(fd: number, into: Uint8Array): number {
    return this.#fill(fd, into, "getdents");
  }

  #attr(attr: Float64Array): number {
    assert.ok(attr instanceof Float64Array && attr.length === 16, "attr: not an ATTR array");
    const failed = this.#fail();
    if (failed !== null) return failed;
    for (let i = 0; i < attr.length; i++) attr[i] = this.#next();
    return this.#ok(0);
  }

  stat(path: string, follow: boolean, attr: Float64Array): number {
    this.#path(path, "stat");
    assert.equal(typeof follow, "boolean", "stat: follow");
    return this.#attr(attr);
  }

  fstat(fd: number, attr: Float64Array): number {
    this.#fd(fd, "fstat");
    assert.ok(fd < 0 || fd > 2, "fstat: stdio fds are the handler's");
    return this.#attr(attr);
  }

  mkdir(path: string): number {
    this.#path(path, "mkdir");
    return this.#fail() ?? this.#ok(0);
  }
}

/** Ports whose result is a tagged enum with a positive errno (uhyve 0.9.1's v3 calls). */
const TAGGED: ReadonlySet<number> = new Set([0x1160, 0x1170, 0x1180, 0x1190]);

/** The FileAttr a successful FileStat/FileFstat may write: `[gpa, 120]`, or none. */
function attrRange(port: number, mem: GuestMemory, s: Scenario): [number, number][] {
  if (port !== 0x1170 && port !== 0x1180) return [];
  const tagAt = s.arg + (port === 0x1170 ? STAT.tag : FSTAT.tag);
  if (mem.readU32(tagAt) !== STATUS_RESULT.SUCCESS) return [];
  return [[Number(s.values[port === 0x1170 ? 2 : 1]!), FILE_ATTR.size]];
}

/** Checks a tagged result: a known tag, a success the fake gave, or an errno 1…MAX_ERRNO. */
function checkTagged(port: number, mem: GuestMemory, arg: number, files: CheckingFiles): void {
  const errno = (at: number): void => {
    const e = mem.readI32(at);
    assert.ok(e >= 1 && e <= MAX_ERRNO, `port 0x${port.toString(16)}: errno ${e}`);
  };
  if (port === 0x1160) {
    const tag = mem.readU32(arg + GETDENTS.tag);
    if (tag === GETDENTS_RESULT.SUCCESS) {
      const n = mem.readU64(arg + GETDENTS.value);
      assert.ok(n > 0 && files.successes.has(n), `Getdents: ${n} bytes`);
    } else if (tag === GETDENTS_RESULT.ERROR) {
      errno(arg + GETDENTS.value);
    } else {
      assert.equal(tag, GETDENTS_RESULT.END_OF_DIRECTORY, `Getdents: tag ${tag}`);
    }
    return;
  }
  const { tag: tagAt, errno: errnoAt } = port === 0x1170 ? STAT : port === 0x1180 ? FSTAT : MKDIR;
  const tag = mem.readU32(arg + tagAt);
  if (tag === STATUS_RESULT.ERROR) errno(arg + errnoAt);
  else assert.equal(tag, STATUS_RESULT.SUCCESS, `port 0x${port.toString(16)}: tag ${tag}`);
}

// ---- one case -----------------------------------------------------------------------

function writeValue(mem: GuestMemory, at: number, width: 4 | 8, value: bigint): void {
  if (!mem.contains(at, width)) return;
  if (width === 8) mem.writeU64Big(at, value);
  else mem.writeU32(at, Number(BigInt.asUintN(32, value)));
}

/** Sets up guest memory for a case: background, paths, Cmdval arrays, then the block. */
function prepare(mem: GuestMemory, spec: Spec, s: Scenario): void {
  if (s.background !== null) {
    const next = rng(s.background);
    for (let i = 0; i < mem.u8.length; i += 4) {
      const x = next();
      mem.u8[i] = x;
      mem.u8[i + 1] = x >>> 8;
      mem.u8[i + 2] = x >>> 16;
      mem.u8[i + 3] = x >>> 24;
    }
  }
  let path = 0;
  let slot = 0;
  spec.fields.forEach((field, i) => {
    const target = Number(s.values[i]!);
    if (!Number.isSafeInteger(target)) return;
    if (field.kind === "path") {
      const { bytes, nul } = s.paths[path++ % s.paths.length]!;
      for (let j = 0; j < bytes.length && mem.contains(target + j, 1); j++) {
        mem.writeU8(target + j, bytes[j]!);
      }
      if (nul && mem.contains(target + bytes.length, 1)) mem.writeU8(target + bytes.length, 0);
    } else if (field.kind === "array") {
      for (let j = 0; j < 4; j++) writeValue(mem, target + 8 * j, 8, s.slots[slot++ % 8]!);
    }
  });
  spec.fields.forEach((field, i) => writeValue(mem, s.arg + field.at, field.width, s.values[i]!));
}

/** Cmdsize and Cmdval as the handlers must behave, run on a copy of guest memory. */
function model(port: number, mem: GuestMemory, arg: number): boolean {
  const enc = new TextEncoder();
  const argv = ARGV.map((a) => enc.encode(a));
  const env = ENV.map((e) => enc.encode(e));
  if (port === 0x740) {
    if (!mem.contains(arg, CMDSIZE.size)) return false;
    mem.writeI32(arg + CMDSIZE.argc, argv.length);
    argv.forEach((a, i) => mem.writeI32(arg + CMDSIZE.argsz + 4 * i, a.length + 1));
    mem.writeI32(arg + CMDSIZE.envc, env.length);
    env.forEach((e, i) => mem.writeI32(arg + CMDSIZE.envsz + 4 * i, e.length + 1));
    return true;
  }
  if (!mem.contains(arg, CMDVAL.size)) return false;
  const arrays = [mem.readU64(arg + CMDVAL.argv), mem.readU64(arg + CMDVAL.envp)];
  for (const [k, list] of [argv, env].entries()) {
    const n = Math.min(list.length, MAX_ARGC_ENVC);
    if (!mem.contains(arrays[k]!, 8 * n)) return false;
    for (let i = 0; i < n; i++) {
      const dst = mem.readU64(arrays[k]! + 8 * i);
      if (!mem.contains(dst, list[i]!.length + 1)) return false;
      mem.write(dst, list[i]!);
      mem.writeU8(dst + list[i]!.length, 0);
    }
  }
  return true;
}

/** Runs one case and checks every property; throws (an AssertionError) on a violation. */
function check(entry: HypercallEntry, port: number, spec: Spec, s: Scenario): void {
  const base = RAM_BASE[entry.version];
  const pages = new Map<number, number>();
  for (let p = 0; p < RAM_SIZE / FAKE_PAGE_SIZE; p++) {
    pages.set(base + p * FAKE_PAGE_SIZE, base + p * FAKE_PAGE_SIZE); // identity on RAM
  }
  s.pages.forEach((p, i) => {
    if (p >= 0) pages.set(VIRTUAL_BASE + i * FAKE_PAGE_SIZE, base + p * FAKE_PAGE_SIZE);
  });
  const fake = fakeContext({
    base,
    size: RAM_SIZE,
    argv: ARGV,
    env: ENV,
    ...(entry.version === 1 ? { pages } : {}),
  });
  const mem = fake.mem;
  prepare(mem, spec, s);
  const before = mem.u8.slice();
  const files = new CheckingFiles(mem, s.seed);
  const stdin = new CheckingInput(mem, s.seed);
  const ctx = { ...fake.ctx, files, stdin };

  let result;
  try {
    result = entry.handle(ctx, s.arg);
  } catch (error) {
    assert.fail(`${entry.name} threw ${error instanceof Error ? error.stack : String(error)}`);
  }

  // The result: RESUME, or a stop of the right kind with one line.
  const blockInside = spec.value === true || spec.size === 0 || mem.contains(s.arg, spec.size);
  if (result === WOULD_BLOCK) {
    // Only reads of stdin wait, and a waiting handler has changed nothing.
    assert.ok([0x500, 0x1130, 0x1040, 0x1050].includes(port), `${entry.name} would block`);
    assert.deepEqual(mem.u8, before, `${entry.name}: memory changed before waiting`);
    return;
  }
  if (result === RESUME) {
    assert.ok(blockInside, `${entry.name} resumed with a block outside RAM`);
  } else {
    assert.ok(result instanceof VmStop, `${entry.name} returned ${String(result)}`);
    if (result.kind === "exit") {
      assert.equal(entry.name, "Exit");
    } else {
      assert.equal(result.code, EXIT_CODE.GUEST_PROTOCOL, result.message);
      assert.ok(!result.message.includes("\n"), `not one line: ${result.message}`);
      assert.ok(result.message.includes(`port 0x${port.toString(16)}`), result.message);
    }
  }

  // Guest memory: Cmdsize/Cmdval exactly as the model; the rest only in allowed ranges.
  if (port === 0x740 || port === 0x780) {
    const expected = new Uint8Array(before);
    const modelMem = new GuestMemory(expected.buffer, base);
    const ok = model(port, modelMem, s.arg);
    assert.deepEqual(mem.u8, expected, `${entry.name}: memory differs from the model`);
    assert.equal(result === RESUME, ok, `${entry.name}: resume ${result === RESUME}, model ${ok}`);
    return;
  }
  const allowed: [number, number][] = [...files.written, ...stdin.written];
  if (result === RESUME && spec.size > 0) {
    for (const [at, len] of spec.results) allowed.push([s.arg + at, len]);
    if (TAGGED.has(port)) allowed.push(...attrRange(port, mem, s));
  }
  const u8 = mem.u8;
  for (let i = 0; i < u8.length; i++) {
    if (u8[i] === before[i]) continue;
    const gpa = base + i;
    assert.ok(
      allowed.some(([a, n]) => gpa >= a && gpa < a + n),
      `${entry.name}: byte at 0x${gpa.toString(16)} changed outside the result fields and buffers`,
    );
  }

  // Result fields: a success the fake gave (or the length for a stdio write), or −errno.
  if (result !== RESUME) return;
  if (TAGGED.has(port)) return checkTagged(port, mem, s.arg, files);
  for (const [at, len] of spec.results) {
    const value = len === 4 ? mem.readI32(s.arg + at) : mem.readI64(s.arg + at);
    if (port === 0x1040) {
      assert.ok(value >= -1 && value <= 255, `${entry.name}: ${value} is neither a byte nor -1`);
    } else if (port === 0x1050) {
      assert.ok(value === 0 || stdin.counts.has(value), `${entry.name}: len ${value}`);
    } else if (value < 0) {
      assert.ok(value >= -MAX_ERRNO, `${entry.name}: result ${value} is not an errno`);
    } else {
      const stdioWrite = port === 0x1100 && value === Number(s.values[0]) &&
        (s.values[1] === 1n || s.values[1] === 2n);
      const stdioClose = spec === CLOSE_SPEC && value === 0;
      const sum = spec.fields.some((x) => x.kind === "vptr"); // v1 read: pieces add up
      assert.ok(
        files.successes.has(value) || stdioWrite || stdioClose || (sum && value >= 0),
        `${entry.name}: result ${value} did not come from the file service`,
      );
    }
  }
}

// ---- the tests ----------------------------------------------------------------------

const table = buildHypercallTable();
const entries = hypercallPorts(table).map(([port, entry]) => ({ entry, port }));
let total = 0;

Deno.test("buildHypercallTable() has a parameter layout here for every port", () => {
  for (const { entry, port } of entries) {
    assert.ok(SPECS.has(port), `no spec for ${entry.name} (port 0x${port.toString(16)})`);
  }
  assert.ok(entries.length >= 27, `only ${entries.length} handlers`);
});

for (const { entry, port } of entries) {
  const spec = SPECS.get(port);
  if (spec === undefined) continue;
  Deno.test(
    `${entry.name} v${entry.version} (port 0x${
      port.toString(16)
    }) survives ${RUNS_PER_HANDLER} random parameter blocks`,
    () => {
      let runs = 0;
      fc.assert(
        fc.property(scenario(entry.version, spec), (s) => {
          runs++;
          check(entry, port, spec, s);
        }),
        { numRuns: RUNS_PER_HANDLER },
      );
      assert.equal(runs, RUNS_PER_HANDLER);
      total += runs;
    },
  );
}

Deno.test("hypercall property tests: report how many cases ran", () => {
  assert.equal(total, entries.length * RUNS_PER_HANDLER);
  // deno-lint-ignore no-console
  console.log(
    `hypercall property tests: ${total} cases over ${entries.length} handlers ` +
      `(${RUNS_PER_HANDLER} each), 0 failures`,
  );
});
