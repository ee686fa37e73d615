/**
 * FXSAVE/FXRSTOR and XSAVE/XSAVEOPT/XRSTOR semantics over byte images in the
 * standard (non-compacted) format, for guests whose host KVM cannot emulate
 * these instructions (kvm_pvm, in Hermit's lazy-FPU switch). The vCPU state
 * is KVM's `kvm_xsave` image; the guest area is a copy of guest memory.
 * Pure: no KVM imports.
 * @module
 */

/** Offset and size of one XSAVE state component (CPUID leaf 0xD). */
export interface XsaveComponent {
  /** Byte offset in the standard-format area. */
  offset: number;
  /** Size in bytes. */
  size: number;
}

/** Where each extended component (bit 2 and up) lives; from CPUID leaf 0xD. */
export type XsaveLayout = ReadonlyMap<number, XsaveComponent>;

/** Size of the legacy (FXSAVE) region. */
export const LEGACY_SIZE = 512;
/** Offset of the XSAVE header (XSTATE_BV, XCOMP_BV). */
export const HEADER_OFFSET = 512;
/** Size of the XSAVE header. */
export const HEADER_SIZE = 64;
/** Offsets in the legacy region (the 64-bit FXSAVE layout). */
export const FXSAVE = {
  fcw: 0,
  fsw: 2,
  ftwAbridged: 4,
  fop: 6,
  fip: 8,
  fdp: 16,
  mxcsr: 24,
  /** ST0–ST7, 16 bytes each (10 used). */
  st0: 32,
  /** XMM0–XMM15, 16 bytes each. */
  xmm0: 160,
  /** End of the XMM registers. */
  xmmEnd: 416,
} as const;
const MXCSR_OFFSET = FXSAVE.mxcsr;
const FCW_DEFAULT = 0x037f;

/** Builds the component table from CPUID leaf 0xD sub-leaves (EAX size, EBX offset). */
export function xsaveLayoutFromCpuid(
  entries: readonly { function: number; index: number; eax: number; ebx: number }[],
): Map<number, XsaveComponent> {
  const layout = new Map<number, XsaveComponent>();
  for (const e of entries) {
    if (e.function === 0xd && e.index >= 2 && e.index < 63 && e.eax > 0 && e.ebx >= 576) {
      layout.set(e.index, { offset: e.ebx, size: e.eax });
    }
  }
  return layout;
}

/**
 * Size of the area XSAVE touches for `rfbm`, or -1 when a requested
 * component's place is unknown.
 */
export function xsaveAreaSize(rfbm: bigint, layout: XsaveLayout): number {
  let size = HEADER_OFFSET + HEADER_SIZE;
  for (let bit = 2; bit < 63; bit++) {
    if ((rfbm >> BigInt(bit) & 1n) === 0n) continue;
    const c = layout.get(bit);
    if (c === undefined) return -1;
    size = Math.max(size, c.offset + c.size);
  }
  return size;
}

function copy(from: Uint8Array, to: Uint8Array, start: number, end: number): void {
  to.set(from.subarray(start, end), start);
}

function readU64(b: Uint8Array, at: number): bigint {
  return new DataView(b.buffer, b.byteOffset, b.byteLength).getBigUint64(at, true);
}

function writeU64(b: Uint8Array, at: number, v: bigint): void {
  new DataView(b.buffer, b.byteOffset, b.byteLength).setBigUint64(at, v, true);
}

/** FXSAVE: the legacy region of the vCPU state into the guest area (512 bytes). */
export function fxsave(state: Uint8Array, area: Uint8Array): void {
  copy(state, area, 0, LEGACY_SIZE);
}

/** FXRSTOR: the guest's legacy region into the vCPU state; x87 and SSE marked in use. */
export function fxrstor(state: Uint8Array, area: Uint8Array): void {
  copy(area, state, 0, LEGACY_SIZE);
  writeU64(state, HEADER_OFFSET, readU64(state, HEADER_OFFSET) | 3n);
}

/**
 * XSAVE (and XSAVEOPT, which may write the same): every component in `rfbm`
 * from the vCPU state into the guest area, and XSTATE_BV's `rfbm` bits.
 */
export function xsave(
  state: Uint8Array,
  area: Uint8Array,
  rfbm: bigint,
  layout: XsaveLayout,
): void {
  if (rfbm & 1n) {
    copy(state, area, 0, MXCSR_OFFSET);
    copy(state, area, FXSAVE.st0, FXSAVE.xmm0);
  }
  if (rfbm & 6n) copy(state, area, MXCSR_OFFSET, MXCSR_OFFSET + 8); // MXCSR, MXCSR_MASK
  if (rfbm & 2n) copy(state, area, FXSAVE.xmm0, FXSAVE.xmmEnd);
  for (const [bit, c] of layout) {
    if (rfbm >> BigInt(bit) & 1n) copy(state, area, c.offset, c.offset + c.size);
  }
  const inUse = readU64(state, HEADER_OFFSET);
  const old = readU64(area, HEADER_OFFSET);
  writeU64(area, HEADER_OFFSET, (old & ~rfbm) | (inUse & rfbm));
}

/**
 * XRSTOR: every component in `rfbm` from the guest area when its XSTATE_BV
 * bit is set, else to its initial state; the result goes into `state`.
 * @returns false when the header is invalid (the CPU would raise #GP).
 */
export function xrstor(
  state: Uint8Array,
  area: Uint8Array,
  rfbm: bigint,
  layout: XsaveLayout,
): boolean {
  const xstateBv = readU64(area, HEADER_OFFSET);
  const xcompBv = readU64(area, HEADER_OFFSET + 8);
  if (xcompBv !== 0n) return false; // compacted form is XRSTORS territory
  for (let i = 16; i < HEADER_SIZE; i++) if (area[HEADER_OFFSET + i] !== 0) return false;
  const load = rfbm & xstateBv;
  if (rfbm & 1n) {
    if (load & 1n) {
      copy(area, state, 0, MXCSR_OFFSET);
      copy(area, state, FXSAVE.st0, FXSAVE.xmm0);
    } else {
      state.fill(0, 0, MXCSR_OFFSET);
      state.fill(0, FXSAVE.st0, FXSAVE.xmm0);
      new DataView(state.buffer, state.byteOffset).setUint16(0, FCW_DEFAULT, true);
    }
  }
  if (rfbm & 6n) {
    // MXCSR is loaded whenever SSE or AVX is requested, from memory (as the CPU does).
    const mxcsr = new DataView(area.buffer, area.byteOffset).getUint32(MXCSR_OFFSET, true);
    if ((mxcsr & 0xffff_0000) !== 0) return false;
    new DataView(state.buffer, state.byteOffset).setUint32(MXCSR_OFFSET, mxcsr, true);
  }
  if (rfbm & 2n) {
    if (load & 2n) copy(area, state, FXSAVE.xmm0, FXSAVE.xmmEnd);
    else state.fill(0, FXSAVE.xmm0, FXSAVE.xmmEnd);
  }
  for (const [bit, c] of layout) {
    const mask = 1n << BigInt(bit);
    if (!(rfbm & mask)) continue;
    if (load & mask) copy(area, state, c.offset, c.offset + c.size);
    else state.fill(0, c.offset, c.offset + c.size);
  }
  const inUse = readU64(state, HEADER_OFFSET);
  writeU64(state, HEADER_OFFSET, (inUse & ~rfbm) | load);
  return true;
}
