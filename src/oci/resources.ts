/**
 * The container's resource limits → dhyve's guest size: vCPUs from the CPU
 * quota or the cpuset, guest RAM from the memory limit minus what dhyve and
 * Deno need for themselves. Pure.
 *
 * The reserve was measured (peak RSS, `/usr/bin/time -f %M`) with Deno 2.9.6
 * running dhyve and the `smp_count` guest: 57 MB with 1 vCPU (no Workers),
 * 100 MB with 2 vCPUs (a V8 isolate per vCPU Worker) and 131 MB with 4, on
 * 2026-12-06. {@linkcode dhyveReserve} adds about 10 % to those.
 * @module
 */

import { EXIT_CODE } from "../exit_codes.ts";
import { formatSize, MAX_MEMORY_SIZE, MEMORY_ALIGN, MIN_MEMORY_SIZE } from "../params.ts";
import { OciError } from "./errors.ts";

const MIB = 1024 * 1024;

/** The parts of an OCI `linux.resources` this module reads. */
export interface OciResources {
  /** `memory.limit` in bytes (≤ 0 or absent: none). */
  memory?: { limit?: number };
  /** `cpu.quota`/`cpu.period` (µs) and `cpu.cpus` (a cpuset list such as `0-1,3`). */
  cpu?: { quota?: number; period?: number; cpus?: string };
}

/**
 * Memory dhyve and Deno need beside the guest's RAM, for `cpus` vCPUs:
 * 64 MiB with one vCPU, 112 MiB with two (the vCPU Workers start), then
 * 16 MiB per further vCPU.
 */
export function dhyveReserve(cpus: number): number {
  return cpus <= 1 ? 64 * MIB : 112 * MIB + 16 * MIB * (cpus - 2);
}

/** The number of CPUs in a cpuset list (`0-1,3` → 3); null when it cannot be read. */
export function cpusetSize(list: string): number | null {
  let count = 0;
  for (const part of list.split(",")) {
    const item = part.trim();
    if (item === "") continue;
    const m = /^(\d+)(?:-(\d+))?$/.exec(item);
    if (m === null) return null;
    const first = Number(m[1]);
    const last = m[2] === undefined ? first : Number(m[2]);
    if (last < first) return null;
    count += last - first + 1;
  }
  return count > 0 ? count : null;
}

/** vCPUs the CPU limits allow: ⌈quota/period⌉ and the cpuset's size, the smaller; null: no limit. */
export function cpuLimit(resources: OciResources | undefined): number | null {
  const cpu = resources?.cpu;
  const limits: number[] = [];
  if (cpu?.quota !== undefined && cpu.quota > 0) {
    const period = cpu.period !== undefined && cpu.period > 0 ? cpu.period : 100_000;
    limits.push(Math.max(1, Math.ceil(cpu.quota / period)));
  }
  if (cpu?.cpus !== undefined && cpu.cpus.trim() !== "") {
    const size = cpusetSize(cpu.cpus);
    if (size === null) {
      throw new OciError(
        `Cannot read the container's cpuset "${cpu.cpus}": expected a list such as 0-1,3`,
        EXIT_CODE.USAGE,
      );
    }
    limits.push(size);
  }
  return limits.length === 0 ? null : Math.min(...limits);
}

/**
 * Guest RAM for a container with memory limit `limit` running `cpus` vCPUs:
 * the limit less {@linkcode dhyveReserve}, rounded down to 2 MiB, at most
 * dhyve's maximum. `wanted` (an annotation) must fit in it. No limit: `wanted`
 * or null (dhyve's default).
 * @throws {OciError} (exit 64) when the limit leaves less than 16 MiB, or
 *   `wanted` does not fit.
 */
export function guestMemory(
  limit: number | undefined,
  cpus: number,
  wanted: number | undefined,
): number | null {
  if (limit === undefined || limit <= 0) return wanted ?? null;
  const reserve = dhyveReserve(cpus);
  const room = Math.min(
    MAX_MEMORY_SIZE,
    Math.floor(Math.max(0, limit - reserve) / MEMORY_ALIGN) * MEMORY_ALIGN,
  );
  const vcpus = `${cpus} vCPU${cpus === 1 ? "" : "s"}`;
  if (room < MIN_MEMORY_SIZE) {
    throw new OciError(
      `The container's memory limit (${formatSize(limit)}) is too small for a Hermit guest: ` +
        `dhyve needs ${formatSize(reserve)} for itself with ${vcpus} plus at least ` +
        `${formatSize(MIN_MEMORY_SIZE)} of guest RAM; allow at least ` +
        `${formatSize(reserve + MIN_MEMORY_SIZE)}`,
      EXIT_CODE.USAGE,
    );
  }
  if (wanted === undefined) return room;
  if (wanted > room) {
    throw new OciError(
      `Guest RAM ${formatSize(wanted)} does not fit in the container's memory limit ` +
        `(${formatSize(limit)}, of which dhyve needs ${formatSize(reserve)} with ${vcpus}): ` +
        `allow at least ${formatSize(wanted + reserve)} or ask for at most ${formatSize(room)}`,
      EXIT_CODE.USAGE,
    );
  }
  return wanted;
}
