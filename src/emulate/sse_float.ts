/**
 * IEEE-754 binary32/binary64 arithmetic with the x86 SSE rules: MXCSR
 * rounding control, DAZ and FTZ, the six exception flags (tininess detected
 * after rounding), SSE NaN propagation (first source wins, SNaN quieted,
 * default NaN = "real indefinite") and integer indefinite for conversions.
 * Values are raw bit patterns as bigints. The common case (round to nearest,
 * PE already set, normal operands and results) runs on JS doubles; every
 * other case is computed exactly with bigint arithmetic. Pure: no imports.
 * @module
 */

/** MXCSR bits. */
export const MXCSR = {
  /** Invalid-operation flag. */
  IE: 0x1,
  /** Denormal-operand flag. */
  DE: 0x2,
  /** Divide-by-zero flag. */
  ZE: 0x4,
  /** Overflow flag. */
  OE: 0x8,
  /** Underflow flag. */
  UE: 0x10,
  /** Precision (inexact) flag. */
  PE: 0x20,
  /** Denormals are zeros. */
  DAZ: 0x40,
  /** Precision mask (the lowest of the six mask bits, 7–12). */
  PM: 0x1000,
  /** Flush to zero. */
  FTZ: 0x8000,
} as const;

/** The six exception flag bits. */
export const MXCSR_FLAGS = 0x3f;
/** Where the exception masks start (mask = flag << 7). */
export const MXCSR_MASK_SHIFT = 7;

/** A floating-point format. */
export type FpFormat = 32 | 64;

/**
 * The MXCSR in force and the exception flags an instruction raised so far
 * (bits 0–5, OR-ed in by every operation; the caller merges them into MXCSR).
 */
export interface FpEnv {
  /** MXCSR when the instruction started. */
  mxcsr: number;
  /** Exception flags raised by this instruction. */
  flags: number;
}

/** Binary arithmetic operations. */
export type FpOp = "add" | "sub" | "mul" | "div";

/** Comparison outcome: less, equal, greater, unordered. */
export type FpOrder = "lt" | "eq" | "gt" | "un";

interface Format {
  readonly fracBits: number;
  readonly expMax: number; // all-ones exponent field
  readonly bias: number;
  readonly p: number; // precision incl. the hidden bit
  readonly emin: number;
  readonly signBit: bigint;
  readonly expMask: bigint;
  readonly fracMask: bigint;
  readonly quietBit: bigint;
  readonly defaultNaN: bigint;
  readonly minNormal: number;
  readonly maxFinite: bigint;
}

function format(fracBits: number, expBits: number): Format {
  const bias = (1 << (expBits - 1)) - 1;
  const total = BigInt(fracBits + expBits + 1);
  const fracMask = (1n << BigInt(fracBits)) - 1n;
  const expMask = ((1n << BigInt(expBits)) - 1n) << BigInt(fracBits);
  return {
    fracBits,
    expMax: (1 << expBits) - 1,
    bias,
    p: fracBits + 1,
    emin: 1 - bias,
    signBit: 1n << (total - 1n),
    expMask,
    fracMask,
    quietBit: 1n << BigInt(fracBits - 1),
    defaultNaN: (1n << (total - 1n)) | expMask | (1n << BigInt(fracBits - 1)),
    minNormal: 2 ** (1 - bias),
    maxFinite: expMask - (1n << BigInt(fracBits)) + fracMask,
  };
}

const F32 = format(23, 8);
const F64 = format(52, 11);

function fmtOf(f: FpFormat): Format {
  return f === 64 ? F64 : F32;
}

/** Exponent-field classes. */
const ZERO = 0;
const NORMAL = 1;
const SUBNORMAL = 2;
const INF = 3;
const QNAN = 4;
const SNAN = 5;

function classify(bits: bigint, f: Format): number {
  const e = bits & f.expMask;
  const frac = bits & f.fracMask;
  if (e === 0n) return frac === 0n ? ZERO : SUBNORMAL;
  if (e === f.expMask) {
    if (frac === 0n) return INF;
    return (frac & f.quietBit) !== 0n ? QNAN : SNAN;
  }
  return NORMAL;
}

/** True when `bits` is a NaN of format `fmt`. */
export function isNaNBits(bits: bigint, fmt: FpFormat): boolean {
  const c = classify(bits, fmtOf(fmt));
  return c === QNAN || c === SNAN;
}

/** An unpacked finite value: (-1)^sign × sig × 2^exp. */
interface Unpacked {
  sign: boolean;
  sig: bigint;
  exp: number;
}

function unpack(bits: bigint, f: Format, out: Unpacked): void {
  out.sign = (bits & f.signBit) !== 0n;
  const e = Number((bits & f.expMask) >> BigInt(f.fracBits));
  const frac = bits & f.fracMask;
  if (e === 0) {
    out.sig = frac;
    out.exp = f.emin - f.fracBits;
  } else {
    out.sig = frac | (1n << BigInt(f.fracBits));
    out.exp = e - f.bias - f.fracBits;
  }
}

const ua: Unpacked = { sign: false, sig: 0n, exp: 0 };
const ub: Unpacked = { sign: false, sig: 0n, exp: 0 };

function bitLength(v: bigint): number {
  return v === 0n ? 0 : v.toString(2).length;
}

function roundingControl(env: FpEnv): number {
  return (env.mxcsr >> 13) & 3;
}

/**
 * True when results may be computed on plain doubles: rounding to nearest,
 * and PE already set with the precision exception masked, so an inexact
 * result changes no flag. (Operands and results must still be normal.)
 */
export function fastPathAllowed(mxcsr: number): boolean {
  return (mxcsr & 0x6000) === 0 && (mxcsr & (MXCSR.PE | MXCSR.PM)) === (MXCSR.PE | MXCSR.PM);
}

/**
 * Rounds (-1)^sign × (sig + sticky) × 2^exp to a multiple of 2^lsbExp with
 * rounding control `rc`. Returns the new significand (value = r × 2^lsbExp)
 * and leaves whether it was inexact in `lastInexact`.
 */
let lastInexact = false;
function roundTo(
  sign: boolean,
  sig: bigint,
  exp: number,
  sticky: boolean,
  lsbExp: number,
  rc: number,
): bigint {
  const shift = lsbExp - exp;
  if (shift <= 0) {
    lastInexact = sticky;
    return sig << BigInt(-shift);
  }
  const s = BigInt(shift);
  const q = sig >> s;
  const rem = sig & ((1n << s) - 1n);
  const half = 1n << (s - 1n);
  const inexact = rem !== 0n || sticky;
  lastInexact = inexact;
  if (!inexact) return q;
  let up: boolean;
  switch (rc) {
    case 0: // nearest, ties to even
      up = rem > half || (rem === half && (sticky || (q & 1n) === 1n));
      break;
    case 1: // down (toward -inf)
      up = sign;
      break;
    case 2: // up (toward +inf)
      up = !sign;
      break;
    default: // toward zero
      up = false;
  }
  return up ? q + 1n : q;
}

/**
 * Rounds the exact value (-1)^sign × (sig + sticky) × 2^exp (sig > 0; when
 * `sticky`, sig must hold at least p + 2 bits) into format `f`, raising OE,
 * UE and PE, and flushing tiny results to zero under FTZ.
 */
function roundPack(
  sign: boolean,
  sig: bigint,
  exp: number,
  sticky: boolean,
  f: Format,
  env: FpEnv,
): bigint {
  const rc = roundingControl(env);
  const signBits = sign ? f.signBit : 0n;
  const n = bitLength(sig);
  const top = exp + n - 1;
  // Rounded to p bits with an unbounded exponent range: decides tininess and overflow.
  let r = roundTo(sign, sig, exp, sticky, top - f.p + 1, rc);
  const inexactUnbounded = lastInexact;
  let rTop = top;
  if (r >> BigInt(f.p) !== 0n) {
    r >>= 1n;
    rTop++;
  }
  const emax = f.bias;
  if (rTop > emax) {
    env.flags |= MXCSR.OE | MXCSR.PE;
    const toInf = rc === 0 || (rc === 1 && sign) || (rc === 2 && !sign);
    return signBits | (toInf ? f.expMask : f.maxFinite);
  }
  const tiny = rTop < f.emin;
  if (top >= f.emin) {
    if (inexactUnbounded) env.flags |= MXCSR.PE;
    if (!tiny) {
      return signBits | (BigInt(rTop + f.bias) << BigInt(f.fracBits)) |
        (r & f.fracMask);
    }
  }
  const underflowMasked = (env.mxcsr & (MXCSR.UE << MXCSR_MASK_SHIFT)) !== 0;
  if (tiny && (env.mxcsr & MXCSR.FTZ) !== 0 && underflowMasked) {
    env.flags |= MXCSR.UE | MXCSR.PE;
    return signBits;
  }
  // Subnormal range: the grid of 2^(emin - fracBits). A carry into bit p-1
  // becomes the smallest normal number through the encoding itself.
  r = roundTo(sign, sig, exp, sticky, f.emin - f.fracBits, rc);
  if (lastInexact) env.flags |= MXCSR.PE;
  // Masked, underflow needs tiny and inexact; unmasked, tininess alone signals it.
  if (tiny && (lastInexact || !underflowMasked)) env.flags |= MXCSR.UE;
  return signBits | r;
}

/** Applies DAZ to a subnormal operand, else raises DE for it. */
function denormalOperand(bits: bigint, cls: number, f: Format, env: FpEnv): bigint {
  if (cls !== SUBNORMAL) return bits;
  if ((env.mxcsr & MXCSR.DAZ) !== 0) return bits & f.signBit;
  env.flags |= MXCSR.DE;
  return bits;
}

function quiet(bits: bigint, f: Format): bigint {
  return bits | f.quietBit;
}

/** SSE NaN propagation for two operands; returns -1n when neither is a NaN. */
function propagateNaN(a: bigint, ca: number, b: bigint, cb: number, f: Format, env: FpEnv): bigint {
  if (ca === SNAN || cb === SNAN) env.flags |= MXCSR.IE;
  if (ca === QNAN || ca === SNAN) return quiet(a, f);
  if (cb === QNAN || cb === SNAN) return quiet(b, f);
  return -1n;
}

const f64Scratch = new Float64Array(2);
const u64Scratch = new BigUint64Array(f64Scratch.buffer);
const f32Scratch = new Float32Array(2);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

function toNumber(bits: bigint, fmt: FpFormat): number {
  if (fmt === 64) {
    u64Scratch[0] = bits;
    return f64Scratch[0]!;
  }
  u32Scratch[0] = Number(bits);
  return f32Scratch[0]!;
}

function fromNumber(v: number, fmt: FpFormat): bigint {
  if (fmt === 64) {
    f64Scratch[0] = v;
    return u64Scratch[0]!;
  }
  f32Scratch[0] = v;
  return BigInt(u32Scratch[0]!);
}

/** True when the (rounded) result may be returned by the fast path. */
function fastResultOk(r: number, f: Format): boolean {
  const m = Math.abs(r);
  return m > f.minNormal && m !== Infinity && (f === F64 || m <= 3.4028234663852886e38);
}

/** `a op b` (a is the first source, i.e. the destination of the legacy encoding). */
export function fpArith(op: FpOp, a: bigint, b: bigint, fmt: FpFormat, env: FpEnv): bigint {
  const f = fmtOf(fmt);
  let ca = classify(a, f);
  let cb = classify(b, f);
  if (ca === NORMAL && cb === NORMAL && fastPathAllowed(env.mxcsr)) {
    const x = toNumber(a, fmt);
    const y = toNumber(b, fmt);
    let r = op === "add" ? x + y : op === "sub" ? x - y : op === "mul" ? x * y : x / y;
    if (fmt === 32) r = Math.fround(r);
    if (fastResultOk(r, f)) return fromNumber(r, fmt);
  }
  const nan = propagateNaN(a, ca, b, cb, f, env);
  if (nan >= 0n) return nan;
  const sa = (a & f.signBit) !== 0n;
  let sb = (b & f.signBit) !== 0n;
  if (op === "sub") sb = !sb;
  const rc = roundingControl(env);
  if (op === "add" || op === "sub") {
    if (ca === INF || cb === INF) {
      if (ca === INF && cb === INF && sa !== sb) {
        env.flags |= MXCSR.IE;
        return f.defaultNaN;
      }
      denormalOperand(a, ca, f, env); // inf + denormal still reports DE
      denormalOperand(b, cb, f, env);
      return ca === INF ? a : (sb ? f.signBit : 0n) | f.expMask;
    }
    a = denormalOperand(a, ca, f, env);
    b = denormalOperand(b, cb, f, env);
    ca = classify(a, f);
    cb = classify(b, f);
    if (ca === ZERO && cb === ZERO) {
      return sa === sb ? (sa ? f.signBit : 0n) : rc === 1 ? f.signBit : 0n;
    }
    unpack(a, f, ua);
    unpack(b, f, ub);
    ub.sign = sb;
    const e = Math.min(ua.exp, ub.exp);
    const x = (ua.sign ? -ua.sig : ua.sig) << BigInt(ua.exp - e);
    const y = (ub.sign ? -ub.sig : ub.sig) << BigInt(ub.exp - e);
    const sum = x + y;
    if (sum === 0n) return rc === 1 ? f.signBit : 0n;
    return roundPack(sum < 0n, sum < 0n ? -sum : sum, e, false, f, env);
  }
  const sign = sa !== sb;
  const signBits = sign ? f.signBit : 0n;
  if (op === "mul") {
    if (ca === INF || cb === INF) {
      if (ca === ZERO || cb === ZERO) {
        env.flags |= MXCSR.IE;
        return f.defaultNaN;
      }
      // inf × denormal: the denormal is still an operand (DE), or zero under DAZ (invalid).
      const other = ca === INF ? cb : ca;
      if (other === SUBNORMAL) {
        if ((env.mxcsr & MXCSR.DAZ) !== 0) {
          env.flags |= MXCSR.IE;
          return f.defaultNaN;
        }
        env.flags |= MXCSR.DE;
      }
      return signBits | f.expMask;
    }
    a = denormalOperand(a, ca, f, env);
    b = denormalOperand(b, cb, f, env);
    ca = classify(a, f);
    cb = classify(b, f);
    if (ca === ZERO || cb === ZERO) return signBits;
    unpack(a, f, ua);
    unpack(b, f, ub);
    return roundPack(sign, ua.sig * ub.sig, ua.exp + ub.exp, false, f, env);
  }
  // div
  if (ca === INF) {
    if (cb === INF) {
      env.flags |= MXCSR.IE;
      return f.defaultNaN;
    }
    if (cb === SUBNORMAL) denormalOperand(b, cb, f, env);
    return signBits | f.expMask;
  }
  if (cb === INF) {
    if (ca === SUBNORMAL) denormalOperand(a, ca, f, env);
    return signBits;
  }
  const daz = (env.mxcsr & MXCSR.DAZ) !== 0;
  const za = ca === ZERO || (daz && ca === SUBNORMAL);
  const zb = cb === ZERO || (daz && cb === SUBNORMAL);
  if (zb) {
    if (za) {
      env.flags |= MXCSR.IE;
      return f.defaultNaN;
    }
    env.flags |= MXCSR.ZE;
    return signBits | f.expMask;
  }
  a = denormalOperand(a, ca, f, env);
  b = denormalOperand(b, cb, f, env);
  if (za) return signBits;
  unpack(a, f, ua);
  unpack(b, f, ub);
  const k = Math.max(0, f.p + 3 + bitLength(ub.sig) - bitLength(ua.sig));
  const num = ua.sig << BigInt(k);
  const q = num / ub.sig;
  const rem = num - q * ub.sig;
  return roundPack(sign, q, ua.exp - ub.exp - k, rem !== 0n, f, env);
}

function isqrt(n: bigint): bigint {
  if (n < 2n) return n;
  let x = 1n << BigInt(Math.ceil(bitLength(n) / 2));
  for (;;) {
    const y = (x + n / x) >> 1n;
    if (y >= x) return x;
    x = y;
  }
}

/** Square root. */
export function fpSqrt(a: bigint, fmt: FpFormat, env: FpEnv): bigint {
  const f = fmtOf(fmt);
  const ca = classify(a, f);
  if (ca === NORMAL && (a & f.signBit) === 0n && fastPathAllowed(env.mxcsr)) {
    const r = Math.sqrt(toNumber(a, fmt));
    // The square root of a normal number is always normal; fround rounds correctly.
    return fromNumber(fmt === 32 ? Math.fround(r) : r, fmt);
  }
  if (ca === QNAN || ca === SNAN) {
    if (ca === SNAN) env.flags |= MXCSR.IE;
    return quiet(a, f);
  }
  const negative = (a & f.signBit) !== 0n;
  if (ca === SUBNORMAL && (env.mxcsr & MXCSR.DAZ) !== 0) return a & f.signBit;
  if (ca === ZERO) return a;
  if (negative) {
    env.flags |= MXCSR.IE; // invalid takes precedence over a denormal operand
    return f.defaultNaN;
  }
  if (ca === SUBNORMAL) denormalOperand(a, ca, f, env);
  if (ca === INF) return a;
  unpack(a, f, ua);
  let sig = ua.sig;
  let exp = ua.exp;
  const want = 2 * (f.p + 3) + 2;
  let shift = Math.max(0, want - bitLength(sig));
  if ((exp - shift) % 2 !== 0) shift++;
  sig <<= BigInt(shift);
  exp -= shift;
  const r = isqrt(sig);
  return roundPack(false, r, exp / 2, r * r !== sig, f, env);
}

/**
 * MINSS/MINSD/MAXSS/MAXSD on one lane: `a < b ? a : b` (or `>`), so a NaN in
 * either operand or two zeros give `b`. Any NaN raises IE.
 */
export function fpMinMax(max: boolean, a: bigint, b: bigint, fmt: FpFormat, env: FpEnv): bigint {
  const f = fmtOf(fmt);
  const ca = classify(a, f);
  const cb = classify(b, f);
  if (ca === QNAN || ca === SNAN || cb === QNAN || cb === SNAN) {
    env.flags |= MXCSR.IE;
    // DAZ still flushes a denormal second operand; no DE next to a NaN.
    return cb === SUBNORMAL && (env.mxcsr & MXCSR.DAZ) !== 0 ? b & f.signBit : b;
  }
  a = denormalOperand(a, ca, f, env);
  b = denormalOperand(b, cb, f, env);
  const order = compareOrdered(a, b, f);
  return (max ? order > 0 : order < 0) ? a : b;
}

/** -1, 0 or 1 for two non-NaN values (zeros compare equal). */
function compareOrdered(a: bigint, b: bigint, f: Format): number {
  const sa = (a & f.signBit) !== 0n;
  const sb = (b & f.signBit) !== 0n;
  const ma = a & ~f.signBit;
  const mb = b & ~f.signBit;
  if (ma === 0n && mb === 0n) return 0;
  if (sa !== sb) return sa ? -1 : 1;
  if (ma === mb) return 0;
  return (ma < mb) !== sa ? -1 : 1;
}

/**
 * Compares two values. `signaling`: any NaN raises IE (COMIS*, and the
 * LT/LE/NLT/NLE predicates); otherwise only an SNaN does.
 */
export function fpCompare(
  a: bigint,
  b: bigint,
  fmt: FpFormat,
  signaling: boolean,
  env: FpEnv,
): FpOrder {
  const f = fmtOf(fmt);
  const ca = classify(a, f);
  const cb = classify(b, f);
  if (ca >= QNAN || cb >= QNAN) {
    if (signaling || ca === SNAN || cb === SNAN) env.flags |= MXCSR.IE;
    return "un";
  }
  a = denormalOperand(a, ca, f, env);
  b = denormalOperand(b, cb, f, env);
  const order = compareOrdered(a, b, f);
  return order < 0 ? "lt" : order > 0 ? "gt" : "eq";
}

/** CVTSD2SS / CVTSS2SD and their packed forms: converts `a` from one format to the other. */
export function fpConvert(a: bigint, from: FpFormat, to: FpFormat, env: FpEnv): bigint {
  const f = fmtOf(from);
  const t = fmtOf(to);
  let ca = classify(a, f);
  const sign = (a & f.signBit) !== 0n;
  const signBits = sign ? t.signBit : 0n;
  if (ca === QNAN || ca === SNAN) {
    if (ca === SNAN) env.flags |= MXCSR.IE;
    const payload = a & f.fracMask;
    const shifted = from === 64 ? payload >> 29n : payload << 29n;
    return signBits | t.expMask | t.quietBit | shifted;
  }
  if (ca === INF) return signBits | t.expMask;
  if (ca === SUBNORMAL) {
    a = denormalOperand(a, ca, f, env);
    ca = classify(a, f);
  }
  if (ca === ZERO) return signBits;
  unpack(a, f, ua);
  return roundPack(sign, ua.sig, ua.exp, false, t, env);
}

/** CVTSI2SS/CVTSI2SD and CVTDQ2PS/PD: a signed integer to `fmt`. */
export function fpFromInt(value: bigint, fmt: FpFormat, env: FpEnv): bigint {
  const f = fmtOf(fmt);
  if (value === 0n) return 0n;
  const sign = value < 0n;
  return roundPack(sign, sign ? -value : value, 0, false, f, env);
}

/**
 * CVT(T)SS2SI/CVT(T)SD2SI and CVT(T)PS2DQ/PD2DQ: `a` to a signed integer of
 * `width` bits (two's complement, unsigned result). NaN and out-of-range
 * give the integer indefinite (only sign bit set) and IE.
 */
export function fpToInt(
  a: bigint,
  fmt: FpFormat,
  width: 32 | 64,
  truncate: boolean,
  env: FpEnv,
): bigint {
  const f = fmtOf(fmt);
  const ca = classify(a, f);
  const indefinite = 1n << BigInt(width - 1);
  if (ca >= INF) {
    env.flags |= MXCSR.IE;
    return indefinite;
  }
  if (ca === ZERO || (ca === SUBNORMAL && (env.mxcsr & MXCSR.DAZ) !== 0)) return 0n;
  unpack(a, f, ua);
  const rc = truncate ? 3 : roundingControl(env);
  const magnitude = roundTo(ua.sign, ua.sig, ua.exp, false, 0, rc);
  const inexact = lastInexact;
  const v = ua.sign ? -magnitude : magnitude;
  if (v < -indefinite || v >= indefinite) {
    env.flags |= MXCSR.IE;
    return indefinite;
  }
  if (inexact) env.flags |= MXCSR.PE;
  return BigInt.asUintN(width, v);
}
