/**
 * Builds small synthetic ELF64 files for loader tests: header fields, notes
 * (including badly padded ones), PT_LOADs with data, PT_TLS, PT_DYNAMIC with
 * RELA entries and extra tags, and a dynamic symbol table. Test-only; imports
 * nothing from `src/` except constants.
 * @module
 */

/** ELF program header types used by the builder. */
export const PT = { LOAD: 1, DYNAMIC: 2, NOTE: 4, TLS: 7, GNU_STACK: 0x6474e551 } as const;
/** ELF dynamic tags used by the builder and the tests. */
export const DT = {
  NULL: 0,
  NEEDED: 1,
  SYMTAB: 6,
  RELA: 7,
  RELASZ: 8,
  RELAENT: 9,
  SYMENT: 11,
  REL: 17,
  RELSZ: 18,
  RELACOUNT: 0x6ffffff9,
  RELCOUNT: 0x6ffffffa,
} as const;
/** Program header flags. */
export const PF = { X: 1, W: 2, R: 4 } as const;
/** Symbol bindings. */
export const STB = { LOCAL: 0, GLOBAL: 1, WEAK: 2 } as const;

/** One ELF note. `namesz`/`descsz` override the sizes written in its header. */
export interface NoteSpec {
  /** Name without the trailing NUL (the builder adds one). */
  name: string;
  /** Note type. */
  type: number;
  /** Descriptor bytes. */
  desc: Uint8Array;
  /** Overrides the `namesz` written (default: name length + 1). */
  namesz?: number;
  /** Overrides the `descsz` written (default: `desc.length`). */
  descsz?: number;
}

/** A PT_LOAD segment with its file bytes. */
export interface LoadSpec {
  /** `p_vaddr`. */
  vaddr: number | bigint;
  /** File bytes (`p_filesz` = length); default none. */
  data?: Uint8Array;
  /** `p_memsz` (default: data length). */
  memsz?: number | bigint;
  /** `p_flags` (default R|W). */
  flags?: number;
  /** `p_align` (default 0x1000). */
  align?: number;
}

/** One dynamic symbol (index 0, the null symbol, is added by the builder). */
export interface SymbolSpec {
  /** `st_value`. */
  value: number | bigint;
  /** Binding (default GLOBAL). */
  bind?: number;
  /** `st_shndx` (default 1: defined; 0 = undefined). */
  shndx?: number;
}

/** One RELA entry. */
export interface RelaSpec {
  /** `r_offset`. */
  offset: number | bigint;
  /** Relocation type (low 32 bits of `r_info`). */
  type: number;
  /** Symbol index (high 32 bits of `r_info`), default 0. */
  sym?: number;
  /** `r_addend` (signed), default 0. */
  addend?: number | bigint;
}

/** A program header as written. */
export interface PhdrSpec {
  /** `p_type`. */
  type: number;
  /** `p_flags`. */
  flags: number;
  /** `p_offset`. */
  offset: number | bigint;
  /** `p_vaddr` (also written as `p_paddr`). */
  vaddr: number | bigint;
  /** `p_filesz`. */
  filesz: number | bigint;
  /** `p_memsz`. */
  memsz: number | bigint;
  /** `p_align`. */
  align: number | bigint;
}

/** A dynamic entry `[tag, value]`. */
export type DynEntry = [tag: number | bigint, value: number | bigint];

/** TLS segment, given as a program header only. */
export interface TlsSpec {
  /** `p_vaddr`. */
  vaddr: number;
  /** `p_filesz`. */
  filesz: number;
  /** `p_memsz`. */
  memsz: number;
  /** `p_align`. */
  align: number;
  /** `p_offset` (default 0). */
  offset?: number;
}

/** Everything the builder can vary; the defaults give a valid minimal Hermit PIE. */
export interface ElfOptions {
  /** `e_type` (default 3, DYN). */
  type?: number;
  /** `e_machine` (default 62, x86_64). */
  machine?: number;
  /** `EI_CLASS` (default 2). */
  elfClass?: number;
  /** `EI_DATA` (default 1). */
  data?: number;
  /** `EI_OSABI` (default 0xFF). */
  osabi?: number;
  /** `e_entry` (default: vaddr of the first user load). */
  entry?: number | bigint;
  /** vaddr of the metadata PT_LOAD at file offset 0 (default 0 for DYN, 0x200000 otherwise). */
  base?: number;
  /** Add the metadata PT_LOAD covering headers, notes and tables (default true). */
  metaLoad?: boolean;
  /** Notes of the PT_NOTE segment; null → no PT_NOTE (default `[hermitNote()]`). */
  notes?: NoteSpec[] | null;
  /** Padding unit used to encode the notes (default 4). */
  noteAlign?: number;
  /** `p_align` of the PT_NOTE (default `noteAlign`). */
  notePAlign?: number;
  /** Raw PT_NOTE contents, replacing the encoded `notes`. */
  rawNotes?: Uint8Array;
  /** User PT_LOADs after the metadata load (default: one R|X segment of code). */
  loads?: LoadSpec[];
  /** A PT_TLS program header. */
  tls?: TlsSpec;
  /** RELA relocations (a PT_DYNAMIC with DT_RELA/DT_RELASZ/DT_RELAENT is added). */
  relocations?: RelaSpec[];
  /** Dynamic symbols from index 1 on. */
  symbols?: SymbolSpec[];
  /** Emit DT_SYMTAB/DT_SYMENT for the symbols (default true). */
  dtSymtab?: boolean;
  /** Emit section headers with a SHT_DYNSYM section for the symbols (default true). */
  dynsymSection?: boolean;
  /** Always add a PT_DYNAMIC, even without relocations or symbols. */
  dynamic?: boolean;
  /** Dynamic entries appended after the automatic ones, before DT_NULL. */
  extraDynamic?: DynEntry[];
  /** Rewrites the dynamic entries (without the final DT_NULL). */
  editDynamic?: (entries: DynEntry[]) => DynEntry[];
  /** Rewrites the program headers; must return the same count on every call. */
  editPhdrs?: (phdrs: PhdrSpec[]) => PhdrSpec[];
}

/** Where the builder put things, for tests that patch bytes. */
export interface BuiltElf {
  /** The file. */
  bytes: Uint8Array;
  /** File offset of the program header table. */
  phoff: number;
  /** Program headers as written. */
  phdrs: PhdrSpec[];
  /** File offset of the notes. */
  notesOffset: number;
  /** File offset of the RELA table (−1 without one). */
  relaOffset: number;
  /** File offset of the dynamic symbol table (−1 without one). */
  dynsymOffset: number;
  /** File offset of the dynamic section (−1 without one). */
  dynamicOffset: number;
  /** File offsets of the user loads' data. */
  loadOffsets: number[];
  /** vaddr of the metadata load. */
  base: number;
}

const ENC = new TextEncoder();

function alignUp(n: number, a: number): number {
  return Math.ceil(n / a) * a;
}

/** The mandatory `HERMIT` entry-version note (desc = one byte). */
export function hermitNote(version = 4): NoteSpec {
  return { name: "HERMIT", type: 0x5a00, desc: new Uint8Array([version]) };
}

/** A `UHYVEIF` note: the interface version as a big-endian u32. */
export function uhyveIfNote(version: number): NoteSpec {
  const desc = new Uint8Array(4);
  new DataView(desc.buffer).setUint32(0, version, false);
  return { name: "UHYVEIF", type: 0x5b00, desc };
}

/** A `GNU` ABI-tag note `[os, major, minor, patch]` as little-endian u32s. */
export function gnuNote(version: [number, number, number], os = 6): NoteSpec {
  const desc = new Uint8Array(16);
  const v = new DataView(desc.buffer);
  v.setUint32(0, os, true);
  v.setUint32(4, version[0], true);
  v.setUint32(8, version[1], true);
  v.setUint32(12, version[2], true);
  return { name: "GNU", type: 1, desc };
}

/** Encodes notes with name and descriptor padded to `align` from each note's start. */
export function encodeNotes(notes: NoteSpec[], align = 4): Uint8Array {
  const parts: number[] = [];
  for (const n of notes) {
    const name = ENC.encode(n.name + "\0");
    const header = new Uint8Array(12);
    const v = new DataView(header.buffer);
    v.setUint32(0, n.namesz ?? name.length, true);
    v.setUint32(4, n.descsz ?? n.desc.length, true);
    v.setUint32(8, n.type, true);
    const start = parts.length;
    parts.push(...header, ...name);
    while ((parts.length - start) % align !== 0) parts.push(0);
    parts.push(...n.desc);
    while ((parts.length - start) % align !== 0) parts.push(0);
  }
  return new Uint8Array(parts);
}

/** Writes a u64 (or a negative i64) given as a number or bigint. */
function setU64(v: DataView, at: number, value: number | bigint): void {
  const big = BigInt(value);
  if (big < 0n) v.setBigInt64(at, big, true);
  else v.setBigUint64(at, big, true);
}

/** Builds an ELF file; see {@linkcode ElfOptions} for what can vary. */
export function buildElf(opts: ElfOptions = {}): Uint8Array {
  return buildElfLayout(opts).bytes;
}

/** Builds an ELF file and reports where its parts are. */
export function buildElfLayout(opts: ElfOptions = {}): BuiltElf {
  const type = opts.type ?? 3;
  const base = opts.base ?? (type === 3 ? 0 : 0x200000);
  const first = layout(opts, base, 0);
  const count = first.phdrs.length;
  return layout(opts, base, count);
}

/** Builds the file, assuming `phnum` program headers (0: just count them). */
function layout(opts: ElfOptions, base: number, phnum: number): BuiltElf {
  const type = opts.type ?? 3;
  const phoff = 64;
  let pos = phoff + phnum * 56;

  const noteAlign = opts.noteAlign ?? 4;
  const noteBytes = opts.rawNotes ??
    encodeNotes(opts.notes === null ? [] : opts.notes ?? [hermitNote()], noteAlign);
  pos = alignUp(pos, 8);
  const notesOffset = pos;
  pos += noteBytes.length;

  const relas = opts.relocations ?? [];
  pos = alignUp(pos, 8);
  const relaOffset = relas.length > 0 ? pos : -1;
  pos += relas.length * 24;

  const symbols = opts.symbols ?? [];
  pos = alignUp(pos, 8);
  const dynsymOffset = symbols.length > 0 ? pos : -1;
  if (symbols.length > 0) pos += (symbols.length + 1) * 24;

  let dyn: DynEntry[] = [];
  if (relas.length > 0) {
    dyn.push(
      [DT.RELA, base + relaOffset],
      [DT.RELASZ, relas.length * 24],
      [DT.RELAENT, 24],
      [DT.RELACOUNT, relas.filter((r) => r.type === 8).length],
    );
  }
  if (symbols.length > 0 && (opts.dtSymtab ?? true)) {
    dyn.push([DT.SYMTAB, base + dynsymOffset], [DT.SYMENT, 24]);
  }
  dyn.push(...(opts.extraDynamic ?? []));
  if (opts.editDynamic !== undefined) dyn = opts.editDynamic(dyn);
  const hasDynamic = relas.length > 0 || symbols.length > 0 || dyn.length > 0 ||
    opts.dynamic === true;
  pos = alignUp(pos, 8);
  const dynamicOffset = hasDynamic ? pos : -1;
  if (hasDynamic) pos += (dyn.length + 1) * 16;
  const metaEnd = pos;

  const loads = opts.loads ?? [{
    vaddr: base + alignUp(metaEnd, 0x1000),
    data: new Uint8Array(64).map((_, i) => (i * 7 + 1) & 0xff),
    memsz: 0x2000,
    flags: PF.R | PF.X,
  }];
  const loadOffsets: number[] = [];
  for (const l of loads) {
    pos = alignUp(pos, 16);
    loadOffsets.push(pos);
    pos += l.data?.length ?? 0;
  }

  const withSections = symbols.length > 0 && (opts.dynsymSection ?? true);
  pos = alignUp(pos, 8);
  const shoff = withSections ? pos : 0;
  if (withSections) pos += 2 * 64;
  const total = pos;

  let phdrs: PhdrSpec[] = [];
  if (opts.metaLoad ?? true) {
    phdrs.push({
      type: PT.LOAD,
      flags: PF.R,
      offset: 0,
      vaddr: base,
      filesz: metaEnd,
      memsz: metaEnd,
      align: 0x1000,
    });
  }
  loads.forEach((l, i) => {
    const filesz = l.data?.length ?? 0;
    phdrs.push({
      type: PT.LOAD,
      flags: l.flags ?? (PF.R | PF.W),
      offset: loadOffsets[i]!,
      vaddr: l.vaddr,
      filesz,
      memsz: l.memsz ?? filesz,
      align: l.align ?? 0x1000,
    });
  });
  if (opts.notes !== null || opts.rawNotes !== undefined) {
    phdrs.push({
      type: PT.NOTE,
      flags: PF.R,
      offset: notesOffset,
      vaddr: base + notesOffset,
      filesz: noteBytes.length,
      memsz: noteBytes.length,
      align: opts.notePAlign ?? noteAlign,
    });
  }
  if (opts.tls !== undefined) {
    const t = opts.tls;
    phdrs.push({
      type: PT.TLS,
      flags: PF.R,
      offset: t.offset ?? 0,
      vaddr: t.vaddr,
      filesz: t.filesz,
      memsz: t.memsz,
      align: t.align,
    });
  }
  if (hasDynamic) {
    const size = (dyn.length + 1) * 16;
    phdrs.push({
      type: PT.DYNAMIC,
      flags: PF.R | PF.W,
      offset: dynamicOffset,
      vaddr: base + dynamicOffset,
      filesz: size,
      memsz: size,
      align: 8,
    });
  }
  phdrs.push({
    type: PT.GNU_STACK,
    flags: PF.R | PF.W,
    offset: 0,
    vaddr: 0,
    filesz: 0,
    memsz: 0,
    align: 16,
  });
  if (opts.editPhdrs !== undefined) phdrs = opts.editPhdrs(phdrs);

  const bytes = new Uint8Array(total);
  const v = new DataView(bytes.buffer);
  bytes.set([0x7f, 0x45, 0x4c, 0x46, opts.elfClass ?? 2, opts.data ?? 1, 1, opts.osabi ?? 0xff]);
  v.setUint16(16, type, true);
  v.setUint16(18, opts.machine ?? 62, true);
  v.setUint32(20, 1, true);
  const firstLoad = loads[0];
  setU64(v, 24, opts.entry ?? (firstLoad === undefined ? base : firstLoad.vaddr));
  setU64(v, 32, phnum > 0 ? phoff : 0);
  setU64(v, 40, shoff);
  v.setUint16(52, 64, true);
  v.setUint16(54, 56, true);
  v.setUint16(56, phnum, true);
  v.setUint16(58, 64, true);
  v.setUint16(60, withSections ? 2 : 0, true);
  v.setUint16(62, 0, true);

  if (phnum > 0) {
    phdrs.forEach((p, i) => {
      const at = phoff + i * 56;
      v.setUint32(at, p.type, true);
      v.setUint32(at + 4, p.flags, true);
      setU64(v, at + 8, p.offset);
      setU64(v, at + 16, p.vaddr);
      setU64(v, at + 24, p.vaddr);
      setU64(v, at + 32, p.filesz);
      setU64(v, at + 40, p.memsz);
      setU64(v, at + 48, p.align);
    });
  }
  bytes.set(noteBytes, notesOffset);
  relas.forEach((r, i) => {
    const at = relaOffset + i * 24;
    setU64(v, at, r.offset);
    v.setUint32(at + 8, r.type, true);
    v.setUint32(at + 12, r.sym ?? 0, true);
    setU64(v, at + 16, r.addend ?? 0);
  });
  symbols.forEach((s, i) => {
    const at = dynsymOffset + (i + 1) * 24;
    v.setUint8(at + 4, ((s.bind ?? STB.GLOBAL) << 4) | 1);
    v.setUint16(at + 6, s.shndx ?? 1, true);
    setU64(v, at + 8, s.value);
  });
  if (hasDynamic) {
    dyn.forEach(([tag, value], i) => {
      setU64(v, dynamicOffset + i * 16, tag);
      setU64(v, dynamicOffset + i * 16 + 8, value);
    });
  }
  loads.forEach((l, i) => {
    if (l.data !== undefined) bytes.set(l.data, loadOffsets[i]!);
  });
  if (withSections) {
    const at = shoff + 64;
    v.setUint32(at + 4, 11, true); // SHT_DYNSYM
    setU64(v, at + 24, dynsymOffset);
    setU64(v, at + 32, (symbols.length + 1) * 24);
    setU64(v, at + 56, 24);
  }
  return {
    bytes,
    phoff,
    phdrs,
    notesOffset,
    relaOffset,
    dynsymOffset,
    dynamicOffset,
    loadOffsets,
    base,
  };
}

/** Overwrites a little-endian u16 in `bytes`. */
export function patchU16(bytes: Uint8Array, at: number, value: number): void {
  new DataView(bytes.buffer, bytes.byteOffset).setUint16(at, value, true);
}

/** Overwrites a little-endian u32 in `bytes`. */
export function patchU32(bytes: Uint8Array, at: number, value: number): void {
  new DataView(bytes.buffer, bytes.byteOffset).setUint32(at, value, true);
}

/** Overwrites a little-endian u64 in `bytes`. */
export function patchU64(bytes: Uint8Array, at: number, value: number | bigint): void {
  setU64(new DataView(bytes.buffer, bytes.byteOffset), at, value);
}
