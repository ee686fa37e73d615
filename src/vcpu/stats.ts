/**
 * Per-vCPU exit counters: typed arrays made once and bumped on the hot path
 * without allocation. Pure.
 * @module
 */

import { MAX_HYPERCALL_PORT } from "../hypercall/table.ts";

/** Number of KVM exit reasons tracked individually. */
export const EXIT_REASON_SLOTS = 64;

/** A vCPU's counters as one thread hands them to another (see {@linkcode VcpuStats.toRecord}). */
export interface StatsRecord {
  /** Exits by reason. */
  exits: Float64Array;
  /** Hypercalls by port. */
  hypercalls: Float64Array;
  /** Non-hypercall port reads. */
  portReads: number;
  /** Non-hypercall port writes. */
  portWrites: number;
  /** MMIO reads. */
  mmioReads: number;
  /** MMIO writes. */
  mmioWrites: number;
  /** Instructions emulated in userspace. */
  emulated: number;
  /** Start, as epoch milliseconds. */
  startedAt: number;
  /** Stop, as epoch milliseconds. */
  stoppedAt: number;
}

/** Counters for one vCPU. */
export class VcpuStats {
  /** The vCPU id. */
  readonly cpu: number;
  /** KVM exits by exit reason. */
  readonly exits: Float64Array = new Float64Array(EXIT_REASON_SLOTS);
  /** Hypercalls by port. */
  readonly hypercalls: Float64Array = new Float64Array(MAX_HYPERCALL_PORT);
  /** Port reads (IN) from non-hypercall ports, e.g. the PCI probe. */
  portReads = 0;
  /** Port writes (OUT) to non-hypercall ports. */
  portWrites = 0;
  /** MMIO reads of non-RAM addresses. */
  mmioReads = 0;
  /** MMIO writes to non-RAM addresses. */
  mmioWrites = 0;
  /** Instructions emulated in userspace because the host KVM could not. */
  emulated = 0;
  /** Wall time when this vCPU first entered KVM_RUN (performance.now()). */
  startedAt = 0;
  /** Wall time when it stopped. */
  stoppedAt = 0;

  /** Creates zeroed counters for vCPU `cpu`. */
  constructor(cpu: number) {
    this.cpu = cpu;
  }

  /**
   * The counters as a structured-clone record for another thread, times as
   * epoch milliseconds (each thread has its own `performance.timeOrigin`).
   */
  toRecord(): StatsRecord {
    return {
      exits: this.exits,
      hypercalls: this.hypercalls,
      portReads: this.portReads,
      portWrites: this.portWrites,
      mmioReads: this.mmioReads,
      mmioWrites: this.mmioWrites,
      emulated: this.emulated,
      startedAt: this.startedAt + performance.timeOrigin,
      stoppedAt: this.stoppedAt + performance.timeOrigin,
    };
  }

  /** Counters of vCPU `cpu` from another thread's {@linkcode toRecord}. */
  static fromRecord(cpu: number, r: StatsRecord): VcpuStats {
    const s = new VcpuStats(cpu);
    s.exits.set(r.exits);
    s.hypercalls.set(r.hypercalls);
    s.portReads = r.portReads;
    s.portWrites = r.portWrites;
    s.mmioReads = r.mmioReads;
    s.mmioWrites = r.mmioWrites;
    s.emulated = r.emulated;
    s.startedAt = r.startedAt - performance.timeOrigin;
    s.stoppedAt = r.stoppedAt - performance.timeOrigin;
    return s;
  }

  /** Total KVM exits. */
  get totalExits(): number {
    let n = 0;
    for (const v of this.exits) n += v;
    return n;
  }
}
