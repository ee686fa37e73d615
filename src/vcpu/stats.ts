/**
 * Per-vCPU exit counters: typed arrays made once and bumped on the hot path
 * without allocation. Pure.
 * @module
 */

import { MAX_HYPERCALL_PORT } from "../hypercall/table.ts";

/** Number of KVM exit reasons tracked individually. */
export const EXIT_REASON_SLOTS = 64;

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

  /** Total KVM exits. */
  get totalExits(): number {
    let n = 0;
    for (const v of this.exits) n += v;
    return n;
  }
}
