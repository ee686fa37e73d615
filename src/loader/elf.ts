/**
 * Kernel file → {@linkcode KernelImage}: format detection and the parsing and
 * checking of an ELF64 Hermit kernel (hermit-abi.md §1.1–§1.4, §1.6). Pure:
 * works on a byte array, does no I/O; must not import `kvm.ts`, `libc.ts` or
 * anything that touches files, FFI or the network.
 * @module
 */

import { ImageFormatError } from "./errors.ts";
import { hex } from "../hex.ts";

/** ELF `e_type` of a fixed-address executable. */
export const ET_EXEC = 2;
/** ELF `e_type` of a position-independent executable. */
export const ET_DYN = 3;
/** ELF `e_machine` of x86_64, the only architecture dhyve runs. */
export const EM_X86_64 = 62;
/** Relocation type: `S + A`, word64. */
export const R_X86_64_64 = 1;
/** Relocation type: `S`, word64 (a GOT entry); the addend must be 0. */
export const R_X86_64_GLOB_DAT = 6;
/** Relocation type: `B + A`, word64. */
export const R_X86_64_RELATIVE = 8;
/** Note type of the `HERMIT` entry-version note. */
export const NT_HERMIT_ENTRY_VERSION = 0x5a00;
/** Note type of the `UHYVEIF` uhyve-interface-version note. */
export const NT_UHYVE_INTERFACE_VERSION = 0x5b00;
/** Note type of the `GNU` ABI-tag note. */
export const NT_GNU_ABI_TAG = 1;
/** The one hermit entry version dhyve (like uhyve 0.8) understands. */
export const HERMIT_ENTRY_VERSION = 4;
/** A uhyve interface version dhyve runs (the `UHYVEIF` note): 3 (uhyve 0.9) boots like 2. */
export type InterfaceVersion = 1 | 2 | 3;
/** The uhyve interface versions dhyve runs, in order. */
export const INTERFACE_VERSIONS: readonly InterfaceVersion[] = [1, 2, 3];
/** The one line for a kernel whose `UHYVEIF` note names a version dhyve does not run. */
export function unsupportedInterfaceMessage(version: number): string {
  return `Unsupported uhyve interface version ${version}: dhyve supports 1, 2 and 3`;
}
/** First word of a GNU ABI-tag note written by a Hermit kernel. */
export const ELF_NOTE_OS_HERMIT = 6;

const ELFOSABI_STANDALONE = 0xff;
const EHDR_SIZE = 64;
const PHDR_SIZE = 56;
const SHDR_SIZE = 64;
const DYN_SIZE = 16;
const RELA_SIZE = 24;
const SYM_SIZE = 24;
const PT_LOAD = 1;
const PT_DYNAMIC = 2;
const PT_NOTE = 4;
const PT_TLS = 7;
const SHT_DYNSYM = 11;
const DT_NEEDED = 1;
const DT_RELA = 7;
const DT_RELASZ = 8;
const DT_RELAENT = 9;
const DT_SYMTAB = 6;
const DT_SYMENT = 11;
const DT_REL = 17;
const DT_RELSZ = 18;
const DT_RELCOUNT = 0x6ffffffa;
const STB_WEAK = 2;
const SHN_UNDEF = 0;
const TWO_POW_32 = 0x1_0000_0000;
const MAX_HIGH_WORD = Math.floor(Number.MAX_SAFE_INTEGER / TWO_POW_32);

/** A PT_LOAD segment, in program-header order. Addresses are unrelocated. */
export interface Segment {
  /** `p_vaddr`. */
  vaddr: number;
  /** `p_offset`: where the segment's bytes start in the file. */
  offset: number;
  /** `p_filesz`: bytes copied from the file. */
  filesz: number;
  /** `p_memsz`: bytes occupied in memory (the tail past `filesz` is zeroed). */
  memsz: number;
  /** `p_flags` (PF_X 1, PF_W 2, PF_R 4). */
  flags: number;
}

/** The first PT_TLS segment (the TLS initialisation image). Unrelocated. */
export interface TlsSegment {
  /** `p_vaddr`. */
  vaddr: number;
  /** `p_filesz`: size of the initialised part. */
  filesz: number;
  /** `p_memsz`: total size of the TLS block. */
  memsz: number;
  /** `p_align`. */
  align: number;
}

/** One RELA relocation of a PIE kernel, checked and with its symbol resolved. */
export interface Relocation {
  /** `r_offset`: image-relative address of the 8 bytes to patch. */
  offset: number;
  /** `R_X86_64_RELATIVE`, `R_X86_64_64` or `R_X86_64_GLOB_DAT`. */
  type: number;
  /** `r_addend` (signed). */
  addend: number;
  /** `st_value` of the referenced symbol (0 for RELATIVE or symbol 0). */
  symbolValue: number;
  /** The symbol is weak and undefined: leave the target alone (it must be 0). */
  weakUndefined: boolean;
}

/** Hermit kernel version from the GNU ABI-tag note. */
export interface HermitVersion {
  /** Major version. */
  major: number;
  /** Minor version. */
  minor: number;
  /** Patch version. */
  patch: number;
}

/** Everything the loader needs to know about a Hermit kernel ELF; plain data. */
export interface KernelImage {
  /** `"pie"` for ET_DYN (relocatable), `"fixed"` for ET_EXEC. */
  kind: "pie" | "fixed";
  /** `e_entry`, unrelocated. */
  entry: number;
  /** uhyve interface version: the UHYVEIF note, or 1 without one. */
  interfaceVersion: InterfaceVersion;
  /** Hermit version from the GNU ABI-tag note, or null without one. */
  hermitVersion: HermitVersion | null;
  /** True when there is no Hermit version or it is below 0.10.0 (§3.2). */
  legacyMapping: boolean;
  /** PT_LOAD segments in program-header order. */
  segments: Segment[];
  /** `p_vaddr` of the first PT_LOAD (0 for a PIE, the link address for EXEC). */
  firstVaddr: number;
  /** End of the last PT_LOAD minus {@linkcode KernelImage.firstVaddr}. */
  memSize: number;
  /** The first PT_TLS, or null. */
  tls: TlsSegment | null;
  /** RELA relocations to apply (PIE only; empty for EXEC). */
  relocations: Relocation[];
  /** Non-fatal findings, one line each (e.g. an unexpected OSABI). */
  warnings: string[];
}

const MACHINE_NAMES: ReadonlyMap<number, string> = new Map([
  [0, "no machine"],
  [2, "SPARC"],
  [3, "x86 (32-bit)"],
  [8, "MIPS"],
  [20, "PowerPC"],
  [21, "PowerPC64"],
  [22, "S/390"],
  [40, "ARM (32-bit)"],
  [43, "SPARC V9"],
  [50, "IA-64"],
  [62, "x86_64"],
  [183, "AArch64"],
  [243, "RISC-V"],
  [258, "LoongArch"],
]);

const ELF_TYPE_NAMES: ReadonlyMap<number, string> = new Map([
  [0, "NONE"],
  [1, "REL"],
  [2, "EXEC"],
  [3, "DYN"],
  [4, "CORE"],
]);

const RELOCATION_NAMES: ReadonlyMap<number, string> = new Map([
  [0, "R_X86_64_NONE"],
  [1, "R_X86_64_64"],
  [2, "R_X86_64_PC32"],
  [3, "R_X86_64_GOT32"],
  [4, "R_X86_64_PLT32"],
  [5, "R_X86_64_COPY"],
  [6, "R_X86_64_GLOB_DAT"],
  [7, "R_X86_64_JUMP_SLOT"],
  [8, "R_X86_64_RELATIVE"],
  [9, "R_X86_64_GOTPCREL"],
  [10, "R_X86_64_32"],
  [11, "R_X86_64_32S"],
  [16, "R_X86_64_DTPMOD64"],
  [17, "R_X86_64_DTPOFF64"],
  [18, "R_X86_64_TPOFF64"],
  [24, "R_X86_64_PC64"],
  [37, "R_X86_64_IRELATIVE"],
]);

/** Name of a relocation type for messages, e.g. `R_X86_64_TPOFF64 (18)`. */
export function relocationTypeName(type: number): string {
  const name = RELOCATION_NAMES.get(type);
  return name === undefined ? `type ${type}` : `${name} (${type})`;
}

/** Bounds-checked little-endian reads; every failure is an ImageFormatError. */
class ElfReader {
  readonly bytes: Uint8Array;
  readonly #view: DataView;

  constructor(bytes: Uint8Array) {
    this.bytes = bytes;
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  get length(): number {
    return this.bytes.length;
  }

  /** True when `[offset, offset + len)` lies inside the file. */
  contains(offset: number, len: number): boolean {
    return Number.isSafeInteger(offset) && Number.isSafeInteger(len) && offset >= 0 &&
      len >= 0 && offset <= this.bytes.length - len;
  }

  /** Throws unless `[offset, offset + len)` lies inside the file. */
  check(offset: number, len: number, what: string): void {
    if (!this.contains(offset, len)) {
      throw new ImageFormatError(
        `Truncated ELF: ${what} (${hex(offset)}+${hex(len)}) runs past the end of the file ` +
          `(${hex(this.bytes.length)} bytes)`,
      );
    }
  }

  u8(offset: number, what: string): number {
    this.check(offset, 1, what);
    return this.#view.getUint8(offset);
  }

  u16(offset: number, what: string): number {
    this.check(offset, 2, what);
    return this.#view.getUint16(offset, true);
  }

  u32(offset: number, what: string): number {
    this.check(offset, 4, what);
    return this.#view.getUint32(offset, true);
  }

  /** An unsigned 64-bit value; above 2^53 − 1 it is an ImageFormatError. */
  u64(offset: number, what: string): number {
    this.check(offset, 8, what);
    const lo = this.#view.getUint32(offset, true);
    const hi = this.#view.getUint32(offset + 4, true);
    if (hi > MAX_HIGH_WORD) {
      const big = this.#view.getBigUint64(offset, true);
      throw new ImageFormatError(
        `Malformed ELF: ${what} is ${hex(big)}, above the largest value dhyve ` +
          `handles (2^53 - 1)`,
      );
    }
    return hi * TWO_POW_32 + lo;
  }

  /** A signed 64-bit value; outside ±(2^53 − 1) it is an ImageFormatError. */
  i64(offset: number, what: string): number {
    this.check(offset, 8, what);
    const lo = this.#view.getUint32(offset, true);
    const hi = this.#view.getInt32(offset + 4, true);
    const value = hi * TWO_POW_32 + lo;
    if (!Number.isSafeInteger(value)) {
      const big = this.#view.getBigInt64(offset, true);
      throw new ImageFormatError(
        `Malformed ELF: ${what} is ${big}, outside the range dhyve handles (±(2^53 - 1))`,
      );
    }
    return value;
  }
}

/**
 * Tells what kind of kernel file `bytes` holds, from its first bytes
 * (hermit-abi.md §1.1): `"elf"` for `7F 45 4C 46`, `"hermit-image"` for a
 * gzip stream (`1F 8B 08`).
 * @throws {ImageFormatError} if the file is shorter than 4 bytes or starts
 * with anything else.
 */
export function detectFormat(bytes: Uint8Array): "elf" | "hermit-image" {
  if (bytes.length < 4) {
    throw new ImageFormatError(
      `Not a Hermit kernel: the file is only ${bytes.length} bytes long`,
    );
  }
  if (bytes[0] === 0x7f && bytes[1] === 0x45 && bytes[2] === 0x4c && bytes[3] === 0x46) {
    return "elf";
  }
  if (bytes[0] === 0x1f && bytes[1] === 0x8b && bytes[2] === 0x08) return "hermit-image";
  throw new ImageFormatError(
    "Not a Hermit kernel: the file does not start with an ELF or gzip header",
  );
}

/** A program header, with only the fields of the types the loader uses read. */
interface ProgramHeader {
  index: number;
  type: number;
  flags: number;
  offset: number;
  vaddr: number;
  filesz: number;
  memsz: number;
  align: number;
}

/** One ELF note of the first PT_NOTE segment. */
interface Note {
  /** File offset of the note header. */
  at: number;
  type: number;
  /** The first `namesz − 1` bytes of the name (the trailing NUL dropped). */
  name: Uint8Array;
  desc: Uint8Array;
}

/** What the dynamic section says, as far as the loader cares. */
interface DynamicInfo {
  needed: boolean;
  relcount: number;
  relsz: number;
  rela: number | null;
  relasz: number | null;
  relaent: number | null;
  symtab: number | null;
  syment: number | null;
}

/** A resolved dynamic symbol. */
interface SymbolInfo {
  value: number;
  weakUndefined: boolean;
}

/**
 * Parses and checks an ELF64 Hermit kernel (hermit-abi.md §1.2–§1.4, §1.6).
 *
 * Every offset and size taken from the file is bounds-checked, so a truncated
 * or hostile file gives an {@linkcode ImageFormatError} whose message is one
 * line saying what is wrong. Only the first PT_NOTE is scanned for notes. An
 * OSABI other than 0xFF is reported in `warnings`, not thrown.
 * @throws {ImageFormatError} if the file is not a Hermit kernel dhyve can load.
 */
export function parseKernel(bytes: Uint8Array): KernelImage {
  const format = detectFormat(bytes);
  if (format === "hermit-image") {
    throw new ImageFormatError(
      "Not an ELF kernel: the file is a Hermit image (gzip); its kernel must be unpacked first",
    );
  }
  const r = new ElfReader(bytes);
  if (bytes.length < EHDR_SIZE) {
    throw new ImageFormatError(
      `Truncated ELF: the file is ${bytes.length} bytes, shorter than the 64-byte ELF header`,
    );
  }
  const warnings: string[] = [];

  const elfClass = r.u8(4, "EI_CLASS");
  if (elfClass !== 2) {
    const what = elfClass === 1 ? "a 32-bit (ELFCLASS32)" : `an ELF class ${elfClass}`;
    throw new ImageFormatError(
      `Not a 64-bit ELF: the kernel is ${what} object, dhyve runs 64-bit x86_64 kernels`,
    );
  }
  const dataEncoding = r.u8(5, "EI_DATA");
  if (dataEncoding !== 1) {
    const what = dataEncoding === 2 ? "big-endian (ELFDATA2MSB)" : `data encoding ${dataEncoding}`;
    throw new ImageFormatError(
      `Not a little-endian ELF: the kernel is ${what}, dhyve runs little-endian x86_64 kernels`,
    );
  }
  const osabi = r.u8(7, "EI_OSABI");
  if (osabi !== ELFOSABI_STANDALONE) {
    warnings.push(
      `The kernel's ELF OSABI is ${osabi}, not 255 (ELFOSABI_STANDALONE): ` +
        `it may not be a Hermit application`,
    );
  }

  const eType = r.u16(16, "e_type");
  if (eType !== ET_EXEC && eType !== ET_DYN) {
    const name = ELF_TYPE_NAMES.get(eType) ?? "unknown";
    throw new ImageFormatError(
      `Unsupported ELF type ${name} (${eType}): a Hermit kernel is EXEC (2) or DYN (3)`,
    );
  }
  const kind = eType === ET_DYN ? "pie" : "fixed";
  const machine = r.u16(18, "e_machine");
  if (machine !== EM_X86_64) {
    const name = MACHINE_NAMES.get(machine) ?? "an unknown machine";
    throw new ImageFormatError(
      `Wrong architecture: the kernel is built for ${name} (${machine}), ` +
        `dhyve runs x86_64 kernels`,
    );
  }
  const entry = r.u64(24, "e_entry");

  const phdrs = readProgramHeaders(r);

  const loads = phdrs.filter((ph) => ph.type === PT_LOAD);
  if (loads.length === 0) {
    throw new ImageFormatError("Not a loadable kernel: the ELF has no PT_LOAD segment");
  }
  const segments: Segment[] = loads.map((ph) => {
    const where = `PT_LOAD segment (program header ${ph.index})`;
    r.check(ph.offset, ph.filesz, `the file data of ${where}`);
    if (ph.filesz > ph.memsz) {
      throw new ImageFormatError(
        `Malformed ELF: ${where} has p_filesz ${hex(ph.filesz)} larger than ` +
          `p_memsz ${hex(ph.memsz)}`,
      );
    }
    checkSafeSum(ph.vaddr, ph.memsz, `the end of ${where}`);
    return {
      vaddr: ph.vaddr,
      offset: ph.offset,
      filesz: ph.filesz,
      memsz: ph.memsz,
      flags: ph.flags,
    };
  });
  const first = segments[0]!;
  const last = segments[segments.length - 1]!;
  const firstVaddr = first.vaddr;
  const memSize = last.vaddr + last.memsz - firstVaddr;
  if (memSize < 0) {
    throw new ImageFormatError(
      `Malformed ELF: the last PT_LOAD ends at ${hex(last.vaddr + last.memsz)}, below the ` +
        `start of the first one (${hex(firstVaddr)}); PT_LOAD segments must be in ascending order`,
    );
  }
  if (kind === "pie" && firstVaddr !== 0) {
    throw new ImageFormatError(
      `Unsupported PIE kernel: its first PT_LOAD segment is at ${hex(firstVaddr)}, ` +
        `dhyve loads relocatable kernels only when it is at 0`,
    );
  }
  for (const [i, s] of segments.entries()) {
    if (s.vaddr < firstVaddr || s.vaddr + s.memsz > firstVaddr + memSize) {
      throw new ImageFormatError(
        `Malformed ELF: PT_LOAD segment ${i} (${hex(s.vaddr)}-${hex(s.vaddr + s.memsz)}) ` +
          `lies outside the kernel image ${hex(firstVaddr)}-${hex(firstVaddr + memSize)} ` +
          `spanned by the first and last PT_LOAD`,
      );
    }
  }

  const notePh = phdrs.find((ph) => ph.type === PT_NOTE);
  if (notePh === undefined) {
    throw new ImageFormatError(
      "Not a Hermit kernel: the ELF has no PT_NOTE segment, so no HERMIT entry-version note",
    );
  }
  const notes = readNotes(r, notePh);
  const versions = readVersionNotes(notes);

  const tlsPh = phdrs.find((ph) => ph.type === PT_TLS);
  const tls = tlsPh === undefined
    ? null
    : { vaddr: tlsPh.vaddr, filesz: tlsPh.filesz, memsz: tlsPh.memsz, align: tlsPh.align };

  const dynPh = phdrs.find((ph) => ph.type === PT_DYNAMIC);
  let relocations: Relocation[] = [];
  if (dynPh !== undefined) {
    const dyn = readDynamic(r, dynPh);
    if (dyn.needed) {
      throw new ImageFormatError(
        "Unsupported kernel: it is linked against dynamic libraries (DT_NEEDED)",
      );
    }
    if (dyn.relcount !== 0) {
      throw new ImageFormatError(
        `Unsupported kernel: it has REL relocations (DT_RELCOUNT = ${dyn.relcount}), ` +
          `dhyve applies only RELA relocations`,
      );
    }
    if (dyn.relsz !== 0) {
      throw new ImageFormatError(
        `Unsupported kernel: it has REL relocations (DT_RELSZ = ${dyn.relsz}), ` +
          `dhyve applies only RELA relocations`,
      );
    }
    const table = relaTable(dyn, segments);
    if (table !== null && kind === "pie") {
      relocations = readRelocations(r, {
        table,
        memSize,
        symbols: symbolResolver(r, dyn, segments),
      });
    } else if (table !== null && table.count > 0) {
      warnings.push(
        `The kernel has ${table.count} RELA relocations, which are ignored for a ` +
          `fixed-address (EXEC) kernel`,
      );
    }
  }

  const hv = versions.hermitVersion;
  return {
    kind,
    entry,
    interfaceVersion: versions.interfaceVersion,
    hermitVersion: hv,
    legacyMapping: hv === null || (hv.major === 0 && hv.minor < 10),
    segments,
    firstVaddr,
    memSize,
    tls,
    relocations,
    warnings,
  };
}

/** Throws unless `a + b` is exact (at most 2^53 − 1). */
function checkSafeSum(a: number, b: number, what: string): void {
  if (!Number.isSafeInteger(a + b)) {
    throw new ImageFormatError(
      `Malformed ELF: ${what} lies above the largest address dhyve handles (2^53 - 1)`,
    );
  }
}

/** Reads the program header table; only the types the loader uses are decoded. */
function readProgramHeaders(r: ElfReader): ProgramHeader[] {
  const phoff = r.u64(32, "e_phoff");
  const phentsize = r.u16(54, "e_phentsize");
  const phnum = r.u16(56, "e_phnum");
  if (phnum === 0) return [];
  if (phentsize !== PHDR_SIZE) {
    throw new ImageFormatError(
      `Malformed ELF: program header entries are ${phentsize} bytes, expected ${PHDR_SIZE}`,
    );
  }
  r.check(phoff, phnum * PHDR_SIZE, `the program header table (${phnum} entries)`);
  const out: ProgramHeader[] = [];
  for (let i = 0; i < phnum; i++) {
    const at = phoff + i * PHDR_SIZE;
    const type = r.u32(at, `p_type of program header ${i}`);
    if (type !== PT_LOAD && type !== PT_NOTE && type !== PT_TLS && type !== PT_DYNAMIC) {
      continue;
    }
    out.push({
      index: i,
      type,
      flags: r.u32(at + 4, `p_flags of program header ${i}`),
      offset: r.u64(at + 8, `p_offset of program header ${i}`),
      vaddr: r.u64(at + 16, `p_vaddr of program header ${i}`),
      filesz: r.u64(at + 32, `p_filesz of program header ${i}`),
      memsz: r.u64(at + 40, `p_memsz of program header ${i}`),
      align: r.u64(at + 48, `p_align of program header ${i}`),
    });
  }
  return out;
}

/** Rounds `n` up to a multiple of `align` (a power of two). */
function alignUp(n: number, align: number): number {
  return Math.ceil(n / align) * align;
}

/**
 * Splits the PT_NOTE segment into notes. Name and descriptor are each padded
 * to a multiple of 4 bytes counted from the start of the note (hermit-abi.md
 * Appendix B.4), or of 8 when the segment's `p_align` is 8. Fewer than 12
 * bytes left end the list, as in hermit-entry.
 */
function readNotes(r: ElfReader, ph: ProgramHeader): Note[] {
  r.check(ph.offset, ph.filesz, `the PT_NOTE segment (program header ${ph.index})`);
  let align: number;
  if (ph.align <= 4) align = 4;
  else if (ph.align === 8) align = 8;
  else {
    throw new ImageFormatError(
      `Malformed ELF: the PT_NOTE segment has alignment ${ph.align}, expected 4 or 8`,
    );
  }
  const notes: Note[] = [];
  const end = ph.offset + ph.filesz;
  let at = ph.offset;
  while (end - at >= 12) {
    const namesz = r.u32(at, "a note's namesz");
    const descsz = r.u32(at + 4, "a note's descsz");
    const type = r.u32(at + 8, "a note's type");
    const left = end - at;
    const nameEnd = 12 + namesz;
    if (nameEnd > left) {
      throw new ImageFormatError(
        `Malformed note at file offset ${hex(at)}: its name (namesz ${namesz}) runs past ` +
          `the end of the PT_NOTE segment`,
      );
    }
    const descStart = alignUp(nameEnd, align);
    if (descStart + descsz > left) {
      throw new ImageFormatError(
        `Malformed note at file offset ${hex(at)}: its descriptor (descsz ${descsz}) runs ` +
          `past the end of the PT_NOTE segment`,
      );
    }
    notes.push({
      at,
      type,
      name: r.bytes.subarray(at + 12, at + 12 + Math.max(0, namesz - 1)),
      desc: r.bytes.subarray(at + descStart, at + descStart + descsz),
    });
    at += alignUp(descStart + descsz, align);
  }
  return notes;
}

/** True when a note's name (without its trailing NUL) is `expected` (ASCII). */
function nameIs(note: Note, expected: string): boolean {
  if (note.name.length !== expected.length) return false;
  for (let i = 0; i < expected.length; i++) {
    if (note.name[i] !== expected.charCodeAt(i)) return false;
  }
  return true;
}

/** Reads the HERMIT, UHYVEIF and GNU ABI-tag notes (hermit-abi.md §1.3). */
function readVersionNotes(
  notes: Note[],
): { interfaceVersion: InterfaceVersion; hermitVersion: HermitVersion | null } {
  const entryNote = notes.find((n) => nameIs(n, "HERMIT") && n.type === NT_HERMIT_ENTRY_VERSION);
  if (entryNote === undefined) {
    throw new ImageFormatError(
      "Not a Hermit kernel: the first PT_NOTE segment has no HERMIT entry-version note",
    );
  }
  const entryVersion = entryNote.desc[0];
  if (entryVersion === undefined) {
    throw new ImageFormatError(
      `Malformed HERMIT note at file offset ${hex(entryNote.at)}: its descriptor is empty`,
    );
  }
  if (entryVersion !== HERMIT_ENTRY_VERSION) {
    throw new ImageFormatError(
      `Unsupported hermit entry version ${entryVersion}: dhyve supports entry version ` +
        `${HERMIT_ENTRY_VERSION}`,
    );
  }

  let interfaceVersion: InterfaceVersion = 1;
  const ifNote = notes.find((n) => nameIs(n, "UHYVEIF") && n.type === NT_UHYVE_INTERFACE_VERSION);
  if (ifNote !== undefined) {
    if (ifNote.desc.length !== 4) {
      throw new ImageFormatError(
        `Malformed UHYVEIF note at file offset ${hex(ifNote.at)}: its descriptor is ` +
          `${ifNote.desc.length} bytes, expected 4`,
      );
    }
    const d = ifNote.desc;
    const version = ((d[0]! << 24) | (d[1]! << 16) | (d[2]! << 8) | d[3]!) >>> 0;
    if (version !== 1 && version !== 2 && version !== 3) {
      throw new ImageFormatError(unsupportedInterfaceMessage(version));
    }
    interfaceVersion = version;
  }

  let hermitVersion: HermitVersion | null = null;
  for (const n of notes) {
    if (!nameIs(n, "GNU") || n.type !== NT_GNU_ABI_TAG || n.desc.length !== 16) continue;
    const v = new DataView(n.desc.buffer, n.desc.byteOffset, 16);
    if (v.getUint32(0, true) !== ELF_NOTE_OS_HERMIT) continue;
    hermitVersion = {
      major: v.getUint32(4, true),
      minor: v.getUint32(8, true),
      patch: v.getUint32(12, true),
    };
    break;
  }
  return { interfaceVersion, hermitVersion };
}

/** Reads the first PT_DYNAMIC's entries up to DT_NULL; later tags win, as in goblin. */
function readDynamic(r: ElfReader, ph: ProgramHeader): DynamicInfo {
  r.check(ph.offset, ph.filesz, `the PT_DYNAMIC segment (program header ${ph.index})`);
  const info: DynamicInfo = {
    needed: false,
    relcount: 0,
    relsz: 0,
    rela: null,
    relasz: null,
    relaent: null,
    symtab: null,
    syment: null,
  };
  const count = Math.floor(ph.filesz / DYN_SIZE);
  for (let i = 0; i < count; i++) {
    const at = ph.offset + i * DYN_SIZE;
    const tagLo = r.u32(at, "a dynamic entry's tag");
    const tagHi = r.u32(at + 4, "a dynamic entry's tag");
    if (tagLo === 0 && tagHi === 0) break;
    if (tagHi !== 0) continue;
    const value = (name: string): number => r.u64(at + 8, `the value of ${name}`);
    switch (tagLo) {
      case DT_NEEDED:
        info.needed = true;
        break;
      case DT_RELCOUNT:
        info.relcount = value("DT_RELCOUNT");
        break;
      case DT_REL:
        break;
      case DT_RELSZ:
        info.relsz = value("DT_RELSZ");
        break;
      case DT_RELA:
        info.rela = value("DT_RELA");
        break;
      case DT_RELASZ:
        info.relasz = value("DT_RELASZ");
        break;
      case DT_RELAENT:
        info.relaent = value("DT_RELAENT");
        break;
      case DT_SYMTAB:
        info.symtab = value("DT_SYMTAB");
        break;
      case DT_SYMENT:
        info.syment = value("DT_SYMENT");
        break;
    }
  }
  return info;
}

/**
 * File offset of the image bytes `[vaddr, vaddr + size)`, which must lie in
 * the file data of one PT_LOAD; null otherwise.
 */
function fileOffsetOf(segments: Segment[], vaddr: number, size: number): number | null {
  for (const s of segments) {
    if (vaddr >= s.vaddr && size <= s.filesz && vaddr - s.vaddr <= s.filesz - size) {
      return s.offset + (vaddr - s.vaddr);
    }
  }
  return null;
}

/** Where the RELA table is in the file. */
interface RelaTable {
  fileOffset: number;
  count: number;
}

/** Locates the RELA table named by DT_RELA/DT_RELASZ/DT_RELAENT, or null without one. */
function relaTable(dyn: DynamicInfo, segments: Segment[]): RelaTable | null {
  if (dyn.relaent !== null && dyn.relaent !== RELA_SIZE) {
    throw new ImageFormatError(
      `Malformed dynamic section: DT_RELAENT is ${dyn.relaent}, expected ${RELA_SIZE}`,
    );
  }
  if (dyn.rela === null && dyn.relasz === null) return null;
  if (dyn.rela === null || dyn.relasz === null) {
    throw new ImageFormatError(
      `Malformed dynamic section: it has ${dyn.rela === null ? "DT_RELASZ" : "DT_RELA"} ` +
        `without ${dyn.rela === null ? "DT_RELA" : "DT_RELASZ"}`,
    );
  }
  if (dyn.relasz % RELA_SIZE !== 0) {
    throw new ImageFormatError(
      `Malformed dynamic section: DT_RELASZ (${dyn.relasz}) is not a multiple of ${RELA_SIZE}`,
    );
  }
  const fileOffset = fileOffsetOf(segments, dyn.rela, dyn.relasz);
  if (fileOffset === null) {
    throw new ImageFormatError(
      `Malformed dynamic section: the RELA table at ${hex(dyn.rela)} (${dyn.relasz} bytes) ` +
        `is not inside the file data of a PT_LOAD segment`,
    );
  }
  return { fileOffset, count: dyn.relasz / RELA_SIZE };
}

/** A located symbol table: symbol index → file offset of its entry, or null. */
interface SymbolTable {
  locate: (index: number) => number | null;
  what: string;
}

/** Looks up symbol `index` for the relocation at `relOffset`. */
type SymbolResolver = (index: number, relOffset: number) => SymbolInfo;

/**
 * Resolves dynamic symbols through DT_SYMTAB (mapped through the PT_LOADs) or,
 * without it, the SHT_DYNSYM section. The table is located on first use, so a
 * kernel with only RELATIVE relocations never needs one.
 */
function symbolResolver(r: ElfReader, dyn: DynamicInfo, segments: Segment[]): SymbolResolver {
  let table: SymbolTable | null = null;
  const locateTable = (relOffset: number, index: number): SymbolTable => {
    if (table !== null) return table;
    if (dyn.syment !== null && dyn.syment !== SYM_SIZE) {
      throw new ImageFormatError(
        `Malformed dynamic section: DT_SYMENT is ${dyn.syment}, expected ${SYM_SIZE}`,
      );
    }
    const symtab = dyn.symtab;
    if (symtab !== null) {
      table = {
        locate: (i) => fileOffsetOf(segments, symtab + i * SYM_SIZE, SYM_SIZE),
        what: `the DT_SYMTAB table at ${hex(symtab)}`,
      };
      return table;
    }
    const section = findDynsymSection(r);
    if (section === null) {
      throw new ImageFormatError(
        `Relocation at offset ${hex(relOffset)} refers to symbol ${index}, but the kernel has ` +
          `no dynamic symbol table (neither DT_SYMTAB nor a SHT_DYNSYM section)`,
      );
    }
    const count = Math.floor(section.size / SYM_SIZE);
    table = {
      locate: (i) => (i < count ? section.offset + i * SYM_SIZE : null),
      what: `the .dynsym section (${count} symbols)`,
    };
    return table;
  };
  return (index, relOffset) => {
    if (index === 0) return { value: 0, weakUndefined: false };
    const t = locateTable(relOffset, index);
    const at = t.locate(index);
    if (at === null) {
      throw new ImageFormatError(
        `Relocation at offset ${hex(relOffset)} refers to symbol ${index}, which lies outside ` +
          t.what,
      );
    }
    const info = r.u8(at + 4, `st_info of symbol ${index}`);
    const shndx = r.u16(at + 6, `st_shndx of symbol ${index}`);
    const weakUndefined = info >> 4 === STB_WEAK && shndx === SHN_UNDEF;
    const value = weakUndefined ? 0 : r.u64(at + 8, `st_value of symbol ${index}`);
    return { value, weakUndefined };
  };
}

/** The first SHT_DYNSYM section's file range, or null without one. */
function findDynsymSection(r: ElfReader): { offset: number; size: number } | null {
  const shoff = r.u64(40, "e_shoff");
  const shentsize = r.u16(58, "e_shentsize");
  const shnum = r.u16(60, "e_shnum");
  if (shnum === 0 || shoff === 0) return null;
  if (shentsize !== SHDR_SIZE) {
    throw new ImageFormatError(
      `Malformed ELF: section header entries are ${shentsize} bytes, expected ${SHDR_SIZE}`,
    );
  }
  r.check(shoff, shnum * SHDR_SIZE, `the section header table (${shnum} entries)`);
  for (let i = 0; i < shnum; i++) {
    const at = shoff + i * SHDR_SIZE;
    if (r.u32(at + 4, `sh_type of section ${i}`) !== SHT_DYNSYM) continue;
    const offset = r.u64(at + 24, `sh_offset of section ${i}`);
    const size = r.u64(at + 32, `sh_size of section ${i}`);
    const entsize = r.u64(at + 56, `sh_entsize of section ${i}`);
    if (entsize !== 0 && entsize !== SYM_SIZE) {
      throw new ImageFormatError(
        `Malformed ELF: the .dynsym section has entries of ${entsize} bytes, ` +
          `expected ${SYM_SIZE}`,
      );
    }
    r.check(offset, size, "the .dynsym section");
    return { offset, size };
  }
  return null;
}

/** Reads and checks every RELA entry of a PIE kernel. */
function readRelocations(
  r: ElfReader,
  opts: { table: RelaTable; memSize: number; symbols: SymbolResolver },
): Relocation[] {
  const { table, memSize, symbols } = opts;
  const out: Relocation[] = [];
  for (let i = 0; i < table.count; i++) {
    const at = table.fileOffset + i * RELA_SIZE;
    const offset = r.u64(at, `r_offset of relocation ${i}`);
    const type = r.u32(at + 8, `r_info of relocation ${i}`);
    const sym = r.u32(at + 12, `r_info of relocation ${i}`);
    const addend = r.i64(at + 16, `r_addend of relocation ${i}`);
    if (offset > memSize - 8) {
      throw new ImageFormatError(
        `Relocation at offset ${hex(offset)} lies outside the kernel image ` +
          `(0x0-${hex(memSize)})`,
      );
    }
    let symbolValue = 0;
    let weakUndefined = false;
    if (type === R_X86_64_RELATIVE) {
      // B + A: no symbol.
    } else if (type === R_X86_64_64 || type === R_X86_64_GLOB_DAT) {
      if (type === R_X86_64_GLOB_DAT && addend !== 0) {
        throw new ImageFormatError(
          `Malformed relocation at offset ${hex(offset)}: R_X86_64_GLOB_DAT with a non-zero ` +
            `addend (${addend})`,
        );
      }
      const s = symbols(sym, offset);
      symbolValue = s.value;
      weakUndefined = s.weakUndefined;
    } else {
      throw new ImageFormatError(
        `Unsupported relocation ${relocationTypeName(type)} at offset ${hex(offset)}: dhyve ` +
          `applies only R_X86_64_RELATIVE, R_X86_64_64 and R_X86_64_GLOB_DAT`,
      );
    }
    out.push({ offset, type, addend, symbolValue, weakUndefined });
  }
  return out;
}
